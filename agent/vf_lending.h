// The node agent's part in lending SR-IOV VFs (US20140331223A1), for both
// roles a node can hold:
//
//  * Lender: serves VfAccess for the VFs the manager says it lends, and
//    only to their borrower (PERMISSION_DENIED otherwise): config reads and
//    writes on the real VF, MSI-X table entries (only pointing into the
//    borrower's MSI-X window), and, for proofs and tests, making the VF DMA
//    (only into its DMA window, as an IOMMU would confine it) or raise a
//    vector. Probes every VF it has (config readable, vendor id not 0xffff,
//    PF link up) and reports the results.
//  * Borrower: builds one shadow ("fake") device per VF it borrows: a
//    vf::ConfigVirtualizer whose real accesses are VfAccess calls to the
//    lender's agent, with BARs at the borrower's MMIO windows and MSI-X
//    messages translated into the lender's MSI-X window. Interrupt messages
//    that land in the shadow's doorbell page are checked byte for byte and
//    delivered by a vf::InterruptRouter (direct to a running VM, else via
//    the hypervisor).
//
// The agent calls SetAssignments() with each applied configuration and
// Reconcile() periodically (shadows whose lender could not be reached are
// retried). Thread-safe; RPCs to lenders are made without the lock held.
#ifndef FABRIC_AGENT_VF_LENDING_H_
#define FABRIC_AGENT_VF_LENDING_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "agent/discovery/pci_address.h"
#include "agent/hw/bridge_hardware.h"
#include "agent/hw/sriov_functions.h"
#include "agent/vf/config_virtualizer.h"
#include "agent/vf/interrupt_router.h"
#include "fabric/v1/fabric.grpc.pb.h"

namespace fabric::agent {

class VfLending {
 public:
  // Reads `len` bytes of this host's memory (the agent's HostRead, under
  // its hardware lock).
  using HostReader =
      std::function<absl::Status(uint64_t addr, absl::Span<uint8_t> out)>;

  // `local` may be null (the node lends nothing); not owned.
  // `on_shadow_change` (optional) is called, without locks held, when a
  // shadow device was built or failed, so the agent can report at once.
  VfLending(std::string node, hw::SriovFunctions* local, HostReader host_read,
            std::function<void()> on_shadow_change = nullptr);
  ~VfLending();

  VfLending(const VfLending&) = delete;
  VfLending& operator=(const VfLending&) = delete;

  // The VF duties of the configuration just applied. Shadows of removed
  // borrowings are torn down; VFs no longer lent are quiesced (bus
  // mastering off, MSI-X disabled). Then Reconcile().
  void SetAssignments(const std::vector<v1::VfAssignment>& assignments)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Builds the shadows not built yet (each needs the lender's agent, which
  // may not have applied the attachment yet). A background thread calls
  // this every 50 ms while some shadow is missing; public for tests.
  void Reconcile() ABSL_LOCKS_EXCLUDED(mu_);

  // Lender side. PERMISSION_DENIED unless the VF is lent to req.borrower();
  // FAILED_PRECONDITION when this node has no local functions.
  absl::StatusOr<v1::VfAccessResponse> VfAccess(const v1::VfAccessRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Borrower side. NOT_FOUND for an attachment this node does not borrow;
  // UNAVAILABLE while its shadow is not built.
  absl::StatusOr<v1::AccessShadowResponse> AccessShadow(
      const v1::AccessShadowRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ShadowInterruptResponse> ShadowInterrupt(
      const v1::ShadowInterruptRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::SetVmStateResponse> SetVmState(
      const v1::SetVmStateRequest& req) ABSL_LOCKS_EXCLUDED(mu_);

  // Adds the VF health probes, the shadows' status and, when it changed
  // since the last call that returned it, the inventory.
  void FillStatus(v1::ReportStatusRequest* report) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Shadow;

  // The stub of the lender's agent of `attachment` now; null if unknown.
  v1::NodeAgentService::Stub* LenderStub(const std::string& attachment)
      ABSL_LOCKS_EXCLUDED(lender_mu_);
  // Builds the shadow for `a` (outside mu_: it calls the lender).
  absl::StatusOr<std::shared_ptr<Shadow>> BuildShadow(
      const v1::VfAssignment& a);
  void Quiesce(const v1::VfAssignment& a) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::VfCounters> CountersLocked(const Shadow& s) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string node_;
  hw::SriovFunctions* const local_;  // may be null; not owned
  const HostReader host_read_;
  vf::InterruptRouter router_;

  mutable absl::Mutex mu_;
  // By attachment name.
  std::map<std::string, v1::VfAssignment> lent_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::VfAssignment> borrowed_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Shadow>> shadows_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> shadow_errors_ ABSL_GUARDED_BY(mu_);
  // Lender agents' stubs by address, and each borrowed attachment's lender
  // address (it changes when the lender's agent restarts). Its own lock:
  // shadows call lenders with their virtualizer's lock held.
  absl::Mutex lender_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::map<std::string, std::unique_ptr<v1::NodeAgentService::Stub>> stubs_
      ABSL_GUARDED_BY(lender_mu_);
  std::map<std::string, std::string> lender_of_ ABSL_GUARDED_BY(lender_mu_);
  // The last probe of the local functions (FillStatus).
  absl::Mutex probe_mu_;
  absl::Time probed_at_ ABSL_GUARDED_BY(probe_mu_) = absl::InfinitePast();
  v1::NodeInventory last_inventory_ ABSL_GUARDED_BY(probe_mu_);
  std::vector<v1::VfHealthReport> last_health_ ABSL_GUARDED_BY(probe_mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  const std::function<void()> on_shadow_change_;
  std::thread reconciler_;
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_VF_LENDING_H_
