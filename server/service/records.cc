#include "server/service/records.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/time_util.h"
#include "server/service/convert.h"
#include "server/service/request_log.h"

namespace fabric::service {

using google::protobuf::util::TimeUtil;

namespace {

// The fields an allocation record and an attachment window share.
template <typename M>
void SetSharedPlacement(const core::Grant& g, M* m) {
  m->set_target_addr(g.target_addr);
  m->set_fabric_addr(g.fabric_addr);
  m->set_size(g.size);
  m->set_slot_kind(SlotKindToProto(g.slot_kind));
  m->set_slot(g.slot_index);
  m->set_slot_count(g.slot_count);
}

template <typename M>
void GetSharedPlacement(const M& m, core::Grant* g) {
  g->size = m.size();
  g->target_addr = m.target_addr();
  g->fabric_addr = m.fabric_addr();
  g->slot_kind = SlotKindFromProto(m.slot_kind());
  g->slot_index = m.slot();
  g->slot_count = m.slot_count();
}

}  // namespace

google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

absl::Time FromProtoTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(t));
}

std::vector<std::string> StoreTables() {
  return {kTableMeta,        kTableFabrics,     kTableLinks,
          kTableAllocations, kTableAttachments, kTableRequests,
          kTableDeletingFabrics, kTableHoldings};
}

std::string AttachmentName(absl::string_view id) {
  return absl::StrCat("attachments/", id);
}

std::string VfName(absl::string_view node, absl::string_view address) {
  return absl::StrCat("nodes/", node, "/vfs/",
                      absl::StrReplaceAll(address, {{":", "-"}}));
}

std::string AttachmentGrantId(absl::string_view id, absl::string_view role) {
  return absl::StrCat(id, ".", role);
}

std::optional<absl::string_view> AttachmentOfGrant(
    absl::string_view grant_id) {
  const size_t dot = grant_id.find('.');
  if (dot == absl::string_view::npos) return std::nullopt;
  return grant_id.substr(0, dot);
}

std::string GrantOwner(absl::string_view grant_id) {
  const size_t dot = grant_id.find('.');
  if (dot == absl::string_view::npos) return AllocationName(grant_id);
  return absl::StrCat("attachments/", grant_id.substr(0, dot), "/",
                      grant_id.substr(dot + 1));
}

std::vector<std::string> GrantIds(absl::string_view id,
                                  const v1::Allocation&) {
  return {std::string(id)};
}

std::vector<std::string> GrantIds(absl::string_view id,
                                  const v1::Attachment& record) {
  std::vector<std::string> out;
  for (const v1::AttachmentWindow& w : record.windows()) {
    out.push_back(AttachmentGrantId(id, w.role()));
  }
  return out;
}

void SetPlacement(const core::Grant& g, const core::Topology& topo,
                  v1::Allocation* out) {
  out->set_borrower(NodeName(topo.node(g.borrower).name));
  out->set_target(NodeName(topo.node(g.target).name));
  out->set_borrower_addr(g.borrower_addr);
  SetSharedPlacement(g, out);
}

v1::AttachmentWindow WindowOf(absl::string_view role, const core::Grant& g,
                              const core::Topology& topo) {
  v1::AttachmentWindow w;
  w.set_role(std::string(role));
  w.set_from_node(topo.node(g.borrower).name);
  w.set_to_node(topo.node(g.target).name);
  w.set_local_addr(g.borrower_addr);
  SetSharedPlacement(g, &w);
  return w;
}

std::optional<std::vector<core::Grant>> GrantsOf(absl::string_view id,
                                                 const v1::Allocation& record,
                                                 const core::Topology& topo) {
  auto b = topo.FindNode(absl::StripPrefix(record.borrower(), "nodes/"));
  auto t = topo.FindNode(absl::StripPrefix(record.target(), "nodes/"));
  if (!b || !t) return std::nullopt;
  core::Grant g;
  g.id = std::string(id);
  g.borrower = *b;
  g.target = *t;
  GetSharedPlacement(record, &g);
  g.borrower_addr = record.borrower_addr();
  return std::vector<core::Grant>{g};
}

std::optional<std::vector<core::Grant>> GrantsOf(absl::string_view id,
                                                 const v1::Attachment& record,
                                                 const core::Topology& topo) {
  std::vector<core::Grant> out;
  for (const v1::AttachmentWindow& w : record.windows()) {
    auto from = topo.FindNode(w.from_node());
    auto to = topo.FindNode(w.to_node());
    if (!from || !to) return std::nullopt;
    core::Grant g;
    g.id = AttachmentGrantId(id, w.role());
    g.borrower = *from;
    g.target = *to;
    GetSharedPlacement(w, &g);
    g.borrower_addr = w.local_addr();
    g.device = absl::StartsWith(w.role(), "mmio");
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace fabric::service
