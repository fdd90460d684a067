// AgentRelay against in-process fake NodeAgentService servers on
// 127.0.0.1:0 and a fake RelayTargets: what each relayed call sends to which
// agent, what it makes of the answers, and the canonical code of each error.
#include "server/service/agent_relay.h"

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/security/testing/test_pki.h"
#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/manager.h"
#include "server/store/sqlite_store.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Nothing listens here: connecting is refused at once.
constexpr char kDeadAgent[] = "127.0.0.1:1";

// A NodeAgentService whose answers the test sets; unset methods are
// UNIMPLEMENTED. Records what it was asked.
class FakeAgent final : public agentproto::v1::NodeAgentService::Service {
 public:
  template <typename Req, typename Resp>
  using Handler = std::function<grpc::Status(const Req&, Resp*)>;

  Handler<agentproto::v1::HostWriteRequest, v1::AccessResult> host_write;
  Handler<agentproto::v1::HostReadRequest, agentproto::v1::HostReadResponse>
      host_read;
  Handler<agentproto::v1::VfAccessRequest, agentproto::v1::VfAccessResponse>
      vf_access;
  Handler<v1::AccessShadowRequest, v1::AccessShadowResponse> access_shadow;
  Handler<agentproto::v1::ShadowInterruptRequest,
          agentproto::v1::ShadowInterruptResponse>
      shadow_interrupt;
  Handler<hypervisor::v1::SetVmStateRequest, hypervisor::v1::SetVmStateResponse>
      set_vm_state;

  grpc::Status HostWrite(grpc::ServerContext*,
                         const agentproto::v1::HostWriteRequest* r,
                         v1::AccessResult* w) override {
    return Run(host_write, "HostWrite", *r, w);
  }
  grpc::Status HostRead(grpc::ServerContext*,
                        const agentproto::v1::HostReadRequest* r,
                        agentproto::v1::HostReadResponse* w) override {
    return Run(host_read, "HostRead", *r, w);
  }
  grpc::Status VfAccess(grpc::ServerContext*,
                        const agentproto::v1::VfAccessRequest* r,
                        agentproto::v1::VfAccessResponse* w) override {
    return Run(vf_access, "VfAccess", *r, w);
  }
  grpc::Status AccessShadow(grpc::ServerContext*,
                            const v1::AccessShadowRequest* r,
                            v1::AccessShadowResponse* w) override {
    return Run(access_shadow, "AccessShadow", *r, w);
  }
  grpc::Status ShadowInterrupt(
      grpc::ServerContext*, const agentproto::v1::ShadowInterruptRequest* r,
      agentproto::v1::ShadowInterruptResponse* w) override {
    return Run(shadow_interrupt, "ShadowInterrupt", *r, w);
  }
  grpc::Status SetVmState(grpc::ServerContext*,
                          const hypervisor::v1::SetVmStateRequest* r,
                          hypervisor::v1::SetVmStateResponse* w) override {
    return Run(set_vm_state, "SetVmState", *r, w);
  }

  // The methods called so far, in order.
  std::vector<std::string> calls() const {
    absl::MutexLock l(&mu_);
    return calls_;
  }

 private:
  template <typename Req, typename Resp>
  grpc::Status Run(const Handler<Req, Resp>& h, const char* name,
                   const Req& req, Resp* resp) {
    {
      absl::MutexLock l(&mu_);
      calls_.push_back(name);
    }
    if (!h) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, name);
    return h(req, resp);
  }

  mutable absl::Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
};

// A FakeAgent served on 127.0.0.1:0 (plaintext unless `credentials`).
class AgentServer {
 public:
  explicit AgentServer(std::shared_ptr<grpc::ServerCredentials> credentials =
                           grpc::InsecureServerCredentials()) {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port);
    builder.RegisterService(&agent_);
    server_ = builder.BuildAndStart();
    address_ = absl::StrCat("127.0.0.1:", port);
  }
  ~AgentServer() {
    release_.Notify();  // Handlers blocked in Hang() return.
    server_->Shutdown();
  }

  FakeAgent& agent() { return agent_; }
  const std::string& address() const { return address_; }
  // Blocks a handler until the server goes away (for deadline tests).
  void Hang() { release_.WaitForNotificationWithTimeout(absl::Seconds(30)); }

 private:
  FakeAgent agent_;
  absl::Notification release_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// RelayTargets with canned answers; records the lookups.
class FakeTargets : public RelayTargets {
 public:
  absl::StatusOr<FabricManager::VerifyTarget> verify =
      absl::NotFoundError("no allocation set");
  absl::StatusOr<FabricManager::AttachmentTarget> attachment =
      absl::NotFoundError("no attachment set");
  absl::StatusOr<std::string> agent = absl::NotFoundError("no agent set");

  absl::StatusOr<FabricManager::VerifyTarget> PrepareVerify(
      absl::string_view allocation) override {
    Record(absl::StrCat("PrepareVerify ", allocation));
    return verify;
  }
  absl::StatusOr<FabricManager::AttachmentTarget> PrepareAttachmentOp(
      absl::string_view name, bool need_ready) override {
    Record(absl::StrCat("PrepareAttachmentOp ", name, " ",
                        need_ready ? "ready" : "any"));
    return attachment;
  }
  absl::StatusOr<std::string> AgentAddress(absl::string_view node) override {
    Record(absl::StrCat("AgentAddress ", node));
    return agent;
  }

  std::vector<std::string> lookups() const {
    absl::MutexLock l(&mu_);
    return lookups_;
  }

 private:
  void Record(std::string s) {
    absl::MutexLock l(&mu_);
    lookups_.push_back(std::move(s));
  }
  mutable absl::Mutex mu_;
  std::vector<std::string> lookups_ ABSL_GUARDED_BY(mu_);
};

// Memory of one simulated host: what was written where, read back as is.
class Memory {
 public:
  void Write(uint64_t addr, const std::string& data) {
    absl::MutexLock l(&mu_);
    bytes_[addr] = data;
  }
  std::string Read(uint64_t addr, uint32_t length) const {
    absl::MutexLock l(&mu_);
    auto it = bytes_.find(addr);
    return it == bytes_.end() ? std::string(length, '\0')
                              : it->second.substr(0, length);
  }
  std::vector<uint64_t> addresses() const {
    absl::MutexLock l(&mu_);
    std::vector<uint64_t> out;
    for (const auto& [addr, data] : bytes_) out.push_back(addr);
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<uint64_t, std::string> bytes_ ABSL_GUARDED_BY(mu_);
};

grpc::Status Ok() { return grpc::Status::OK; }

// --- Verify: an allocation of 1 MiB from nodes/b to nodes/t.

constexpr uint64_t kAllocSize = 1 << 20;
constexpr uint64_t kBorrowerAddr = 0x10000000;
constexpr uint64_t kTargetAddr = 0x20000000;

class VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FabricManager::VerifyTarget t;
    t.allocation.set_name("allocations/a1");
    t.allocation.set_borrower("nodes/b");
    t.allocation.set_target("nodes/t");
    t.allocation.set_size(kAllocSize);
    t.allocation.set_borrower_addr(kBorrowerAddr);
    t.allocation.set_target_addr(kTargetAddr);
    t.borrower_agent = borrower_.address();
    t.target_agent = target_.address();
    targets_.verify = t;
    // The fabric: a write at the borrower's granted address lands on the
    // target at the same offset of its range.
    borrower_.agent().host_write =
        [this](const agentproto::v1::HostWriteRequest& r, v1::AccessResult* w) {
          const uint64_t landed = r.addr() - kBorrowerAddr + kTargetAddr;
          memory_.Write(landed, r.data());
          w->set_landed(true);
          w->set_node("t");
          w->set_addr(landed);
          w->add_hops("b.bridge");
          w->add_hops("t.bridge");
          return Ok();
        };
    target_.agent().host_read = [this](const agentproto::v1::HostReadRequest& r,
                                       agentproto::v1::HostReadResponse* w) {
      w->set_data(memory_.Read(r.addr(), r.length()));
      return Ok();
    };
  }

  absl::StatusOr<v1::VerifyResult> Verify(uint32_t probe_size = 0) {
    v1::VerifyAllocationRequest req;
    req.set_name("a1");
    req.set_probe_size(probe_size);
    return relay_.Verify(req);
  }

  AgentServer borrower_;
  AgentServer target_;
  Memory memory_;
  FakeTargets targets_;
  AgentRelay relay_{&targets_};
};

TEST_F(VerifyTest, ProbesStartMiddleAndEndAndReadsThemBack) {
  absl::StatusOr<v1::VerifyResult> r = Verify();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok()) << r->summary();
  EXPECT_EQ(r->allocation(), "allocations/a1");
  EXPECT_EQ(r->probes_size(), 3);
  EXPECT_EQ(r->bytes_verified(), 3 * 4096u);
  EXPECT_THAT(r->summary(), StartsWith("OK: 3 probe(s), "));
  EXPECT_THAT(r->summary(), HasSubstr("via b.bridge -> t.bridge"));
  EXPECT_THAT(memory_.addresses(),
              ::testing::ElementsAre(kTargetAddr, kTargetAddr + kAllocSize / 2,
                                     kTargetAddr + kAllocSize - 4096));
  EXPECT_THAT(targets_.lookups(), ::testing::ElementsAre("PrepareVerify a1"));
}

TEST_F(VerifyTest, ProbeSizeIsTheRequestedOne) {
  absl::StatusOr<v1::VerifyResult> r = Verify(64);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok()) << r->summary();
  EXPECT_EQ(r->bytes_verified(), 3 * 64u);
}

TEST_F(VerifyTest, TargetErrorsPassThroughAndNoAgentIsCalled) {
  targets_.verify = absl::NotFoundError("allocations/a1 not found");
  EXPECT_EQ(Verify().status().code(), absl::StatusCode::kNotFound);
  targets_.verify = absl::FailedPreconditionError("allocations/a1 is PENDING");
  absl::Status s = Verify().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "allocations/a1 is PENDING");
  EXPECT_TRUE(borrower_.agent().calls().empty());
  EXPECT_TRUE(target_.agent().calls().empty());
}

TEST_F(VerifyTest, UnreachableBorrowerAgentIsUnavailable) {
  targets_.verify->borrower_agent = kDeadAgent;
  absl::Status s = Verify().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(),
              HasSubstr(absl::StrCat("the agent of nodes/b at ", kDeadAgent,
                                     " did not take the write")));
}

TEST_F(VerifyTest, AnyWriteErrorOfTheBorrowerAgentIsUnavailable) {
  borrower_.agent().host_write = [](const agentproto::v1::HostWriteRequest&,
                                    v1::AccessResult*) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "bridge wedged");
  };
  absl::Status s = Verify().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("did not take the write: bridge wedged"));
}

TEST_F(VerifyTest, FaultIsAResultNamingTheBridge) {
  borrower_.agent().host_write = [](const agentproto::v1::HostWriteRequest& r,
                                    v1::AccessResult* w) {
    w->set_landed(false);
    w->set_fault_bridge("b.bridge");
    w->set_fault_addr(r.addr());
    w->set_reason("no window");
    return Ok();
  };
  absl::StatusOr<v1::VerifyResult> r = Verify();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->ok());
  EXPECT_THAT(r->summary(), HasSubstr("faulted at bridge b.bridge"));
  EXPECT_THAT(r->summary(), HasSubstr("no window"));
  EXPECT_EQ(r->bytes_verified(), 0u);
  EXPECT_TRUE(target_.agent().calls().empty());
}

TEST_F(VerifyTest, LandingElsewhereIsAResultNamingTheExpectedPlace) {
  borrower_.agent().host_write = [](const agentproto::v1::HostWriteRequest& r,
                                    v1::AccessResult* w) {
    w->set_landed(true);
    w->set_node("other");
    w->set_addr(r.addr());
    return Ok();
  };
  absl::StatusOr<v1::VerifyResult> r = Verify();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->ok());
  EXPECT_THAT(r->summary(), HasSubstr("landed on other"));
  EXPECT_THAT(r->summary(), HasSubstr("expected t at"));
}

TEST_F(VerifyTest, FailedReadBackIsUnavailable) {
  target_.agent().host_read = [](const agentproto::v1::HostReadRequest&,
                                 agentproto::v1::HostReadResponse*) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "read failed");
  };
  absl::Status s = Verify().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("the agent of nodes/t at ",
                                                  target_.address(),
                                                  " did not answer the read")));
}

TEST_F(VerifyTest, DifferentBytesAreAResultNamingTheFirstOffset) {
  target_.agent().host_read = [this](const agentproto::v1::HostReadRequest& r,
                                     agentproto::v1::HostReadResponse* w) {
    std::string data = memory_.Read(r.addr(), r.length());
    data[10] = static_cast<char>(data[10] ^ 0xff);
    w->set_data(data);
    return Ok();
  };
  absl::StatusOr<v1::VerifyResult> r = Verify();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->ok());
  EXPECT_THAT(r->summary(), HasSubstr("reads different bytes from offset 10"));
}

TEST_F(VerifyTest, AgentPastTheDeadlineIsUnavailable) {
  AgentRelayOptions options;
  options.agent_deadline = absl::Milliseconds(200);
  AgentRelay relay(&targets_, options);
  borrower_.agent().host_write = [this](const agentproto::v1::HostWriteRequest&,
                                        v1::AccessResult*) {
    borrower_.Hang();
    return Ok();
  };
  v1::VerifyAllocationRequest req;
  req.set_name("a1");
  EXPECT_EQ(relay.Verify(req).status().code(), absl::StatusCode::kUnavailable);
}

// --- Attachments: VF 0000:3b:00.4 of nodes/l lent to nodes/b.

constexpr uint64_t kDmaLocal = 0x8000;
constexpr uint64_t kDmaTarget = 0x90000000;
constexpr uint64_t kDmaSize = 64 << 10;

class AttachmentRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FabricManager::AttachmentTarget t;
    t.attachment.set_name("attachments/x");
    t.attachment.set_lender("nodes/l");
    t.attachment.set_borrower("nodes/b");
    t.attachment.set_vf_address("0000:3b:00.4");
    v1::AttachmentWindow* dma = t.attachment.add_windows();
    dma->set_role("dma");
    dma->set_local_addr(kDmaLocal);
    dma->set_target_addr(kDmaTarget);
    dma->set_size(kDmaSize);
    t.lender_agent = lender_.address();
    t.borrower_agent = borrower_.address();
    targets_.attachment = t;
    // The lent VF's DMA lands in the borrower's DMA region.
    lender_.agent().vf_access = [this](const agentproto::v1::VfAccessRequest& r,
                                       agentproto::v1::VfAccessResponse* w) {
      const uint64_t landed = r.addr() - kDmaLocal + kDmaTarget;
      memory_.Write(landed, r.data());
      w->mutable_access()->set_landed(true);
      w->mutable_access()->set_node("b");
      w->mutable_access()->set_addr(landed);
      w->mutable_access()->add_hops("l.bridge");
      return Ok();
    };
    borrower_.agent().host_read = [this](
                                      const agentproto::v1::HostReadRequest& r,
                                      agentproto::v1::HostReadResponse* w) {
      w->set_data(memory_.Read(r.addr(), r.length()));
      return Ok();
    };
  }

  absl::StatusOr<v1::VerifyResult> VerifyAttachment() {
    v1::VerifyAttachmentRequest req;
    req.set_name("x");
    return relay_.VerifyAttachment(req);
  }

  AgentServer lender_;
  AgentServer borrower_;
  Memory memory_;
  FakeTargets targets_;
  AgentRelay relay_{&targets_};
};

TEST_F(AttachmentRelayTest, VerifyDmasAtStartAndEndAndReadsThemBack) {
  absl::StatusOr<v1::VerifyResult> r = VerifyAttachment();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok()) << r->summary();
  EXPECT_EQ(r->allocation(), "attachments/x");
  EXPECT_EQ(r->probes_size(), 2);
  EXPECT_EQ(r->bytes_verified(), 2 * 4096u);
  EXPECT_THAT(r->summary(),
              StartsWith("OK: VF 0000:3b:00.4 on nodes/l DMA-wrote "));
  EXPECT_THAT(memory_.addresses(),
              ::testing::ElementsAre(kDmaTarget, kDmaTarget + kDmaSize - 4096));
  EXPECT_THAT(targets_.lookups(),
              ::testing::ElementsAre("PrepareAttachmentOp x ready"));
}

TEST_F(AttachmentRelayTest, VerifyPassesTargetErrorsOn) {
  targets_.attachment = absl::FailedPreconditionError("attachments/x is NEW");
  EXPECT_EQ(VerifyAttachment().status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(lender_.agent().calls().empty());
}

TEST_F(AttachmentRelayTest, VerifyWithoutDmaWindowIsInternal) {
  targets_.attachment->attachment.mutable_windows(0)->set_role("bar");
  absl::Status s = VerifyAttachment().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("attachments/x has no dma window"));
}

TEST_F(AttachmentRelayTest, VerifyWithUnreachableLenderIsUnavailable) {
  targets_.attachment->lender_agent = kDeadAgent;
  absl::Status s = VerifyAttachment().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(),
              HasSubstr(absl::StrCat("the agent of nodes/l at ", kDeadAgent)));
}

TEST_F(AttachmentRelayTest, DmaRefusedByTheLenderIsAResult) {
  lender_.agent().vf_access = [](const agentproto::v1::VfAccessRequest&,
                                 agentproto::v1::VfAccessResponse*) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "bus mastering is off");
  };
  absl::StatusOr<v1::VerifyResult> r = VerifyAttachment();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->ok());
  EXPECT_THAT(r->summary(), HasSubstr("refused: bus mastering is off"));
}

TEST_F(AttachmentRelayTest, DmaLandingElsewhereIsAResult) {
  lender_.agent().vf_access = [](const agentproto::v1::VfAccessRequest& r,
                                 agentproto::v1::VfAccessResponse* w) {
    w->mutable_access()->set_landed(true);
    w->mutable_access()->set_node("l");
    w->mutable_access()->set_addr(r.addr());
    return Ok();
  };
  absl::StatusOr<v1::VerifyResult> r = VerifyAttachment();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->ok());
  EXPECT_THAT(r->summary(), HasSubstr("expected b at"));
}

TEST_F(AttachmentRelayTest, FailedReadBackKeepsTheBorrowerAgentsCode) {
  borrower_.agent().host_read = [](const agentproto::v1::HostReadRequest&,
                                   agentproto::v1::HostReadResponse*) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "past the region");
  };
  absl::Status s = VerifyAttachment().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.message(), "past the region");
}

TEST_F(AttachmentRelayTest, DifferentBytesInTheDmaRegionAreAResult) {
  borrower_.agent().host_read = [](const agentproto::v1::HostReadRequest& r,
                                   agentproto::v1::HostReadResponse* w) {
    w->set_data(std::string(r.length(), 'x'));
    return Ok();
  };
  absl::StatusOr<v1::VerifyResult> r = VerifyAttachment();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->ok());
  EXPECT_THAT(r->summary(), HasSubstr("reads different bytes in its DMA"));
}

TEST_F(AttachmentRelayTest, AccessShadowGoesToTheBorrowerByCanonicalName) {
  std::string seen;
  borrower_.agent().access_shadow = [&seen](const v1::AccessShadowRequest& r,
                                            v1::AccessShadowResponse* w) {
    seen = r.attachment();
    EXPECT_EQ(r.offset(), 0x10u);
    w->set_value(0xabcd);
    w->set_outcome(v1::AccessShadowResponse::FORWARDED);
    return Ok();
  };
  v1::AccessShadowRequest req;
  req.set_attachment("x");
  req.set_op(v1::AccessShadowRequest::READ);
  req.set_offset(0x10);
  absl::StatusOr<v1::AccessShadowResponse> r = relay_.AccessShadow(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->value(), 0xabcdu);
  EXPECT_EQ(seen, "attachments/x");
  EXPECT_TRUE(lender_.agent().calls().empty());
}

TEST_F(AttachmentRelayTest, AccessShadowErrors) {
  v1::AccessShadowRequest req;
  req.set_attachment("x");
  borrower_.agent().access_shadow = [](const v1::AccessShadowRequest&,
                                       v1::AccessShadowResponse*) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "offset: 4096 is past the config space (4096)");
  };
  absl::Status s = relay_.AccessShadow(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("offset: 4096"));

  targets_.attachment->borrower_agent = kDeadAgent;
  s = relay_.AccessShadow(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("the agent of nodes/b at"));

  targets_.attachment = absl::NotFoundError("attachments/x not found");
  EXPECT_EQ(relay_.AccessShadow(req).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(AttachmentRelayTest, RaiseVfInterruptCountsEveryOutcome) {
  // Five raises: pending in the VF, dropped on the way, then delivered
  // directly, via the hypervisor, and dropped by the borrower.
  int raised = 0;
  lender_.agent().vf_access = [&raised](
                                  const agentproto::v1::VfAccessRequest& r,
                                  agentproto::v1::VfAccessResponse* w) {
    EXPECT_EQ(r.op(), agentproto::v1::VfAccessRequest::RAISE_MSIX);
    EXPECT_EQ(r.vector(), 3);
    EXPECT_EQ(r.borrower(), "nodes/b");
    EXPECT_EQ(r.vf_address(), "0000:3b:00.4");
    const int n = raised++;
    if (n == 0) {
      w->set_outcome(agentproto::v1::VfAccessResponse::PENDING);
    } else if (n == 1) {
      w->mutable_access()->set_landed(false);
    } else {
      w->mutable_access()->set_landed(true);
      w->mutable_access()->set_addr(0xfee00000 + n);
      w->set_msi_data(40 + n);
    }
    return Ok();
  };
  std::vector<std::pair<uint64_t, uint32_t>> delivered;
  borrower_.agent()
      .shadow_interrupt = [&delivered](
                              const agentproto::v1::ShadowInterruptRequest& r,
                              agentproto::v1::ShadowInterruptResponse* w) {
    EXPECT_EQ(r.attachment(), "attachments/x");
    delivered.emplace_back(r.addr(), r.data());
    static const agentproto::v1::ShadowInterruptResponse::Delivery
        kDelivery[] = {agentproto::v1::ShadowInterruptResponse::DIRECT,
                       agentproto::v1::ShadowInterruptResponse::HYPERVISOR,
                       agentproto::v1::ShadowInterruptResponse::DROPPED};
    w->set_delivery(kDelivery[delivered.size() - 1]);
    w->mutable_counters()->set_delivered_direct(delivered.size());
    return Ok();
  };
  v1::RaiseVfInterruptRequest req;
  req.set_attachment("x");
  req.set_vector(3);
  req.set_count(5);
  absl::StatusOr<v1::RaiseVfInterruptResponse> r = relay_.RaiseVfInterrupt(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->pending_in_vf(), 1);
  EXPECT_EQ(r->dropped(), 2);
  EXPECT_EQ(r->delivered_direct(), 1);
  EXPECT_EQ(r->delivered_via_hypervisor(), 1);
  EXPECT_EQ(r->counters().delivered_direct(), 3);  // the last answer's
  EXPECT_THAT(delivered,
              ::testing::ElementsAre(::testing::Pair(0xfee00002, 42u),
                                     ::testing::Pair(0xfee00003, 43u),
                                     ::testing::Pair(0xfee00004, 44u)));
}

TEST_F(AttachmentRelayTest, RaiseVfInterruptCountZeroRaisesOnce) {
  int raised = 0;
  lender_.agent().vf_access = [&raised](const agentproto::v1::VfAccessRequest&,
                                        agentproto::v1::VfAccessResponse* w) {
    ++raised;
    w->set_outcome(agentproto::v1::VfAccessResponse::PENDING);
    return Ok();
  };
  v1::RaiseVfInterruptRequest req;
  req.set_attachment("x");
  absl::StatusOr<v1::RaiseVfInterruptResponse> r = relay_.RaiseVfInterrupt(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(raised, 1);
  EXPECT_EQ(r->pending_in_vf(), 1);
}

TEST_F(AttachmentRelayTest, RaiseVfInterruptErrors) {
  v1::RaiseVfInterruptRequest req;
  req.set_attachment("x");
  for (int count : {-1, 100001}) {
    req.set_count(count);
    absl::Status s = relay_.RaiseVfInterrupt(req).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(),
              absl::StrCat("count: ", count, " is outside 0..100000"));
  }
  EXPECT_TRUE(targets_.lookups().empty());

  req.set_count(1);
  lender_.agent().vf_access = [](const agentproto::v1::VfAccessRequest&,
                                 agentproto::v1::VfAccessResponse*) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "VF in reset");
  };
  absl::Status s = relay_.RaiseVfInterrupt(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(borrower_.agent().calls().empty());

  targets_.attachment->lender_agent = kDeadAgent;
  EXPECT_EQ(relay_.RaiseVfInterrupt(req).status().code(),
            absl::StatusCode::kUnavailable);
}

// --- SetVmState

TEST(SetVmStateTest, GoesToTheNodesAgent) {
  AgentServer agent;
  FakeTargets targets;
  targets.agent = agent.address();
  agent.agent().set_vm_state = [](const hypervisor::v1::SetVmStateRequest& r,
                                  hypervisor::v1::SetVmStateResponse* w) {
    EXPECT_EQ(r.vm(), "vm1");
    EXPECT_TRUE(r.running());
    w->set_injected(7);
    return Ok();
  };
  AgentRelay relay(&targets);
  hypervisor::v1::SetVmStateRequest req;
  req.set_node("nodes/b");
  req.set_vm("vm1");
  req.set_running(true);
  absl::StatusOr<hypervisor::v1::SetVmStateResponse> r = relay.SetVmState(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->injected(), 7);
  EXPECT_THAT(targets.lookups(),
              ::testing::ElementsAre("AgentAddress nodes/b"));
}

// With mutual TLS the relay dials with the manager's certificate and
// requires the agent's to name the node it dials: an agent at that address
// with another node's certificate is never called.
TEST(SetVmStateTest, AnAgentWhoseCertificateNamesAnotherNodeIsRefused) {
  auto pki = *security::TestPki::Create();
  const security::TlsConfig manager = pki->Issue("manager", "m1");
  auto set_vm_state = [](const hypervisor::v1::SetVmStateRequest&,
                         hypervisor::v1::SetVmStateResponse*) { return Ok(); };
  AgentServer impostor(
      security::ServerCredentials(pki->Issue("node", "n2"), nullptr));
  impostor.agent().set_vm_state = set_vm_state;
  AgentServer real(
      security::ServerCredentials(pki->Issue("node", "n1"), nullptr));
  real.agent().set_vm_state = set_vm_state;
  FakeTargets targets;
  AgentRelayOptions options;
  options.agent_credentials = AgentCredentials(manager);
  AgentRelay relay(&targets, options);
  hypervisor::v1::SetVmStateRequest req;
  req.set_node("nodes/n1");

  targets.agent = impostor.address();
  absl::StatusOr<hypervisor::v1::SetVmStateResponse> r = relay.SetVmState(req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(impostor.agent().calls(), ::testing::IsEmpty());

  targets.agent = real.address();
  r = relay.SetVmState(req);
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(real.agent().calls(), ::testing::ElementsAre("SetVmState"));
}

TEST(SetVmStateTest, Errors) {
  AgentServer agent;
  FakeTargets targets;
  AgentRelayOptions options;
  options.agent_deadline = absl::Milliseconds(200);
  AgentRelay relay(&targets, options);
  hypervisor::v1::SetVmStateRequest req;
  req.set_node("nodes/b");

  targets.agent = absl::NotFoundError("nodes/b not found");
  EXPECT_EQ(relay.SetVmState(req).status().code(), absl::StatusCode::kNotFound);

  targets.agent = std::string(kDeadAgent);
  absl::Status s = relay.SetVmState(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(),
              HasSubstr(absl::StrCat("the agent of nodes/b at ", kDeadAgent)));

  // An agent that does not answer in time is unreachable too.
  targets.agent = agent.address();
  agent.agent().set_vm_state = [&agent](
                                   const hypervisor::v1::SetVmStateRequest&,
                                   hypervisor::v1::SetVmStateResponse*) {
    agent.Hang();
    return Ok();
  };
  s = relay.SetVmState(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("the agent of nodes/b at"));
}

// --- The FabricManager as RelayTargets (the production wiring).

TEST(ManagerTargetsTest, UnknownResourcesAreNotFound) {
  store::SqliteOptions store_options;
  store_options.path = ":memory:";
  absl::StatusOr<std::unique_ptr<store::Store>> store =
      store::OpenSqliteStore(store_options);
  ASSERT_TRUE(store.ok()) << store.status();
  ManualClock clock;
  ManagerOptions manager_options;
  manager_options.sweep_interval = absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<FabricManager>> manager =
      FabricManager::Open(store->get(), &clock, manager_options);
  ASSERT_TRUE(manager.ok()) << manager.status();
  AgentRelay relay(manager->get());

  v1::VerifyAllocationRequest verify;
  verify.set_name("allocations/none");
  EXPECT_EQ(relay.Verify(verify).status().code(), absl::StatusCode::kNotFound);
  v1::AccessShadowRequest shadow;
  shadow.set_attachment("attachments/none");
  EXPECT_EQ(relay.AccessShadow(shadow).status().code(),
            absl::StatusCode::kNotFound);
  hypervisor::v1::SetVmStateRequest vm;
  vm.set_node("nodes/none");
  EXPECT_EQ(relay.SetVmState(vm).status().code(), absl::StatusCode::kNotFound);
  (*manager)->Shutdown();
}

}  // namespace
}  // namespace fabric::service
