#include "server/service/leases.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "server/service/convert.h"
#include "server/service/paginate.h"
#include "server/service/readiness.h"
#include "server/service/views.h"

namespace fabric::service {
namespace {

// The derived state of `a`, and the node it waits for: allocations say;
// attachments, of several windows and a shadow device, wait for none
// (they are LeaseIds::unplaced while unsettled).
v1::Allocation::State Derive(const ManagerState& s, const AllocationEntry& a,
                             std::string* reason, int* waits_for) {
  return DeriveState(s, a, reason, waits_for);
}
v1::Attachment::State Derive(const ManagerState& s, const AttachmentEntry& a,
                             std::string* reason, int* waits_for) {
  *waits_for = -1;
  return DeriveState(s, a, reason);
}

// The node ids whose desired configuration (AgentRegistry::
// DesiredConfigFor) the commit or release of a lease changes: the two ends
// of each of its grants (a window or LUT entries on the borrower, an
// inbound entry on the target; the nodes a grant's path only crosses
// forward by the fabric's address map, which grants do not change) and,
// for an attachment, the VF assignment on its lender and its borrower.
std::vector<std::string> NodesOf(const v1::Allocation& r) {
  return {std::string(absl::StripPrefix(r.borrower(), "nodes/")),
          std::string(absl::StripPrefix(r.target(), "nodes/"))};
}
std::vector<std::string> NodesOf(const v1::Attachment& r) {
  std::vector<std::string> out = {
      std::string(absl::StripPrefix(r.lender(), "nodes/")),
      std::string(absl::StripPrefix(r.borrower(), "nodes/"))};
  for (const v1::AttachmentWindow& w : r.windows()) {
    out.emplace_back(absl::StripPrefix(w.from_node(), "nodes/"));
    out.emplace_back(absl::StripPrefix(w.to_node(), "nodes/"));
  }
  return out;
}

// A lease's last view once it is gone.
void MarkGone(v1::Allocation* view, absl::string_view reason) {
  view->set_state(LeaseTraits<v1::Allocation>::kGone);
  view->set_state_reason(std::string(reason));
  view->clear_path();
}
void MarkGone(v1::Attachment* view, absl::string_view reason) {
  view->set_state(LeaseTraits<v1::Attachment>::kGone);
  view->set_state_reason(std::string(reason));
}

// Removes the grants of lease `id` from its fabric and the lease.
template <typename Record>
void EraseLease(ManagerState& s, const std::string& id) {
  const LeaseEntry<Record>& a = *s.leases<Record>().at(id);
  FabricEntry& f = s.FabricOf(a);
  for (const std::string& g : GrantIds(id, a.record)) {
    (void)f.state.RemoveGrant(g);
  }
  s.RemoveLease<Record>(id);
}

// The ids a list of `scope` walks, in id order.
template <typename Record>
const LeaseIds::Ids& ScopeIds(const LeaseScope& scope) {
  const LeaseIds& ids = scope.fabric->template lease_ids<Record>();
  return scope.node >= 0 ? ids.by_node[scope.node] : ids.all;
}

// Pages through `ids` (a LeaseMap or a LeaseIds::Ids, in id order) from
// after `pager`'s key, adding the committed leases that pass `keep`.
template <typename Record, typename Ids, typename Get>
void PageLeases(const ManagerState& s, const Ids& ids, Get get,
                const std::function<bool(const LeaseEntry<Record>&)>& keep,
                Pager& pager, google::protobuf::RepeatedPtrField<Record>* out) {
  auto it = pager.after() ? ids.upper_bound(*pager.after()) : ids.begin();
  for (; it != ids.end(); ++it) {
    const LeaseEntry<Record>& a = get(*it);
    if (!a.committed || !keep(a)) continue;
    if (!pager.Offer(a.id())) break;
    *out->Add() = LeaseView(s, a);
  }
}

}  // namespace

void PublishLease(WatchHub& hub, v1::WatchEvent::Type type,
                  const v1::Allocation& a) {
  v1::WatchEvent e;
  e.set_type(type);
  *e.mutable_allocation() = a;
  hub.Publish(std::move(e));
}

void PublishLease(WatchHub& hub, v1::WatchEvent::Type type,
                  const v1::Attachment& a) {
  v1::WatchEvent e;
  e.set_type(type);
  *e.mutable_attachment() = a;
  hub.Publish(std::move(e));
}

template <typename Record>
absl::StatusOr<LeaseEntry<Record>*> FindLease(const ManagerState& s,
                                              absl::string_view field,
                                              absl::string_view name) {
  using Traits = LeaseTraits<Record>;
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, Traits::kCollection));
  const auto& leases = s.leases<Record>();
  auto it = leases.find(id);
  if (it == leases.end() || !it->second->committed) {
    return absl::NotFoundError(
        absl::StrCat(field, ": ", Traits::kKind, " \"", id, "\" not found"));
  }
  return it->second.get();
}

template <typename Record>
std::string NewLeaseId(ManagerState& s) {
  return s.NewId(LeaseTraits<Record>::kIdPrefix, s.leases<Record>());
}

template <typename Record>
void PlanNewLease(ManagerState& s, const std::string& id,
                  std::unique_ptr<LeaseEntry<Record>> entry, Plan* plan) {
  LeaseEntry<Record>* a = s.AddLease<Record>(id, std::move(entry));
  ManagerState* state = &s;
  plan->commit = [state, a]() {
    state->CommitLease(*a);
    a->required_generation = state->BumpGeneration(NodesOf(a->record));
    std::string reason;
    int waits_for;
    const auto derived = Derive(*state, *a, &reason, &waits_for);
    state->SetLeaseState(*a, derived, waits_for);
    if (state->hub().has_watchers()) {
      PublishLease(state->hub(), v1::WatchEvent::ADDED,
                   LeaseView(*state, *a));
    }
  };
  plan->rollback = [state, id]() { EraseLease<Record>(*state, id); };
}

template <typename Record>
absl::StatusOr<Plan> PlanRelease(ManagerState& s, absl::string_view name,
                                 absl::string_view reason) {
  using Traits = LeaseTraits<Record>;
  ASSIGN_OR_RETURN(LeaseEntry<Record> * a, FindLease<Record>(s, "name", name));
  if (a->releasing) {
    return absl::AbortedError(absl::StrCat("name: ", a->record.name(),
                                           " is already being ",
                                           Traits::kReleasing));
  }
  a->releasing = true;
  Plan plan;
  const std::string id = a->id();
  plan.batch.Delete(Traits::kTable, id);
  Record view = LeaseView(s, *a);
  MarkGone(&view, reason);
  plan.response = view.SerializeAsString();
  plan.rollback = [a]() { a->releasing = false; };
  ManagerState* state = &s;
  plan.commit = [state, id, view, nodes = NodesOf(a->record)]() {
    EraseLease<Record>(*state, id);
    state->BumpGeneration(nodes);
    PublishLease(state->hub(), v1::WatchEvent::DELETED, view);
  };
  return plan;
}

template <typename Record>
absl::Status ListLeases(
    const ManagerState& s, const LeaseScope& scope,
    const std::function<bool(const LeaseEntry<Record>&)>& keep, int page_size,
    absl::string_view page_token,
    google::protobuf::RepeatedPtrField<Record>* out, std::string* next_token) {
  ASSIGN_OR_RETURN(Pager pager, Pager::Start(page_size, page_token));
  const auto& leases = s.leases<Record>();
  if (scope.fabric == nullptr) {
    PageLeases<Record>(
        s, leases, [](const auto& kv) -> const auto& { return *kv.second; },
        keep, pager, out);
  } else {
    PageLeases<Record>(
        s, ScopeIds<Record>(scope),
        [&](absl::string_view id) -> const auto& {
          return *leases.find(id)->second;
        },
        keep, pager, out);
  }
  *next_token = std::move(pager).next_token();
  return absl::OkStatus();
}

template <typename Record>
void RefreshLeases(
    ManagerState& s, const std::string& fabric,
    const std::function<bool(const LeaseEntry<Record>&)>& affected,
    bool only_unsettled, int settled_node) {
  auto fit = s.fabrics.find(fabric);
  if (fit == s.fabrics.end()) return;
  auto& leases = s.leases<Record>();
  auto refresh = [&](absl::string_view id) {
    LeaseEntry<Record>* a = leases.find(id)->second.get();
    if (!a->committed) return;
    if (affected && !affected(*a)) return;
    std::string reason;
    int waits_for;
    auto state = Derive(s, *a, &reason, &waits_for);
    const bool changed = state != a->last_state;
    if (changed || waits_for != a->waits_for) {
      s.SetLeaseState(*a, state, waits_for);
    }
    if (changed && s.hub().has_watchers()) {
      PublishLease(s.hub(), v1::WatchEvent::MODIFIED, LeaseView(s, *a));
    }
  };
  const LeaseIds& ids = fit->second->template lease_ids<Record>();
  if (only_unsettled && settled_node >= 0) {
    // Copies: a lease that settles, or waits for another node, leaves them.
    std::vector<absl::string_view> due(ids.waiting_on[settled_node].begin(),
                                       ids.waiting_on[settled_node].end());
    due.insert(due.end(), ids.unplaced.begin(), ids.unplaced.end());
    for (absl::string_view id : due) refresh(id);
  } else if (only_unsettled) {
    // A copy: a state that turns READY leaves `unsettled`.
    const std::vector<absl::string_view> unsettled(ids.unsettled.begin(),
                                                   ids.unsettled.end());
    for (absl::string_view id : unsettled) refresh(id);
  } else {
    for (absl::string_view id : ids.all) refresh(id);
  }
}

template <typename Record>
absl::StatusOr<std::vector<std::string>> LeasesOfDeletedFabric(
    const ManagerState& s, const std::string& fid, bool force,
    absl::string_view what, absl::string_view advice) {
  using Traits = LeaseTraits<Record>;
  std::vector<std::string> ids;
  const auto& leases = s.leases<Record>();
  for (absl::string_view key : s.fabrics.at(fid)->template lease_ids<Record>().all) {
    const std::string id(key);
    const LeaseEntry<Record>* a = leases.find(key)->second.get();
    if (!a->committed || a->releasing) {
      return absl::UnavailableError(
          absl::StrCat("name: ", Traits::kKind, " ", id, " of fabric ", fid,
                       " is being ", Traits::kChanging, "; retry"));
    }
    ids.push_back(id);
  }
  if (!ids.empty() && !force) {
    return absl::FailedPreconditionError(
        absl::StrCat("name: fabric \"", fid, "\" has ", ids.size(), " ", what,
                     " (first: ", ids[0], "); ", advice, " or set force"));
  }
  return ids;
}

template <typename Record>
void DropLeases(ManagerState& s, const std::vector<std::string>& ids) {
  auto& leases = s.leases<Record>();
  for (const auto& id : ids) {
    auto it = leases.find(id);
    Record view = LeaseView(s, *it->second);
    MarkGone(&view, "its fabric was deleted");
    s.RemoveLease<Record>(id);
    PublishLease(s.hub(), v1::WatchEvent::DELETED, view);
  }
}

template <typename Record>
absl::Status RestoreLease(ManagerState& s, const std::string& key,
                          absl::string_view value,
                          int64_t required_generation) {
  using Traits = LeaseTraits<Record>;
  auto a = std::make_unique<LeaseEntry<Record>>();
  if (!a->record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError(absl::StrCat("store: ", Traits::kKind,
                                            " record \"", key,
                                            "\" is unreadable"));
  }
  auto fit = s.fabrics.find(a->fabric());
  if (fit == s.fabrics.end()) {
    return absl::DataLossError(absl::StrCat("store: ", Traits::kKind, " ",
                                            key, " names missing fabric ",
                                            a->fabric()));
  }
  core::FabricState& state = fit->second->state;
  auto grants = GrantsOf(key, a->record, state.topology());
  if (!grants) {
    return absl::DataLossError(absl::StrCat(
        "store: ", Traits::kKind, " ", key, " names a node its fabric lacks"));
  }
  for (const core::Grant& g : *grants) {
    absl::Status added = state.AddGrant(g);
    if (!added.ok()) {
      return absl::DataLossError(absl::StrCat("store: ", Traits::kKind, " ",
                                              key, " cannot be restored: ",
                                              added.message()));
    }
  }
  a->committed = true;
  a->required_generation = required_generation;
  s.AddLease<Record>(key, std::move(a));
  return absl::OkStatus();
}

void RefreshLeasesCrossing(ManagerState& s, const std::string& fabric,
                           const std::vector<int>& nodes) {
  auto fit = s.fabrics.find(fabric);
  if (fit == s.fabrics.end()) return;
  const core::FabricState& state = fit->second->state;
  std::vector<bool> changed(state.topology().node_count(), false);
  for (int node : nodes) changed.at(node) = true;
  const std::function<bool(const AllocationEntry&)> crosses =
      [&state, &changed](const AllocationEntry& a) {
        const core::Grant* g = state.FindGrant(a.id());
        // The endpoints first: they need no path.
        if (changed[g->borrower] || changed[g->target]) return true;
        auto path = state.GrantPath(*g);
        return path && std::any_of(path->begin(), path->end(),
                                   [&](int hop) { return changed[hop]; });
      };
  RefreshLeases<v1::Allocation>(s, fabric, crosses, /*only_unsettled=*/false);
  RefreshLeases<v1::Attachment>(s, fabric, nullptr, /*only_unsettled=*/false);
}

void RefreshFabricLeases(ManagerState& s, const std::string& fabric, int node,
                         bool only_unsettled) {
  if (node >= 0 && !only_unsettled) {
    RefreshLeasesCrossing(s, fabric, {node});
  } else if (node >= 0) {
    // Those that wait for `node` cross it; no need to walk paths to see.
    RefreshLeases<v1::Allocation>(s, fabric, nullptr, true, node);
    RefreshLeases<v1::Attachment>(s, fabric, nullptr, true);
  } else {
    RefreshLeases<v1::Allocation>(s, fabric, nullptr, only_unsettled);
    RefreshLeases<v1::Attachment>(s, fabric, nullptr, only_unsettled);
  }
}

namespace {

template <typename Record>
absl::Status CheckStatesOf(const ManagerState& s) {
  for (const auto& [id, a] : s.leases<Record>()) {
    if (!a->committed) continue;
    std::string reason;
    int waits_for;
    const auto derived = Derive(s, *a, &reason, &waits_for);
    if (derived != a->last_state || waits_for != a->waits_for) {
      return absl::InternalError(absl::StrCat(
          LeaseTraits<Record>::kKind, " ", id, " was last derived ",
          Record::State_Name(a->last_state), " waiting for node ",
          a->waits_for, "; it derives ", Record::State_Name(derived),
          " waiting for node ", waits_for, " (", reason, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckLeaseStates(const ManagerState& s) {
  RETURN_IF_ERROR(CheckStatesOf<v1::Allocation>(s));
  return CheckStatesOf<v1::Attachment>(s);
}

#define FABRIC_INSTANTIATE_LEASES(Record)                                    \
  template absl::StatusOr<LeaseEntry<Record>*> FindLease<Record>(            \
      const ManagerState&, absl::string_view, absl::string_view);            \
  template std::string NewLeaseId<Record>(ManagerState&);                    \
  template void PlanNewLease<Record>(ManagerState&, const std::string&,      \
                                     std::unique_ptr<LeaseEntry<Record>>,    \
                                     Plan*);                                 \
  template absl::StatusOr<Plan> PlanRelease<Record>(                         \
      ManagerState&, absl::string_view, absl::string_view);                  \
  template absl::Status ListLeases<Record>(                                  \
      const ManagerState&, const LeaseScope&,                                \
      const std::function<bool(const LeaseEntry<Record>&)>&, int,            \
      absl::string_view, google::protobuf::RepeatedPtrField<Record>*,        \
      std::string*);                                                         \
  template void RefreshLeases<Record>(                                       \
      ManagerState&, const std::string&,                                     \
      const std::function<bool(const LeaseEntry<Record>&)>&, bool, int);     \
  template absl::StatusOr<std::vector<std::string>>                          \
  LeasesOfDeletedFabric<Record>(const ManagerState&, const std::string&,     \
                                bool, absl::string_view, absl::string_view); \
  template void DropLeases<Record>(ManagerState&,                            \
                                   const std::vector<std::string>&);         \
  template absl::Status RestoreLease<Record>(                                \
      ManagerState&, const std::string&, absl::string_view, int64_t);

FABRIC_INSTANTIATE_LEASES(v1::Allocation)
FABRIC_INSTANTIATE_LEASES(v1::Attachment)
#undef FABRIC_INSTANTIATE_LEASES

}  // namespace fabric::service
