// The lender's side of VF lending (docs/prior-art.md): serves VfAccess for the
// VFs the manager says this node lends, and only to their borrower
// (PERMISSION_DENIED otherwise): config reads and writes on the real VF
// (writes only to the registers a shadow device forwards), MSI-X table
// entries (only pointing into the borrower's MSI-X window), and, for proofs
// and tests, making the VF DMA (only into its DMA window, as an IOMMU would
// confine it) or raise a vector. Probes every VF it has (config readable,
// vendor id not 0xffff, PF link up) for the agent's reports.
//
// Thread-safe.
#ifndef FABRIC_AGENT_VF_LENDER_H_
#define FABRIC_AGENT_VF_LENDER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/hw/sriov_functions.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/agentproto/v1/node_agent_service.pb.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::agent {

class VfLender {
 public:
  // `local` may be null (the node lends nothing); not owned.
  VfLender(std::string node, hw::SriovFunctions* local);

  VfLender(const VfLender&) = delete;
  VfLender& operator=(const VfLender&) = delete;

  // The LENDER assignments of the configuration just applied (others are
  // ignored), of generation `generation` (0: unknown). Lendings that ended
  // are withdrawn and their VFs quiesced (every MSI-X vector masked and
  // cleared, bus mastering, memory decode and MSI-X off) before the new
  // ones are published, so the next borrower of a VF finds it quiet.
  void SetAssignments(
      const std::vector<agentproto::v1::VfAssignment>& assignments,
      int64_t generation = 0) ABSL_LOCKS_EXCLUDED(mu_);

  // How long VfAccess waits for this lender's configuration to reach the
  // borrower's generation (req.generation()).
  static constexpr absl::Duration kCatchUpTimeout = absl::Seconds(1);

  // req.borrower() is the borrower the RPC edge resolved from the caller's
  // certificate (ResolveBorrower, agent/node_agent_service.h), not what a
  // caller claimed.
  // PERMISSION_DENIED unless the VF is lent to req.borrower() (decided once
  // this lender has applied req.generation(), or after kCatchUpTimeout);
  // FAILED_PRECONDITION when this node has no local functions.
  absl::StatusOr<agentproto::v1::VfAccessResponse> VfAccess(
      const agentproto::v1::VfAccessRequest& req) ABSL_LOCKS_EXCLUDED(mu_);

  // Adds the VF health probes and the inventory. Reports right after each
  // other reuse a probe younger than 100 ms.
  void FillStatus(agentproto::v1::ReportStatusRequest* report)
      ABSL_LOCKS_EXCLUDED(probe_mu_);

 private:
  void Quiesce(const agentproto::v1::VfAssignment& a);

  const std::string node_;
  hw::SriovFunctions* const local_;  // may be null; not owned

  absl::Mutex mu_;
  // By attachment name.
  std::map<std::string, agentproto::v1::VfAssignment> lent_
      ABSL_GUARDED_BY(mu_);
  // The newest generation SetAssignments was given.
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // The last probe of the local functions (FillStatus).
  absl::Mutex probe_mu_;
  absl::Time probed_at_ ABSL_GUARDED_BY(probe_mu_) = absl::InfinitePast();
  v1::NodeInventory last_inventory_ ABSL_GUARDED_BY(probe_mu_);
  std::vector<agentproto::v1::VfHealthReport> last_health_
      ABSL_GUARDED_BY(probe_mu_);
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_VF_LENDER_H_
