// The manager fuzzer's front door: the manager under test served by its
// real GrpcServer over mutual TLS with the default policy, and clients that
// call it as fixed identities, so that the calls whose reach depends on the
// caller (allocations and attachments: OWN; the agent protocol:
// SELF_NODE) go through the choke point and the handlers' scope checks
// instead of around them.
//
//   SecureFront front(manager.get());
//   front.Fabric("alice")->CreateAllocation(&ctx, req, &out);  // scheduler
//   front.Agent("n1")->RegisterNode(&ctx, reg, &resp);        // node/n1
//
// The certificates are made once per process (FuzzPki, deploy/pki.sh in a
// temporary directory removed at exit); a front costs a server start and
// one handshake per identity it is used as. Fuzz-only.
#ifndef FABRIC_TESTS_FUZZ_SECURE_FRONT_H_
#define FABRIC_TESTS_FUZZ_SECURE_FRONT_H_

#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/security/testing/test_pki.h"
#include "common/security/tls.h"
#include "fabric/agentproto/v1/agent_service.grpc.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "server/service/manager.h"
#include "server/service/server.h"
#include "tests/fuzz/fuzz_check.h"

namespace fabric::fuzz {

// The users the fuzzer calls as, with their roles.
inline const std::map<std::string, std::string>& FuzzUsers() {
  static const auto* users = new std::map<std::string, std::string>{
      {"alice", "scheduler"}, {"bob", "scheduler"}, {"admin", "admin"}};
  return *users;
}

// The nodes that have certificates: the node names of the seed corpus,
// and "intruder", which no fabric declares.
inline const std::set<std::string>& FuzzNodes() {
  static const auto* nodes = new std::set<std::string>{
      "n0", "n1", "n2", "n3",   "n4", "a",  "b",       "c",
      "x",  "y",  "z",  "mgmt", "s1", "s2", "intruder"};
  return *nodes;
}

// The process's certificates. Made on first use; a PKI that cannot be made
// stops the fuzzer (FUZZ_CHECK).
class FuzzPki {
 public:
  static FuzzPki& Get() {
    static FuzzPki* pki = new FuzzPki();
    // The temporary directory goes with the process.
    static const bool removed_at_exit = (std::atexit([] { delete pki; }), true);
    (void)removed_at_exit;
    return *pki;
  }
  const security::TlsConfig& Manager() const { return manager_; }
  const security::TlsConfig& User(const std::string& name) const {
    return users_.at(name);
  }
  const security::TlsConfig& Node(const std::string& name) const {
    return nodes_.at(name);
  }

 private:
  FuzzPki() {
    absl::StatusOr<std::unique_ptr<security::TestPki>> pki =
        security::TestPki::Create();
    FUZZ_CHECK(pki.ok(), "TestPki: ", pki.status().ToString());
    pki_ = *std::move(pki);
    manager_ = pki_->Issue("manager", "m1");
    for (const auto& [name, role] : FuzzUsers())
      users_[name] = pki_->Issue("user", name, role);
    for (const std::string& node : FuzzNodes())
      nodes_[node] = pki_->Issue("node", node);
  }

  std::unique_ptr<security::TestPki> pki_;
  security::TlsConfig manager_;
  std::map<std::string, security::TlsConfig> users_;
  std::map<std::string, security::TlsConfig> nodes_;
};

class SecureFront {
 public:
  // Serves `manager` (not owned; must outlive the front) on 127.0.0.1:0.
  explicit SecureFront(service::FabricManager* manager) {
    service::ServerOptions options;
    options.tls = FuzzPki::Get().Manager();
    absl::StatusOr<std::unique_ptr<service::GrpcServer>> server =
        service::GrpcServer::Start(manager, "127.0.0.1:0", options);
    FUZZ_CHECK(server.ok(), "GrpcServer: ", server.status().ToString());
    server_ = *std::move(server);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
  }
  ~SecureFront() { server_->Shutdown(); }

  // FabricService as user/NAME (a name of FuzzUsers()).
  v1::FabricService::Stub* Fabric(const std::string& user) {
    auto& stub = fabric_[user];
    if (stub == nullptr)
      stub = v1::FabricService::NewStub(Dial(FuzzPki::Get().User(user)));
    return stub.get();
  }
  // AgentService as node/NAME (a name of FuzzNodes()).
  agentproto::v1::AgentService::Stub* Agent(const std::string& node) {
    auto& stub = agent_[node];
    if (stub == nullptr)
      stub = agentproto::v1::AgentService::NewStub(
          Dial(FuzzPki::Get().Node(node)));
    return stub.get();
  }

  // Runs one call, `rpc(context, response)` on a stub of this front, with
  // a deadline far beyond any healthy call (a call that hangs is a
  // finding, by libFuzzer's -timeout, not a wait), and returns its outcome
  // as the manager's own calls report it.
  template <typename Resp, typename Rpc>
  static absl::StatusOr<Resp> Call(const Rpc& rpc) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    Resp out;
    const grpc::Status s = rpc(&ctx, &out);
    if (!s.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                          s.error_message());
    }
    return out;
  }

 private:
  std::shared_ptr<grpc::Channel> Dial(const security::TlsConfig& tls) {
    return grpc::CreateChannel(
        address_, security::ChannelCredentials(
                      tls, security::PeerRequirement::AnyManager()));
  }

  std::unique_ptr<service::GrpcServer> server_;
  std::string address_;
  std::map<std::string, std::unique_ptr<v1::FabricService::Stub>> fabric_;
  std::map<std::string, std::unique_ptr<agentproto::v1::AgentService::Stub>>
      agent_;
};

}  // namespace fabric::fuzz

#endif  // FABRIC_TESTS_FUZZ_SECURE_FRONT_H_
