// What the security tests share: the test process's PKI (one CA, plus a
// stranger CA), channels that present any identity (or none), and
// SecureFabric: a real manager (GrpcServer over mutual TLS with the
// default policy and an audit log, on 127.0.0.1:0) and in-process agents
// over simulated bridges, each serving NodeAgentService with its node
// certificate.
//
//   SecurityPki& pki = SecurityPki::Get();
//   SecureFabric fabric;
//   ASSERT_OK(fabric.Start({.nodes = {"n0", "n1", "n2"}}));
//   auto stub = v1::FabricService::NewStub(
//       fabric.DialManager(pki.User("alice", "scheduler")));
//
// Hermetic: every port is picked by the kernel on 127.0.0.1, every file
// lives in temporary directories removed at the end. Test-only.
#ifndef FABRIC_TESTS_SECURITY_SECURE_FABRIC_H_
#define FABRIC_TESTS_SECURITY_SECURE_FABRIC_H_

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/hw/sim/sim_bridge.h"
#include "common/security/audit_log.h"
#include "common/security/testing/test_pki.h"
#include "common/security/tls.h"
#include "fabric/v1/resources.pb.h"
#include "server/service/manager.h"
#include "server/service/server.h"
#include "server/store/store.h"

namespace fabric::sectest {

// Long enough for a loaded machine or a sanitizer build; only a failing
// test waits this long.
inline constexpr absl::Duration kWait = absl::Seconds(30);

// Calls `done` every few milliseconds until it returns true (then true) or
// `timeout` has passed (then false, after one last call).
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = kWait);

// A whole file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

// A directory under $TMPDIR, removed (recursively) on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The certificates of this test process, issued by deploy/pki.sh on first
// use of a name and reused after. A PKI that cannot be made aborts: a
// broken PKI is a broken test. Thread-safe.
class SecurityPki {
 public:
  static SecurityPki& Get();

  const std::string& ca_file() const { return ca_file_; }
  security::TlsConfig Manager(const std::string& name = "m1");
  security::TlsConfig Node(const std::string& node);
  // role "" issues a certificate that names no role.
  security::TlsConfig User(const std::string& name, const std::string& role);
  // user/NAME with `role`, expired (its files are not those of User()).
  security::TlsConfig ExpiredUser(const std::string& name,
                                  const std::string& role);
  // user/NAME with `role`, signed by another CA that nobody trusts; the
  // config trusts this PKI's CA, so only the client's certificate is wrong.
  security::TlsConfig StrangerUser(const std::string& name,
                                   const std::string& role);
  // A fresh certificate for KIND/NAME with a new key and serial, written
  // to new files (the ones returned before stay as they were).
  security::TlsConfig Reissue(const std::string& kind, const std::string& name,
                              const std::string& role = "");

 private:
  SecurityPki();
  security::TlsConfig Issued(const std::string& key,
                             const std::function<security::TlsConfig()>& make);

  std::unique_ptr<security::TestPki> pki_;
  std::unique_ptr<security::TestPki> stranger_;
  std::string ca_file_;
  absl::Mutex mu_;
  std::map<std::string, security::TlsConfig> issued_ ABSL_GUARDED_BY(mu_);
  int reissued_ ABSL_GUARDED_BY(mu_) = 0;
};

// A channel to `address` presenting `tls` (mutual TLS; plaintext when
// tls.insecure) and requiring the server to be `peer`.
std::shared_ptr<grpc::Channel> Dial(const std::string& address,
                                    const security::TlsConfig& tls,
                                    const security::PeerRequirement& peer);

// A TLS channel that verifies the server against `ca_file` but presents no
// client certificate at all.
std::shared_ptr<grpc::Channel> DialWithoutCertificate(
    const std::string& address, const std::string& ca_file);

struct SecureFabricOptions {
  // The nodes of the ring fabric "lab"; each gets an agent with its node
  // certificate. Empty: no fabric, no agents.
  std::vector<std::string> nodes;
  uint64_t export_size = 64ull << 20;
  // The manager's certificate (default: SecurityPki's manager/m1).
  security::TlsConfig manager_tls;
};

class SecureFabric {
 public:
  SecureFabric() = default;
  ~SecureFabric();
  SecureFabric(const SecureFabric&) = delete;
  SecureFabric& operator=(const SecureFabric&) = delete;

  // Starts the manager, declares the fabric (as admin, over TLS), starts
  // the agents and waits until every node is READY.
  absl::Status Start(const SecureFabricOptions& options);
  void Stop();

  const std::string& address() const { return address_; }
  service::FabricManager* manager() { return manager_.get(); }
  const std::string& audit_path() const { return audit_path_; }
  std::vector<security::AuditEvent> Audit() const;

  // A channel to the manager as `tls`.
  std::shared_ptr<grpc::Channel> DialManager(const security::TlsConfig& tls);
  // A channel to `node`'s agent as `tls`, requiring its certificate to be
  // node/NODE.
  std::shared_ptr<grpc::Channel> DialAgent(const std::string& node,
                                           const security::TlsConfig& tls);
  std::string AgentAddress(const std::string& node) const;
  // Stops `node`'s agent (its node goes silent, as if it died).
  void StopAgent(const std::string& node);
  // What `node`'s running agent has done (sessions, fenced).
  agent::AgentStats AgentStats(const std::string& node) const;
  // The node's simulated bridge (the agent's own object; thread-safe).
  agent::hw::SimBridge* Bridge(const std::string& node);

  // Waits until every node with a running agent is READY with its desired generation applied
  // and every allocation READY; DEADLINE_EXCEEDED naming what was not.
  absl::Status WaitSettled(absl::Duration timeout = kWait);
  // Waits until allocation `name` is in `state`.
  absl::StatusOr<v1::Allocation> WaitAllocation(
      const std::string& name, v1::Allocation::State state,
      absl::Duration timeout = kWait);

 private:
  SecureFabricOptions options_;
  ScratchDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<service::FabricManager> manager_;
  std::unique_ptr<security::AuditLog> audit_;
  std::string audit_path_;
  std::unique_ptr<service::GrpcServer> server_;
  std::string address_;
  std::map<std::string, std::unique_ptr<agent::hw::SimBridge>> bridges_;
  std::map<std::string, std::unique_ptr<agent::Agent>> agents_;
};

}  // namespace fabric::sectest

#endif  // FABRIC_TESTS_SECURITY_SECURE_FABRIC_H_
