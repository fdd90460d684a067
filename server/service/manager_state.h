// ManagerState: the manager's in-memory state (fabrics, allocations,
// attachments, agents, the generation) and the lookups over it.
//
// Allocations and attachments are both leases (LeaseEntry): a record that
// owns grants in its fabric's state, with the same lifecycle (see
// leases.h).
//
// Not thread-safe: FabricManager owns one, guarded by its mu_, and every
// unit that reads or changes it (views, readiness, leases, the agent
// registry, the attachment planner, recovery) is called with that lock
// held.
#ifndef FABRIC_SERVER_SERVICE_MANAGER_STATE_H_
#define FABRIC_SERVER_SERVICE_MANAGER_STATE_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/v1/resources.pb.h"
#include "server/core/fabric_state.h"
#include "server/service/deadline_queue.h"
#include "server/service/watch_hub.h"

namespace fabric::service {

// The ids of one kind of lease of a fabric (committed or not), overall and
// by node, in id order. The views point at the keys of ManagerState's lease
// map, which outlive their place here: ManagerState::AddLease and
// RemoveLease keep both in step. B-trees: about 20 bytes an id against 64
// for a std::set node, and a lease is in three or four of these; an
// iterator does not survive an insert or erase into its set.
struct LeaseIds {
  using Ids = absl::btree_set<absl::string_view>;
  Ids all;
  // By node index: the leases the node is an end of (an allocation's
  // borrower and target; an attachment's lender and borrower).
  std::vector<Ids> by_node;
  // How many of `all` are committed.
  int committed = 0;
  // The committed leases whose last derived state is not READY: the only
  // ones an agent's report that just moves its applied generation forward
  // can change (RefreshUnsettledLeases).
  Ids unsettled;
  // `unsettled`, split by where their last derivation stopped: by node
  // index, those that waited for that node's agent (to register, to be
  // ready, to apply the generation they require, or to stop reporting an
  // error for them; LeaseEntry::waits_for); and in `unplaced` the rest
  // (DEGRADED ones, ones not derived since recovery, and every
  // attachment). A change of node n that can only settle leases need look
  // at waiting_on[n] and unplaced alone: a lease that waits for another
  // node waits for it still.
  std::vector<Ids> waiting_on;
  Ids unplaced;
};

struct FabricEntry {
  v1::Fabric record;  // name, spec, create_time: what is stored
  core::FabricState state;
  bool deleting = false;
  LeaseIds allocation_ids;
  LeaseIds attachment_ids;
  // Node and link indexes in name order, for paging.
  std::vector<int> nodes_by_name;
  std::vector<int> links_by_name;

  explicit FabricEntry(core::FabricState s);
  const std::string& id() const { return record.spec().name(); }
  // allocation_ids or attachment_ids, by record type.
  template <typename Record>
  LeaseIds& lease_ids();
  template <typename Record>
  const LeaseIds& lease_ids() const;
};

// What the manager knows of a node's agent.
struct AgentEntry {
  v1::Node::AgentState state = v1::Node::UNREGISTERED;
  std::string control_address;
  int64_t repairs = 0;
  std::vector<std::string> recent_repairs;
  absl::Time last_heartbeat = absl::InfinitePast();
  // The current session (RegisterNode); older ones are fenced.
  int64_t session = 0;
  // The registration of the current session: its agent's instance and
  // attempt (RegisterNodeRequest), 0 when not given.
  uint64_t instance = 0;
  uint64_t attempt = 0;
  // Config streams of the current session open now (ConfigStreamOpened).
  int open_streams = 0;
  // The latest takeover of a live session (v1::Node::agent_takeover).
  std::string takeover;
  // The newest ReportStatusRequest.sequence of the current session.
  int64_t report_sequence = 0;
  // The generation the agent last reported applied.
  int64_t applied_generation = 0;
  // The generation whose configuration the node's bridge holds, as far as
  // the manager knows: the applied one, or a newer one whose configuration
  // is the same (see below). Readiness and the node view use this: an
  // agent need not apply, or even receive, a generation that changes
  // nothing for its node. Only moves forward within a session.
  int64_t held_generation = 0;
  // Set by the current session's config stream when it skips a generation
  // whose configuration is the same as the one it last sent
  // (AgentRegistry::ConfigUnchanged): the configuration of generation
  // `sent_generation` equals that of every generation up to
  // `same_through`, so once the agent applies `sent_generation` it holds
  // `same_through`. 0 and 0 until the stream skips one.
  int64_t sent_generation = 0;
  int64_t same_through = 0;
  v1::NodeInventory inventory;
  std::string backend;
  std::vector<v1::ApplyError> errors;
  // Lender: health of the VFs it lends, by address.
  std::map<std::string, agentproto::v1::VfHealthReport> vf_health;
  // Borrower: its shadow devices, by attachment name.
  std::map<std::string, agentproto::v1::ShadowStatus> shadows;
  // What the agent last attested its node holds (held_config_digest of its
  // registration or latest report): a ConfigDigest, or empty.
  std::string held_digest;
  // Presumed from the store's holdings on recovery (node_holdings.h), not
  // registered with this manager: it holds the current generation until
  // its agent registers or stays silent past its allowance. Its agent's
  // reports and streams, of a session of another manager, are told to
  // register (FAILED_PRECONDITION), as if there were no entry.
  bool presumed = false;

  // Raises held_generation to what the applied generation and the
  // stream's skips show; true when it moved.
  bool RaiseHeld() {
    const int64_t shown =
        sent_generation > 0 && applied_generation == sent_generation
            ? std::max(applied_generation, same_through)
            : applied_generation;
    if (shown <= held_generation) return false;
    held_generation = shown;
    return true;
  }
};

// An allocation (Record = v1::Allocation) or attachment (v1::Attachment):
// its stored record and what the manager derives of it. Uncommitted
// entries (planned, not yet durable) are hidden from readers.
template <typename Record>
struct LeaseEntry {
  Record record;  // what is stored; state fields unset
  bool committed = false;
  bool releasing = false;
  int64_t required_generation = 0;
  typename Record::State last_state = Record::PENDING;
  // The node index its last derivation stopped at when that was not READY
  // for want of a node's agent (LeaseIds::waiting_on); else -1.
  int waits_for = -1;
  // Its fabric's id: record.fabric() without "fabrics/" (one copy of it,
  // as a lease of 100k costs per byte).
  absl::string_view fabric() const {
    return absl::StripPrefix(record.fabric(), "fabrics/");
  }
  // The id: the name without its collection ("allocations/").
  std::string id() const {
    absl::string_view name = record.name();
    return std::string(name.substr(name.find('/') + 1));
  }
};
using AllocationEntry = LeaseEntry<v1::Allocation>;
using AttachmentEntry = LeaseEntry<v1::Attachment>;
// By id; includes uncommitted ones.
template <typename Record>
using LeaseMap =
    std::map<std::string, std::unique_ptr<LeaseEntry<Record>>, std::less<>>;

// The VF named `name` (nodes/{n}/vfs/{vf} or {n}/{address}) in its node's
// inventory: the fabric, the node index and the function.
struct VfRef {
  FabricEntry* fabric = nullptr;
  int node = -1;
  std::string node_name;
  std::string address;
  const v1::PciFunction* function = nullptr;  // null: not in inventory
};

class ManagerState {
 public:
  // `hub` is not owned; it learns every new generation.
  explicit ManagerState(WatchHub* hub) : hub_(hub) {}

  ManagerState(const ManagerState&) = delete;
  ManagerState& operator=(const ManagerState&) = delete;

  // By fabric id.
  std::map<std::string, std::unique_ptr<FabricEntry>, std::less<>> fabrics;
  // Node id -> fabric id.
  absl::flat_hash_map<std::string, std::string> node_fabric;
  LeaseMap<v1::Allocation> allocations;
  LeaseMap<v1::Attachment> attachments;
  // The lease expiry timers: the expire_time of every committed allocation
  // with a ttl, by id (CommitLease and RemoveLease keep it; the sweeper
  // pops what is due and sets again what it could not release).
  DeadlineQueue lease_expiry;
  // By node id; agents that registered since this manager started, and
  // those presumed from the store's holdings (AgentEntry::presumed).
  absl::flat_hash_map<std::string, std::unique_ptr<AgentEntry>> agents;
  // Sessions handed out (RegisterNode) in this epoch.
  int64_t session_counter = 0;
  // Nodes whose holding (node_holdings.h) changed since it was last
  // written to the store.
  absl::btree_set<std::string> unsaved_holdings;
  // Holdings taken from unsaved_holdings into a store write that has not
  // finished yet (FabricManager::SaveHoldings).
  int64_t holdings_writing = 0;

  // The allocations or attachments, by record type.
  template <typename Record>
  LeaseMap<Record>& leases();
  template <typename Record>
  const LeaseMap<Record>& leases() const;

  // Every lease enters and leaves its map here, so that the indexes
  // (FabricEntry::lease_ids, lease_expiry) follow.
  // Adds `entry` (its fabric exists; uncommitted unless entry->committed)
  // as lease `id` and returns it. REQUIRES: `id` is not taken.
  template <typename Record>
  LeaseEntry<Record>* AddLease(const std::string& id,
                               std::unique_ptr<LeaseEntry<Record>> entry);
  // Marks the uncommitted lease `a` committed.
  template <typename Record>
  void CommitLease(LeaseEntry<Record>& a);
  // Puts the committed lease `a`'s expiry (if it has one) in lease_expiry
  // again, e.g. after a release when it expired failed.
  template <typename Record>
  void ArmExpiry(const LeaseEntry<Record>& a);
  // Sets lease `a`'s last derived state, and the node it waits for (-1
  // for none), keeping its fabric's lease_ids().unsettled, waiting_on and
  // unplaced in step. The only writer of last_state and waits_for.
  template <typename Record>
  void SetLeaseState(LeaseEntry<Record>& a, typename Record::State state,
                     int waits_for = -1);
  // Removes lease `id` (not its grants); a no-op when absent.
  template <typename Record>
  void RemoveLease(const std::string& id);

  // Checks every index against a scan of what it indexes: INTERNAL naming
  // the first disagreement. For tests; O(everything).
  absl::Status CheckIndexes() const;

  // Where changes are published.
  WatchHub& hub() const { return *hub_; }

  // epoch << 32 | counter; see records.proto.
  int64_t generation() const { return generation_; }
  // Starts epoch `epoch` (recovery); the generation is its first.
  void StartEpoch(int64_t epoch) { generation_ = epoch << 32; }
  // The next generation, published to the hub, in which the desired
  // configuration of any node may differ from the previous generation's.
  int64_t BumpGeneration();
  // The next generation, in which only `nodes` (node ids) may want a
  // configuration that differs from the previous generation's: every other
  // node wants what it wanted before. The caller must name every node
  // whose AgentRegistry::DesiredConfigFor content (ConfigContent) changes;
  // naming more is safe, naming fewer leaves a node's agent with an old
  // configuration. (A commit touches a few nodes of a fabric: the hub wakes
  // their config streams alone, WatchHub's keyed listeners.)
  int64_t BumpGeneration(absl::Span<const std::string> nodes);
  // The latest generation in which node `node`'s desired configuration may
  // have changed: the configuration of every generation since is the same.
  int64_t ChangedAt(absl::string_view node) const;
  // The generation node `node` holds, for readiness and views: its agent's
  // held_generation, or the current generation when that held generation
  // is no older than the node's last change (ChangedAt): the node holds
  // what every generation since wants of it, whether or not its agent was
  // sent them.
  int64_t HeldGeneration(absl::string_view node, const AgentEntry& a) const;

  // A new id "{prefix}{12 hex digits}" that `taken` lacks. The digits
  // are a 48-bit number that grows with time: milliseconds since 2020 in
  // the high 41 bits (until 2089), 7 random bits below, and never less
  // than the last id plus one (a burst of more than 128 a millisecond runs
  // ahead of the clock). So ids do not repeat across restarts unless the
  // clock goes back further than a restart takes, and new records sit
  // together at the end of the store's key order: a store that holds 100k
  // records writes the pages of its newest few, not a random page per
  // record (SQLite's B-tree, etcd's bbolt).
  template <typename Map>
  std::string NewId(absl::string_view prefix, const Map& taken) {
    std::string id;
    do {
      id = TimeOrderedId(prefix);
    } while (taken.count(id) != 0);
    return id;
  }

  // The fabric of lease `a`. REQUIRES: it exists (a lease in the maps
  // always has its fabric).
  template <typename Record>
  FabricEntry& FabricOf(const LeaseEntry<Record>& a) const {
    return *fabrics.find(a.fabric())->second;
  }

  // Lookups; NOT_FOUND naming `field` when absent, INVALID_ARGUMENT for a
  // malformed name.
  absl::StatusOr<FabricEntry*> FindFabric(absl::string_view field,
                                          absl::string_view name) const;
  absl::StatusOr<std::pair<FabricEntry*, int>> FindNode(
      absl::string_view field, absl::string_view name) const;
  absl::StatusOr<std::pair<FabricEntry*, int>> FindLink(
      absl::string_view field, absl::string_view name) const;
  absl::StatusOr<VfRef> FindVf(absl::string_view field,
                               absl::string_view name) const;
  // The agent of node id `node`, or null.
  const AgentEntry* FindAgent(absl::string_view node) const;
  // The agent of `name` when that node is in no fabric and its agent has
  // registered (and not gone silent since); else null.
  const AgentEntry* UnassignedAgent(absl::string_view name) const;
  // The NodeAgentService address of `node`'s agent; FAILED_PRECONDITION
  // naming `field` when it has none.
  absl::StatusOr<std::string> ControlAddress(absl::string_view field,
                                             absl::string_view node) const;

  // Whether agents may see grant `grant_id` (its lease is committed).
  bool GrantVisible(absl::string_view grant_id) const;

 private:
  std::string TimeOrderedId(absl::string_view prefix);
  // Before a generation that changes node `node`: an agent that holds the
  // node's last change holds the current generation (HeldGeneration), which
  // becomes its held_generation, the newest it holds once the change lands.
  void SettleHeld(const std::string& node, AgentEntry& a);

  WatchHub* const hub_;  // not owned
  int64_t generation_ = 0;
  // The last generation that changed every node (BumpGeneration()), and
  // the nodes changed by a targeted one since (BumpGeneration(nodes));
  // cleared when every node changes, so it holds the nodes touched since.
  int64_t all_changed_at_ = 0;
  absl::flat_hash_map<std::string, int64_t> node_changed_at_;
  absl::BitGen bitgen_;
  uint64_t last_id_ = 0;  // the number of the last TimeOrderedId
};

template <>
inline LeaseIds& FabricEntry::lease_ids<v1::Allocation>() {
  return allocation_ids;
}
template <>
inline LeaseIds& FabricEntry::lease_ids<v1::Attachment>() {
  return attachment_ids;
}
template <>
inline const LeaseIds& FabricEntry::lease_ids<v1::Allocation>() const {
  return allocation_ids;
}
template <>
inline const LeaseIds& FabricEntry::lease_ids<v1::Attachment>() const {
  return attachment_ids;
}

template <>
inline LeaseMap<v1::Allocation>& ManagerState::leases<v1::Allocation>() {
  return allocations;
}
template <>
inline LeaseMap<v1::Attachment>& ManagerState::leases<v1::Attachment>() {
  return attachments;
}
template <>
inline const LeaseMap<v1::Allocation>& ManagerState::leases<v1::Allocation>()
    const {
  return allocations;
}
template <>
inline const LeaseMap<v1::Attachment>& ManagerState::leases<v1::Attachment>()
    const {
  return attachments;
}

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_MANAGER_STATE_H_
