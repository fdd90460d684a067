// The role x RPC matrix (issue 13, section 4): every method of every
// service, found in the generated descriptors, called over real mutual TLS
// with every kind of caller, against what the default policy says.
//
// Methods: every .proto under proto/ that declares a service is looked up in
// the generated pool, and every method of every service in it is called; a
// service nobody said where it is served fails the test, so a new service
// or RPC cannot be left out. Callers: a user of each role, a user without
// one, node/n1, manager/m1; no client certificate, a certificate from
// another CA, an expired one and plaintext; and, for the methods a node
// may call for its own node only (SELF_NODE), node/n2 acting for n1.
//
// Expected: a call the policy denies ends PERMISSION_DENIED with the choke
// point's message ("... may not call /pkg.Service/Method"); a handshake
// failure ends UNAVAILABLE or UNAUTHENTICATED; a call the policy allows ends
// with anything but PERMISSION_DENIED or UNAUTHENTICATED (an empty request
// is usually INVALID_ARGUMENT); node/n2 for n1 ends PERMISSION_DENIED.
// Requests are empty except where the scope needs more to be in scope: the
// caller's node in SELF_NODE requests, a granted address for HostRead and
// HostWrite, initial_state for Watch (so that an admitted stream answers).
// On any mismatch the whole matrix is printed.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/security/identity.h"
#include "common/security/policy.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"
#include "gtest/gtest.h"
#include "tests/security/secure_fabric.h"

#ifndef FABRIC_SOURCE_DIR
#error "FABRIC_SOURCE_DIR must be defined by the build"
#endif

namespace fabric::sectest {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;
using security::Identity;
using security::PrincipalKind;

// Where each service is served. A service missing here fails the test.
enum class Server { kManager, kAgent };
const std::map<std::string, Server>& ServedBy() {
  static const auto* m = new std::map<std::string, Server>{
      {"fabric.v1.FabricService", Server::kManager},
      {"fabric.agentproto.v1.AgentService", Server::kManager},
      {"fabric.hypervisor.v1.HypervisorService", Server::kManager},
      {"fabric.agentproto.v1.NodeAgentService", Server::kAgent},
  };
  return *m;
}

// Every service declared under proto/, from the generated pool.
std::vector<const ServiceDescriptor*> AllServices(std::string* missing) {
  std::vector<const ServiceDescriptor*> out;
  const std::filesystem::path root =
      std::filesystem::path(FABRIC_SOURCE_DIR) / "proto";
  std::vector<std::string> files;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".proto") continue;
    // The kubelet's APIs (proto/kubelet) are served by the kubelet and the
    // device plugin on unix sockets, not by the fabric's servers.
    if (*std::filesystem::relative(entry.path(), root).begin() == "kubelet")
      continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    // Only files that declare a service matter.
    if (text.str().find("\nservice ") == std::string::npos) continue;
    files.push_back(std::filesystem::relative(entry.path(), root).string());
  }
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) {
    const google::protobuf::FileDescriptor* fd =
        google::protobuf::DescriptorPool::generated_pool()->FindFileByName(f);
    if (fd == nullptr) {
      absl::StrAppend(missing, f, " is not linked into the test; ");
      continue;
    }
    for (int i = 0; i < fd->service_count(); ++i) out.push_back(fd->service(i));
  }
  return out;
}

// Who calls.
struct Caller {
  std::string label;
  security::TlsConfig tls;
  // The identity the policy sees; none for the handshake failures.
  std::optional<Identity> identity;
  // Set: a certificate that must not get past the handshake. "plaintext"
  // and "no certificate" dial differently.
  bool handshake_fails = false;
  bool plaintext = false;
  bool no_certificate = false;
  // For "node/n2 for n1": the node the request names.
  std::string acts_for;
};

Identity User(const std::string& name, const std::string& role) {
  return Identity{PrincipalKind::kUser, name, role};
}

std::vector<Caller> Callers() {
  SecurityPki& pki = SecurityPki::Get();
  std::vector<Caller> out;
  for (const char* role : {"admin", "operator", "scheduler", "viewer"}) {
    const std::string name = absl::StrCat("mx-", role);
    out.push_back({absl::StrCat("user/", name, " (", role, ")"),
                   pki.User(name, role), User(name, role)});
  }
  out.push_back({"user/mx-nobody (no role)", pki.User("mx-nobody", ""),
                 User("mx-nobody", "")});
  out.push_back(
      {"node/n1", pki.Node("n1"), Identity{PrincipalKind::kNode, "n1", ""}});
  out.push_back({"manager/m1", pki.Manager("m1"),
                 Identity{PrincipalKind::kManager, "m1", ""}});
  Caller none;
  none.label = "no client certificate";
  none.handshake_fails = none.no_certificate = true;
  out.push_back(none);
  Caller stranger;
  stranger.label = "another CA (user/mx-admin admin)";
  stranger.tls = pki.StrangerUser("mx-admin", "admin");
  stranger.handshake_fails = true;
  out.push_back(stranger);
  Caller expired;
  expired.label = "expired (user/mx-old admin)";
  expired.tls = pki.ExpiredUser("mx-old", "admin");
  expired.handshake_fails = true;
  out.push_back(expired);
  Caller plain;
  plain.label = "plaintext";
  plain.tls.insecure = true;
  plain.handshake_fails = plain.plaintext = true;
  out.push_back(plain);
  Caller n2;
  n2.label = "node/n2 for n1";
  n2.tls = pki.Node("n2");
  n2.identity = Identity{PrincipalKind::kNode, "n2", ""};
  n2.acts_for = "n1";
  out.push_back(n2);
  return out;
}

// The outcome of one call.
struct Outcome {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  bool read_response = false;  // a server stream sent its first message
};

// Calls `method` with `request` as raw bytes (gRPC's generic API): unary
// calls end with their status; a server stream ends after its first
// message (cancelled by the client) or with its status.
Outcome CallGeneric(const std::shared_ptr<grpc::Channel>& channel,
                    const MethodDescriptor& method, const Message& request) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  grpc::CompletionQueue cq;
  const std::string name =
      absl::StrCat("/", method.service()->full_name(), "/", method.name());
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&ctx, name, &cq);
  auto await = [&](void* want) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(tag, want);
    return ok;
  };
  int start, write, read, finish;
  call->StartCall(&start);
  await(&start);
  std::string bytes = request.SerializeAsString();
  grpc::Slice slice(bytes);
  grpc::ByteBuffer req(&slice, 1);
  call->WriteLast(req, grpc::WriteOptions(), &write);
  await(&write);
  grpc::ByteBuffer resp;
  call->Read(&resp, &read);
  Outcome out;
  out.read_response = await(&read);
  if (out.read_response && method.server_streaming()) ctx.TryCancel();
  grpc::Status status;
  call->Finish(&status, &finish);
  await(&finish);
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  out.code = status.error_code();
  out.message = status.error_message();
  if (out.read_response && method.server_streaming()) {
    out.code = grpc::StatusCode::OK;  // the stream answered; we cancelled it
  }
  return out;
}

const FieldDescriptor* StringField(const Descriptor& d, const char* name) {
  const FieldDescriptor* f = d.FindFieldByName(name);
  if (f == nullptr || f->is_repeated() ||
      f->type() != FieldDescriptor::TYPE_STRING) {
    return nullptr;
  }
  return f;
}

// The field that names the node a SELF_NODE request is for.
const FieldDescriptor* NodeField(const Descriptor& d) {
  if (const FieldDescriptor* f = StringField(d, "node")) return f;
  return StringField(d, "borrower");
}

// The message field of `d` that names the node a created resource is for
// (CreateAllocation's allocation.borrower, CreateAttachment's
// attachment.borrower), or null.
const FieldDescriptor* CreatedFor(const Descriptor& d) {
  for (const char* name : {"allocation", "attachment"}) {
    const FieldDescriptor* f = d.FindFieldByName(name);
    if (f != nullptr && f->type() == FieldDescriptor::TYPE_MESSAGE &&
        StringField(*f->message_type(), "borrower") != nullptr) {
      return f;
    }
  }
  return nullptr;
}

// Methods a node's device plugin calls with scope SELF_NODE that name no
// node: for them SELF_NODE means its own claims (OWN), so "acting for
// another node" does not apply (server_security_test checks the ownership).
bool NodeScopeIsOwnership(const std::string& full) {
  static const auto* methods = new std::set<std::string>{
      "GetAllocation", "ListAllocations", "DeleteAllocation", "GetAttachment",
      "ListAttachments", "DeleteAttachment", "Watch"};
  return absl::StartsWith(full, "/fabric.v1.FabricService/") &&
         methods->count(full.substr(full.rfind('/') + 1)) > 0;
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "?";
  }
}

// Calls the policy allows and a handler still refuses with
// PERMISSION_DENIED for a reason of its own scope, each with that reason.
// Keep this list short: each entry is a place where the policy file says
// more than the server does.
const std::map<std::pair<std::string, std::string>, std::string>&
ScopeRefusals() {
  static const auto* m =
      new std::map<std::pair<std::string, std::string>, std::string>{};
  return *m;
}

class RpcMatrixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // m0 and m1 lend to each other, so that agent m0 holds a range granted
    // for reading (m1's allocation of m0's memory) and one for writing (its
    // own window onto m1).
    ASSERT_TRUE(fabric_.Start({.nodes = {"m0", "m1"}}).ok());
    auto admin = v1::FabricService::NewStub(
        fabric_.DialManager(SecurityPki::Get().User("mx-admin", "admin")));
    for (auto [from, to] : {std::pair{"m0", "m1"}, std::pair{"m1", "m0"}}) {
      grpc::ClientContext ctx;
      v1::CreateAllocationRequest req;
      req.mutable_allocation()->set_borrower(from);
      req.mutable_allocation()->set_target(to);
      req.mutable_allocation()->set_size(1 << 20);
      v1::Allocation a;
      grpc::Status s = admin->CreateAllocation(&ctx, req, &a);
      ASSERT_TRUE(s.ok()) << s.error_message();
      if (std::string(from) == "m0") write_addr_ = a.borrower_addr();
      if (std::string(to) == "m0") read_addr_ = a.target_addr();
    }
    ASSERT_TRUE(fabric_.WaitSettled().ok());
  }

  // The request `caller` sends to `method` when the policy gave `scope`.
  std::unique_ptr<Message> RequestFor(const MethodDescriptor& method,
                                      const Caller& caller,
                                      security::Scope scope) {
    const Descriptor& d = *method.input_type();
    std::unique_ptr<Message> req(
        google::protobuf::MessageFactory::generated_factory()
            ->GetPrototype(&d)
            ->New());
    const google::protobuf::Reflection* r = req->GetReflection();
    std::string node;
    if (!caller.acts_for.empty()) {
      node = caller.acts_for;
    } else if (scope == internal::SELF_NODE && caller.identity.has_value()) {
      node = caller.identity->name;
    }
    if (!node.empty()) {
      if (const FieldDescriptor* f = NodeField(d)) {
        r->SetString(req.get(), f, node);
      } else if (const FieldDescriptor* created = CreatedFor(d)) {
        Message* resource = r->MutableMessage(req.get(), created);
        resource->GetReflection()->SetString(
            resource, StringField(*created->message_type(), "borrower"),
            node);
      }
    }
    if (const FieldDescriptor* f = d.FindFieldByName("initial_state");
        f != nullptr && f->type() == FieldDescriptor::TYPE_BOOL) {
      r->SetBool(req.get(), f, true);
    }
    const std::string full =
        absl::StrCat("/", method.service()->full_name(), "/", method.name());
    if (absl::EndsWith(full, "NodeAgentService/HostRead")) {
      r->SetUInt64(req.get(), d.FindFieldByName("addr"), read_addr_);
      r->SetUInt32(req.get(), d.FindFieldByName("length"), 16);
    } else if (absl::EndsWith(full, "NodeAgentService/HostWrite")) {
      r->SetUInt64(req.get(), d.FindFieldByName("addr"), write_addr_);
      r->SetString(req.get(), d.FindFieldByName("data"), "matrix");
    }
    return req;
  }

  std::shared_ptr<grpc::Channel> ChannelFor(Server server,
                                            const Caller& caller) {
    const std::string address = server == Server::kManager
                                    ? fabric_.address()
                                    : fabric_.AgentAddress("m0");
    if (caller.no_certificate)
      return DialWithoutCertificate(address, SecurityPki::Get().ca_file());
    if (server == Server::kManager)
      return Dial(address, caller.tls, security::PeerRequirement::AnyManager());
    return Dial(address, caller.tls, security::PeerRequirement::Node("m0"));
  }

  SecureFabric fabric_;
  uint64_t read_addr_ = 0;
  uint64_t write_addr_ = 0;
};

TEST_F(RpcMatrixTest, EveryMethodWithEveryCallerAsThePolicySays) {
  std::string missing;
  const std::vector<const ServiceDescriptor*> services = AllServices(&missing);
  EXPECT_TRUE(missing.empty()) << missing;
  const security::Policy policy = security::Policy::Default();
  const std::vector<Caller> callers = Callers();

  struct Row {
    std::string method;
    std::string caller;
    std::string expected;
    std::string got;
    bool ok;
  };
  std::vector<Row> rows;
  int methods = 0;
  int bypasses = 0;
  std::set<std::string> seen_services;
  for (const ServiceDescriptor* service : services) {
    seen_services.insert(service->full_name());
    auto served = ServedBy().find(service->full_name());
    if (served == ServedBy().end()) {
      ADD_FAILURE() << service->full_name()
                    << " has no expectation: say in ServedBy() which server "
                       "serves it";
      continue;
    }
    // One channel per caller and server, reused for its methods.
    std::map<std::string, std::shared_ptr<grpc::Channel>> channels;
    for (int i = 0; i < service->method_count(); ++i) {
      const MethodDescriptor& method = *service->method(i);
      ++methods;
      const std::string full =
          absl::StrCat("/", service->full_name(), "/", method.name());
      for (const Caller& caller : callers) {
        security::Decision decision;
        if (caller.identity.has_value())
          decision = policy.Check(*caller.identity, full);
        if (!caller.acts_for.empty() &&
            (!(decision.allowed && decision.scope == internal::SELF_NODE) ||
             NodeScopeIsOwnership(full))) {
          continue;  // "acting for another node" only where scope applies
        }
        auto& channel = channels[caller.label];
        if (channel == nullptr) channel = ChannelFor(served->second, caller);
        std::unique_ptr<Message> req =
            RequestFor(method, caller, decision.scope);
        const Outcome got = CallGeneric(channel, method, *req);

        Row row{full, caller.label, "", "", true};
        row.got = absl::StrCat(CodeName(got.code),
                               got.read_response && method.server_streaming()
                                   ? " (first message read)"
                                   : "");
        const bool denied_code =
            got.code == grpc::StatusCode::PERMISSION_DENIED ||
            got.code == grpc::StatusCode::UNAUTHENTICATED;
        if (caller.handshake_fails) {
          row.expected = "UNAVAILABLE|UNAUTHENTICATED";
          row.ok = got.code == grpc::StatusCode::UNAVAILABLE ||
                   got.code == grpc::StatusCode::UNAUTHENTICATED;
        } else if (!caller.acts_for.empty()) {
          row.expected = "PERMISSION_DENIED (node binding)";
          row.ok = got.code == grpc::StatusCode::PERMISSION_DENIED;
        } else if (!decision.allowed) {
          row.expected = "PERMISSION_DENIED (policy)";
          row.ok = got.code == grpc::StatusCode::PERMISSION_DENIED &&
                   absl::StrContains(got.message, full);
        } else {
          auto refusal = ScopeRefusals().find({full, caller.label});
          if (refusal != ScopeRefusals().end()) {
            row.expected = "PERMISSION_DENIED (scope: " + refusal->second + ")";
            row.ok = got.code == grpc::StatusCode::PERMISSION_DENIED &&
                     !absl::StrContains(got.message, "may not call");
          } else {
            row.expected = absl::StrCat(
                "admitted (", internal::Scope_Name(decision.scope), ")");
            row.ok = !denied_code;
          }
        }
        if (!row.ok) {
          absl::StrAppend(&row.got, ": ", got.message);
          // Denied where it should be refused: a bypass.
          if (!denied_code && got.code != grpc::StatusCode::UNAVAILABLE)
            ++bypasses;
        }
        rows.push_back(row);
      }
    }
  }
  EXPECT_GT(methods, 0);
  for (const auto& [name, server] : ServedBy()) {
    EXPECT_TRUE(seen_services.count(name))
        << name << " is expected but no proto under proto/ declares it";
  }

  int failures = 0;
  std::string table;
  for (const Row& r : rows) {
    if (!r.ok) ++failures;
    absl::StrAppendFormat(&table, "%s %-58s %-36s %-44s %s\n",
                          r.ok ? "  " : "!!", r.method, r.caller, r.expected,
                          r.got);
  }
  EXPECT_EQ(failures, 0) << failures << " of " << rows.size()
                         << " calls not as expected (" << bypasses
                         << " bypasses):\n"
                         << table;
  EXPECT_EQ(bypasses, 0);
  // SECURITY_MATRIX_PRINT=1 prints the whole matrix even when it passes.
  if (const char* p = std::getenv("SECURITY_MATRIX_PRINT"); p && *p == '1')
    std::printf("%s", table.c_str());
  std::printf("matrix: %d methods, %zu calls, %d failures\n", methods,
              rows.size(), failures);
}

// The roles table of the issue, checked against the default policy
// independently of the policy file's wording: what each role may reach.
TEST(RolesTableTest, TheDefaultPolicyMatchesTheIssue) {
  std::string missing;
  const security::Policy policy = security::Policy::Default();
  const Identity viewer = User("t-viewer", "viewer");
  const Identity nobody = User("t-nobody", "");
  const Identity manager{PrincipalKind::kManager, "m1", ""};
  const Identity node{PrincipalKind::kNode, "n1", ""};
  int methods = 0;
  for (const ServiceDescriptor* service : AllServices(&missing)) {
    for (int i = 0; i < service->method_count(); ++i) {
      const MethodDescriptor& m = *service->method(i);
      ++methods;
      const std::string full =
          absl::StrCat("/", service->full_name(), "/", m.name());
      SCOPED_TRACE(full);
      // Every identity with a role may Ping (the benchmarks' baseline).
      if (full == "/fabric.v1.FabricService/Ping") continue;
      // No role: nothing.
      EXPECT_FALSE(policy.Check(nobody, full).allowed);
      // A viewer reads the fabric API only, and only what has no side
      // effects.
      if (policy.Check(viewer, full).allowed) {
        EXPECT_EQ(service->full_name(), "fabric.v1.FabricService");
        EXPECT_EQ(m.options().idempotency_level(),
                  google::protobuf::MethodOptions::NO_SIDE_EFFECTS);
      }
      // The manager calls the agents' NodeAgentService, nothing else.
      EXPECT_EQ(
          policy.Check(manager, full).allowed,
          service->full_name() == "fabric.agentproto.v1.NodeAgentService");
      // A node: the agent protocol, VF access and its VM states, and for
      // its device plugin (issue 15) its offers, its claims and their
      // events, each for its own node only.
      static const absl::flat_hash_set<std::string> kPluginMethods = {
          "WatchOffers",      "Watch",           "CreateAllocation",
          "GetAllocation",    "ListAllocations", "DeleteAllocation",
          "CreateAttachment", "GetAttachment",   "ListAttachments",
          "DeleteAttachment"};
      security::Decision d = policy.Check(node, full);
      if (d.allowed) {
        EXPECT_EQ(d.scope, internal::SELF_NODE);
        EXPECT_TRUE(
            service->full_name() == "fabric.agentproto.v1.AgentService" ||
            full == "/fabric.agentproto.v1.NodeAgentService/VfAccess" ||
            full == "/fabric.hypervisor.v1.HypervisorService/SetVmState" ||
            (service->full_name() == "fabric.v1.FabricService" &&
             kPluginMethods.contains(m.name())));
      }
      if (service->full_name() == "fabric.agentproto.v1.AgentService") {
        EXPECT_TRUE(d.allowed);
      }
    }
  }
  EXPECT_GT(methods, 0);
  EXPECT_TRUE(missing.empty()) << missing;
}

}  // namespace
}  // namespace fabric::sectest
