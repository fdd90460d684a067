#include "server/service/readiness.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "server/service/records.h"

namespace fabric::service {

v1::Allocation::State GrantState(const ManagerState& s, const FabricEntry& f,
                                 const core::Grant& g, absl::string_view owner,
                                 int64_t required, std::string* reason,
                                 int* waits_for) {
  int unused;
  if (waits_for == nullptr) waits_for = &unused;
  *waits_for = -1;
  const core::Topology& topo = f.state.topology();
  auto path = f.state.GrantPath(g);
  if (!path) {
    std::vector<std::string> down;
    for (size_t i = 0; i < topo.links().size(); ++i) {
      if (!f.state.link_up(static_cast<int>(i)))
        down.push_back(topo.links()[i].name);
    }
    *reason = absl::StrCat("no path from ", topo.node(g.borrower).name, " to ",
                           topo.node(g.target).name,
                           "; links down: ", absl::StrJoin(down, ", "));
    return v1::Allocation::DEGRADED;
  }
  for (int n : *path) {
    const std::string& node = topo.node(n).name;
    const AgentEntry* agent = s.FindAgent(node);
    *waits_for = n;  // if it returns PENDING below
    if (agent == nullptr || agent->state == v1::Node::UNREGISTERED) {
      *reason =
          absl::StrCat("waiting for the agent of node ", node, " to register");
      return v1::Allocation::PENDING;
    }
    if (agent->state != v1::Node::READY) {
      *reason = absl::StrCat("the agent of node ", node, " is not ready");
      return v1::Allocation::PENDING;
    }
    for (const v1::ApplyError& e : agent->errors) {
      const std::string& tag = e.allocation();
      if (tag.empty() || tag == owner ||
          (absl::StartsWith(tag, owner) && tag.size() > owner.size() &&
           tag[owner.size()] == '/')) {
        *reason = absl::StrCat("node ", node, " could not apply ", e.entry(),
                               ": ", e.message());
        return v1::Allocation::PENDING;
      }
    }
    if (const int64_t applied = s.HeldGeneration(node, *agent);
        applied < required) {
      *reason = absl::StrCat("waiting for node ", node, " to apply generation ",
                             required, " (applied ", applied, ")");
      return v1::Allocation::PENDING;
    }
  }
  *waits_for = -1;
  reason->clear();
  return v1::Allocation::READY;
}

v1::Allocation::State DeriveState(const ManagerState& s,
                                  const AllocationEntry& a,
                                  std::string* reason, int* waits_for) {
  const FabricEntry& f = s.FabricOf(a);
  return GrantState(s, f, *f.state.FindGrant(a.id()), a.record.name(),
                    a.required_generation, reason, waits_for);
}

v1::Attachment::State DeriveState(const ManagerState& s,
                                  const AttachmentEntry& a,
                                  std::string* reason) {
  const FabricEntry& f = s.FabricOf(a);
  const v1::Attachment& r = a.record;
  std::string pending;
  for (const v1::AttachmentWindow& w : r.windows()) {
    const core::Grant* g = f.state.FindGrant(AttachmentGrantId(a.id(), w.role()));
    if (g == nullptr) continue;
    std::string why;
    v1::Allocation::State gs =
        GrantState(s, f, *g, r.name(), a.required_generation, &why);
    if (gs == v1::Allocation::DEGRADED) {
      *reason = absl::StrCat(w.role(), " window: ", why);
      return v1::Attachment::DEGRADED;
    }
    if (gs == v1::Allocation::PENDING && pending.empty()) {
      pending = absl::StrCat(w.role(), " window: ", why);
    }
  }
  const std::string lender(absl::StripPrefix(r.lender(), "nodes/"));
  const std::string borrower(absl::StripPrefix(r.borrower(), "nodes/"));
  if (const AgentEntry* l = s.FindAgent(lender); l != nullptr) {
    bool present = false;
    for (const v1::PciFunction& fn : l->inventory.functions()) {
      present |= fn.address() == r.vf_address();
    }
    if (!present) {
      *reason = absl::StrCat("VF ", r.vf_address(),
                             " disappeared from the inventory of ", lender);
      return v1::Attachment::DEGRADED;
    }
    auto h = l->vf_health.find(r.vf_address());
    if (h != l->vf_health.end() && !h->second.healthy()) {
      *reason = absl::StrCat("VF ", r.vf_address(), " on ", lender,
                             " is unhealthy: ", h->second.reason());
      return v1::Attachment::DEGRADED;
    }
  }
  if (!pending.empty()) {
    *reason = pending;
    return v1::Attachment::PENDING;
  }
  const agentproto::v1::ShadowStatus* shadow = nullptr;
  if (const AgentEntry* b = s.FindAgent(borrower); b != nullptr) {
    auto sh = b->shadows.find(r.name());
    if (sh != b->shadows.end()) shadow = &sh->second;
  }
  if (shadow == nullptr || !shadow->ready()) {
    *reason = absl::StrCat("waiting for the shadow device on ", borrower,
                           shadow != nullptr && !shadow->error().empty()
                               ? absl::StrCat(": ", shadow->error())
                               : "");
    return v1::Attachment::PENDING;
  }
  reason->clear();
  return v1::Attachment::READY;
}

}  // namespace fabric::service
