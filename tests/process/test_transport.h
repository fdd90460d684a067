// How the processes of a test talk to each other: mutual TLS with
// certificates from one TestPki per test process (the default: the secure
// path is the tested path), or plaintext on loopback (--insecure) for the
// harnesses whose subject is not security (chaos, overload, benches).
//
//   Transport& t = Transport::Tls();
//   StartManager(db, log, t.ManagerFlags());            // manager/m1
//   Child agent({bin + "/fabric-agent", "--manager", addr, "--node", "n1",
//                ...t.AgentFlags("n1")...}, log);       // node/n1
//   RunCommand(t.Fabricctl(addr, {"get", "nodes"}), &out);   // user/admin
//   auto stub = v1::FabricService::NewStub(t.DialManager(addr));
//
// Certificates are issued on first use of a name and reused after; their
// files live in the TestPki's temporary directory, removed at exit.
//
// Thread-safe.
#ifndef FABRIC_TESTS_PROCESS_TEST_TRANSPORT_H_
#define FABRIC_TESTS_PROCESS_TEST_TRANSPORT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/security/testing/test_pki.h"
#include "common/security/tls.h"

namespace fabric::proctest {

class Transport {
 public:
  // The process-wide mutual-TLS transport. Its CA is made (deploy/pki.sh)
  // on first use; a PKI that cannot be made aborts (CHECK): a broken PKI is
  // a broken test.
  static Transport& Tls();
  // The process-wide plaintext transport: every flag list is {"--insecure"}
  // and every channel plaintext. Loopback only (the programs refuse it
  // elsewhere).
  static Transport& Insecure();

  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  bool is_tls() const { return pki_ != nullptr; }

  // Command-line flags: --tls-cert F --tls-key F --tls-ca F for the
  // identity, or {"--insecure"}.
  // fabric-manager as manager/NAME.
  std::vector<std::string> ManagerFlags(const std::string& name = "m1");
  // fabric-agent as node/NODE (the agent's --node must be NODE).
  std::vector<std::string> AgentFlags(const std::string& node);
  // fabricctl as user/admin (role admin).
  std::vector<std::string> CtlFlags();
  // The whole fabricctl command line: BinDir()/fabricctl --server SERVER,
  // CtlFlags(), then `args`.
  std::vector<std::string> Fabricctl(const std::string& server,
                                     const std::vector<std::string>& args);

  // The TlsConfig of an identity (insecure configs for Insecure()).
  security::TlsConfig Manager(const std::string& name = "m1");
  security::TlsConfig Node(const std::string& node);
  security::TlsConfig User(const std::string& name, const std::string& role);
  security::TlsConfig Admin() { return User("admin", "admin"); }

  // A channel to the manager at `address`, as user/admin; the server must
  // present a manager certificate.
  std::shared_ptr<grpc::Channel> DialManager(
      const std::string& address,
      const grpc::ChannelArguments& args = grpc::ChannelArguments());
  // A channel to the agent of `node` at `address` as the manager dials it:
  // with manager/m1's certificate, and the agent's must name node/NODE.
  std::shared_ptr<grpc::Channel> DialAgent(const std::string& address,
                                           const std::string& node);
  // A channel to `address` as the identity `as` (from this transport),
  // whose server must meet `peer`.
  std::shared_ptr<grpc::Channel> DialAs(const std::string& address,
                                        const security::TlsConfig& as,
                                        const security::PeerRequirement& peer);

 private:
  explicit Transport(std::unique_ptr<security::TestPki> pki)
      : pki_(std::move(pki)) {}

  // Issues (once) the certificate of KIND/NAME with `role`.
  security::TlsConfig Identity(const std::string& kind, const std::string& name,
                               const std::string& role);
  static std::vector<std::string> Flags(const security::TlsConfig& tls);

  const std::unique_ptr<security::TestPki> pki_;  // null: plaintext
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, security::TlsConfig> issued_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::proctest

#endif  // FABRIC_TESTS_PROCESS_TEST_TRANSPORT_H_
