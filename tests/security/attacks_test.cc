// Each attack of issue 13's "Why", replayed against a real fabric (a
// manager and agents n0, n1, n2 over mutual TLS, in process) and refused,
// with proof that what it aimed at did not change.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "fabric/agentproto/v1/agent_service.grpc.pb.h"
#include "fabric/agentproto/v1/node_agent_service.grpc.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/security/secure_fabric.h"

namespace fabric::sectest {
namespace {

using agentproto::v1::AgentService;
using agentproto::v1::NodeAgentService;
using ::google::protobuf::util::MessageDifferencer;

constexpr absl::string_view kSecret = "SECRET-OF-N1-JOB";

void Deadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + kWait));
}

// Whether the audit trail holds a refusal of `method` for `identity`.
bool Audited(const std::vector<security::AuditEvent>& events,
             const std::string& identity, absl::string_view method,
             const std::string& code) {
  for (const security::AuditEvent& e : events) {
    if (e.identity == identity && absl::EndsWith(e.method, method) &&
        e.code == code) {
      return true;
    }
  }
  return false;
}

class AttackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fabric_.Start({.nodes = {"n0", "n1", "n2"}}).ok());
  }

  std::unique_ptr<v1::FabricService::Stub> Fabric(
      const security::TlsConfig& tls) {
    return v1::FabricService::NewStub(fabric_.DialManager(tls));
  }
  std::unique_ptr<AgentService::Stub> AgentProtocol(
      const security::TlsConfig& tls) {
    return AgentService::NewStub(fabric_.DialManager(tls));
  }
  std::unique_ptr<NodeAgentService::Stub> DataPath(
      const std::string& node, const security::TlsConfig& tls) {
    return NodeAgentService::NewStub(fabric_.DialAgent(node, tls));
  }

  absl::StatusOr<v1::Allocation> Allocate(const security::TlsConfig& as,
                                          const std::string& from,
                                          const std::string& to) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::CreateAllocationRequest req;
    req.mutable_allocation()->set_borrower(from);
    req.mutable_allocation()->set_target(to);
    req.mutable_allocation()->set_size(1 << 20);
    v1::Allocation out;
    grpc::Status s = Fabric(as)->CreateAllocation(&ctx, req, &out);
    if (!s.ok()) return absl::InternalError(s.error_message());
    return out;
  }

  grpc::Status HostRead(const std::string& node, const security::TlsConfig& as,
                        uint64_t addr, uint32_t length,
                        std::string* data = nullptr) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    agentproto::v1::HostReadRequest req;
    req.set_addr(addr);
    req.set_length(length);
    agentproto::v1::HostReadResponse out;
    grpc::Status s = DataPath(node, as)->HostRead(&ctx, req, &out);
    if (data != nullptr) *data = out.data();
    return s;
  }
  grpc::Status HostWrite(const std::string& node, const security::TlsConfig& as,
                         uint64_t addr, absl::string_view data) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    agentproto::v1::HostWriteRequest req;
    req.set_addr(addr);
    req.set_data(std::string(data));
    v1::AccessResult out;
    return DataPath(node, as)->HostWrite(&ctx, req, &out);
  }
  grpc::Status Release(const security::TlsConfig& as, const std::string& name,
                       v1::Allocation* out = nullptr,
                       const std::string& request_id = "") {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::DeleteAllocationRequest req;
    req.set_name(name);
    req.set_request_id(request_id);
    v1::Allocation ignored;
    return Fabric(as)->DeleteAllocation(&ctx, req, out ? out : &ignored);
  }

  v1::Node Node(const std::string& name) {
    absl::StatusOr<v1::Node> n = fabric_.manager()->GetNode(name);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : v1::Node();
  }

  SecurityPki& pki_ = SecurityPki::Get();
  SecureFabric fabric_;
};

// Hijacking registration: node/n2 registers as n1 with its own address.
TEST_F(AttackTest, HijackingRegistrationIsRefused) {
  const v1::Node before = Node("n1");
  ASSERT_FALSE(before.agent_address().empty());

  agentproto::v1::RegisterNodeRequest req;
  req.set_node("n1");
  req.set_backend("sim");
  req.set_control_address("127.0.0.1:1");  // the impostor
  req.mutable_inventory();                 // "inventory wiped"
  agentproto::v1::RegisterNodeResponse resp;
  for (const auto& [who, tls] :
       {std::pair{std::string("node/n2"), pki_.Node("n2")},
        std::pair{std::string("user/alice"), pki_.User("alice", "scheduler")},
        std::pair{std::string("user/oscar"), pki_.User("oscar", "operator")}}) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = AgentProtocol(tls)->RegisterNode(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << who << ": " << s.error_message();
  }

  const v1::Node after = Node("n1");
  EXPECT_EQ(after.agent_address(), before.agent_address());
  EXPECT_EQ(after.agent_session(), before.agent_session());
  EXPECT_EQ(after.desired_generation(), before.desired_generation());
  EXPECT_TRUE(
      MessageDifferencer::Equals(after.inventory(), before.inventory()));
  // The real agent was not fenced and still serves: its allocation proves
  // by bytes.
  EXPECT_FALSE(fabric_.AgentStats("n1").fenced);
  EXPECT_EQ(fabric_.AgentStats("n1").sessions, 1);
  absl::StatusOr<v1::Allocation> a =
      Allocate(pki_.User("alice", "scheduler"), "n0", "n1");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(fabric_.WaitAllocation(a->name(), v1::Allocation::READY).ok());
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::VerifyAllocationRequest vreq;
  vreq.set_name(a->name());
  v1::VerifyResult result;
  grpc::Status s = Fabric(pki_.User("alice", "scheduler"))
                       ->VerifyAllocation(&ctx, vreq, &result);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(result.ok()) << result.DebugString();
  EXPECT_TRUE(Audited(fabric_.Audit(), "node/n2", "/RegisterNode",
                      "PERMISSION_DENIED"));
}

// Reading another node's desired configuration.
TEST_F(AttackTest, ReadingAnotherNodesConfigStreamIsRefused) {
  for (const auto& [who, tls] :
       {std::pair{std::string("node/n2"), pki_.Node("n2")},
        std::pair{std::string("user/victor"), pki_.User("victor", "viewer")}}) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    agentproto::v1::StreamConfigRequest req;
    req.set_node("n1");
    auto reader = AgentProtocol(tls)->StreamConfig(&ctx, req);
    agentproto::v1::DesiredConfig config;
    EXPECT_FALSE(reader->Read(&config))
        << who << " read " << config.DebugString();
    grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << who << ": " << s.error_message();
  }
  // n1's own certificate still reads it.
  grpc::ClientContext ctx;
  Deadline(&ctx);
  agentproto::v1::StreamConfigRequest req;
  req.set_node("n1");
  auto reader = AgentProtocol(pki_.Node("n1"))->StreamConfig(&ctx, req);
  agentproto::v1::DesiredConfig config;
  EXPECT_TRUE(reader->Read(&config));
  ctx.TryCancel();
  reader->Finish();
}

// A fake ready report for a dead node's allocation.
TEST_F(AttackTest, AFakeReadyReportIsRefused) {
  fabric_.StopAgent("n1");
  absl::StatusOr<v1::Allocation> a =
      Allocate(pki_.User("alice", "scheduler"), "n0", "n1");
  ASSERT_TRUE(a.ok()) << a.status();
  // n1 cannot apply it: it stays PENDING.
  const v1::Node n1 = Node("n1");
  ASSERT_LT(n1.applied_generation(), n1.desired_generation());

  agentproto::v1::ReportStatusRequest req;
  req.set_node("n1");
  req.set_applied_generation(n1.desired_generation());
  req.set_session(n1.agent_session());
  agentproto::v1::ReportStatusResponse resp;
  for (const auto& [who, tls] :
       {std::pair{std::string("node/n2"), pki_.Node("n2")},
        std::pair{std::string("user/alice"),
                  pki_.User("alice", "scheduler")}}) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = AgentProtocol(tls)->ReportStatus(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << who << ": " << s.error_message();
  }
  // Fake errors to hold it PENDING are refused the same way.
  req.add_errors()->set_message("fake");
  grpc::ClientContext ctx;
  Deadline(&ctx);
  EXPECT_EQ(AgentProtocol(pki_.Node("n2"))
                ->ReportStatus(&ctx, req, &resp)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  absl::StatusOr<v1::Allocation> now =
      fabric_.manager()->GetAllocation(a->name());
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->state(), v1::Allocation::PENDING) << now->DebugString();
  EXPECT_EQ(Node("n1").applied_generation(), n1.applied_generation());
  // The policy's refusal is audited. (node/n2's is refused by the node
  // binding in the handler, and the manager does not audit agent
  // telemetry: server/service/audit_interceptor.h.)
  EXPECT_TRUE(Audited(fabric_.Audit(), "user/alice", "/ReportStatus",
                      "PERMISSION_DENIED"));
}

// Releasing another owner's allocation.
TEST_F(AttackTest, ReleasingAnotherOwnersAllocationIsRefused) {
  const security::TlsConfig alice = pki_.User("alice", "scheduler");
  const security::TlsConfig bob = pki_.User("bob", "scheduler");
  absl::StatusOr<v1::Allocation> a = Allocate(alice, "n0", "n2");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->owner(), "user/alice");
  ASSERT_TRUE(fabric_.WaitAllocation(a->name(), v1::Allocation::READY).ok());

  {
    grpc::Status s = Release(bob, a->name());
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << s.error_message();
    // The refusal does not say whose it is.
    EXPECT_EQ(s.error_message().find("alice"), std::string::npos)
        << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::GetAllocationRequest req;
    req.set_name(a->name());
    v1::Allocation out;
    EXPECT_EQ(Fabric(bob)->GetAllocation(&ctx, req, &out).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ListAllocationsRequest req;
    v1::ListAllocationsResponse out;
    ASSERT_TRUE(Fabric(bob)->ListAllocations(&ctx, req, &out).ok());
    EXPECT_EQ(out.allocations_size(), 0) << out.DebugString();
  }
  {
    // Claiming to be alice in the request does not help.
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::CreateAllocationRequest req;
    req.mutable_allocation()->set_borrower("n1");
    req.mutable_allocation()->set_target("n2");
    req.mutable_allocation()->set_size(1 << 20);
    req.mutable_allocation()->set_owner("user/alice");
    v1::Allocation out;
    EXPECT_EQ(Fabric(bob)->CreateAllocation(&ctx, req, &out).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  // A viewer may not release anything either.
  EXPECT_EQ(Release(pki_.User("victor", "viewer"), a->name()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  absl::StatusOr<v1::Allocation> still =
      fabric_.manager()->GetAllocation(a->name());
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->state(), v1::Allocation::READY);

  // Its owner releases it, with a request id another caller could guess.
  const std::string request_id = "release-" + a->name();
  v1::Allocation out;
  grpc::Status s = Release(alice, a->name(), &out, request_id);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.state(), v1::Allocation::RELEASED);
  EXPECT_TRUE(
      Audited(fabric_.Audit(), "user/alice", "/DeleteAllocation", "OK"));
  // Once it is gone, bob replays that request id: the recorded answer (the
  // released allocation) is alice's alone. Her own retry still gets it.
  v1::Allocation replayed;
  s = Release(bob, a->name(), &replayed, request_id);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << s.error_message() << " " << replayed.DebugString();
  EXPECT_EQ(s.error_message().find("alice"), std::string::npos)
      << s.error_message();
  v1::Allocation again;
  s = Release(alice, a->name(), &again, request_id);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(again.name(), a->name());
  EXPECT_EQ(again.state(), v1::Allocation::RELEASED);
}

// The audit trail is read back over the API (ReadAuditLog, fabricctl
// audit): by an admin, and by no one else.
TEST_F(AttackTest, TheAuditIsReadBackByAdminsAlone) {
  const security::TlsConfig alice = pki_.User("alice", "scheduler");
  absl::StatusOr<v1::Allocation> a = Allocate(alice, "n0", "n2");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(Release(pki_.User("bob", "scheduler"), a->name()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  auto read = [&](const security::TlsConfig& as,
                  const v1::ReadAuditLogRequest& req,
                  v1::ReadAuditLogResponse* out) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    return Fabric(as)->ReadAuditLog(&ctx, req, out);
  };
  v1::ReadAuditLogRequest req;
  req.set_identity("user/bob");
  req.set_code("ERROR");
  v1::ReadAuditLogResponse out;
  const security::TlsConfig admin = pki_.User("ada", "admin");
  grpc::Status s = read(admin, req, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(out.records_size(), 1) << out.DebugString();
  EXPECT_EQ(out.records(0).method(),
            "/fabric.v1.FabricService/DeleteAllocation");
  EXPECT_EQ(out.records(0).code(), "PERMISSION_DENIED");
  EXPECT_EQ(out.records(0).role(), "scheduler");
  req.Clear();
  req.set_identity("user/alice");
  req.set_method("CreateAllocation");
  ASSERT_TRUE(read(admin, req, &out).ok());
  ASSERT_EQ(out.records_size(), 1) << out.DebugString();
  EXPECT_EQ(out.records(0).code(), "OK");

  // Nobody else: not the scheduler whose records these are, not an
  // operator or a viewer (whose Get*/List* rules do not reach it), not a
  // node.
  for (const security::TlsConfig& as :
       {alice, pki_.User("olga", "operator"), pki_.User("victor", "viewer"),
        pki_.Node("n1")}) {
    EXPECT_EQ(read(as, v1::ReadAuditLogRequest(), &out).error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << as.cert_file;
  }
}

// Reading and writing memory outside a grant, on the agents' data path.
TEST_F(AttackTest, ReadingAndWritingMemoryOutsideAGrantIsRefused) {
  // n1's job borrows 1 MiB of n2's memory and writes its secret there.
  absl::StatusOr<v1::Allocation> a =
      Allocate(pki_.User("alice", "scheduler"), "n1", "n2");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(fabric_.WaitAllocation(a->name(), v1::Allocation::READY).ok());
  ASSERT_TRUE(fabric_.WaitSettled().ok());
  const security::TlsConfig manager = pki_.Manager("m1");
  const uint64_t inside = a->target_addr();
  const uint64_t outside = a->target_addr() + a->size();  // just past it

  agent::hw::SimBridge* n2 = fabric_.Bridge("n2");
  ASSERT_NE(n2, nullptr);
  auto raw = [&](uint64_t addr, size_t n) {
    std::string out(n, '\0');
    absl::Status s = n2->HostRead(
        addr, absl::MakeSpan(reinterpret_cast<uint8_t*>(out.data()), n));
    EXPECT_TRUE(s.ok()) << s;
    return out;
  };
  const std::string outside_before = raw(outside, 16);

  // The manager writes through n1's granted window (as Verify does)...
  grpc::Status s = HostWrite("n1", manager, a->borrower_addr(), kSecret);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(raw(inside, kSecret.size()), kSecret);
  // ... and reads it back on n2, inside the grant.
  std::string data;
  s = HostRead("n2", manager, inside, kSecret.size(), &data);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(data, kSecret);

  // Outsiders: other nodes and users of any role.
  for (const auto& [who, tls] :
       {std::pair{std::string("node/n0"), pki_.Node("n0")},
        std::pair{std::string("node/n1"), pki_.Node("n1")},
        std::pair{std::string("user/alice"), pki_.User("alice", "scheduler")},
        std::pair{std::string("user/oscar"), pki_.User("oscar", "operator")}}) {
    data.clear();
    s = HostRead("n2", tls, inside, kSecret.size(), &data);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << who << ": " << s.error_message();
    EXPECT_TRUE(data.empty()) << who << " read " << data;
    s = HostWrite("n2", tls, inside, "OVERWRITTEN-BY-X");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << who << ": " << s.error_message();
  }

  // The manager itself, outside the grant: past its end, straddling it,
  // before it, and writing n2's memory directly (writes are granted only
  // through a borrower's window).
  for (uint64_t addr : {outside, outside - 8, inside - 16}) {
    s = HostRead("n2", manager, addr, 16);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << "read at " << addr << ": " << s.error_message();
  }
  for (uint64_t addr : {outside, inside}) {
    s = HostWrite("n2", manager, addr, "OVERWRITTEN-BY-M");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << "write at " << addr << ": " << s.error_message();
  }
  EXPECT_EQ(raw(inside, kSecret.size()), kSecret);
  EXPECT_EQ(raw(outside, 16), outside_before);

  // Released, the range is no one's: once n2 applied that, even the
  // manager cannot read it.
  ASSERT_TRUE(Release(pki_.User("alice", "scheduler"), a->name()).ok());
  ASSERT_TRUE(fabric_.WaitSettled().ok());
  EXPECT_EQ(HostRead("n2", manager, inside, kSecret.size()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

// Issue 13, section 3: "HostRead and HostWrite are served only to the
// manager's identity": not even an admin certificate reads granted tenant
// memory on an agent (the default policy keeps admin off NodeAgentService).
TEST_F(AttackTest, OnlyTheManagerReachesHostMemory) {
  absl::StatusOr<v1::Allocation> a =
      Allocate(pki_.User("alice", "scheduler"), "n1", "n2");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(fabric_.WaitSettled().ok());
  grpc::Status s = HostRead("n2", pki_.User("root", "admin"), a->target_addr(),
                            kSecret.size());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << s.error_message();
}

// VF access as a claimed borrower: the borrower is the caller's
// certificate, never the request.
TEST_F(AttackTest, VfAccessAsAClaimedBorrowerIsRefused) {
  agentproto::v1::VfAccessRequest req;
  req.set_borrower("n2");
  req.set_vf_address("0000:3b:02.0");
  req.set_op(agentproto::v1::VfAccessRequest::CONFIG_WRITE);
  for (const auto& [who, tls] :
       {std::pair{std::string("node/n1"), pki_.Node("n1")},
        std::pair{std::string("user/alice"), pki_.User("alice", "scheduler")},
        std::pair{std::string("user/root"), pki_.User("root", "admin")}}) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    agentproto::v1::VfAccessResponse out;
    grpc::Status s = DataPath("n0", tls)->VfAccess(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << who << ": " << s.error_message();
  }
  // As itself, n1 gets no further than the lender's own refusal (n0 lends
  // nothing to anyone here).
  req.clear_borrower();
  grpc::ClientContext ctx;
  Deadline(&ctx);
  agentproto::v1::VfAccessResponse out;
  grpc::Status s = DataPath("n0", pki_.Node("n1"))->VfAccess(&ctx, req, &out);
  EXPECT_FALSE(s.ok());
}

}  // namespace
}  // namespace fabric::sectest
