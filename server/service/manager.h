// FabricManager: the manager's authoritative state and every operation on
// it, independent of gRPC.
//
// Contract:
//  - Thread-safe. All in-memory state is guarded by mu_.
//  - A mutation returns OK only after its effects and its request record are
//    durable in the Store (group-committed with concurrent mutations), so
//    that an acknowledged result survives kill -9.
//  - A rejected or failed mutation leaves the store and the visible state
//    unchanged.
//  - A retried mutation with the same request_id returns the original
//    response; a request_id reused for a different request is
//    INVALID_ARGUMENT. A request id is recognized for
//    ManagerOptions::request_retention or until max_request_ids newer ids
//    have been recorded, whichever comes first; after that a retry is
//    treated as a new request. Ids in flight are never forgotten; an id is
//    forgotten in memory only once its store row is deleted, so memory and
//    store agree (also across restarts, which keep the newest
//    max_request_ids). At most max_request_ids ids plus those in flight
//    are remembered, plus the few whose row deletion is being written.
//  - Allocation states are derived, not stored: DEGRADED when its path is
//    cut, READY when every agent on its path has applied the generation that
//    contains it, PENDING otherwise.
#ifndef FABRIC_SERVER_SERVICE_MANAGER_H_
#define FABRIC_SERVER_SERVICE_MANAGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/v1/fabric_service.pb.h"
#include "fabric/v1/resources.pb.h"
#include "server/service/agent_registry.h"
#include "server/service/commit_queue.h"
#include "server/service/manager_options.h"
#include "server/service/manager_state.h"
#include "server/service/manager_stats.h"
#include "server/service/sequencer.h"
#include "server/service/watch_hub.h"
#include "server/store/store.h"

namespace fabric::service {

class FabricManager {
 public:
  // Loads every fabric, link state and allocation from `store` and starts a
  // new epoch. `store` and `clock` are not owned and must outlive this.
  static absl::StatusOr<std::unique_ptr<FabricManager>> Open(
      store::Store* store, Clock* clock, ManagerOptions options = {});
  ~FabricManager();

  FabricManager(const FabricManager&) = delete;
  FabricManager& operator=(const FabricManager&) = delete;

  // --- Fabrics
  // Fabric and link mutations (CreateFabric, DeleteFabric, SetLinkState)
  // run one at a time, in the order they were called: each is planned only
  // once the one before it is durable or has failed, so it is decided on the
  // committed effects of all earlier ones, and their writes land in the
  // order they were decided (fabric_ops.h says why they need it). They wait
  // for their turn in a queue (a Sequencer), not on a thread. Allocation and
  // attachment mutations are not held back by them.
  absl::StatusOr<v1::Fabric> CreateFabric(const v1::CreateFabricRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Fabric> GetFabric(absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListFabricsResponse> ListFabrics(
      const v1::ListFabricsRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Fabric> DeleteFabric(const v1::DeleteFabricRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Nodes, bridges, links, maps
  // A node in no fabric whose agent is connected is returned with no
  // fabric (its agent holds an empty configuration); other unknown nodes
  // are NOT_FOUND.
  absl::StatusOr<v1::Node> GetNode(absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListNodesResponse> ListNodes(
      const v1::ListNodesRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Bridge> GetBridge(absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListBridgesResponse> ListBridges(
      const v1::ListBridgesRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Link> GetLink(absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListLinksResponse> ListLinks(
      const v1::ListLinksRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Link> SetLinkState(const v1::SetLinkStateRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::AddressMap> GetAddressMap(absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListAddressMapsResponse> ListAddressMaps(
      const v1::ListAddressMapsRequest& req) ABSL_LOCKS_EXCLUDED(mu_);

  // --- Allocations
  absl::StatusOr<v1::Allocation> CreateAllocation(
      const v1::CreateAllocationRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Allocation> GetAllocation(absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListAllocationsResponse> ListAllocations(
      const v1::ListAllocationsRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Allocation> DeleteAllocation(
      const v1::DeleteAllocationRequest& req) ABSL_LOCKS_EXCLUDED(mu_);

  // Asynchronous forms, for the RPC edge: no thread waits for the disk.
  // `done` runs exactly once: on the calling thread for an early error, or
  // on the thread leading the group commit once the result is durable (or
  // the write failed).
  // It must not block or call back into the manager synchronously.
  template <typename T>
  using Done = service::Done<T>;
  void CreateAllocationAsync(const v1::CreateAllocationRequest& req,
                             Done<v1::Allocation> done)
      ABSL_LOCKS_EXCLUDED(mu_);
  void DeleteAllocationAsync(const v1::DeleteAllocationRequest& req,
                             Done<v1::Allocation> done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Fabric and link mutations: `done` runs as above, except that a call
  // that waited for its turn and is then refused is answered on the thread
  // that ended the turn before it.
  void CreateFabricAsync(const v1::CreateFabricRequest& req,
                         Done<v1::Fabric> done) ABSL_LOCKS_EXCLUDED(mu_);
  void DeleteFabricAsync(const v1::DeleteFabricRequest& req,
                         Done<v1::Fabric> done) ABSL_LOCKS_EXCLUDED(mu_);
  void SetLinkStateAsync(const v1::SetLinkStateRequest& req,
                         Done<v1::Link> done) ABSL_LOCKS_EXCLUDED(mu_);

  // --- Virtual functions and attachments (VF lending)
  absl::StatusOr<v1::ListVirtualFunctionsResponse> ListVirtualFunctions(
      const v1::ListVirtualFunctionsRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::VirtualFunction> GetVirtualFunction(
      absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_);
  // Errors: INVALID_ARGUMENT (bad field, a PF instead of a VF, the lender
  // as borrower), NOT_FOUND (unknown node or VF), FAILED_PRECONDITION (VF
  // already lent: names the borrower; VF unhealthy), UNAVAILABLE (lender or
  // borrower agent not READY, or unreachable), RESOURCE_EXHAUSTED (no
  // window). Nothing is recorded on any error.
  absl::StatusOr<v1::Attachment> CreateAttachment(
      const v1::CreateAttachmentRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Attachment> GetAttachment(absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListAttachmentsResponse> ListAttachments(
      const v1::ListAttachmentsRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Attachment> DeleteAttachment(
      const v1::DeleteAttachmentRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  // Asynchronous forms, as for allocations.
  void CreateAttachmentAsync(const v1::CreateAttachmentRequest& req,
                             Done<v1::Attachment> done)
      ABSL_LOCKS_EXCLUDED(mu_);
  void DeleteAttachmentAsync(const v1::DeleteAttachmentRequest& req,
                             Done<v1::Attachment> done)
      ABSL_LOCKS_EXCLUDED(mu_);

  // What a relayed attachment operation needs: the attachment (with its
  // windows) and both agents' NodeAgentService addresses.
  // FAILED_PRECONDITION when `need_ready` and it is not READY, or an agent
  // has no control address.
  struct AttachmentTarget {
    v1::Attachment attachment;
    std::string lender_agent;
    std::string borrower_agent;
  };
  absl::StatusOr<AttachmentTarget> PrepareAttachmentOp(absl::string_view name,
                                                       bool need_ready)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The NodeAgentService address of `node`'s agent (NOT_FOUND /
  // FAILED_PRECONDITION).
  absl::StatusOr<std::string> AgentAddress(absl::string_view node)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Agents
  // An agent of a node in no fabric is accepted too: its desired
  // configuration is empty (so it clears its bridge) until a fabric names
  // the node; one that goes silent is forgotten.
  absl::StatusOr<agentproto::v1::RegisterNodeResponse> RegisterNode(
      const agentproto::v1::RegisterNodeRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  // The node's complete desired configuration at the current generation.
  absl::StatusOr<agentproto::v1::DesiredConfig> DesiredConfigFor(
      absl::string_view node) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<agentproto::v1::ReportStatusResponse> ReportStatus(
      const agentproto::v1::ReportStatusRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  // The RPC edge tells the manager when a node's config stream of
  // `session` (RegisterNodeResponse.session; 0: not given) opens and
  // closes. Opened fails with ABORTED for a fenced session (a newer
  // registration replaced it) and FAILED_PRECONDITION for an unregistered
  // node; then the stream must not be served (and Closed not called).
  // Otherwise every Opened is matched by one Closed. An open stream of the
  // current session is transport liveness (ManagerOptions::stream_grace);
  // when the last one closes, the agent's address is forgotten until it
  // registers again. Streams without a session (readers that are not the
  // agent) count for neither.
  absl::Status ConfigStreamOpened(absl::string_view node, int64_t session)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ConfigStreamClosed(absl::string_view node, int64_t session)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The config stream of `session` skipped generation `same_through`: its
  // configuration is the same as that of `sent`, the one it last sent. See
  // AgentRegistry::ConfigUnchanged.
  void ConfigUnchanged(absl::string_view node, int64_t session, int64_t sent,
                       int64_t same_through) ABSL_LOCKS_EXCLUDED(mu_);
  // The latest generation that may have changed what node `node` (name or
  // id) is wanted to hold (ManagerState::ChangedAt); a config stream that
  // sent that generation or a later one has nothing new to send. 0 for a
  // malformed name.
  int64_t ConfigChangedAt(absl::string_view node) ABSL_LOCKS_EXCLUDED(mu_);

  // What a proof by bytes of an allocation needs: its addresses and the
  // agents to ask. FAILED_PRECONDITION unless it is READY.
  struct VerifyTarget {
    v1::Allocation allocation;
    std::string borrower_agent;  // NodeAgentService address
    std::string target_agent;
  };
  absl::StatusOr<VerifyTarget> PrepareVerify(absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Expires leases, marks silent agents NOT_READY and forgets old request
  // ids. Called by the background sweeper; public for tests.
  void Sweep() ABSL_LOCKS_EXCLUDED(mu_);

  // Counts for the metrics (manager_stats.h): O(nodes + links + unsettled
  // leases) under the lock.
  ManagerStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);

  // Request ids remembered now (completed, in flight and being
  // forgotten); for tests and monitoring.
  size_t RememberedRequestIds() const ABSL_LOCKS_EXCLUDED(mu_);

  // Checks every index and timer queue of the manager against a scan of
  // what it indexes, and each lease's last derived state against a fresh
  // derivation (CheckLeaseStates); INTERNAL naming the first disagreement.
  // For tests: O(everything), under the lock.
  absl::Status CheckIndexes() ABSL_LOCKS_EXCLUDED(mu_);

  // Runs the invariant checker over every fabric (committed state only).
  absl::Status CheckInvariants() ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the sweeper and wakes every stream; idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // Change events and generations, for the streaming RPCs.
  WatchHub& hub() { return hub_; }

 private:
  FabricManager(store::Store* store, Clock* clock, ManagerOptions options);

  void SweeperLoop();
  // Writes the holdings of agents (node_holdings.h) that changed since the
  // last save, in one write; a failed write is tried again next time.
  void SaveHoldings() ABSL_LOCKS_EXCLUDED(mu_);
  // Runs fabric or link mutation `req` (`method`) through admin_: once it
  // is its turn, it is planned by `plan` (called as plan(req) under mu_,
  // returning absl::StatusOr<Plan>) and queued like any mutation
  // (CommitQueue), and the turn passes on when the outcome is known, before
  // `done` runs. `req` is copied.
  template <typename Response, typename Request, typename PlanFn>
  void AdminMutateAsync(absl::string_view method, const Request& req,
                        PlanFn plan, Done<Response> done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Releases lease `name` (its record type) with `reason`, through the
  // commit queue.
  template <typename Record>
  void ReleaseAsync(absl::string_view method, absl::string_view name,
                    absl::string_view reason, absl::string_view request_id,
                    const google::protobuf::Message& request,
                    Done<Record> done) ABSL_LOCKS_EXCLUDED(mu_);
  // The plan of a new allocation.
  absl::StatusOr<Plan> PlanAllocation(const v1::Allocation& in,
                                      absl::Duration ttl)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Which fabric a List request is limited to ("" for all); NOT_FOUND for
  // an unknown one.
  absl::StatusOr<std::string> OnlyFabric(absl::string_view fabric) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The fabrics a List request walks: the one named, or all (by id).
  // NOT_FOUND for an unknown one.
  absl::StatusOr<std::vector<const FabricEntry*>> ListedFabrics(
      absl::string_view fabric) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  store::Store* const store_;  // not owned
  Clock* const clock_;         // not owned
  const ManagerOptions options_;
  WatchHub hub_;

  // Runs fabric and link mutations (rare) one at a time: each is planned
  // once the one before it is over (see "Fabrics" above). A lock held only
  // while planning and queueing would not do: mu_ already covers both, and
  // the commit queue already writes in planning order; what the fabric and
  // link plans need is that no earlier one is still unwritten when they
  // are decided. Thread-safe; it starts each operation with no lock held.
  Sequencer admin_;
  mutable absl::Mutex mu_;
  ManagerState state_ ABSL_GUARDED_BY(mu_);
  AgentRegistry agents_ ABSL_GUARDED_BY(mu_);
  // Thread-safe; shares mu_.
  CommitQueue commits_;

  absl::Notification stop_;
  std::thread sweeper_;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_MANAGER_H_
