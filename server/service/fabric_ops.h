// FabricOps: plans the mutations of fabrics and links: creating a fabric
// from its spec, deleting one (with its leases, when forced), and setting a
// link up or down.
//
// Functions of a ManagerState; the caller holds the lock that guards it.
// Plans' commit and rollback functions capture the state and must run
// under that lock too (CommitQueue does).
//
// Ordering. These plans are decided on committed state only: a fabric being
// created is not visible until it commits, and a link change is not seen
// by the next one until it commits (it is checked against the map the
// fabric has). So at most one of them may be planned and not yet committed
// (or rolled back) at any time; the caller serializes them (FabricManager
// runs them one by one through a Sequencer, manager.h). Two fabrics of the
// same name planned side by side would both be written; two link changes
// that each fit the bridges' map entries could together overflow them.
#ifndef FABRIC_SERVER_SERVICE_FABRIC_OPS_H_
#define FABRIC_SERVER_SERVICE_FABRIC_OPS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fabric/v1/fabric_service.pb.h"
#include "fabric/v1/resources.pb.h"
#include "server/core/topology.h"
#include "server/service/commit_queue.h"
#include "server/service/manager_state.h"

namespace fabric::service {

// A new fabric's topology, built from its spec. Needs no lock: it reads
// only the spec.
class FabricDraft {
 public:
  // Checks `spec` and builds its topology. INVALID_ARGUMENT (or the
  // topology's error) naming the field under "spec.".
  static absl::StatusOr<FabricDraft> FromSpec(const v1::FabricSpec& spec);

  const core::Topology& topology() const { return *topology_; }

 private:
  explicit FabricDraft(std::shared_ptr<const core::Topology> topology)
      : topology_(std::move(topology)) {}

  // Shared, so that the draft is cheap to copy into a deferred plan.
  std::shared_ptr<const core::Topology> topology_;
};

// Plans fabric `req.spec()` with topology `draft` (FabricDraft::FromSpec of
// that spec), created at `now`: its record is written; on commit it and
// its nodes are added, the generation bumped and ADDED published. With
// validate_only, nothing is written or changed, and the response is the
// fabric it would create. ALREADY_EXISTS when the fabric, or one of its
// nodes (in another fabric), exists.
absl::StatusOr<Plan> PlanCreateFabric(ManagerState& s,
                                      const v1::CreateFabricRequest& req,
                                      const FabricDraft& draft, absl::Time now);

// Plans the deletion of fabric `req.name()`: its record, its links' records
// and (when forced) its leases' records are deleted. The fabric is marked
// deleting until the plan commits or rolls back, so that nothing new is
// planned on it. On commit its leases are dropped (each DELETED is
// published), then the fabric (DELETED). NOT_FOUND for an unknown fabric;
// FAILED_PRECONDITION when it has leases and not `force`; UNAVAILABLE while
// a lease of it is being created or released.
absl::StatusOr<Plan> PlanDeleteFabric(ManagerState& s,
                                      const v1::DeleteFabricRequest& req);

// Plans link `req.name()` going up or down: its record is written; on
// commit the fabric's map is recomputed (when the state changed), the
// generation bumped, every committed allocation of the fabric required at
// it, MODIFIED published and the fabric's leases re-derived. NOT_FOUND for
// an unknown link; FAILED_PRECONDITION when the fabric is being deleted or
// the resulting map would not fit a bridge.
absl::StatusOr<Plan> PlanSetLinkState(ManagerState& s,
                                      const v1::SetLinkStateRequest& req);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_FABRIC_OPS_H_
