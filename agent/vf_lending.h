// The node agent's part in lending SR-IOV VFs (docs/prior-art.md), for both
// roles a node can hold: the lender (VfLender, agent/vf_lender.h: access
// policy on the VFs it lends) and the borrower (VfBorrower,
// agent/vf_borrower.h: shadow devices of the VFs it borrows). This front
// routes each call to its side.
//
// The agent calls SetAssignments() with each applied configuration; shadows
// whose lender could not be reached are retried in the background.
// Thread-safe.
#ifndef FABRIC_AGENT_VF_LENDING_H_
#define FABRIC_AGENT_VF_LENDING_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/hw/sriov_functions.h"
#include "agent/vf_borrower.h"
#include "agent/vf_lender.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/agentproto/v1/node_agent_service.pb.h"
#include "fabric/hypervisor/v1/hypervisor.pb.h"
#include "fabric/v1/diagnostics.pb.h"

namespace fabric::agent {

class VfLending {
 public:
  using HostReader = VfBorrower::HostReader;
  using LenderCredentials = VfBorrower::LenderCredentials;

  // `local` may be null (the node lends nothing); not owned.
  // `on_shadow_change` (optional) is called, without locks held, when a
  // shadow device was built or failed, so the agent can report at once.
  // `lender_credentials` as VfBorrower's (null: plaintext).
  // `metrics` (may be null; not owned) as VfBorrower's.
  VfLending(std::string node, hw::SriovFunctions* local, HostReader host_read,
            std::function<void()> on_shadow_change = nullptr,
            LenderCredentials lender_credentials = nullptr,
            AgentMetrics* metrics = nullptr);

  VfLending(const VfLending&) = delete;
  VfLending& operator=(const VfLending&) = delete;

  // The VF duties of the configuration just applied. VFs no longer lent are
  // quiesced (bus mastering off, MSI-X disabled) first; shadows of removed
  // borrowings are torn down.
  // `generation` is the configuration's (0: unknown); see
  // VfAccessRequest.generation.
  void SetAssignments(
      const std::vector<agentproto::v1::VfAssignment>& assignments,
      int64_t generation = 0);
  // Builds the shadows not built yet (the background thread does this
  // every 10 ms while some shadow is missing); public for tests.
  void Reconcile() { borrower_.Reconcile(); }

  // Lender side (VfLender::VfAccess).
  absl::StatusOr<agentproto::v1::VfAccessResponse> VfAccess(
      const agentproto::v1::VfAccessRequest& req) {
    return lender_.VfAccess(req);
  }

  // Borrower side (VfBorrower).
  absl::StatusOr<v1::AccessShadowResponse> AccessShadow(
      const v1::AccessShadowRequest& req) {
    return borrower_.AccessShadow(req);
  }
  absl::StatusOr<agentproto::v1::ShadowInterruptResponse> ShadowInterrupt(
      const agentproto::v1::ShadowInterruptRequest& req) {
    return borrower_.ShadowInterrupt(req);
  }
  absl::StatusOr<hypervisor::v1::SetVmStateResponse> SetVmState(
      const hypervisor::v1::SetVmStateRequest& req) {
    return borrower_.SetVmState(req);
  }

  // Adds the VF health probes and the inventory (lender), then the
  // shadows' status (borrower).
  void FillStatus(agentproto::v1::ReportStatusRequest* report);

 private:
  VfLender lender_;
  VfBorrower borrower_;
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_VF_LENDING_H_
