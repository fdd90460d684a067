// The borrower's side of VF lending (docs/prior-art.md): one shadow ("fake")
// device per VF this node borrows. A shadow is a vf::ConfigVirtualizer
// whose real accesses are VfAccess calls to the lender's agent, with BARs at
// the borrower's MMIO windows and MSI-X messages translated into the
// lender's MSI-X window. Interrupt messages that land in the shadow's
// doorbell page are checked byte for byte and delivered by a
// vf::InterruptRouter (direct to a running VM, else via the hypervisor).
//
// A background thread builds missing shadows, trying again every 10 ms
// while one is missing (each needs the lender's agent, which may not have
// applied the attachment yet); with every shadow built it sleeps until the
// assignments change.
// Thread-safe; RPCs to lenders are made without mu_ held.
#ifndef FABRIC_AGENT_VF_BORROWER_H_
#define FABRIC_AGENT_VF_BORROWER_H_

#include <grpcpp/security/credentials.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "agent/agent_metrics.h"
#include "agent/vf/config_virtualizer.h"
#include "agent/vf/interrupt_router.h"
#include "common/stub_cache.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/agentproto/v1/node_agent_service.grpc.pb.h"
#include "fabric/hypervisor/v1/hypervisor.pb.h"
#include "fabric/v1/diagnostics.pb.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::agent {

class VfBorrower {
 public:
  // Reads `len` bytes of this host's memory (the agent's HostRead, under
  // its hardware lock).
  using HostReader =
      std::function<absl::Status(uint64_t addr, absl::Span<uint8_t> out)>;

  // The credentials of a channel to the agent of lender node `lender`
  // ("n1"): mutual TLS that accepts only a certificate naming node/<lender>
  // (security::ChannelCredentials with PeerRequirement::Node).
  using LenderCredentials = std::function<
      std::shared_ptr<grpc::ChannelCredentials>(const std::string& lender)>;

  // `on_shadow_change` (optional) is called, without locks held, when a
  // shadow device was built, torn down or failed. `lender_credentials`
  // (optional) makes the channels to lenders; null: plaintext (in-process
  // tests and the fuzzer; the agent always gives one). `metrics` (may be
  // null; not owned) counts the interrupts delivered and the borrower's
  // shadow accesses by rule.
  VfBorrower(std::string node, HostReader host_read,
             std::function<void()> on_shadow_change = nullptr,
             LenderCredentials lender_credentials = nullptr,
             AgentMetrics* metrics = nullptr);
  ~VfBorrower();

  VfBorrower(const VfBorrower&) = delete;
  VfBorrower& operator=(const VfBorrower&) = delete;

  // The BORROWER assignments of the configuration just applied (lender
  // ones are ignored), of generation `generation` (0: unknown; the lender
  // is asked with it, see VfAccessRequest.generation). Shadows of removed
  // or changed borrowings are torn down; a new lender address alone keeps
  // the shadow. Wakes the builder.
  void SetAssignments(
      const std::vector<agentproto::v1::VfAssignment>& assignments,
      int64_t generation = 0) ABSL_LOCKS_EXCLUDED(mu_, lender_mu_);
  // Builds the shadows not built yet.
  void Reconcile() ABSL_LOCKS_EXCLUDED(mu_);

  // NOT_FOUND for an attachment this node does not borrow; UNAVAILABLE
  // while its shadow is not built.
  absl::StatusOr<v1::AccessShadowResponse> AccessShadow(
      const v1::AccessShadowRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<agentproto::v1::ShadowInterruptResponse> ShadowInterrupt(
      const agentproto::v1::ShadowInterruptRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<hypervisor::v1::SetVmStateResponse> SetVmState(
      const hypervisor::v1::SetVmStateRequest& req);

  // Adds each borrowed attachment's shadow status and counters.
  void FillStatus(agentproto::v1::ReportStatusRequest* report)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Shadow;

  // The stub of the lender's agent of `attachment` now, null if unknown,
  // and the generation to ask it with.
  agentproto::v1::NodeAgentService::Stub* LenderStub(
      const std::string& attachment, int64_t* generation)
      ABSL_LOCKS_EXCLUDED(lender_mu_);
  // Builds the shadow for `a` (outside mu_: it calls the lender).
  absl::StatusOr<std::shared_ptr<Shadow>> BuildShadow(
      const agentproto::v1::VfAssignment& a);
  absl::StatusOr<v1::VfCounters> CountersLocked(const Shadow& s) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string node_;
  const HostReader host_read_;
  AgentMetrics* const metrics_;  // not owned; may be null
  vf::InterruptRouter router_;

  mutable absl::Mutex mu_;
  // By attachment name.
  std::map<std::string, agentproto::v1::VfAssignment> borrowed_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Shadow>> shadows_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> shadow_errors_ ABSL_GUARDED_BY(mu_);
  // Each borrowed attachment's lender address (it changes when the lender's
  // agent restarts) and lender node. Its own lock: shadows call lenders with
  // their virtualizer's lock held.
  absl::Mutex lender_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::map<std::string, std::pair<std::string, std::string>> lender_of_
      ABSL_GUARDED_BY(lender_mu_);
  // The generation of the configuration that set lender_of_.
  int64_t generation_ ABSL_GUARDED_BY(lender_mu_) = 0;
  // Lender agents' stubs by (address, lender node): with credentials, a
  // channel checks that the agent at the address is the lender's. Kept
  // until the borrower goes.
  StubCache<agentproto::v1::NodeAgentService> stubs_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  const std::function<void()> on_shadow_change_;
  std::thread reconciler_;
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_VF_BORROWER_H_
