// Leases: the one lifecycle allocations and attachments share. Each is a
// lease (LeaseEntry) that owns grants in its fabric's state: it is minted
// with a random id, planned (uncommitted, hidden) until its record is
// durable, listed and looked up once committed, re-derived when what it
// depends on changes, and released (deleted, or dropped with its fabric).
// LeaseTraits<Record> holds what differs: names, tables and the words used.
//
// Functions of a ManagerState; the caller holds the lock that guards it.
// Plans' commit and rollback functions capture the state and must run
// under that lock too (CommitQueue does).
#ifndef FABRIC_SERVER_SERVICE_LEASES_H_
#define FABRIC_SERVER_SERVICE_LEASES_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fabric/v1/fabric_service.pb.h"
#include "fabric/v1/resources.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "server/service/commit_queue.h"
#include "server/service/manager_state.h"
#include "server/service/records.h"

namespace fabric::service {

template <typename Record>
struct LeaseTraits;

template <>
struct LeaseTraits<v1::Allocation> {
  static constexpr char kKind[] = "allocation";
  static constexpr char kCollection[] = "allocations";
  static constexpr char kIdPrefix[] = "alloc-";
  static constexpr const char* kTable = kTableAllocations;
  // What being released is called, and both ends of the lifecycle.
  static constexpr char kReleasing[] = "released";
  static constexpr char kChanging[] = "created or released";
  static constexpr v1::Allocation::State kGone = v1::Allocation::RELEASED;
};

template <>
struct LeaseTraits<v1::Attachment> {
  static constexpr char kKind[] = "attachment";
  static constexpr char kCollection[] = "attachments";
  static constexpr char kIdPrefix[] = "att-";
  static constexpr const char* kTable = kTableAttachments;
  static constexpr char kReleasing[] = "detached";
  static constexpr char kChanging[] = "attached or detached";
  static constexpr v1::Attachment::State kGone = v1::Attachment::DETACHED;
};

// The committed lease `name` ({collection}/{id} or {id}); NOT_FOUND naming
// `field` otherwise.
template <typename Record>
absl::StatusOr<LeaseEntry<Record>*> FindLease(const ManagerState& s,
                                              absl::string_view field,
                                              absl::string_view name);

// A fresh id for a new lease.
template <typename Record>
std::string NewLeaseId(ManagerState& s);

// Adds the planned (uncommitted) `entry` with id `id` to the state, whose
// grants are already in its fabric, and sets `plan`'s commit (commit it,
// bump the generation, publish ADDED) and rollback (remove its grants and
// it).
template <typename Record>
void PlanNewLease(ManagerState& s, const std::string& id,
                  std::unique_ptr<LeaseEntry<Record>> entry, Plan* plan);

// Plans the release of the committed lease `name`: its record is deleted;
// on commit its grants are removed, the generation bumped and DELETED
// published. The response is its last view, in state kGone with `reason`.
// ABORTED when it is already being released.
template <typename Record>
absl::StatusOr<Plan> PlanRelease(ManagerState& s, absl::string_view name,
                                 absl::string_view reason);

// Which leases a list walks: all (no fabric), one fabric's, or those one
// node of that fabric is an end of (node >= 0).
struct LeaseScope {
  const FabricEntry* fabric = nullptr;
  int node = -1;
};

// One page of the committed leases of `scope` that pass `keep`, by id. A
// page costs O(page · log n) plus the leases of `scope` it skips.
// INVALID_ARGUMENT as Pager::Start.
template <typename Record>
absl::Status ListLeases(
    const ManagerState& s, const LeaseScope& scope,
    const std::function<bool(const LeaseEntry<Record>&)>& keep, int page_size,
    absl::string_view page_token,
    google::protobuf::RepeatedPtrField<Record>* out, std::string* next_token);

// Re-derives the state of the committed leases of `fabric` that pass
// `affected` and publishes MODIFIED for those that changed. With
// `only_unsettled`, only those not READY (LeaseIds::unsettled) are looked
// at: O(unsettled), for a change that cannot unsettle a READY lease; and
// with `settled_node` >= 0 too, a change of that node alone, only those
// that wait for it or for no node (LeaseIds::waiting_on and unplaced).
template <typename Record>
void RefreshLeases(ManagerState& s, const std::string& fabric,
                   const std::function<bool(const LeaseEntry<Record>&)>&
                       affected,
                   bool only_unsettled = false, int settled_node = -1);

// The ids of the leases of fabric `fid`, which is being deleted:
// UNAVAILABLE while one is being created or released, FAILED_PRECONDITION
// if there are any and not `force` (`what` names them, e.g. "live
// allocation(s)", and `advice` says what to do).
template <typename Record>
absl::StatusOr<std::vector<std::string>> LeasesOfDeletedFabric(
    const ManagerState& s, const std::string& fid, bool force,
    absl::string_view what, absl::string_view advice);
// Drops the leases `ids` of a deleted fabric (in commit), publishing each
// DELETED in state kGone.
template <typename Record>
void DropLeases(ManagerState& s, const std::vector<std::string>& ids);

// Recovery: restores the committed lease `key` from its stored `value`
// (grants included), required at `required_generation`. DATA_LOSS when
// unreadable, or when it names a fabric or node that does not exist or a
// grant that does not fit.
template <typename Record>
absl::Status RestoreLease(ManagerState& s, const std::string& key,
                          absl::string_view value,
                          int64_t required_generation);

// Re-derives the states of the leases of `fabric` (allocations: all, or
// only those whose path crosses `node` when node >= 0; attachments: all)
// and publishes the changes. `only_unsettled`: of those, only the ones not
// READY; for a change of `node` that can only settle leases, such as its
// agent's applied generation moving forward, only the allocations that
// wait for it (or for no node) and the unsettled attachments: it costs
// O(those) instead of O(all leases of the fabric · path).
void RefreshFabricLeases(ManagerState& s, const std::string& fabric,
                         int node = -1, bool only_unsettled = false);

// Re-derives the states of the allocations of `fabric` whose path crosses
// any of `nodes` (node ids of its topology; they are endpoints or hops),
// and of all its attachments, and publishes the changes: what
// RefreshFabricLeases does for one node at a time, in one pass over the
// fabric's allocations however many nodes changed (e.g. a rack whose
// agents all went silent).
void RefreshLeasesCrossing(ManagerState& s, const std::string& fabric,
                           const std::vector<int>& nodes);

// Checks that the state each committed lease was last given (what the
// metrics count, the indexes hold and Watch last reported) is the state it
// derives now; INTERNAL naming the first that differs. For tests: O(all
// leases · path).
absl::Status CheckLeaseStates(const ManagerState& s);

// Publishes a change of a lease.
void PublishLease(WatchHub& hub, v1::WatchEvent::Type type,
                  const v1::Allocation& a);
void PublishLease(WatchHub& hub, v1::WatchEvent::Type type,
                  const v1::Attachment& a);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_LEASES_H_
