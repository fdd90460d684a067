#include "device_plugin/device_table.h"

#include <thread>

#include "device_plugin/device_plugin_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::device_plugin {
namespace {

using ::testing::ElementsAre;
using testing::kMemoryResource;
using testing::kVfResource;
using testing::MemoryOffer;
using testing::VfOffer;

fabric::v1::OfferSet Set(std::initializer_list<fabric::v1::Offer> offers) {
  fabric::v1::OfferSet set;
  set.set_node("n1");
  for (const auto& o : offers) *set.add_offers() = o;
  return set;
}

TEST(ResourceNameForTest, VfsByVendorAndDeviceMemoryAsOne) {
  EXPECT_EQ(ResourceNameFor(VfOffer("a")), "pciefabric.dev/vf-8086-154c");
  fabric::v1::Offer small = VfOffer("b");
  small.mutable_vf()->set_vendor_id(0x15b3);
  small.mutable_vf()->set_device_id(0x1a);
  EXPECT_EQ(ResourceNameFor(small), "pciefabric.dev/vf-15b3-001a");
  EXPECT_EQ(ResourceNameFor(MemoryOffer("m")), "pciefabric.dev/remote-memory");
  EXPECT_EQ(ResourceNameFor(fabric::v1::Offer()), "");
}

TEST(DeviceTableTest, GroupsOffersByResourceAndSkipsBadOnes) {
  DeviceTable table;
  fabric::v1::Offer no_id = VfOffer("");
  fabric::v1::Offer no_kind;
  no_kind.set_id("x");
  table.Apply(Set({VfOffer("vf-b"), VfOffer("vf-a"), MemoryOffer("mem-0"),
                   no_id, no_kind}));
  EXPECT_THAT(table.Resources(), ElementsAre(kMemoryResource, kVfResource));
  std::vector<Device> vfs = table.Devices(kVfResource);
  ASSERT_EQ(vfs.size(), 2u);
  EXPECT_EQ(vfs[0].id, "vf-a");
  EXPECT_EQ(vfs[0].resource, kVfResource);
  EXPECT_EQ(vfs[1].id, "vf-b");
  EXPECT_TRUE(table.Find(kVfResource, "vf-a").ok());
  absl::StatusOr<Device> missing = table.Find(kMemoryResource, "vf-a");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              ::testing::HasSubstr("\"vf-a\""));
}

TEST(DeviceTableTest, VersionMovesOnlyOnChange) {
  DeviceTable table;
  EXPECT_EQ(table.version(), 0u);
  table.Apply(Set({VfOffer("vf-a")}));
  EXPECT_EQ(table.version(), 1u);
  table.Apply(Set({VfOffer("vf-a")}));  // the same set again
  EXPECT_EQ(table.version(), 1u);
  fabric::v1::Offer sick = VfOffer("vf-a");
  sick.set_healthy(false);
  table.Apply(Set({sick}));
  EXPECT_EQ(table.version(), 2u);
  // Gone: the resource stays, empty.
  table.Apply(Set({}));
  EXPECT_EQ(table.version(), 3u);
  EXPECT_THAT(table.Resources(), ElementsAre(kVfResource));
  EXPECT_TRUE(table.Devices(kVfResource).empty());
}

TEST(DeviceTableTest, AwaitChangeWakesOnApply) {
  DeviceTable table;
  EXPECT_EQ(table.AwaitChange(0, absl::Now() + absl::Milliseconds(1)), 0u);
  std::thread writer([&] { table.Apply(Set({VfOffer("vf-a")})); });
  EXPECT_EQ(table.AwaitChange(0, absl::InfiniteFuture()), 1u);
  writer.join();
}

}  // namespace
}  // namespace fabric::device_plugin
