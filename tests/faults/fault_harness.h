// A fabric for fault tests: the real fabric-manager and one fabric-agent per
// node over the simulator, all as child processes in a temporary directory,
// a ring fabric "lab", and the checks the fault tests share: settled
// generations, every simulated bridge against the manager's desired
// configuration, proof by bytes.
//
// Hermetic: port 0 on 127.0.0.1, everything under one TempDir that is
// removed afterwards, every child SIGKILLed and reaped by its Child. Every
// connection is mutual TLS (proctest::Transport::Tls()): the manager as
// manager/m1, each agent as its node, the harness's own calls as user/admin
// (and as the node for its configuration stream).
#ifndef FABRIC_TESTS_FAULTS_FAULT_HARNESS_H_
#define FABRIC_TESTS_FAULTS_FAULT_HARNESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/hw/bridge_hardware.h"
#include "fabric/agentproto/v1/agent_service.grpc.pb.h"
#include "fabric/v1/diagnostics.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "tests/process/process_util.h"
#include "tests/process/test_transport.h"

namespace fabric::faults {

struct HarnessOptions {
  int nodes = 4;
  uint64_t export_size = 256ull << 20;
  std::vector<std::string> manager_flags = {
      "--heartbeat-timeout", "600ms", "--heartbeat-interval", "100ms"};
  std::string drift_check_interval = "200ms";
  // Extra fabric-agent flags for every agent.
  std::vector<std::string> agent_flags;
};

class FabricHarness {
 public:
  FabricHarness() = default;
  ~FabricHarness();
  FabricHarness(const FabricHarness&) = delete;
  FabricHarness& operator=(const FabricHarness&) = delete;

  // Starts the manager, declares the ring, starts every agent.
  absl::Status Start(const HarnessOptions& options = {});

  static std::string Node(int i);
  int nodes() const { return options_.nodes; }
  const std::string& dir() const { return dir_.path(); }
  std::string sim_dir() const { return dir_.path() + "/sim"; }
  std::string AgentLog(int i) const;
  std::string ManagerLog() const { return dir_.path() + "/manager.log"; }
  int manager_pid() const { return manager_->child.pid(); }
  v1::FabricService::Stub* stub() { return stub_.get(); }

  // Agents. StartAgent replaces (and kills) a running one.
  void StartAgent(int i, const std::vector<std::string>& extra_flags = {});
  // Waits until the agent last started for node i has registered with the
  // manager (the node's agent address is the one that agent logged).
  absl::Status WaitRegistered(int i, absl::Duration timeout = absl::Seconds(10));
  void KillAgent(int i);
  // Waits up to `timeout` for agent i to exit; its exit code, or -1.
  int WaitAgentExit(int i, absl::Duration timeout);

  // RPCs.
  absl::StatusOr<v1::Allocation> Create(int from, int to, uint64_t size,
                                        const std::string& request_id = "");
  absl::Status Delete(const std::string& name);
  absl::StatusOr<v1::Allocation> Get(const std::string& name);
  absl::StatusOr<std::vector<v1::Allocation>> List();
  absl::StatusOr<std::vector<v1::Node>> Nodes();
  absl::StatusOr<v1::Node> GetNode(const std::string& name);
  absl::Status SetLink(const std::string& link, bool up);
  absl::StatusOr<v1::VerifyResult> Verify(const std::string& name);

  // Polls until `name` is in `state`; false after `timeout`.
  bool WaitState(const std::string& name, v1::Allocation::State state,
                 absl::Duration timeout = absl::Seconds(15));

  // Waits until every node is READY with applied_generation ==
  // desired_generation (the same for all) and every allocation READY or
  // DEGRADED as its path says; returns how long that took. DEADLINE_EXCEEDED
  // naming what was still unsettled.
  // `first_unsettled`, if not null, receives what was not settled at the
  // first look ("" if everything was).
  absl::StatusOr<absl::Duration> WaitSettled(
      absl::Duration timeout = absl::Seconds(15),
      std::string* first_unsettled = nullptr);

  // The manager's desired configuration for `node` now (first message of
  // its StreamConfig stream; reading it registers nothing).
  absl::StatusOr<agentproto::v1::DesiredConfig> Desired(
      const std::string& node);
  // What the simulated bridge of `node` holds now (read from its state
  // file, without taking its lock or changing anything).
  absl::StatusOr<agent::hw::BridgeState> Hardware(const std::string& node);
  // Where node's bridge differs from its desired configuration, one line
  // each: entries missing, extra, different, or duplicated. Empty when the
  // bridge holds exactly what the manager wants.
  std::vector<std::string> HardwareVsDesired(const std::string& node);
  // HardwareVsDesired for every node, prefixed with the node.
  std::vector<std::string> AllHardwareVsDesired();

  // Every allocation in `names` READY and proved by bytes; failures as
  // lines.
  std::vector<std::string> VerifyAll(const std::vector<std::string>& names);

 private:
  HarnessOptions options_;
  proctest::Transport& tls_ = proctest::Transport::Tls();
  proctest::TempDir dir_;
  std::unique_ptr<proctest::Manager> manager_;
  std::string address_;
  std::unique_ptr<v1::FabricService::Stub> stub_;
  std::vector<std::unique_ptr<proctest::Child>> agents_;
  std::vector<size_t> agent_log_offsets_;  // log size when last started
};

// The desired hardware state of `config`, as the agent computes it, with
// the scratchpads and doorbell of `have` (ApplyState leaves them alone).
agent::hw::BridgeState WantedState(const agentproto::v1::DesiredConfig& config,
                                   const agent::hw::BridgeState& have);

// VmRSS and VmHWM of `pid` in KiB from /proc/<pid>/status; -1 if unknown.
struct Memory {
  long rss_kib = -1;
  long hwm_kib = -1;
};
Memory ProcessMemory(int pid);

}  // namespace fabric::faults

#endif  // FABRIC_TESTS_FAULTS_FAULT_HARNESS_H_
