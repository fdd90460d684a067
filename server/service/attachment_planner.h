// AttachmentPlanner: plans VF lending. An attachment maps a lender's VF
// into a borrower through windows: one per memory BAR of the VF (the
// borrower reaches the device), a DMA window and an MSI-X doorbell window
// (the device reaches the borrower).
//
// Not thread-safe: called with the lock that guards the ManagerState held.
#ifndef FABRIC_SERVER_SERVICE_ATTACHMENT_PLANNER_H_
#define FABRIC_SERVER_SERVICE_ATTACHMENT_PLANNER_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fabric/v1/resources.pb.h"
#include "server/service/commit_queue.h"
#include "server/service/manager_state.h"

namespace fabric::service {

// Plans attachment `in` (checked by ValidateNewAttachment, with its DMA
// window of `dma_size`) created at `now`: its grants are added and its
// uncommitted entry recorded (PlanNewLease). Errors (nothing is left
// behind): INVALID_ARGUMENT (a PF instead of a VF, the lender as borrower,
// different fabrics), NOT_FOUND (unknown node or VF), FAILED_PRECONDITION
// (VF already lent: names the borrower; VF unhealthy; no BAR address;
// fabric being deleted), UNAVAILABLE (an agent not READY; the VF being
// attached or detached), RESOURCE_EXHAUSTED (no window).
absl::StatusOr<Plan> PlanAttachment(ManagerState& s, const v1::Attachment& in,
                                    uint64_t dma_size, absl::Time now);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_ATTACHMENT_PLANNER_H_
