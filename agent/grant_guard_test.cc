#include "agent/grant_guard.h"

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kInbound = 0x1000'0000;   // exported to a borrower
constexpr uint64_t kWindow = 0x40'0000'0000;  // an outbound window
constexpr uint64_t kDma = 0x2000'0000;        // a borrowed VF's DMA region
constexpr uint64_t kBar = 0x50'0000'0000;     // a window onto its BAR0
constexpr uint64_t kMiB = 1 << 20;

agentproto::v1::DesiredConfig Config() {
  agentproto::v1::DesiredConfig c;
  c.set_node("n1");
  c.set_generation(7);
  v1::InboundEntry* in = c.mutable_address_map()->add_inbound();
  in->set_local_base(kInbound);
  in->set_size(kMiB);
  in->set_allocation("allocations/a1");
  in->set_borrower("nodes/n0");
  // allocations/a2 spread over two LUT slots that touch.
  for (int i = 0; i < 2; ++i) {
    v1::WindowEntry* w = c.mutable_address_map()->add_windows();
    w->set_slot_kind(v1::LUT);
    w->set_slot(i);
    w->set_local_base(kWindow + i * kMiB);
    w->set_size(kMiB);
    w->set_allocation("allocations/a2");
  }
  agentproto::v1::VfAssignment* a = c.add_vf_assignments();
  a->set_attachment("attachments/x");
  a->set_role(agentproto::v1::VfAssignment::BORROWER);
  v1::AttachmentWindow* dma = a->add_windows();
  dma->set_role("dma");
  dma->set_local_addr(0x70'0000'0000);  // on the lender: not this host's
  dma->set_target_addr(kDma);
  dma->set_size(kMiB);
  v1::AttachmentWindow* bar = a->add_windows();
  bar->set_role("mmio-bar0");
  bar->set_local_addr(kBar);
  bar->set_target_addr(0x9000'0000);  // on the lender: not this host's
  bar->set_size(64 << 10);
  v1::AttachmentWindow* msix = a->add_windows();
  msix->set_role("msix");
  msix->set_local_addr(0x71'0000'0000);
  msix->set_target_addr(0x3000'0000);
  msix->set_size(4096);
  return c;
}

TEST(GrantedRangesOfTest, ReadsExportsAndDmaWritesWindowsAndBars) {
  GrantedRanges r = GrantedRangesOf(Config());
  EXPECT_THAT(r.read,
              ElementsAre(GrantedRange{kInbound, kMiB, "allocations/a1"},
                          GrantedRange{kDma, kMiB, "attachments/x (dma)"}));
  // The two LUT slots of a2 are one range.
  EXPECT_THAT(r.write,
              ElementsAre(GrantedRange{kWindow, 2 * kMiB, "allocations/a2"},
                          GrantedRange{kBar, 64 << 10,
                                       "attachments/x (mmio-bar0)"}));
}

TEST(GrantedRangesOfTest, LenderAssignmentsGrantNothingHere) {
  agentproto::v1::DesiredConfig c;
  agentproto::v1::VfAssignment* a = c.add_vf_assignments();
  a->set_role(agentproto::v1::VfAssignment::LENDER);
  v1::AttachmentWindow* dma = a->add_windows();
  dma->set_role("dma");
  dma->set_target_addr(kDma);
  dma->set_size(kMiB);
  GrantedRanges r = GrantedRangesOf(c);
  EXPECT_TRUE(r.read.empty());
  EXPECT_TRUE(r.write.empty());
}

TEST(GrantGuardTest, NothingIsGrantedBeforeTheFirstConfiguration) {
  GrantGuard guard;
  absl::Status s = guard.Check(HostAccess::kRead, kInbound, 64);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("no grant covers it"));
}

TEST(GrantGuardTest, InsideAGrantedRangeIsAllowed) {
  GrantGuard guard;
  guard.Update(Config());
  EXPECT_TRUE(guard.Check(HostAccess::kRead, kInbound, kMiB).ok());
  EXPECT_TRUE(guard.Check(HostAccess::kRead, kInbound + kMiB - 1, 1).ok());
  EXPECT_TRUE(guard.Check(HostAccess::kRead, kDma + 4096, 4096).ok());
  // Across the two LUT slots of one grant.
  EXPECT_TRUE(guard.Check(HostAccess::kWrite, kWindow + kMiB - 8, 16).ok());
  EXPECT_TRUE(guard.Check(HostAccess::kWrite, kBar + 0x200, 4).ok());
}

TEST(GrantGuardTest, ReadAndWriteRangesAreSeparate) {
  GrantGuard guard;
  guard.Update(Config());
  // This host's exported memory is read by the manager, never written
  // through its data path; its windows are written, never read.
  EXPECT_EQ(guard.Check(HostAccess::kWrite, kInbound, 64).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(guard.Check(HostAccess::kRead, kWindow, 64).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(GrantGuardTest, AStraddlingAccessIsRefusedAndNamesTheRange) {
  GrantGuard guard;
  guard.Update(Config());
  absl::Status s = guard.Check(HostAccess::kRead, kInbound + kMiB - 4, 8);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("HostRead of 8 bytes at"));
  EXPECT_THAT(s.message(), HasSubstr("no grant covers it"));
  EXPECT_THAT(s.message(), HasSubstr("straddles the edge of allocations/a1"));
  s = guard.Check(HostAccess::kWrite, kBar - 4, 8);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("attachments/x (mmio-bar0)"));
}

TEST(GrantGuardTest, OutsideEveryRangeIsRefused) {
  GrantGuard guard;
  guard.Update(Config());
  absl::Status s = guard.Check(HostAccess::kRead, 0x10, 16);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("HostRead of 16 bytes"));
  EXPECT_THAT(s.message(), HasSubstr("generation 7"));
  // The doorbell page (msix) is not read through the data path.
  EXPECT_EQ(guard.Check(HostAccess::kRead, 0x3000'0000, 4).code(),
            absl::StatusCode::kPermissionDenied);
  // No overflow at the top of the address space.
  EXPECT_EQ(guard.Check(HostAccess::kWrite, ~uint64_t{0} - 3, 8).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(GrantGuardTest, ARemovedGrantIsRefusedFromTheNextConfiguration) {
  GrantGuard guard;
  guard.Update(Config());
  ASSERT_TRUE(guard.Check(HostAccess::kRead, kInbound, 64).ok());
  agentproto::v1::DesiredConfig next = Config();
  next.set_generation(8);
  next.mutable_address_map()->clear_inbound();
  guard.Update(next);
  absl::Status s = guard.Check(HostAccess::kRead, kInbound, 64);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("generation 8"));
  // What is still granted stays allowed.
  EXPECT_TRUE(guard.Check(HostAccess::kRead, kDma, 64).ok());
}

TEST(GrantGuardTest, ChecksWhileTheConfigurationChanges) {
  GrantGuard guard;
  agentproto::v1::DesiredConfig with = Config();
  agentproto::v1::DesiredConfig without = Config();
  without.mutable_address_map()->clear_inbound();
  guard.Update(with);
  std::atomic<bool> stop{false};
  std::thread updater([&] {
    for (int i = 0; !stop; ++i) guard.Update(i % 2 ? with : without);
  });
  for (int i = 0; i < 10000; ++i) {
    // Either answer, never a torn one: the DMA grant is in both.
    absl::Status s = guard.Check(HostAccess::kRead, kInbound, 64);
    ASSERT_TRUE(s.ok() || absl::IsPermissionDenied(s)) << s;
    ASSERT_TRUE(guard.Check(HostAccess::kRead, kDma, 64).ok());
  }
  stop = true;
  updater.join();
}

}  // namespace
}  // namespace fabric::agent
