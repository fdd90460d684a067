#include "server/service/views.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/service/convert.h"
#include "server/service/readiness.h"
#include "server/service/records.h"

namespace fabric::service {
namespace {

// The agent's part of the view of node id `node`.
void AddAgentView(const ManagerState& s, absl::string_view node,
                  const AgentEntry& a, v1::Node* out) {
  out->set_agent_state(a.state);
  out->set_applied_generation(s.HeldGeneration(node, a));
  *out->mutable_last_heartbeat() = ToProtoTime(a.last_heartbeat);
  *out->mutable_inventory() = a.inventory;
  out->set_repairs(a.repairs);
  for (const auto& r : a.recent_repairs) out->add_recent_repairs(r);
  for (const auto& e : a.errors) *out->add_apply_errors() = e;
  out->set_agent_address(a.control_address);
  out->set_agent_backend(a.backend);
  out->set_agent_session(a.session);
  out->set_agent_takeover(a.takeover);
}

}  // namespace

template <typename Record>
std::vector<const LeaseEntry<Record>*> NodeLeases(const ManagerState& s,
                                                  const FabricEntry& f,
                                                  int node) {
  std::vector<const LeaseEntry<Record>*> out;
  const auto& leases = s.leases<Record>();
  for (absl::string_view id : f.template lease_ids<Record>().by_node[node]) {
    const LeaseEntry<Record>* a = leases.find(id)->second.get();
    if (a->committed) out.push_back(a);
  }
  return out;
}
template std::vector<const AllocationEntry*> NodeLeases<v1::Allocation>(
    const ManagerState&, const FabricEntry&, int);
template std::vector<const AttachmentEntry*> NodeLeases<v1::Attachment>(
    const ManagerState&, const FabricEntry&, int);

v1::Fabric FabricView(const ManagerState& s, const FabricEntry& f) {
  v1::Fabric out = f.record;
  const core::Topology& topo = f.state.topology();
  out.set_generation(s.generation());
  out.set_node_count(topo.node_count());
  out.set_link_count(static_cast<int>(topo.links().size()));
  int down = 0;
  for (bool up : f.state.link_states()) down += up ? 0 : 1;
  out.set_links_down(down);
  out.set_allocation_count(f.allocation_ids.committed);
  out.set_max_forward_entries(f.state.map().max_forward_entries());
  return out;
}

v1::Node UnassignedNodeView(const ManagerState& s, const std::string& id,
                            const AgentEntry& a) {
  v1::Node out;
  out.set_name(NodeName(id));
  out.set_desired_generation(s.generation());
  AddAgentView(s, id, a, &out);
  return out;
}

v1::Node NodeView(const ManagerState& s, const FabricEntry& f, int node) {
  const core::NodeInfo& n = f.state.topology().node(node);
  v1::Node out;
  out.set_name(NodeName(n.name));
  out.set_fabric(FabricName(f.id()));
  out.set_bridge(BridgeName(n.name));
  out.set_hub(n.is_hub);
  out.set_export_base(n.export_base);
  out.set_export_size(n.export_size);
  out.set_window_base(n.window_base);
  out.set_aperture_base(n.aperture_base);
  out.set_aperture_size(n.aperture_size);
  out.set_mmio_base(n.mmio_base);
  out.set_mmio_size(n.mmio_size);
  out.set_mmio_aperture_base(n.mmio_aperture_base);
  out.set_desired_generation(s.generation());
  out.set_agent_state(v1::Node::UNREGISTERED);
  if (const AgentEntry* a = s.FindAgent(n.name); a != nullptr) {
    AddAgentView(s, n.name, *a, &out);
  }
  uint64_t lent = 0;
  for (const core::Grant* g : f.state.GrantsTargeting(node)) {
    // Memory lent to allocations; attachments' windows are not counted.
    if (!AttachmentOfGrant(g->id) &&
        s.GrantVisible(g->id)) {
      lent += g->size;
    }
  }
  out.set_lent_bytes(lent);
  return out;
}

google::protobuf::RepeatedPtrField<v1::Port> PortViews(const FabricEntry& f,
                                                       int node) {
  const core::Topology& topo = f.state.topology();
  const core::NodeInfo& n = topo.node(node);
  google::protobuf::RepeatedPtrField<v1::Port> out;
  for (int port = 1; port <= n.port_count; ++port) {
    v1::Port* p = out.Add();
    p->set_number(port);
    auto peer = topo.PortPeer(node, port);
    if (peer) {
      const core::Link& link = topo.links()[peer->second];
      p->set_link(LinkName(link.name));
      p->set_peer_bridge(BridgeName(topo.node(peer->first).name));
      p->set_peer_port(link.a == node && link.a_port == port ? link.b_port
                                                             : link.a_port);
      p->set_up(f.state.link_up(peer->second));
    }
  }
  return out;
}

v1::Bridge BridgeView(const ManagerState& s, const FabricEntry& f, int node) {
  const core::NodeInfo& n = f.state.topology().node(node);
  v1::Bridge out;
  out.set_name(BridgeName(n.name));
  out.set_fabric(FabricName(f.id()));
  out.set_node(NodeName(n.name));
  *out.mutable_profile() = ProfileToProto(*n.profile);
  *out.mutable_ports() = PortViews(f, node);
  core::BridgeConfig cfg = f.state.ConfigFor(node);
  out.set_map_entries(static_cast<int>(cfg.map.size()));
  int windows = 0, lut = 0;
  for (const auto& w : cfg.windows) {
    if (!s.GrantVisible(w.grant_id)) continue;
    (w.kind == core::SlotKind::kLut ? lut : windows) += 1;
  }
  out.set_windows_used(windows);
  out.set_lut_entries_used(lut);
  return out;
}

v1::Link LinkView(const FabricEntry& f, int link) {
  const core::Topology& topo = f.state.topology();
  const core::Link& l = topo.links()[link];
  v1::Link out;
  out.set_name(LinkName(l.name));
  out.set_fabric(FabricName(f.id()));
  out.set_a_bridge(BridgeName(topo.node(l.a).name));
  out.set_a_port(l.a_port);
  out.set_b_bridge(BridgeName(topo.node(l.b).name));
  out.set_b_port(l.b_port);
  out.set_up(f.state.link_up(link));
  return out;
}

v1::AddressMap MapView(const ManagerState& s, const FabricEntry& f, int node) {
  const core::Topology& topo = f.state.topology();
  core::BridgeConfig cfg = f.state.ConfigFor(node);
  v1::AddressMap out;
  const std::string& name = topo.node(node).name;
  out.set_name(absl::StrCat(BridgeName(name), "/addressMap"));
  out.set_bridge(BridgeName(name));
  out.set_generation(s.generation());
  for (const core::MapEntry& e : cfg.map) {
    v1::MapEntry* m = out.add_entries();
    m->set_kind(e.kind == core::MapEntry::Kind::kClaim ? v1::MapEntry::CLAIM
                                                       : v1::MapEntry::FORWARD);
    m->set_base(e.base);
    m->set_size(e.size);
    if (e.kind == core::MapEntry::Kind::kForward) m->set_port(e.port);
    if (e.kind == core::MapEntry::Kind::kClaim) m->set_local_base(e.local_base);
    m->set_covers(CoveredNodes(topo, e.base, e.size));
  }
  for (const core::WindowEntry& w : cfg.windows) {
    if (!s.GrantVisible(w.grant_id)) continue;
    v1::WindowEntry* m = out.add_windows();
    m->set_slot_kind(SlotKindToProto(w.kind));
    m->set_slot(w.slot);
    m->set_local_base(w.local_base);
    m->set_size(w.size);
    m->set_translated_addr(w.xlat);
    m->set_allocation(GrantOwner(w.grant_id));
  }
  for (const core::InboundEntry& e : cfg.inbound) {
    if (!s.GrantVisible(e.grant_id)) continue;
    v1::InboundEntry* m = out.add_inbound();
    m->set_local_base(e.local_base);
    m->set_size(e.size);
    m->set_allocation(GrantOwner(e.grant_id));
    m->set_borrower(NodeName(topo.node(e.borrower).name));
  }
  return out;
}

v1::Allocation LeaseView(const ManagerState& s, const AllocationEntry& a) {
  v1::Allocation out = a.record;
  std::string reason;
  out.set_state(DeriveState(s, a, &reason));
  out.set_state_reason(reason);
  out.set_required_generation(a.required_generation);
  const FabricEntry& f = s.FabricOf(a);
  const core::Grant* g = f.state.FindGrant(a.id());
  auto path = f.state.GrantPath(*g);
  if (path) {
    for (int n : *path)
      out.add_path(BridgeName(f.state.topology().node(n).name));
  }
  return out;
}

v1::Attachment LeaseView(const ManagerState& s, const AttachmentEntry& a) {
  v1::Attachment out = a.record;
  std::string reason;
  out.set_state(DeriveState(s, a, &reason));
  out.set_state_reason(reason);
  out.set_required_generation(a.required_generation);
  out.set_vf_health(v1::VirtualFunction::UNKNOWN);
  if (const AgentEntry* l =
          s.FindAgent(absl::StripPrefix(a.record.lender(), "nodes/"));
      l != nullptr) {
    auto h = l->vf_health.find(a.record.vf_address());
    if (h != l->vf_health.end()) {
      out.set_vf_health(h->second.healthy() ? v1::VirtualFunction::HEALTHY
                                            : v1::VirtualFunction::UNHEALTHY);
      out.set_vf_health_reason(h->second.reason());
    }
  }
  if (const AgentEntry* b =
          s.FindAgent(absl::StripPrefix(a.record.borrower(), "nodes/"));
      b != nullptr) {
    auto sh = b->shadows.find(a.record.name());
    if (sh != b->shadows.end()) {
      *out.mutable_counters() = sh->second.counters();
    }
  }
  return out;
}

std::vector<v1::VirtualFunction> VfViews(const ManagerState& s,
                                         const FabricEntry& f, int node) {
  const std::string& name = f.state.topology().node(node).name;
  std::map<std::string, v1::VirtualFunction> out;
  const AgentEntry* agent = s.FindAgent(name);
  if (agent != nullptr) {
    for (const v1::PciFunction& fn : agent->inventory.functions()) {
      if (fn.kind() != v1::PciFunction::SRIOV_VF) continue;
      v1::VirtualFunction& v = out[fn.address()];
      v.set_name(VfName(name, fn.address()));
      v.set_node(NodeName(name));
      v.set_address(fn.address());
      v.set_pf_address(fn.pf_address());
      v.set_vendor_id(fn.vendor_id());
      v.set_device_id(fn.device_id());
      *v.mutable_bar_sizes() = fn.bar_sizes();
      v.set_state(v1::VirtualFunction::FREE);
      v.set_health(v1::VirtualFunction::UNKNOWN);
      if (auto h = agent->vf_health.find(fn.address());
          h != agent->vf_health.end()) {
        v.set_health(h->second.healthy() ? v1::VirtualFunction::HEALTHY
                                         : v1::VirtualFunction::UNHEALTHY);
        v.set_health_reason(h->second.reason());
      }
    }
  }
  for (const AttachmentEntry* a : NodeLeases<v1::Attachment>(s, f, node)) {
    if (a->record.lender() != NodeName(name)) continue;
    auto [it, added] = out.try_emplace(a->record.vf_address());
    v1::VirtualFunction& v = it->second;
    if (added) {
      // Lent, but the lender no longer reports it.
      v.set_name(VfName(name, a->record.vf_address()));
      v.set_node(NodeName(name));
      v.set_address(a->record.vf_address());
      v.set_health(v1::VirtualFunction::UNHEALTHY);
      v.set_health_reason(
          agent == nullptr
              ? "the lender's agent has not registered"
              : "the VF disappeared from the lender's inventory");
    }
    v.set_state(v1::VirtualFunction::LENT);
    v.set_attachment(a->record.name());
    v.set_borrower(a->record.borrower());
  }
  std::vector<v1::VirtualFunction> views;
  for (auto& [addr, v] : out) views.push_back(std::move(v));
  return views;
}

}  // namespace fabric::service
