#include "tests/security/secure_fabric.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/channel_arguments.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "agent/hw/profile_limits.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "server/store/sqlite_store.h"

namespace fabric::sectest {
namespace {

template <typename T>
T CheckOk(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, v.status().ToString().c_str());
    std::abort();
  }
  return *std::move(v);
}

}  // namespace

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return done();
}

ScratchDir::ScratchDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "fabric-sectest-XXXXXX")
          .string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "mkdtemp %s failed\n", tmpl.c_str());
    std::abort();
  }
  path_ = tmpl;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

// ---------------------------------------------------------------------------
// SecurityPki

SecurityPki& SecurityPki::Get() {
  static SecurityPki* pki = new SecurityPki();
  // The directories go with the process: removed at exit.
  static const bool registered = [] {
    std::atexit([] { delete pki; });
    return true;
  }();
  (void)registered;
  return *pki;
}

SecurityPki::SecurityPki()
    : pki_(CheckOk(security::TestPki::Create(), "TestPki")),
      stranger_(CheckOk(security::TestPki::Create(), "stranger TestPki")),
      ca_file_(pki_->ca_file()) {
  std::filesystem::create_directories(pki_->dir() + "/issued");
}

security::TlsConfig SecurityPki::Issued(
    const std::string& key,
    const std::function<security::TlsConfig()>& make) {
  absl::MutexLock l(&mu_);
  if (!key.empty()) {
    auto it = issued_.find(key);
    if (it != issued_.end()) return it->second;
  }
  // pki.sh writes KIND-NAME.{crt,key} in the PKI's directory, replacing
  // what an earlier issue of that name wrote: copy them to files of their
  // own, which never change afterwards.
  security::TlsConfig made = make();
  const std::string base =
      absl::StrCat(pki_->dir(), "/issued/", ++reissued_, "-",
                   std::filesystem::path(made.cert_file).stem().string());
  security::TlsConfig tls = made;
  tls.cert_file = base + ".crt";
  tls.key_file = base + ".key";
  std::filesystem::copy_file(made.cert_file, tls.cert_file);
  std::filesystem::copy_file(made.key_file, tls.key_file);
  if (!key.empty()) issued_[key] = tls;
  return tls;
}

security::TlsConfig SecurityPki::Manager(const std::string& name) {
  return Issued("manager/" + name, [&] { return pki_->Issue("manager", name); });
}

security::TlsConfig SecurityPki::Node(const std::string& node) {
  return Issued("node/" + node, [&] { return pki_->Issue("node", node); });
}

security::TlsConfig SecurityPki::User(const std::string& name,
                                      const std::string& role) {
  return Issued("user/" + name + "/" + role,
                [&] { return pki_->Issue("user", name, role); });
}

security::TlsConfig SecurityPki::ExpiredUser(const std::string& name,
                                             const std::string& role) {
  return Issued("expired/" + name + "/" + role,
                [&] { return pki_->IssueExpired("user", name, role); });
}

security::TlsConfig SecurityPki::StrangerUser(const std::string& name,
                                              const std::string& role) {
  security::TlsConfig tls =
      Issued("stranger/" + name + "/" + role,
             [&] { return stranger_->Issue("user", name, role); });
  tls.ca_file = ca_file_;  // the client trusts the real CA
  return tls;
}

security::TlsConfig SecurityPki::Reissue(const std::string& kind,
                                         const std::string& name,
                                         const std::string& role) {
  return Issued("", [&] { return pki_->Issue(kind, name, role); });
}

// ---------------------------------------------------------------------------
// Channels

namespace {

grpc::ChannelArguments FreshConnectionArgs() {
  grpc::ChannelArguments args;
  // Each channel makes its own connection (and handshake): a test that
  // dials again must see a new handshake, not a pooled subchannel.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return args;
}

}  // namespace

std::shared_ptr<grpc::Channel> Dial(const std::string& address,
                                    const security::TlsConfig& tls,
                                    const security::PeerRequirement& peer) {
  return grpc::CreateCustomChannel(
      address, security::ChannelCredentials(tls, peer), FreshConnectionArgs());
}

std::shared_ptr<grpc::Channel> DialWithoutCertificate(
    const std::string& address, const std::string& ca_file) {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(
      std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
          ReadFile(ca_file)));
  options.watch_root_certs();
  options.set_verify_server_certs(true);
  options.set_check_call_host(false);
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  return grpc::CreateCustomChannel(address,
                                   grpc::experimental::TlsCredentials(options),
                                   FreshConnectionArgs());
}

// ---------------------------------------------------------------------------
// SecureFabric

SecureFabric::~SecureFabric() { Stop(); }

void SecureFabric::Stop() {
  for (auto& [node, agent] : agents_) agent->Stop();
  if (server_ != nullptr) server_->Shutdown();
  if (manager_ != nullptr) manager_->Shutdown();
  agents_.clear();
  server_.reset();
}

absl::Status SecureFabric::Start(const SecureFabricOptions& options) {
  options_ = options;
  SecurityPki& pki = SecurityPki::Get();
  if (options_.manager_tls.cert_file.empty()) {
    options_.manager_tls = pki.Manager("m1");
  }
  absl::StatusOr<std::unique_ptr<store::Store>> store =
      store::OpenSqliteStore({.path = ":memory:"});
  if (!store.ok()) return store.status();
  store_ = *std::move(store);
  service::ManagerOptions mopts;
  mopts.heartbeat_interval = absl::Milliseconds(100);
  absl::StatusOr<std::unique_ptr<service::FabricManager>> manager =
      service::FabricManager::Open(store_.get(), Clock::Real(), mopts);
  if (!manager.ok()) return manager.status();
  manager_ = *std::move(manager);

  audit_path_ = dir_.path() + "/audit.log";
  absl::StatusOr<std::unique_ptr<security::AuditLog>> audit =
      security::AuditLog::Open(audit_path_);
  if (!audit.ok()) return audit.status();
  audit_ = *std::move(audit);

  service::ServerOptions sopts;
  sopts.tls = options_.manager_tls;
  sopts.audit = audit_.get();
  absl::StatusOr<std::unique_ptr<service::GrpcServer>> server =
      service::GrpcServer::Start(manager_.get(), "127.0.0.1:0", sopts);
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  address_ = absl::StrCat("127.0.0.1:", server_->port());

  if (options_.nodes.empty()) return absl::OkStatus();
  v1::CreateFabricRequest req;
  req.mutable_spec()->set_name("lab");
  req.mutable_spec()->set_topology(v1::RING);
  req.mutable_spec()->set_default_export_size(options_.export_size);
  for (const std::string& node : options_.nodes)
    req.mutable_spec()->add_nodes()->set_name(node);
  {
    auto stub = v1::FabricService::NewStub(
        DialManager(pki.User("admin", "admin")));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    v1::Fabric out;
    grpc::Status s = stub->CreateFabric(&ctx, req, &out);
    if (!s.ok()) {
      return absl::InternalError(
          absl::StrCat("CreateFabric as user/admin: ", s.error_message()));
    }
  }
  for (const std::string& node : options_.nodes) {
    absl::StatusOr<agent::hw::HardwareLimits> limits =
        agent::hw::LimitsForProfile("hw_profile", "sim");
    if (!limits.ok()) return limits.status();
    absl::StatusOr<std::unique_ptr<agent::hw::SimBridge>> bridge =
        agent::hw::SimBridge::Open(dir_.path() + "/sim", node, *limits);
    if (!bridge.ok()) return bridge.status();
    agent::AgentOptions o;
    o.manager_address = address_;
    o.node = node;
    o.backend = "sim";
    o.tls = pki.Node(node);
    bridges_[node] = *std::move(bridge);
    agents_[node] = std::make_unique<agent::Agent>(
        o, bridges_[node].get(), v1::NodeInventory());
    if (absl::Status s = agents_[node]->Start(); !s.ok()) return s;
  }
  return WaitSettled();
}

std::vector<security::AuditEvent> SecureFabric::Audit() const {
  absl::StatusOr<std::vector<security::AuditEvent>> events =
      security::AuditLog::Read(audit_path_);
  return events.ok() ? *std::move(events)
                     : std::vector<security::AuditEvent>();
}

std::shared_ptr<grpc::Channel> SecureFabric::DialManager(
    const security::TlsConfig& tls) {
  return Dial(address_, tls, security::PeerRequirement::AnyManager());
}

std::string SecureFabric::AgentAddress(const std::string& node) const {
  auto it = agents_.find(node);
  if (it == agents_.end()) return "";
  return absl::StrCat("127.0.0.1:", it->second->control_port());
}

std::shared_ptr<grpc::Channel> SecureFabric::DialAgent(
    const std::string& node, const security::TlsConfig& tls) {
  return Dial(AgentAddress(node), tls, security::PeerRequirement::Node(node));
}

void SecureFabric::StopAgent(const std::string& node) {
  auto it = agents_.find(node);
  if (it == agents_.end()) return;
  it->second->Stop();
  agents_.erase(it);
}

agent::AgentStats SecureFabric::AgentStats(const std::string& node) const {
  auto it = agents_.find(node);
  return it == agents_.end() ? agent::AgentStats() : it->second->stats();
}

agent::hw::SimBridge* SecureFabric::Bridge(const std::string& node) {
  auto it = bridges_.find(node);
  return it == bridges_.end() ? nullptr : it->second.get();
}

absl::Status SecureFabric::WaitSettled(absl::Duration timeout) {
  std::string unsettled;
  auto settled = [&] {
    unsettled.clear();
    v1::ListNodesRequest nreq;
    absl::StatusOr<v1::ListNodesResponse> nodes = manager_->ListNodes(nreq);
    if (!nodes.ok()) {
      unsettled = nodes.status().ToString();
      return false;
    }
    std::vector<std::string> waiting;
    for (const v1::Node& n : nodes->nodes()) {
      if (!agents_.count(n.name().substr(n.name().rfind('/') + 1))) continue;
      if (n.agent_state() != v1::Node::READY ||
          n.applied_generation() != n.desired_generation()) {
        waiting.push_back(absl::StrCat(
            n.name(), " ", v1::Node::AgentState_Name(n.agent_state()), " ",
            n.applied_generation(), "/", n.desired_generation()));
      }
    }
    v1::ListAllocationsRequest areq;
    absl::StatusOr<v1::ListAllocationsResponse> allocs =
        manager_->ListAllocations(areq);
    if (allocs.ok()) {
      for (const v1::Allocation& a : allocs->allocations()) {
        if (a.state() != v1::Allocation::READY &&
            a.state() != v1::Allocation::RELEASED) {
          waiting.push_back(absl::StrCat(
              a.name(), " ", v1::Allocation::State_Name(a.state())));
        }
      }
    }
    unsettled = absl::StrJoin(waiting, ", ");
    return waiting.empty();
  };
  if (WaitFor(settled, timeout)) return absl::OkStatus();
  return absl::DeadlineExceededError(
      absl::StrCat("the fabric did not settle: ", unsettled));
}

absl::StatusOr<v1::Allocation> SecureFabric::WaitAllocation(
    const std::string& name, v1::Allocation::State state,
    absl::Duration timeout) {
  absl::StatusOr<v1::Allocation> a;
  if (WaitFor(
          [&] {
            a = manager_->GetAllocation(name);
            return a.ok() && a->state() == state;
          },
          timeout)) {
    return a;
  }
  if (!a.ok()) return a.status();
  return absl::DeadlineExceededError(absl::StrCat(
      name, " is ", v1::Allocation::State_Name(a->state()), ", not ",
      v1::Allocation::State_Name(state)));
}

}  // namespace fabric::sectest
