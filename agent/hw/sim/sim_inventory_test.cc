#include "agent/hw/sim/sim_inventory.h"

#include "agent/hw/sim/sim_hardware.h"
#include "agent/hw/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw {
namespace {

constexpr char kOnePf[] = R"json({
  "bridgeProfile": "sim",
  "pfs": [{"address": "0000:3b:00.0", "vendorId": 32902, "deviceId": 5490,
           "vfDeviceId": 5452, "totalVfs": 8, "initialVfs": 8, "numVfs": 3,
           "vfOffset": 16, "vfStride": 1,
           "barSizes": ["33554432", "0", "0", "32768"],
           "vfBarSizes": ["65536", "0", "0", "16384"],
           "msixVectors": 4, "msixBar": 3}]})json";

TEST(SimInventoryTest, ListsThePfAndItsEnabledVfs) {
  testing::TempDir dir;
  auto spec = ParseSimHardware(kOnePf);
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto host = SimSriovHost::Open(dir.path(), "n1", *spec);
  ASSERT_TRUE(host.ok()) << host.status();
  auto inv = SimulatedInventory(**host);
  ASSERT_TRUE(inv.ok()) << inv.status();
  ASSERT_EQ(inv->functions_size(), 4);
  const v1::PciFunction& pf = inv->functions(0);
  EXPECT_EQ(pf.address(), "0000:3b:00.0");
  EXPECT_EQ(pf.kind(), v1::PciFunction::SRIOV_PF);
  EXPECT_EQ(pf.vendor_id(), 32902u);
  EXPECT_EQ(pf.sriov().total_vfs(), 8u);
  EXPECT_EQ(pf.sriov().num_vfs(), 3u);
  EXPECT_EQ(pf.sriov().vf_device_id(), 5452u);
  EXPECT_THAT(
      pf.sriov().vf_addresses(),
      ::testing::ElementsAre("0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2"));
  EXPECT_EQ(pf.bar_sizes(0), 32u << 20);
  for (int i = 1; i < 4; ++i) {
    const v1::PciFunction& vf = inv->functions(i);
    EXPECT_EQ(vf.kind(), v1::PciFunction::SRIOV_VF);
    EXPECT_EQ(vf.address(), pf.sriov().vf_addresses(i - 1));
    // A VF's own ID registers read 0xffff; the inventory names it properly.
    EXPECT_EQ(vf.vendor_id(), 32902u);
    EXPECT_EQ(vf.device_id(), 5452u);
    EXPECT_EQ(vf.bar_sizes(0), 64u << 10);
  }
}

}  // namespace
}  // namespace fabric::agent::hw
