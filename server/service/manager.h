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
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "fabric/v1/fabric.pb.h"
#include "server/core/fabric_state.h"
#include "server/service/watch_hub.h"
#include "server/store/store.h"

namespace fabric::service {

struct ManagerOptions {
  // An agent whose last ReportStatus is older than this is NOT_READY,
  // unless its config stream is open (see stream_grace).
  absl::Duration heartbeat_timeout = absl::Seconds(3);
  // While an agent's config stream is open, its transport is known to be
  // alive: the server's keepalive pings end the stream of a peer that stops
  // answering (ServerOptions), and a killed agent's stream ends at once. A
  // late heartbeat then (an agent starved of CPU) does not make the node
  // NOT_READY until its last report is this old. Never less than
  // heartbeat_timeout.
  absl::Duration stream_grace = absl::Seconds(30);
  // How often agents are asked to report.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // How often leases, heartbeats and old request records are swept; zero
  // disables the background sweeper (tests call Sweep() themselves).
  absl::Duration sweep_interval = absl::Milliseconds(200);
  // How long request ids are remembered.
  absl::Duration request_retention = absl::Hours(24);
  // How many request ids are remembered at most: once more are recorded,
  // the oldest completed ones are forgotten (in memory and in the store, in
  // the batch that records the new id), so memory stays bounded between
  // sweeps too. Each remembered id costs about 0.9 KiB of heap (measured by
  // RequestIdHeapCost in manager_test.cc; its store row is on disk), so the
  // default bounds them to about 90 MiB while still covering ~20 s of the
  // highest request rate measured (~4,600 ids/s, 400 clients on 2 cores),
  // longer than a client's retry window (the overload bench's clients retry
  // for at most ~15 s). 1 to kMaxRequestIdsLimit.
  int64_t max_request_ids = 100000;
};

// The largest ManagerOptions::max_request_ids accepted.
inline constexpr int64_t kMaxRequestIdsLimit = 100000000;

// OK, or INVALID_ARGUMENT naming the flag and the rule: max_request_ids out
// of range; a heartbeat_timeout shorter than two heartbeat_intervals (one
// late heartbeat would make a live node NOT_READY: nodes would flap);
// non-positive durations.
absl::Status ValidateManagerOptions(const ManagerOptions& options);

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
  absl::StatusOr<v1::Fabric> CreateFabric(const v1::CreateFabricRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_, admin_mu_);
  absl::StatusOr<v1::Fabric> GetFabric(absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListFabricsResponse> ListFabrics(
      const v1::ListFabricsRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Fabric> DeleteFabric(const v1::DeleteFabricRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_, admin_mu_);

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
      ABSL_LOCKS_EXCLUDED(mu_, admin_mu_);
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
  using Done = std::function<void(absl::StatusOr<T>)>;
  void CreateAllocationAsync(const v1::CreateAllocationRequest& req,
                             Done<v1::Allocation> done)
      ABSL_LOCKS_EXCLUDED(mu_);
  void DeleteAllocationAsync(const v1::DeleteAllocationRequest& req,
                             Done<v1::Allocation> done)
      ABSL_LOCKS_EXCLUDED(mu_);

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
  absl::StatusOr<v1::RegisterNodeResponse> RegisterNode(
      const v1::RegisterNodeRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  // The node's complete desired configuration at the current generation.
  absl::StatusOr<v1::DesiredConfig> DesiredConfigFor(absl::string_view node)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ReportStatusResponse> ReportStatus(
      const v1::ReportStatusRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
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
  void Sweep() ABSL_LOCKS_EXCLUDED(mu_, admin_mu_);

  // Request ids remembered now (completed, in flight and being
  // forgotten); for tests and monitoring.
  size_t RememberedRequestIds() const ABSL_LOCKS_EXCLUDED(mu_);

  // Runs the invariant checker over every fabric (committed state only).
  absl::Status CheckInvariants() ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the sweeper and wakes every stream; idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // Change events and generations, for the streaming RPCs.
  WatchHub& hub() { return hub_; }

 private:
  struct FabricEntry;
  struct AllocationEntry;
  struct AgentEntry;
  struct AttachmentEntry;
  struct PendingRequest;
  // A recorded request id in request_order_; `seq` tells it from an older
  // record of the same id that was abandoned.
  struct RequestSlot {
    uint64_t seq = 0;
    std::string id;
  };
  // A planned mutation: what to write, and what to do in memory once it is
  // durable (commit) or once the write failed (rollback). Both run under
  // mu_.
  struct Plan {
    store::WriteBatch batch;
    std::function<void()> commit;
    std::function<void()> rollback;
    std::string response;  // serialized response message
  };

  FabricManager(store::Store* store, Clock* clock, ManagerOptions options);

  // A planned mutation waiting to be written.
  struct QueuedPlan {
    Plan plan;
    std::shared_ptr<PendingRequest> pending;  // null without a request id
    std::string request_id;
    Done<std::string> done;
    // Old request ids whose store rows this plan's batch deletes: forgotten
    // when it commits, remembered again if the write fails.
    std::vector<RequestSlot> forget;
  };

  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);
  void SweeperLoop();
  using Replies =
      std::vector<std::pair<Done<std::string>, absl::StatusOr<std::string>>>;
  // Writes the group's batches to the store in one Apply (one fsync), then
  // commits or rolls back each plan in order. Returns the callbacks to run.
  Replies CommitGroup(std::vector<QueuedPlan> group) ABSL_LOCKS_EXCLUDED(mu_);
  // Commits queued plans group by group until the queue is empty, running
  // the callbacks after each group. REQUIRES: this caller set committing_.
  void LeadCommits() ABSL_LOCKS_EXCLUDED(mu_);

  // Runs plan_fn under mu_ and queues the plan, so that store writes happen
  // in the order plans were made. The first caller to find no commit in
  // progress leads: it writes the queue group by group (LeadCommits). `done`
  // gets the serialized response once it is durable.
  void MutateAsync(absl::string_view method, absl::string_view request_id,
                   const google::protobuf::Message& request,
                   const std::function<absl::StatusOr<Plan>()>& plan_fn,
                   Done<std::string> done) ABSL_LOCKS_EXCLUDED(mu_);

  // MutateAsync, waiting for the outcome.
  absl::StatusOr<std::string> Mutate(
      absl::string_view method, absl::string_view request_id,
      const google::protobuf::Message& request,
      const std::function<absl::StatusOr<Plan>()>& plan_fn)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Takes out of request_order_, oldest first and at most `limit`, the
  // completed request ids due to be forgotten: those recorded before
  // now - request_retention, and those with at least max_request_ids newer
  // ids (ids being forgotten do not count). In-flight ids are skipped, never
  // taken. The taken ids stay in requests_ (retries still get their
  // response) until ForgetRequests, once their rows are deleted, or
  // RestoreRequests, if the delete failed.
  std::vector<RequestSlot> TakeRequestsToForget(absl::Time now, size_t limit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetRequests(const std::vector<RequestSlot>& slots)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RestoreRequests(std::vector<RequestSlot> slots)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void ReleaseAllocationAsync(absl::string_view method, absl::string_view name,
                              absl::string_view request_id,
                              const google::protobuf::Message& request,
                              Done<v1::Allocation> done)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Lookups; NOT_FOUND naming `field` when absent.
  absl::StatusOr<FabricEntry*> FindFabric(absl::string_view field,
                                          absl::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::pair<FabricEntry*, int>> FindNode(absl::string_view field,
                                                        absl::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::pair<FabricEntry*, int>> FindLink(absl::string_view field,
                                                        absl::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<AllocationEntry*> FindAllocation(absl::string_view field,
                                                  absl::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<AttachmentEntry*> FindAttachment(absl::string_view field,
                                                  absl::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The VF named `name` (nodes/{n}/vfs/{vf} or {n}/{address}) in its node's
  // inventory: the fabric, the node index and the function.
  struct VfRef {
    FabricEntry* fabric = nullptr;
    int node = -1;
    std::string node_name;
    std::string address;
    const v1::PciFunction* function = nullptr;  // null: not in inventory
  };
  absl::StatusOr<VfRef> FindVf(absl::string_view field, absl::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every VF of `node` (inventory plus lent ones that vanished), as views.
  std::vector<v1::VirtualFunction> VfViews(const FabricEntry& f, int node) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Attachment AttachmentView(const AttachmentEntry& a) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Attachment::State DeriveAttachmentState(const AttachmentEntry& a,
                                              std::string* reason) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Why a grant owned by `owner` (an allocation or attachment name) is not
  // in place: DEGRADED when its path is cut, PENDING while an agent on it
  // has not applied `required` or reports an error for `owner`, else READY.
  v1::Allocation::State GrantState(const FabricEntry& f, const core::Grant& g,
                                   absl::string_view owner, int64_t required,
                                   std::string* reason) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishAttachment(v1::WatchEvent::Type type, const v1::Attachment& a)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefreshAttachments(const std::string& fabric)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DetachAsync(absl::string_view name, absl::string_view request_id,
                   const google::protobuf::Message& request,
                   Done<v1::Attachment> done) ABSL_LOCKS_EXCLUDED(mu_);
  // OK when `session` is 0 or `a`'s current session; else ABORTED: a newer
  // registration fenced it.
  absl::Status CheckSession(absl::string_view node, const AgentEntry& a,
                            int64_t session) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The NodeAgentService address of `node`'s agent; FAILED_PRECONDITION
  // naming `field` when it has none.
  absl::StatusOr<std::string> ControlAddress(absl::string_view field,
                                             absl::string_view node) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The allocation or attachment name a grant's windows are tagged with.
  std::string GrantOwner(absl::string_view grant_id) const;

  // Views of the state as API resources.
  v1::Fabric FabricView(const FabricEntry& f) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Node NodeView(const FabricEntry& f, int node) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The agent's part of a node view.
  void AddAgentView(const AgentEntry& a, v1::Node* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A node in no fabric whose agent registered: no fabric, bridge or
  // ranges; the agent's state and what it applied (an empty
  // configuration).
  v1::Node UnassignedNodeView(const std::string& id, const AgentEntry& a) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The agent of `name` when that node is in no fabric and its agent has
  // registered (and not gone silent since); else null.
  const AgentEntry* UnassignedAgent(absl::string_view name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Bridge BridgeView(const FabricEntry& f, int node) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Link LinkView(const FabricEntry& f, int link) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::AddressMap MapView(const FabricEntry& f, int node) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Allocation AllocationView(const AllocationEntry& a) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The derived state of a committed allocation, and why.
  v1::Allocation::State DeriveState(const AllocationEntry& a,
                                    std::string* reason) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Grant ids of the fabric that agents must not see yet (uncommitted).
  bool GrantVisible(absl::string_view grant_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  int64_t BumpGeneration() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishAllocation(v1::WatchEvent::Type type, const v1::Allocation& a)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Re-derives allocation states (all of `fabric`, or only those whose
  // path crosses `node` when node >= 0) and publishes the changes.
  void RefreshStates(const std::string& fabric, int node = -1)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewAllocationId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  store::Store* const store_;  // not owned
  Clock* const clock_;         // not owned
  const ManagerOptions options_;
  WatchHub hub_;

  // Serializes fabric and link mutations (rare), so that their store writes
  // land in the order they were decided. Taken before mu_.
  absl::Mutex admin_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  // By fabric id.
  std::map<std::string, std::unique_ptr<FabricEntry>, std::less<>> fabrics_
      ABSL_GUARDED_BY(mu_);
  // Node id -> fabric id.
  absl::flat_hash_map<std::string, std::string> node_fabric_
      ABSL_GUARDED_BY(mu_);
  // By allocation id; includes uncommitted ones (hidden from readers).
  std::map<std::string, std::unique_ptr<AllocationEntry>, std::less<>>
      allocations_ ABSL_GUARDED_BY(mu_);
  // By attachment id; includes uncommitted ones (hidden from readers).
  std::map<std::string, std::unique_ptr<AttachmentEntry>, std::less<>>
      attachments_ ABSL_GUARDED_BY(mu_);
  // By node id; agents that registered since this manager started.
  absl::flat_hash_map<std::string, std::unique_ptr<AgentEntry>> agents_
      ABSL_GUARDED_BY(mu_);
  // By request id.
  absl::flat_hash_map<std::string, std::shared_ptr<PendingRequest>> requests_
      ABSL_GUARDED_BY(mu_);
  // Recorded request ids by ascending seq (the order recorded), for
  // forgetting the oldest; may hold stale slots of abandoned ids. Lacks the
  // ids taken by TakeRequestsToForget whose rows are being deleted.
  std::deque<RequestSlot> request_order_ ABSL_GUARDED_BY(mu_);
  uint64_t next_request_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // Ids in requests_ but taken out of request_order_ to be forgotten.
  size_t forgetting_requests_ ABSL_GUARDED_BY(mu_) = 0;
  // epoch << 32 | counter; see records.proto.
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // Sessions handed out (RegisterNode) in this epoch.
  int64_t session_counter_ ABSL_GUARDED_BY(mu_) = 0;
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<QueuedPlan> commit_queue_ ABSL_GUARDED_BY(mu_);
  // A caller is writing queued plans (the leader).
  bool committing_ ABSL_GUARDED_BY(mu_) = false;

  absl::Notification stop_;
  std::thread sweeper_;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_MANAGER_H_
