#include "server/service/manager_state.h"

#include <algorithm>
#include <array>
#include <numeric>

#include "absl/random/distributions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "server/service/convert.h"
#include "server/service/records.h"

namespace fabric::service {
namespace {

// The node names a lease's record joins: an allocation's borrower and
// target, an attachment's lender and borrower.
std::array<absl::string_view, 2> LeaseEnds(const v1::Allocation& r) {
  return {r.borrower(), r.target()};
}
std::array<absl::string_view, 2> LeaseEnds(const v1::Attachment& r) {
  return {r.lender(), r.borrower()};
}

// When a committed lease expires on its own.
std::optional<absl::Time> ExpireTime(const v1::Allocation& r) {
  if (!r.has_expire_time()) return std::nullopt;
  return FromProtoTime(r.expire_time());
}
std::optional<absl::Time> ExpireTime(const v1::Attachment&) {
  return std::nullopt;
}

// The node indexes in `f` of the ends of `r` (unknown names are skipped).
template <typename Record>
std::vector<int> EndNodes(const FabricEntry& f, const Record& r) {
  std::vector<int> out;
  for (absl::string_view name : LeaseEnds(r)) {
    auto n = f.state.topology().FindNode(absl::StripPrefix(name, "nodes/"));
    if (n && std::find(out.begin(), out.end(), *n) == out.end()) {
      out.push_back(*n);
    }
  }
  return out;
}

// `indexes` of `count` items sorted by name(i).
template <typename NameFn>
std::vector<int> SortedByName(int count, NameFn name) {
  std::vector<int> out(count);
  std::iota(out.begin(), out.end(), 0);
  std::sort(out.begin(), out.end(),
            [&](int a, int b) { return name(a) < name(b); });
  return out;
}

// Compares the index `got` of `what` with `want`, built by a scan.
absl::Status SameIds(absl::string_view what, const LeaseIds::Ids& got,
                     const std::set<std::string>& want) {
  if (got.size() == want.size() &&
      std::equal(got.begin(), got.end(), want.begin())) {
    return absl::OkStatus();
  }
  return absl::InternalError(absl::StrCat(
      "index ", what, " holds ", got.size(), " ids, a scan finds ",
      want.size()));
}

template <typename Record>
absl::Status CheckLeaseIds(const ManagerState& s, const FabricEntry& f) {
  using Ids = std::set<std::string>;
  Ids all, unsettled, unplaced;
  std::vector<Ids> by_node(f.state.topology().node_count());
  std::vector<Ids> waiting_on(by_node.size());
  int committed = 0;
  for (const auto& [id, a] : s.leases<Record>()) {
    if (a->fabric() != f.id()) continue;
    all.insert(id);
    committed += a->committed;
    if (a->committed && a->last_state != Record::READY) {
      unsettled.insert(id);
      if (a->waits_for >= 0) {
        waiting_on.at(a->waits_for).insert(id);
      } else {
        unplaced.insert(id);
      }
    }
    for (int n : EndNodes(f, a->record)) by_node[n].insert(id);
  }
  const LeaseIds& ids = f.template lease_ids<Record>();
  const std::string kind = Record::descriptor()->name();
  RETURN_IF_ERROR(SameIds(absl::StrCat(f.id(), " ", kind), ids.all, all));
  RETURN_IF_ERROR(SameIds(absl::StrCat(f.id(), " unsettled ", kind),
                          ids.unsettled, unsettled));
  RETURN_IF_ERROR(SameIds(absl::StrCat(f.id(), " unplaced ", kind),
                          ids.unplaced, unplaced));
  if (ids.waiting_on.size() != waiting_on.size()) {
    return absl::InternalError(absl::StrCat("index ", f.id(), " ", kind,
                                            " waiting_on has ",
                                            ids.waiting_on.size(), " nodes"));
  }
  for (size_t n = 0; n < waiting_on.size(); ++n) {
    RETURN_IF_ERROR(SameIds(
        absl::StrCat(f.id(), " ", kind, " waiting on node ", n),
        ids.waiting_on[n], waiting_on[n]));
  }
  if (ids.committed != committed) {
    return absl::InternalError(absl::StrCat(
        "index ", f.id(), " ", kind, " counts ", ids.committed,
        " committed, a scan finds ", committed));
  }
  if (ids.by_node.size() != by_node.size()) {
    return absl::InternalError(absl::StrCat("index ", f.id(), " ", kind,
                                            " has the wrong node count"));
  }
  for (size_t n = 0; n < by_node.size(); ++n) {
    RETURN_IF_ERROR(SameIds(
        absl::StrCat(f.id(), " ", kind, " of node ",
                     f.state.topology().node(static_cast<int>(n)).name),
        ids.by_node[n], by_node[n]));
  }
  return absl::OkStatus();
}

}  // namespace

FabricEntry::FabricEntry(core::FabricState s) : state(std::move(s)) {
  const core::Topology& topo = state.topology();
  allocation_ids.by_node.resize(topo.node_count());
  attachment_ids.by_node.resize(topo.node_count());
  allocation_ids.waiting_on.resize(topo.node_count());
  attachment_ids.waiting_on.resize(topo.node_count());
  nodes_by_name = SortedByName(topo.node_count(), [&](int i) -> const auto& {
    return topo.node(i).name;
  });
  links_by_name = SortedByName(static_cast<int>(topo.links().size()),
                               [&](int i) -> const auto& {
                                 return topo.links()[i].name;
                               });
}

template <typename Record>
LeaseEntry<Record>* ManagerState::AddLease(
    const std::string& id, std::unique_ptr<LeaseEntry<Record>> entry) {
  auto [it, added] = leases<Record>().emplace(id, std::move(entry));
  LeaseEntry<Record>* a = it->second.get();
  FabricEntry& f = FabricOf(*a);
  LeaseIds& ids = f.template lease_ids<Record>();
  const absl::string_view key = it->first;  // stable: a std::map key
  ids.all.insert(key);
  for (int n : EndNodes(f, a->record)) ids.by_node[n].insert(key);
  if (a->committed) {
    a->committed = false;
    CommitLease(*a);
  }
  return a;
}

template <typename Record>
void ManagerState::CommitLease(LeaseEntry<Record>& a) {
  a.committed = true;
  ++FabricOf(a).template lease_ids<Record>().committed;
  ArmExpiry(a);
  SetLeaseState(a, a.last_state, a.waits_for);
}

template <typename Record>
void ManagerState::ArmExpiry(const LeaseEntry<Record>& a) {
  if (auto t = ExpireTime(a.record)) lease_expiry.Set(a.id(), *t);
}

template <typename Record>
void ManagerState::SetLeaseState(LeaseEntry<Record>& a,
                                 typename Record::State state,
                                 int waits_for) {
  if (state == Record::READY) waits_for = -1;
  if (!a.committed) {
    a.last_state = state;
    a.waits_for = waits_for;
    return;
  }
  LeaseIds& ids = FabricOf(a).template lease_ids<Record>();
  const absl::string_view key = *ids.all.find(a.id());  // the map's key
  // Out of where it was (a lease just committed is in none yet)...
  if (a.waits_for >= 0) {
    ids.waiting_on[a.waits_for].erase(key);
  } else {
    ids.unplaced.erase(key);
  }
  a.last_state = state;
  a.waits_for = waits_for;
  // ...into where it is.
  if (state == Record::READY) {
    ids.unsettled.erase(key);
    return;
  }
  ids.unsettled.insert(key);
  if (waits_for >= 0) {
    ids.waiting_on[waits_for].insert(key);
  } else {
    ids.unplaced.insert(key);
  }
}

template <typename Record>
void ManagerState::RemoveLease(const std::string& id) {
  auto it = leases<Record>().find(id);
  if (it == leases<Record>().end()) return;
  const LeaseEntry<Record>& a = *it->second;
  if (auto f = fabrics.find(a.fabric()); f != fabrics.end()) {
    LeaseIds& ids = f->second->template lease_ids<Record>();
    ids.all.erase(it->first);
    ids.unsettled.erase(it->first);
    ids.unplaced.erase(it->first);
    if (a.waits_for >= 0) ids.waiting_on[a.waits_for].erase(it->first);
    for (int n : EndNodes(*f->second, a.record)) ids.by_node[n].erase(it->first);
    ids.committed -= a.committed;
  }
  if (ExpireTime(a.record)) lease_expiry.Clear(id);
  leases<Record>().erase(it);
}

absl::Status ManagerState::CheckIndexes() const {
  size_t allocations_indexed = 0, attachments_indexed = 0;
  for (const auto& [fid, f] : fabrics) {
    RETURN_IF_ERROR(CheckLeaseIds<v1::Allocation>(*this, *f));
    RETURN_IF_ERROR(CheckLeaseIds<v1::Attachment>(*this, *f));
    allocations_indexed += f->allocation_ids.all.size();
    attachments_indexed += f->attachment_ids.all.size();
  }
  if (allocations_indexed != allocations.size() ||
      attachments_indexed != attachments.size()) {
    return absl::InternalError(absl::StrCat(
        "indexes hold ", allocations_indexed, " allocations and ",
        attachments_indexed, " attachments; the maps ", allocations.size(),
        " and ", attachments.size(), " (a lease of no fabric?)"));
  }
  std::map<std::string, absl::Time> want;
  for (const auto& [id, a] : allocations) {
    if (a->committed && a->record.has_expire_time()) {
      want[id] = FromProtoTime(a->record.expire_time());
    }
  }
  std::map<std::string, absl::Time> got;
  for (auto& [id, t] : lease_expiry.Entries()) got[id] = t;
  if (got != want) {
    return absl::InternalError(absl::StrCat(
        "lease_expiry holds ", got.size(), " timers, a scan finds ",
        want.size(), " committed allocations with a ttl (or their times differ)"));
  }
  return absl::OkStatus();
}

#define FABRIC_INSTANTIATE_LEASE_INDEX(Record)                             \
  template LeaseEntry<Record>* ManagerState::AddLease<Record>(             \
      const std::string&, std::unique_ptr<LeaseEntry<Record>>);            \
  template void ManagerState::CommitLease<Record>(LeaseEntry<Record>&);    \
  template void ManagerState::ArmExpiry<Record>(const LeaseEntry<Record>&); \
  template void ManagerState::SetLeaseState<Record>(                       \
      LeaseEntry<Record>&, typename Record::State, int);                   \
  template void ManagerState::RemoveLease<Record>(const std::string&);
FABRIC_INSTANTIATE_LEASE_INDEX(v1::Allocation)
FABRIC_INSTANTIATE_LEASE_INDEX(v1::Attachment)
#undef FABRIC_INSTANTIATE_LEASE_INDEX

void ManagerState::SettleHeld(const std::string& node, AgentEntry& a) {
  // It holds its last change, so every generation up to now: say so
  // before the change makes HeldGeneration fall back to held_generation.
  if (a.held_generation >= ChangedAt(node)) {
    a.held_generation = std::max(a.held_generation, generation_);
  }
}

int64_t ManagerState::BumpGeneration() {
  for (auto& [node, agent] : agents) SettleHeld(node, *agent);
  ++generation_;
  all_changed_at_ = generation_;
  node_changed_at_.clear();
  hub_->SetGeneration(generation_);
  return generation_;
}

int64_t ManagerState::BumpGeneration(absl::Span<const std::string> nodes) {
  for (const std::string& node : nodes) {
    if (auto it = agents.find(node); it != agents.end()) {
      SettleHeld(node, *it->second);
    }
  }
  ++generation_;
  for (const std::string& node : nodes) node_changed_at_[node] = generation_;
  hub_->SetGeneration(generation_, nodes);
  return generation_;
}

int64_t ManagerState::ChangedAt(absl::string_view node) const {
  auto it = node_changed_at_.find(node);
  return it == node_changed_at_.end() ? all_changed_at_
                                      : std::max(all_changed_at_, it->second);
}

int64_t ManagerState::HeldGeneration(absl::string_view node,
                                     const AgentEntry& a) const {
  return a.held_generation >= ChangedAt(node) ? generation_
                                               : a.held_generation;
}

std::string ManagerState::TimeOrderedId(absl::string_view prefix) {
  static const absl::Time kIdEpoch = absl::FromUnixSeconds(1577836800);  // 2020
  constexpr uint64_t kMask = (uint64_t{1} << 48) - 1;
  const uint64_t ms = static_cast<uint64_t>(
      std::max<int64_t>(0, absl::ToInt64Milliseconds(absl::Now() - kIdEpoch)));
  const uint64_t v =
      ((ms << 7) | absl::Uniform<uint64_t>(bitgen_, 0, 128)) & kMask;
  last_id_ = std::max(v, (last_id_ + 1) & kMask);
  return absl::StrCat(prefix, absl::Hex(last_id_, absl::kZeroPad12));
}

absl::StatusOr<FabricEntry*> ManagerState::FindFabric(
    absl::string_view field, absl::string_view name) const {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "fabrics"));
  auto it = fabrics.find(id);
  if (it == fabrics.end()) {
    return absl::NotFoundError(
        absl::StrCat(field, ": fabric \"", id, "\" not found"));
  }
  return it->second.get();
}

absl::StatusOr<std::pair<FabricEntry*, int>> ManagerState::FindNode(
    absl::string_view field, absl::string_view name) const {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "nodes"));
  auto it = node_fabric.find(id);
  if (it == node_fabric.end()) {
    return absl::NotFoundError(
        absl::StrCat(field, ": node \"", id, "\" not found in any fabric"));
  }
  FabricEntry* f = fabrics.at(it->second).get();
  return std::make_pair(f, *f->state.topology().FindNode(id));
}

absl::StatusOr<std::pair<FabricEntry*, int>> ManagerState::FindLink(
    absl::string_view field, absl::string_view name) const {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "links"));
  for (auto& [fid, f] : fabrics) {
    auto idx = f->state.topology().FindLinkByName(id);
    if (idx) return std::make_pair(f.get(), *idx);
  }
  return absl::NotFoundError(absl::StrCat(
      field, ": link \"", id,
      "\" not found; links are named {a}--{b} in the order they were "
      "declared"));
}

absl::StatusOr<VfRef> ManagerState::FindVf(absl::string_view field,
                                           absl::string_view name) const {
  absl::string_view rest = absl::StripPrefix(name, "nodes/");
  std::string node, address;
  const size_t vfs = rest.find("/vfs/");
  if (vfs != absl::string_view::npos) {
    node = std::string(rest.substr(0, vfs));
    address = absl::StrReplaceAll(rest.substr(vfs + 5), {{"-", ":"}});
  } else {
    const size_t slash = rest.find('/');
    if (slash == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": \"", name,
          "\" is not a VF name; use nodes/{node}/vfs/{0000-3b-00.4} or "
          "{node}/{0000:3b:00.4}"));
    }
    node = std::string(rest.substr(0, slash));
    address = std::string(rest.substr(slash + 1));
  }
  if (address.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", name, "\" names no function address"));
  }
  ASSIGN_OR_RETURN(auto fn, FindNode(field, node));
  VfRef ref;
  ref.fabric = fn.first;
  ref.node = fn.second;
  ref.node_name = node;
  ref.address = address;
  if (const AgentEntry* agent = FindAgent(node); agent != nullptr) {
    for (const v1::PciFunction& f : agent->inventory.functions()) {
      if (f.address() == address) {
        ref.function = &f;
        break;
      }
    }
  }
  return ref;
}

const AgentEntry* ManagerState::FindAgent(absl::string_view node) const {
  auto it = agents.find(node);
  return it == agents.end() ? nullptr : it->second.get();
}

const AgentEntry* ManagerState::UnassignedAgent(absl::string_view name) const {
  auto id = ParseName("node", name, "nodes");
  if (!id.ok() || node_fabric.contains(*id)) return nullptr;
  return FindAgent(*id);
}

absl::StatusOr<std::string> ManagerState::ControlAddress(
    absl::string_view field, absl::string_view node) const {
  const AgentEntry* agent = FindAgent(absl::StripPrefix(node, "nodes/"));
  if (agent == nullptr || agent->control_address.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": the agent of ", node,
                     " serves no control address (not registered, or its "
                     "connection to the manager ended)"));
  }
  return agent->control_address;
}

bool ManagerState::GrantVisible(absl::string_view grant_id) const {
  if (auto lease = AttachmentOfGrant(grant_id)) {
    auto it = attachments.find(*lease);
    return it != attachments.end() && it->second->committed;
  }
  auto it = allocations.find(grant_id);
  return it != allocations.end() && it->second->committed;
}

}  // namespace fabric::service
