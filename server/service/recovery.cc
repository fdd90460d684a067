#include "server/service/recovery.h"

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "fabric/internal/records.pb.h"
#include "server/service/convert.h"
#include "server/service/leases.h"
#include "server/service/records.h"
#include "server/store/batch_limits.h"

namespace fabric::service {
namespace {

// Whether the lease record `value` (not yet checked) is of a fabric in
// `deleting`. Parsed only when there is such a fabric.
template <typename Record>
bool InDeletedFabric(absl::string_view value,
                     const std::set<std::string>& deleting) {
  if (deleting.empty()) return false;
  Record record;
  return record.ParseFromArray(value.data(), static_cast<int>(value.size())) &&
         deleting.count(std::string(
             absl::StripPrefix(record.fabric(), "fabrics/"))) > 0;
}

// Restores every lease of `table`, row by row, but those of fabrics in
// `deleting`, whose rows it adds to `garbage`.
template <typename Record>
absl::Status RestoreLeases(store::Store* store, absl::string_view table,
                           const std::set<std::string>& deleting,
                           int64_t required, ManagerState& s,
                           store::WriteBatch& garbage) {
  return store->ScanEach(
      table, [&](absl::string_view key, absl::string_view value) {
        if (InDeletedFabric<Record>(value, deleting)) {
          garbage.Delete(table, key);
          return absl::OkStatus();
        }
        return RestoreLease<Record>(s, std::string(key), value, required);
      });
}

}  // namespace

absl::Status Recover(store::Store* store, ManagerState* state,
                     RequestLog* requests) {
  internal::MetaRecord meta;
  auto meta_bytes = store->Get(kTableMeta, "meta");
  if (meta_bytes.ok()) {
    if (!meta.ParseFromString(*meta_bytes)) {
      return absl::DataLossError("store: meta record is unreadable");
    }
  } else if (!absl::IsNotFound(meta_bytes.status())) {
    return meta_bytes.status();
  }
  meta.set_epoch(meta.epoch() + 1);
  store::WriteBatch batch;
  batch.Put(kTableMeta, "meta", meta.SerializeAsString());
  // Request ids: the rows of those not kept (a lowered cap) and unreadable
  // ones are deleted after the new epoch, so that memory and store agree.
  // Written in as many transactions as the store's limits need: a crash
  // between them only leaves rows the next recovery deletes again (and an
  // epoch it moves on from).
  // Row by row: the rows hold answers that the log does not keep.
  RETURN_IF_ERROR(store->ScanEach(
      kTableRequests, [&](absl::string_view key, absl::string_view value) {
        requests->LoadRow(key, value, &batch);
        return absl::OkStatus();
      }));
  requests->FinishLoad(&batch);
  ASSIGN_OR_RETURN(std::vector<store::WriteBatch> chunks,
                   store::SplitToFit(std::move(batch), store->limits()));
  for (const store::WriteBatch& chunk : chunks) {
    RETURN_IF_ERROR(store->Apply(chunk));
  }

  ManagerState& s = *state;
  s.StartEpoch(meta.epoch());
  // Fabrics whose deletion was cut short (PlanDeleteFabric): their rows
  // are deleted, not loaded, and their tombstones after them.
  std::set<std::string> deleting;
  ASSIGN_OR_RETURN(auto tombstones, store->Scan(kTableDeletingFabrics));
  for (auto& [key, value] : tombstones) deleting.insert(std::move(key));
  store::WriteBatch garbage;
  ASSIGN_OR_RETURN(auto fabrics, store->Scan(kTableFabrics));
  for (const auto& [key, value] : fabrics) {
    if (deleting.count(key)) {
      garbage.Delete(kTableFabrics, key);
      continue;
    }
    v1::Fabric record;
    if (!record.ParseFromString(value)) {
      return absl::DataLossError(
          absl::StrCat("store: fabric record \"", key, "\" is unreadable"));
    }
    ASSIGN_OR_RETURN(core::FabricSpec spec, SpecFromProto(record.spec()));
    auto topo = core::Topology::Build(spec);
    if (!topo.ok()) {
      return absl::DataLossError(
          absl::StrCat("store: fabric \"", key,
                       "\" no longer validates: ", topo.status().message()));
    }
    auto entry =
        std::make_unique<FabricEntry>(core::FabricState(*std::move(topo)));
    entry->record = std::move(record);
    for (const auto& n : entry->state.topology().nodes()) {
      s.node_fabric[n.name] = key;
    }
    s.fabrics[key] = std::move(entry);
  }
  ASSIGN_OR_RETURN(auto links, store->Scan(kTableLinks));
  for (const auto& [key, value] : links) {
    internal::LinkRecord rec;
    if (!rec.ParseFromString(value)) {
      return absl::DataLossError(
          absl::StrCat("store: link record \"", key, "\" is unreadable"));
    }
    if (deleting.count(rec.fabric())) {
      garbage.Delete(kTableLinks, key);
      continue;
    }
    auto it = s.fabrics.find(rec.fabric());
    if (it == s.fabrics.end()) continue;  // fabric deleted with the link
    auto idx = it->second->state.topology().FindLinkByName(key);
    if (!idx) continue;
    it->second->state.SetLink(*idx, rec.up());
  }
  // Every agent must apply the generation that follows.
  const int64_t required = s.generation() + 1;
  RETURN_IF_ERROR(RestoreLeases<v1::Allocation>(
      store, kTableAllocations, deleting, required, s, garbage));
  RETURN_IF_ERROR(RestoreLeases<v1::Attachment>(
      store, kTableAttachments, deleting, required, s, garbage));
  // The rows first, the tombstones last: a crash in between leaves
  // tombstones that the next start acts on again.
  for (const std::string& fid : deleting) {
    garbage.Delete(kTableDeletingFabrics, fid);
  }
  ASSIGN_OR_RETURN(std::vector<store::WriteBatch> garbage_chunks,
                   store::SplitToFit(std::move(garbage), store->limits()));
  for (const store::WriteBatch& chunk : garbage_chunks) {
    RETURN_IF_ERROR(store->Apply(chunk));
  }
  s.BumpGeneration();
  return absl::OkStatus();
}

}  // namespace fabric::service
