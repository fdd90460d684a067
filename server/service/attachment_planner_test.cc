// VF lending through the manager (attachment_planner, leases): refused
// attachments change nothing, readiness follows the shadow device, windows
// are all planned or none.
#include "server/service/manager.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/manager_test_util.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;

// A ring n0 n1 n2 whose n1 lends devices; n0 may use another profile.
v1::CreateFabricRequest VfRing(const std::string& n0_profile = "") {
  v1::CreateFabricRequest req = RingRequest("vf", 3);
  req.mutable_spec()->mutable_nodes(0)->set_profile(n0_profile);
  req.mutable_spec()->mutable_nodes(1)->set_mmio_base(kMmio);
  req.mutable_spec()->mutable_nodes(1)->set_mmio_size(1ull << 30);
  return req;
}

class ManagerVfTest : public ManagerTest {
 protected:
  void StartFabric(const std::string& n0_profile = "") {
    ASSERT_TRUE(manager_->CreateFabric(VfRing(n0_profile)).ok());
    RegisterAll();
  }
  void RegisterAll() {
    for (int i = 0; i < 3; ++i) {
      agentproto::v1::RegisterNodeRequest reg;
      reg.set_node(absl::StrCat("n", i));
      if (i == 1) *reg.mutable_inventory() = LenderInventory();
      ASSERT_TRUE(manager_->RegisterNode(reg).ok());
    }
  }
  // Every agent applies the current generation; `shadows` are reported
  // ready by their borrowers.
  void Report(const std::vector<v1::Attachment>& shadows = {},
              const std::string& unhealthy_vf = "") {
    for (int i = 0; i < 3; ++i) {
      const std::string node = absl::StrCat("n", i);
      auto cfg = manager_->DesiredConfigFor(node);
      ASSERT_TRUE(cfg.ok());
      agentproto::v1::ReportStatusRequest rep;
      rep.set_node(node);
      rep.set_applied_generation(cfg->generation());
      for (const auto& a : shadows) {
        if (a.borrower() != absl::StrCat("nodes/", node)) continue;
        agentproto::v1::ShadowStatus* sh = rep.add_shadows();
        sh->set_attachment(a.name());
        sh->set_ready(true);
      }
      if (i == 1 && !unhealthy_vf.empty()) {
        agentproto::v1::VfHealthReport* h = rep.add_vf_health();
        h->set_vf_address(unhealthy_vf);
        h->set_healthy(false);
        h->set_reason("vendor id reads 0xffff");
      }
      ASSERT_TRUE(manager_->ReportStatus(rep).ok());
    }
  }
};

TEST_F(ManagerVfTest, BadAttachmentsChangeNothing) {
  StartFabric();
  const std::vector<std::string> before = Dump(store_.get());
  struct Case {
    v1::CreateAttachmentRequest req;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases = {
      {AttachRequest("n1/0000:3b:00.0", "n0"),
       absl::StatusCode::kInvalidArgument, "physical function"},
      {AttachRequest("n1/0000:3b:09.0", "n0"), absl::StatusCode::kNotFound,
       "reports no function 0000:3b:09.0"},
      {AttachRequest("n1/0000:3b:02.0", "n1"),
       absl::StatusCode::kInvalidArgument, "cannot borrow its own VF"},
      {AttachRequest("n1/0000:3b:02.0", "n9"), absl::StatusCode::kNotFound,
       "attachment.borrower"},
      {AttachRequest("nope", "n0"), absl::StatusCode::kInvalidArgument,
       "attachment.vf"},
      {AttachRequest("", "n0"), absl::StatusCode::kInvalidArgument,
       "attachment.vf: required"},
  };
  Case dma{AttachRequest("n1/0000:3b:02.0", "n0"),
           absl::StatusCode::kInvalidArgument, "attachment.dma_size"};
  dma.req.mutable_attachment()->set_dma_size(4097);
  cases.push_back(dma);
  Case policy{AttachRequest("n1/0000:3b:02.0", "n0"),
              absl::StatusCode::kInvalidArgument, "attachment.interrupts"};
  policy.req.mutable_attachment()->set_interrupts(
      static_cast<v1::Attachment::InterruptPolicy>(42));
  cases.push_back(policy);
  for (const Case& c : cases) {
    auto r = manager_->CreateAttachment(c.req);
    EXPECT_EQ(r.status().code(), c.code) << c.req.ShortDebugString();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.message));
  }
  // A borrower whose agent is gone: UNAVAILABLE.
  clock_.Advance(absl::Seconds(10));
  manager_->Sweep();
  auto r = manager_->CreateAttachment(AttachRequest("n1/0000:3b:02.0", "n0"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(Dump(store_.get()), before);
}

TEST_F(ManagerVfTest, MalformedInventoryAddressesAreRefused) {
  StartFabric();
  const std::vector<std::string> before = Dump(store_.get());
  const auto vfs_before = manager_->ListVirtualFunctions({});
  ASSERT_TRUE(vfs_before.ok());
  // Each would list a VF under a name that does not resolve.
  for (const std::string& bad :
       {std::string(""), std::string("0000-3b:02.0"), std::string("3b:02.0"),
        std::string("0000:3b:20.0"), std::string("0000:3b:02.8"),
        std::string("0000:3b:0g.0")}) {
    v1::NodeInventory inv = LenderInventory();
    inv.mutable_functions(2)->set_address(bad);
    agentproto::v1::RegisterNodeRequest reg;
    reg.set_node("n1");
    *reg.mutable_inventory() = inv;
    auto r = manager_->RegisterNode(reg);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("inventory.functions[2].address"));
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("DDDD:BB:DD.F"));
    agentproto::v1::ReportStatusRequest rep;
    rep.set_node("n1");
    *rep.mutable_inventory() = inv;
    auto s = manager_->ReportStatus(rep);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  v1::NodeInventory inv = LenderInventory();
  inv.mutable_functions(1)->set_pf_address("0000-3b-00.0");
  agentproto::v1::RegisterNodeRequest reg;
  reg.set_node("n1");
  *reg.mutable_inventory() = inv;
  EXPECT_THAT(std::string(manager_->RegisterNode(reg).status().message()),
              HasSubstr("inventory.functions[1].pf_address"));
  // Nothing was taken in: the pool and the store are as they were.
  const auto vfs_after = manager_->ListVirtualFunctions({});
  ASSERT_TRUE(vfs_after.ok());
  EXPECT_EQ(vfs_after->SerializeAsString(), vfs_before->SerializeAsString());
  EXPECT_EQ(Dump(store_.get()), before);
}

TEST_F(ManagerVfTest, AttachIsPendingUntilTheShadowExistsAndSurvivesRestart) {
  StartFabric();
  auto a = manager_->CreateAttachment(
      AttachRequest("nodes/n1/vfs/0000-3b-02.1", "n0", "r1"));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->lender(), "nodes/n1");
  EXPECT_EQ(a->vf_address(), "0000:3b:02.1");
  ASSERT_EQ(a->windows_size(), 4);
  // Retried request id: the same attachment; the VF is now taken.
  auto again = manager_->CreateAttachment(
      AttachRequest("nodes/n1/vfs/0000-3b-02.1", "n0", "r1"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->name(), a->name());
  auto taken = manager_->CreateAttachment(AttachRequest("n1/0000:3b:02.1", "n2"));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(taken.status().message()),
              HasSubstr("already lent to nodes/n0"));
  // The MMIO window lands on the VF's BAR in the lender's device range.
  for (const auto& w : a->windows()) {
    if (w.role() == "mmio-bar0") EXPECT_EQ(w.target_addr(), kMmio + (64 << 10));
  }
  ASSERT_TRUE(manager_->CheckInvariants().ok()) << manager_->CheckInvariants();

  Report();
  auto got = manager_->GetAttachment(a->name());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state(), v1::Attachment::PENDING);
  EXPECT_THAT(got->state_reason(), HasSubstr("shadow device on n0"));
  Report({*a});
  EXPECT_EQ(manager_->GetAttachment(a->name())->state(),
            v1::Attachment::READY);
  // Both agents are told their part.
  auto cfg0 = manager_->DesiredConfigFor("n0");
  ASSERT_EQ(cfg0->vf_assignments_size(), 1);
  EXPECT_EQ(cfg0->vf_assignments(0).role(),
            agentproto::v1::VfAssignment::BORROWER);
  auto cfg1 = manager_->DesiredConfigFor("n1");
  ASSERT_EQ(cfg1->vf_assignments_size(), 1);
  EXPECT_EQ(cfg1->vf_assignments(0).role(),
            agentproto::v1::VfAssignment::LENDER);
  EXPECT_EQ(cfg1->mmio_base(), kMmio);
  // Each end's assignment names the generation that committed the lending.
  // VfAccess carries it: the lender is sent that generation (or a newer
  // one), but not necessarily the borrower's newer ones, which may change
  // nothing for the lender.
  const int64_t committed =
      manager_->GetAttachment(a->name())->required_generation();
  EXPECT_GT(committed, 0);
  EXPECT_EQ(cfg0->vf_assignments(0).generation(), committed);
  EXPECT_EQ(cfg1->vf_assignments(0).generation(), committed);
  // An unhealthy VF degrades it, and the pool says so.
  Report({*a}, "0000:3b:02.1");
  got = manager_->GetAttachment(a->name());
  EXPECT_EQ(got->state(), v1::Attachment::DEGRADED);
  EXPECT_EQ(got->vf_health(), v1::VirtualFunction::UNHEALTHY);
  auto vf = manager_->GetVirtualFunction("n1/0000:3b:02.1");
  ASSERT_TRUE(vf.ok());
  EXPECT_EQ(vf->state(), v1::VirtualFunction::LENT);
  EXPECT_EQ(vf->borrower(), "nodes/n0");

  // Restart: the attachment and its windows are back.
  Reopen();
  RegisterAll();
  Report({*a});
  got = manager_->GetAttachment(a->name());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state(), v1::Attachment::READY) << got->state_reason();
  ASSERT_EQ(got->windows_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(got->windows(i).SerializeAsString(),
              a->windows(i).SerializeAsString());
  }
  ASSERT_TRUE(manager_->CheckInvariants().ok());

  // Detach frees everything.
  v1::DeleteAttachmentRequest del;
  del.set_name(a->name());
  auto gone = manager_->DeleteAttachment(del);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->state(), v1::Attachment::DETACHED);
  auto maps = manager_->ListAddressMaps({});
  for (const auto& m : maps->address_maps()) {
    EXPECT_EQ(m.windows_size(), 0) << m.name();
  }
  EXPECT_EQ(manager_->GetVirtualFunction("n1/0000:3b:02.1")->state(),
            v1::VirtualFunction::FREE);
}

TEST_F(ManagerVfTest, NoWindowLeftHalfAttached) {
  // n0 has 2 windows (intel-xeon-gen4): one VF's two BARs use both.
  StartFabric("intel-xeon-gen4");
  auto first = manager_->CreateAttachment(AttachRequest("n1/0000:3b:02.0", "n0"));
  ASSERT_TRUE(first.ok()) << first.status();
  const std::vector<std::string> before = Dump(store_.get());
  auto maps_before = manager_->ListAddressMaps({});
  auto second =
      manager_->CreateAttachment(AttachRequest("n1/0000:3b:02.1", "n0"));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted)
      << second.status();
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("mmio-bar"));
  EXPECT_EQ(Dump(store_.get()), before);
  auto maps_after = manager_->ListAddressMaps({});
  EXPECT_EQ(maps_after->SerializeAsString(), maps_before->SerializeAsString());
  ASSERT_TRUE(manager_->CheckInvariants().ok());

  // Here the MMIO windows (on n2) and the DMA window (1 GiB: all of n2's
  // export region) are planned before the MSI-X window finds no room; the
  // ones already planned are undone.
  auto third = AttachRequest("n1/0000:3b:02.2", "n2");
  third.mutable_attachment()->set_dma_size(1ull << 30);
  auto failed = manager_->CreateAttachment(third);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kResourceExhausted)
      << failed.status();
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("msix window"));
  EXPECT_EQ(Dump(store_.get()), before);
  EXPECT_EQ(manager_->ListAddressMaps({})->SerializeAsString(),
            maps_before->SerializeAsString());
  // With room, the same VF attaches.
  third.mutable_attachment()->set_dma_size(1ull << 20);
  EXPECT_TRUE(manager_->CreateAttachment(third).ok());
  ASSERT_TRUE(manager_->CheckInvariants().ok());
}

}  // namespace
}  // namespace fabric::service
