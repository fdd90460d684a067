#include "server/service/validate.h"

#include <string>

#include "gtest/gtest.h"
#include "server/service/manager_options.h"

namespace fabric::service {
namespace {

TEST(ValidateTest, PciAddresses) {
  EXPECT_TRUE(IsPciAddress("0000:3b:00.4"));
  EXPECT_TRUE(IsPciAddress("abcd:ff:1f.7"));
  EXPECT_FALSE(IsPciAddress("0000:3b:20.0"));  // device 32
  EXPECT_FALSE(IsPciAddress("0000:3b:00.8"));
  EXPECT_FALSE(IsPciAddress("0000:3b:00"));
  EXPECT_FALSE(IsPciAddress("0000-3b-00.4"));
}

TEST(ValidateTest, InventoryErrorsNameTheFunction) {
  v1::NodeInventory inv;
  inv.add_functions()->set_address("0000:3b:00.0");
  inv.add_functions()->set_address("bogus");
  absl::Status s = ValidateInventory(inv, "inventory");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("inventory.functions[1].address"),
            std::string::npos);
}

TEST(ValidateTest, NewAllocation) {
  v1::Allocation a;
  absl::Duration ttl;
  EXPECT_NE(ValidateNewAllocation(a, &ttl).message().find("allocation.size"),
            std::string::npos);
  a.set_size(4096);
  ASSERT_TRUE(ValidateNewAllocation(a, &ttl).ok());
  EXPECT_EQ(ttl, absl::ZeroDuration());
  a.mutable_ttl()->set_seconds(60);
  ASSERT_TRUE(ValidateNewAllocation(a, &ttl).ok());
  EXPECT_EQ(ttl, absl::Seconds(60));
  (*a.mutable_labels())[""] = "x";
  EXPECT_NE(ValidateNewAllocation(a, &ttl).message().find("allocation.labels"),
            std::string::npos);
}

TEST(ValidateTest, NewAttachment) {
  v1::Attachment a;
  uint64_t dma = 0;
  EXPECT_NE(ValidateNewAttachment(a, &dma).message().find("attachment.vf"),
            std::string::npos);
  a.set_vf("n1/0000:3b:00.4");
  a.set_borrower("n2");
  ASSERT_TRUE(ValidateNewAttachment(a, &dma).ok());
  EXPECT_EQ(dma, kDefaultDmaSize);
  a.set_interrupts(v1::Attachment::HYPERVISOR);
  EXPECT_NE(ValidateNewAttachment(a, &dma).message().find("attachment.vm"),
            std::string::npos);
  a.set_vm("vm1");
  a.set_dma_size(4097);
  EXPECT_NE(
      ValidateNewAttachment(a, &dma).message().find("attachment.dma_size"),
      std::string::npos);
}

TEST(ValidateTest, ManagerOptions) {
  ManagerOptions o;
  EXPECT_TRUE(ValidateManagerOptions(o).ok());
  o.heartbeat_timeout = o.heartbeat_interval;
  EXPECT_NE(ValidateManagerOptions(o).message().find("heartbeat_timeout"),
            std::string::npos);
}

}  // namespace
}  // namespace fabric::service
