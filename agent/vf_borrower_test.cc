// VfBorrower against a lender agent served on 127.0.0.1:0: a NodeAgentService
// whose VfAccess is a real VfLender over the simulator's device model, and
// which records every access it serves. The borrower's host memory is a
// fake HostReader.
#include "agent/vf_borrower.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/hw/sim/sim_hardware.h"
#include "agent/hw/sim/sim_sriov_functions.h"
#include "agent/hw/testing/temp_dir.h"
#include "agent/vf_lender.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace fabric::agent {
namespace {

using ::testing::HasSubstr;

constexpr char kAttachment[] = "attachments/att-1";
constexpr char kVf0[] = "0000:3b:02.0";
constexpr char kVm[] = "vm-1";
// Nothing listens there: connections are refused at once.
constexpr char kDeadAgent[] = "127.0.0.1:1";
// The lender's MSI-X window (lender side), the borrower's doorbell page and
// the borrower's windows onto the VF's BARs (0: 64 KiB, 3: 16 KiB).
constexpr uint64_t kLenderMsixWindow = 0x200'4000'0000ull;
constexpr uint64_t kDoorbell = 0x7f00'0000ull;
constexpr uint64_t kDoorbellSize = 4096;
constexpr uint64_t kBar0Window = 0x300'0000'0000ull;
constexpr uint64_t kBar3Window = 0x300'0010'0000ull;

// The lender's agent: VfAccess served by a VfLender; every request kept.
class FakeLender final : public agentproto::v1::NodeAgentService::Service {
 public:
  explicit FakeLender(VfLender* lender) : lender_(lender) {}

  grpc::Status VfAccess(grpc::ServerContext*,
                        const agentproto::v1::VfAccessRequest* req,
                        agentproto::v1::VfAccessResponse* resp) override {
    {
      absl::MutexLock l(&mu_);
      requests_.push_back(*req);
    }
    absl::StatusOr<agentproto::v1::VfAccessResponse> r =
        lender_->VfAccess(*req);
    if (!r.ok()) return ToGrpcStatus(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }

  std::vector<agentproto::v1::VfAccessRequest> requests() const {
    absl::MutexLock l(&mu_);
    return requests_;
  }

 private:
  VfLender* const lender_;
  mutable absl::Mutex mu_;
  std::vector<agentproto::v1::VfAccessRequest> requests_ ABSL_GUARDED_BY(mu_);
};

// The borrower host's memory, as the agent's HostRead sees it.
class FakeHostMemory {
 public:
  void Write32(uint64_t addr, uint32_t value) {
    absl::MutexLock l(&mu_);
    for (int i = 0; i < 4; ++i) bytes_[addr + i] = uint8_t(value >> (8 * i));
  }
  absl::Status Read(uint64_t addr, absl::Span<uint8_t> out) {
    absl::MutexLock l(&mu_);
    for (size_t i = 0; i < out.size(); ++i) {
      auto it = bytes_.find(addr + i);
      out[i] = it == bytes_.end() ? 0 : it->second;
    }
    return absl::OkStatus();
  }

 private:
  absl::Mutex mu_;
  std::map<uint64_t, uint8_t> bytes_ ABSL_GUARDED_BY(mu_);
};

v1::AttachmentWindow* AddWindow(agentproto::v1::VfAssignment& a,
                                const std::string& role, uint64_t local,
                                uint64_t target, uint64_t size) {
  v1::AttachmentWindow* w = a.add_windows();
  w->set_role(role);
  w->set_from_node("n0");
  w->set_to_node("n1");
  w->set_local_addr(local);
  w->set_target_addr(target);
  w->set_size(size);
  return w;
}

// The lender's simulated host: one PF with 8 VFs of 4 MSI-X vectors.
absl::StatusOr<std::unique_ptr<hw::SimSriovHost>> OpenLenderHost(
    const std::string& dir) {
  ASSIGN_OR_RETURN(
      hw::SimHardware hw,
      hw::LoadSimHardware(absl::StrCat(FABRIC_SOURCE_DIR,
                                       "/agent/hw/sim/examples/one_pf.json")));
  return hw::SimSriovHost::Open(dir, "n1", hw);
}

// kVf0 of n1 lent to n0, as either side's assignment (without windows).
agentproto::v1::VfAssignment Assignment(
    agentproto::v1::VfAssignment::Role role) {
  agentproto::v1::VfAssignment a;
  a.set_attachment(kAttachment);
  a.set_role(role);
  a.set_vf_address(kVf0);
  a.set_lender("nodes/n1");
  a.set_borrower("nodes/n0");
  return a;
}

class VfBorrowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto host = OpenLenderHost(dir_.path());
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = *std::move(host);
    functions_ = std::make_unique<hw::SimSriovFunctions>(host_.get());
    lender_ = std::make_unique<VfLender>("n1", functions_.get());
    agentproto::v1::VfAssignment lent =
        Assignment(agentproto::v1::VfAssignment::LENDER);
    AddWindow(lent, "msix", kLenderMsixWindow, 0, 1 << 20);
    lender_->SetAssignments({lent});

    fake_ = std::make_unique<FakeLender>(lender_.get());
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(fake_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    lender_address_ = absl::StrCat("127.0.0.1:", port);

    borrower_ = std::make_unique<VfBorrower>(
        "n0",
        [this](uint64_t addr, absl::Span<uint8_t> out) {
          return memory_.Read(addr, out);
        },
        [this] {
          absl::MutexLock l(&change_mu_);
          ++changes_;
        });
  }

  void TearDown() override {
    borrower_.reset();
    if (server_ != nullptr) server_->Shutdown();
  }

  agentproto::v1::VfAssignment Borrowed(const std::string& lender_agent) {
    agentproto::v1::VfAssignment a =
        Assignment(agentproto::v1::VfAssignment::BORROWER);
    a.set_lender_agent(lender_agent);
    a.set_vm(kVm);
    a.set_vendor_id(32902);
    a.set_device_id(5452);
    AddWindow(a, "msix", kLenderMsixWindow, kDoorbell, kDoorbellSize);
    AddWindow(a, "mmio-bar0", kBar0Window, 0, 64 << 10);
    AddWindow(a, "mmio-bar3", kBar3Window, 0, 16 << 10);
    return a;
  }

  // This node's shadow status of the attachment, as FillStatus reports it.
  agentproto::v1::ShadowStatus Status() {
    agentproto::v1::ReportStatusRequest report;
    borrower_->FillStatus(&report);
    for (const auto& s : report.shadows()) {
      if (s.attachment() == kAttachment) return s;
    }
    return {};
  }

  // Waits (up to 10 s) until `done` holds of the shadow status, re-checking
  // whenever the borrower reports a shadow change.
  bool WaitForStatus(
      const std::function<bool(const agentproto::v1::ShadowStatus&)>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (true) {
      int seen;
      {
        absl::MutexLock l(&change_mu_);
        seen = changes_;
      }
      if (done(Status())) return true;
      absl::MutexLock l(&change_mu_);
      auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_) {
        return changes_ != seen;
      };
      if (!change_mu_.AwaitWithDeadline(absl::Condition(&changed), deadline)) {
        return false;
      }
    }
  }

  void BuildShadow() {
    borrower_->SetAssignments({Borrowed(lender_address_)});
    ASSERT_TRUE(WaitForStatus([](const agentproto::v1::ShadowStatus& s) {
      return s.ready();
    })) << Status().DebugString();
  }

  absl::StatusOr<v1::AccessShadowResponse> Shadow(
      v1::AccessShadowRequest::Op op, uint32_t offset = 0, uint32_t size = 4,
      uint32_t value = 0) {
    v1::AccessShadowRequest req;
    req.set_attachment(kAttachment);
    req.set_space(v1::AccessShadowRequest::CONFIG);
    req.set_op(op);
    req.set_offset(offset);
    req.set_size(size);
    req.set_value(value);
    return borrower_->AccessShadow(req);
  }

  absl::StatusOr<agentproto::v1::ShadowInterruptResponse> Interrupt(
      uint64_t addr, uint32_t data) {
    agentproto::v1::ShadowInterruptRequest req;
    req.set_attachment(kAttachment);
    req.set_addr(addr);
    req.set_data(data);
    return borrower_->ShadowInterrupt(req);
  }

  int CountOps(agentproto::v1::VfAccessRequest::Op op) const {
    int n = 0;
    for (const auto& r : fake_->requests()) n += r.op() == op;
    return n;
  }

  hw::testing::TempDir dir_;
  std::unique_ptr<hw::SimSriovHost> host_;
  std::unique_ptr<hw::SriovFunctions> functions_;
  std::unique_ptr<VfLender> lender_;
  std::unique_ptr<FakeLender> fake_;
  std::unique_ptr<grpc::Server> server_;
  std::string lender_address_;
  FakeHostMemory memory_;
  absl::Mutex change_mu_;
  int changes_ ABSL_GUARDED_BY(change_mu_) = 0;
  // Declared last: destroyed first, before what its callbacks use.
  std::unique_ptr<VfBorrower> borrower_;
};

TEST_F(VfBorrowerTest, BuildsAShadowFromTheLendersSnapshot) {
  BuildShadow();
  const auto requests = fake_->requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests[0].op(), agentproto::v1::VfAccessRequest::CONFIG_SNAPSHOT);
  for (const auto& r : requests) {
    EXPECT_EQ(r.borrower(), "nodes/n0");
    EXPECT_EQ(r.vf_address(), kVf0);
  }
  // The IDs are the assignment's, not the VF's own 0xffff.
  auto id = Shadow(v1::AccessShadowRequest::READ, 0x00, 4);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->value(), 5452u << 16 | 32902u);
  EXPECT_TRUE(Status().error().empty());

  // A shadow for an attachment this node does not borrow is NOT_FOUND.
  v1::AccessShadowRequest other;
  other.set_attachment("attachments/att-2");
  other.set_op(v1::AccessShadowRequest::READ);
  EXPECT_EQ(borrower_->AccessShadow(other).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(VfBorrowerTest, ConfigReadsGoToTheLender) {
  BuildShadow();
  const int before = CountOps(agentproto::v1::VfAccessRequest::CONFIG_READ);
  auto status = Shadow(v1::AccessShadowRequest::READ, 0x06, 2);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_GT(CountOps(agentproto::v1::VfAccessRequest::CONFIG_READ), before);
  auto vf = discovery::ParsePciAddress(kVf0);
  ASSERT_TRUE(vf.ok());
  EXPECT_EQ(status->value(), *host_->ConfigRead(*vf, 0x06, 2));
  EXPECT_GT(Status().counters().config_reads(), 0u);
}

TEST_F(VfBorrowerTest, BarsReadTheBorrowersWindows) {
  BuildShadow();
  constexpr uint32_t k64Prefetchable = 0xc;
  auto lo = Shadow(v1::AccessShadowRequest::READ, 0x10, 4);
  auto hi = Shadow(v1::AccessShadowRequest::READ, 0x14, 4);
  ASSERT_TRUE(lo.ok() && hi.ok());
  EXPECT_EQ(lo->value(), uint32_t(kBar0Window) | k64Prefetchable);
  EXPECT_EQ(hi->value(), uint32_t(kBar0Window >> 32));
  auto bar3 = Shadow(v1::AccessShadowRequest::READ, 0x1c, 4);
  ASSERT_TRUE(bar3.ok());
  EXPECT_EQ(bar3->value(), uint32_t(kBar3Window) | k64Prefetchable);
  // No window for BAR2: unimplemented.
  auto bar2 = Shadow(v1::AccessShadowRequest::READ, 0x18, 4);
  ASSERT_TRUE(bar2.ok());
  EXPECT_EQ(bar2->value(), 0u);
}

TEST_F(VfBorrowerTest, WriteOutsideTheAllowedRegistersIsDroppedAndCounted) {
  BuildShadow();
  const int writes = CountOps(agentproto::v1::VfAccessRequest::CONFIG_WRITE);
  auto w = Shadow(v1::AccessShadowRequest::WRITE, 0x00, 2, 0x1234);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->outcome(), v1::AccessShadowResponse::DROPPED);
  EXPECT_THAT(w->reason(), HasSubstr("vendor id is read-only"));
  EXPECT_EQ(CountOps(agentproto::v1::VfAccessRequest::CONFIG_WRITE), writes);
  const v1::VfCounters c = Status().counters();
  EXPECT_EQ(c.config_writes_dropped(), 1u);
  EXPECT_EQ(c.config_dropped_by_reason().at(w->reason()), 1u);

  // Bus mastering is forwarded to the lender's VF.
  auto cmd = Shadow(v1::AccessShadowRequest::WRITE, 0x04, 2, 0x0004);
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->outcome(), v1::AccessShadowResponse::FORWARDED);
  EXPECT_GT(CountOps(agentproto::v1::VfAccessRequest::CONFIG_WRITE), writes);
}

TEST_F(VfBorrowerTest, DoorbellMessagesAreDeliveredByVmState) {
  BuildShadow();
  auto setup = Shadow(v1::AccessShadowRequest::DRIVER_SETUP);
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_EQ(setup->value(), 4u);  // the VF's vectors
  // The lender programmed each vector into its MSI-X window.
  int entries = 0;
  for (const auto& r : fake_->requests()) {
    if (r.op() != agentproto::v1::VfAccessRequest::MSIX_ENTRY) continue;
    EXPECT_EQ(r.addr(), kLenderMsixWindow + 4 * uint64_t(r.vector()));
    ++entries;
  }
  EXPECT_EQ(entries, 4);

  // Vector 2's message lands in the doorbell; the VM is not running.
  const uint64_t addr = kDoorbell + 4 * 2;
  memory_.Write32(addr, 2);
  auto queued = Interrupt(addr, 2);
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_EQ(queued->delivery(),
            agentproto::v1::ShadowInterruptResponse::HYPERVISOR);
  EXPECT_EQ(queued->counters().delivered_via_hypervisor(), 1u);

  hypervisor::v1::SetVmStateRequest run;
  run.set_vm(kVm);
  run.set_running(true);
  run.set_core(3);
  auto ran = borrower_->SetVmState(run);
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_EQ(ran->injected(), 1);
  auto direct = Interrupt(addr, 2);
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(direct->delivery(),
            agentproto::v1::ShadowInterruptResponse::DIRECT);
  EXPECT_EQ(direct->counters().delivered_direct(), 1u);

  hypervisor::v1::SetVmStateRequest stop;
  stop.set_vm(kVm);
  ASSERT_TRUE(borrower_->SetVmState(stop).ok());
  auto again = Interrupt(addr, 2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->delivery(),
            agentproto::v1::ShadowInterruptResponse::HYPERVISOR);
}

TEST_F(VfBorrowerTest, MessagesThatAreNotTheShadowsAreDroppedWithAReason) {
  BuildShadow();
  ASSERT_TRUE(Shadow(v1::AccessShadowRequest::DRIVER_SETUP).ok());

  const uint64_t outside = kDoorbell + kDoorbellSize;
  memory_.Write32(outside, 1);
  auto out = Interrupt(outside, 1);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->delivery(), agentproto::v1::ShadowInterruptResponse::DROPPED);
  EXPECT_THAT(out->reason(), HasSubstr("outside the shadow device's doorbell"));

  // In the doorbell, but memory does not hold the message's data.
  memory_.Write32(kDoorbell + 4, 7);
  auto stale = Interrupt(kDoorbell + 4, 1);
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->delivery(),
            agentproto::v1::ShadowInterruptResponse::DROPPED);
  EXPECT_THAT(stale->reason(), HasSubstr("doorbell holds 7"));

  // In the doorbell and in memory, but no vector sends it.
  memory_.Write32(kDoorbell + 0x100, 9);
  auto unknown = Interrupt(kDoorbell + 0x100, 9);
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->delivery(),
            agentproto::v1::ShadowInterruptResponse::DROPPED);
  EXPECT_THAT(unknown->reason(), HasSubstr("no MSI-X vector"));
  EXPECT_EQ(unknown->counters().delivered_direct() +
                unknown->counters().delivered_via_hypervisor(),
            0u);
}

TEST_F(VfBorrowerTest, UnreachableLenderLeavesAnErrorUntilItIsReachable) {
  borrower_->SetAssignments({Borrowed(kDeadAgent)});
  ASSERT_TRUE(WaitForStatus([](const agentproto::v1::ShadowStatus& s) {
    return !s.error().empty();
  }));
  const agentproto::v1::ShadowStatus failed = Status();
  EXPECT_FALSE(failed.ready());
  EXPECT_THAT(failed.error(), HasSubstr("lender nodes/n1"));
  auto access = Shadow(v1::AccessShadowRequest::READ, 0x00, 4);
  EXPECT_EQ(access.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(access.status().message()),
              HasSubstr("not built yet"));
  EXPECT_EQ(Interrupt(kDoorbell, 0).status().code(),
            absl::StatusCode::kNotFound);

  // The lender's agent is back at a new address.
  borrower_->SetAssignments({Borrowed(lender_address_)});
  ASSERT_TRUE(WaitForStatus(
      [](const agentproto::v1::ShadowStatus& s) { return s.ready(); }));
  EXPECT_TRUE(Status().error().empty());
  EXPECT_TRUE(Shadow(v1::AccessShadowRequest::READ, 0x00, 4).ok());
}

TEST_F(VfBorrowerTest, ALenderWithoutAnAddressIsAShadowError) {
  borrower_->SetAssignments({Borrowed("")});
  ASSERT_TRUE(WaitForStatus([](const agentproto::v1::ShadowStatus& s) {
    return !s.error().empty();
  }));
  EXPECT_THAT(Status().error(), HasSubstr("has no control address"));
  // Withdrawn: the status and its error go.
  borrower_->SetAssignments({});
  agentproto::v1::ReportStatusRequest report;
  borrower_->FillStatus(&report);
  EXPECT_EQ(report.shadows_size(), 0);
}

}  // namespace
}  // namespace fabric::agent
