// LendingFabric: the fabric the Kubernetes process tests claim from (issue
// 15). A real fabric-manager and three simulated agents n0..n2 on a ring, as
// processes over mutual TLS (proctest::Transport::Tls()); n1 lends the VFs
// of agent/hw/sim/examples/one_pf.json, and every node exports 64 MiB of
// memory.
//
//   LendingFabric fabric;
//   ASSERT_TRUE(fabric.Start(dir.path()).ok());
//   fabric.admin().ListLinks("lab");
//   fabric.LiveAttachments("node/n0");
//
// Not thread-safe; test-only. The processes end with the object.
#ifndef FABRIC_TESTS_KUBERNETES_LENDING_FABRIC_H_
#define FABRIC_TESTS_KUBERNETES_LENDING_FABRIC_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/fabric_client.h"
#include "tests/process/process_util.h"
#include "tests/process/test_transport.h"

namespace fabric::k8stest {

class LendingFabric {
 public:
  // The fabric's name, and its lender of VFs.
  static constexpr char kFabric[] = "lab";
  static constexpr char kLender[] = "n1";

  // Starts the manager (state and logs under `dir`), creates the fabric,
  // starts the agents and waits until every node is READY and n1's eight
  // VFs are healthy. UNAVAILABLE naming the step (and DEADLINE_EXCEEDED
  // for a wait) otherwise; the logs in `dir` say more.
  absl::Status Start(const std::string& dir);

  const std::string& address() const { return address_; }
  client::FabricClient& admin() { return *admin_; }
  proctest::Transport& tls() { return tls_; }
  std::string ManagerLog() const;

  // Agent i (node "n<i>"): kill -9 and wait, or start again.
  void KillAgent(int i);
  void StartAgent(int i);
  // The node's agent is READY and has applied its configuration.
  bool WaitNodeReady(const std::string& node);

  // n1's VFs.
  absl::StatusOr<std::vector<v1::VirtualFunction>> Vfs();
  // The claims of `owner` that are not freed (failures are test failures).
  std::vector<v1::Attachment> LiveAttachments(const std::string& owner);
  std::vector<v1::Allocation> LiveAllocations(const std::string& owner);

 private:
  proctest::Transport& tls_ = proctest::Transport::Tls();
  std::string dir_;
  std::unique_ptr<proctest::Manager> manager_;
  std::string address_;
  std::unique_ptr<client::FabricClient> admin_;
  std::vector<std::unique_ptr<proctest::Child>> agents_;
};

}  // namespace fabric::k8stest

#endif  // FABRIC_TESTS_KUBERNETES_LENDING_FABRIC_H_
