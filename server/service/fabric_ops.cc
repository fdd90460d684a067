#include "server/service/fabric_ops.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "fabric/internal/records.pb.h"
#include "server/service/convert.h"
#include "server/service/leases.h"
#include "server/service/records.h"
#include "server/service/views.h"

namespace fabric::service {
namespace {

// Publishes a change of fabric `view`.
void PublishFabric(WatchHub& hub, v1::WatchEvent::Type type, v1::Fabric view) {
  v1::WatchEvent e;
  e.set_type(type);
  *e.mutable_fabric() = std::move(view);
  hub.Publish(std::move(e));
}

}  // namespace

absl::StatusOr<FabricDraft> FabricDraft::FromSpec(const v1::FabricSpec& spec) {
  ASSIGN_OR_RETURN(core::FabricSpec core_spec, SpecFromProto(spec));
  auto topo = core::Topology::Build(core_spec);
  if (!topo.ok()) {
    return absl::Status(topo.status().code(),
                        absl::StrCat("spec.", topo.status().message()));
  }
  return FabricDraft(std::make_shared<const core::Topology>(*std::move(topo)));
}

absl::StatusOr<Plan> PlanCreateFabric(ManagerState& s,
                                      const v1::CreateFabricRequest& req,
                                      const FabricDraft& draft,
                                      absl::Time now) {
  const std::string& id = req.spec().name();
  if (s.fabrics.count(id) != 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("spec.name: fabric \"", id, "\" already exists"));
  }
  const core::Topology& topo = draft.topology();
  for (const auto& n : topo.nodes()) {
    auto it = s.node_fabric.find(n.name);
    if (it != s.node_fabric.end()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "spec.nodes: node \"", n.name, "\" already belongs to fabric \"",
          it->second, "\"; node names are unique across fabrics"));
    }
  }
  auto entry = std::make_shared<FabricEntry>(core::FabricState(topo));
  entry->record.set_name(FabricName(id));
  *entry->record.mutable_spec() = req.spec();
  *entry->record.mutable_create_time() = ToProtoTime(now);
  Plan plan;
  plan.batch.Put(kTableFabrics, id, entry->record.SerializeAsString());
  plan.response = FabricView(s, *entry).SerializeAsString();
  if (req.validate_only()) {
    plan.batch = store::WriteBatch();
    return plan;
  }
  ManagerState* state = &s;
  plan.commit = [state, entry, id]() {
    for (const auto& n : entry->state.topology().nodes())
      state->node_fabric[n.name] = id;
    auto owned = std::make_unique<FabricEntry>(std::move(*entry));
    FabricEntry* f = owned.get();
    state->fabrics[id] = std::move(owned);
    state->BumpGeneration();
    PublishFabric(state->hub(), v1::WatchEvent::ADDED, FabricView(*state, *f));
  };
  return plan;
}

absl::StatusOr<Plan> PlanDeleteFabric(ManagerState& s,
                                      const v1::DeleteFabricRequest& req) {
  ASSIGN_OR_RETURN(FabricEntry * f, s.FindFabric("name", req.name()));
  const std::string fid = f->id();
  ASSIGN_OR_RETURN(
      std::vector<std::string> live,
      LeasesOfDeletedFabric<v1::Allocation>(
          s, fid, req.force(), "live allocation(s)", "release them"));
  ASSIGN_OR_RETURN(std::vector<std::string> attached,
                   LeasesOfDeletedFabric<v1::Attachment>(
                       s, fid, req.force(), "VF attachment(s)", "detach them"));
  // One transaction when the rows fit in it. Else (a large fabric on etcd:
  // 128 operations per transaction) a tombstone first, then the rows in
  // as many transactions as they need, the tombstone last: a restart in
  // between finds the tombstone and deletes what is left (Recover).
  Plan plan;
  plan.batch.Put(kTableDeletingFabrics, fid, "");
  for (const auto& id : attached) plan.tail.Delete(kTableAttachments, id);
  for (const auto& l : f->state.topology().links())
    plan.tail.Delete(kTableLinks, l.name);
  for (const auto& id : live) plan.tail.Delete(kTableAllocations, id);
  plan.tail.Delete(kTableFabrics, fid);
  plan.tail.Delete(kTableDeletingFabrics, fid);
  v1::Fabric view = FabricView(s, *f);
  plan.response = view.SerializeAsString();
  const bool was_deleting = f->deleting;  // a retry after a stranded one
  f->deleting = true;
  plan.rollback = [f, was_deleting]() { f->deleting = was_deleting; };
  // Written in part (a tail failed): no rollback, so the fabric stays
  // deleting (nothing new in it) as the durable tombstone says; a retry or
  // a restart finishes it.
  ManagerState* state = &s;
  plan.commit = [state, fid, live, attached, view]() {
    DropLeases<v1::Attachment>(*state, attached);
    DropLeases<v1::Allocation>(*state, live);
    FabricEntry* f = state->fabrics.at(fid).get();
    for (const auto& n : f->state.topology().nodes())
      state->node_fabric.erase(n.name);
    state->fabrics.erase(fid);
    state->BumpGeneration();
    PublishFabric(state->hub(), v1::WatchEvent::DELETED, view);
  };
  return plan;
}

absl::StatusOr<Plan> PlanSetLinkState(ManagerState& s,
                                      const v1::SetLinkStateRequest& req) {
  ASSIGN_OR_RETURN(auto fl, s.FindLink("name", req.name()));
  FabricEntry* f = fl.first;
  const int link = fl.second;
  if (f->deleting) {
    return absl::FailedPreconditionError(
        absl::StrCat("name: fabric ", f->id(), " is being deleted"));
  }
  RETURN_IF_ERROR(f->state.CheckLinkChange(link, req.up()));
  Plan plan;
  const std::string& lname = f->state.topology().links()[link].name;
  internal::LinkRecord rec;
  rec.set_fabric(f->id());
  rec.set_up(req.up());
  plan.batch.Put(kTableLinks, lname, rec.SerializeAsString());
  v1::Link view = LinkView(*f, link);
  view.set_up(req.up());
  plan.response = view.SerializeAsString();
  std::string fid = f->id();
  bool up = req.up();
  ManagerState* state = &s;
  plan.commit = [state, fid, link, up, view]() {
    FabricEntry* f = state->fabrics.at(fid).get();
    if (!f->state.SetLink(link, up)) return;
    const int64_t gen = state->BumpGeneration();
    for (absl::string_view id : f->allocation_ids.all) {
      AllocationEntry& a = *state->allocations.find(id)->second;
      if (a.committed) a.required_generation = gen;
    }
    v1::WatchEvent e;
    e.set_type(v1::WatchEvent::MODIFIED);
    *e.mutable_link() = view;
    state->hub().Publish(std::move(e));
    RefreshFabricLeases(*state, fid);
  };
  return plan;
}

}  // namespace fabric::service
