#include "server/service/agent_registry.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "server/service/convert.h"
#include "server/service/leases.h"
#include "server/service/records.h"
#include "server/service/views.h"

namespace fabric::service {

namespace {

// Replaces `a`'s VF health checks and shadow devices with those reported;
// true when a health verdict or a shadow's readiness or error changed.
bool TakeVfStatus(
    const google::protobuf::RepeatedPtrField<agentproto::v1::VfHealthReport>&
        vf_health,
    const google::protobuf::RepeatedPtrField<agentproto::v1::ShadowStatus>&
        reported_shadows,
    AgentEntry* a) {
  bool changed = false;
  std::map<std::string, agentproto::v1::VfHealthReport> health;
  for (const auto& h : vf_health) health[h.vf_address()] = h;
  for (const auto& [addr, h] : health) {
    auto old = a->vf_health.find(addr);
    if (old == a->vf_health.end() || old->second.healthy() != h.healthy() ||
        old->second.reason() != h.reason()) {
      changed = true;
    }
  }
  changed |= health.size() != a->vf_health.size();
  a->vf_health = std::move(health);
  std::map<std::string, agentproto::v1::ShadowStatus> shadows;
  for (const auto& sh : reported_shadows) shadows[sh.attachment()] = sh;
  for (const auto& [name, sh] : shadows) {
    auto old = a->shadows.find(name);
    if (old == a->shadows.end() || old->second.ready() != sh.ready() ||
        old->second.error() != sh.error()) {
      changed = true;
    }
  }
  changed |= shadows.size() != a->shadows.size();
  a->shadows = std::move(shadows);
  return changed;
}

}  // namespace

absl::StatusOr<agentproto::v1::RegisterNodeResponse> AgentRegistry::Register(
    const std::string& node, const agentproto::v1::RegisterNodeRequest& req) {
  ManagerState& s = *state_;
  auto& agent = s.agents[node];
  if (agent == nullptr) agent = std::make_unique<AgentEntry>();
  if (req.instance() != 0 && req.instance() == agent->instance &&
      req.attempt() <= agent->attempt) {
    return absl::FailedPreconditionError(absl::StrCat(
        "attempt: registration ", req.attempt(), " of node ", node,
        "'s agent is not newer than its current session's (registration ",
        agent->attempt, ", session ", agent->session,
        "): a late retry, refused so that it does not fence that session"));
  }
  // Sessions are unique across restarts: the epoch is in the high bits.
  const int64_t session = (s.generation() & ~int64_t{0xffffffff}) |
                          (++s.session_counter & 0xffffffff);
  if (agent->session != 0 && agent->open_streams > 0) {
    // Another agent (or this one, reconnecting before its old stream
    // ended) registers while the current session still looks alive: the
    // newer one wins, the older is fenced.
    agent->takeover = absl::StrCat(
        "session ", session, " from ", req.control_address(),
        " replaced session ", agent->session, " from ",
        agent->control_address, " at ", absl::FormatTime(clock_->Now()));
    std::cerr << "fabric-manager: node " << node << ": " << agent->takeover
              << "; the older session is fenced" << std::endl;
  }
  // What the node's leases may have waited for before (see the end).
  const bool was_ready = agent->state == v1::Node::READY;
  const int64_t held_before = agent->held_generation;
  const bool inventory_changed = agent->inventory.SerializeAsString() !=
                                 req.inventory().SerializeAsString();
  agent->session = session;
  agent->instance = req.instance();
  agent->attempt = req.attempt();
  agent->presumed = false;
  agent->open_streams = 0;
  agent->report_sequence = 0;
  const bool moved = agent->control_address != req.control_address();
  agent->inventory = req.inventory();
  agent->backend = req.backend();
  agent->control_address = req.control_address();
  agent->repairs = 0;
  agent->recent_repairs.clear();
  agent->state = v1::Node::READY;
  agent->last_heartbeat = clock_->Now();
  // A (re)registered agent must apply the current generation again.
  agent->applied_generation = 0;
  agent->held_generation = 0;
  agent->sent_generation = 0;
  agent->same_through = 0;
  agent->errors.clear();
  bool vf_changed = false;
  if (!req.held_config_digest().empty() || req.shadows_size() > 0 ||
      req.vf_health_size() > 0) {
    // An agent that reconnects says what its node holds (else what it
    // had said before, of its VFs, is kept).
    vf_changed = TakeVfStatus(req.vf_health(), req.shadows(), agent.get());
  }
  auto fn = s.FindNode("node", node);
  if (fn.ok() && (moved || inventory_changed)) {
    // The VF assignments of this node's lent VFs name its agent's address
    // and describe the VFs from its inventory: the configurations of both
    // ends of each change.
    std::vector<std::string> ends;
    for (const AttachmentEntry* a :
         NodeLeases<v1::Attachment>(s, *fn->first, fn->second)) {
      if (a->record.lender() != NodeName(node)) continue;
      ends.emplace_back(absl::StripPrefix(a->record.lender(), "nodes/"));
      ends.emplace_back(absl::StripPrefix(a->record.borrower(), "nodes/"));
    }
    if (!ends.empty()) s.BumpGeneration(ends);
  }
  agent->held_digest = req.held_config_digest();
  if (!agent->held_digest.empty()) {
    // It holds the current generation when what its bridge holds is what
    // this generation wants of it: nothing is applied again, and its
    // leases need not wait for a report.
    absl::StatusOr<agentproto::v1::DesiredConfig> want = DesiredConfigFor(node);
    if (want.ok() && ConfigDigest(*want) == agent->held_digest) {
      agent->applied_generation = s.generation();
      agent->held_generation = s.generation();
    }
  }
  s.unsaved_holdings.insert(node);
  Rearm(node, *agent);
  agentproto::v1::RegisterNodeResponse out;
  *out.mutable_heartbeat_interval() =
      ToProtoDuration(options_.heartbeat_interval);
  out.set_session(session);
  if (!fn.ok()) {
    // A node in no fabric (never added, or its fabric was deleted): its
    // agent is accepted and given an empty configuration (DesiredConfigFor),
    // so that it clears whatever its bridge still holds. It joins when a
    // fabric names it.
    *out.mutable_node() = UnassignedNodeView(s, node, *agent);
    return out;
  }
  *out.mutable_node() = NodeView(s, *fn->first, fn->second);
  v1::WatchEvent e;
  e.set_type(v1::WatchEvent::MODIFIED);
  *e.mutable_node() = out.node();
  s.hub().Publish(std::move(e));
  // The registration can only settle the node's leases when the agent was
  // not READY (every lease through the node waited for it), or was and
  // holds no less than before, with the same VFs: then only the leases
  // that wait for this node are looked at, not every lease of the fabric
  // with its path (what made a fabric of 50k allocations never converge
  // while its agents registered).
  const bool only_settles =
      !was_ready || (agent->held_generation >= held_before && !vf_changed &&
                     !inventory_changed);
  RefreshFabricLeases(s, fn->first->id(), fn->second, only_settles);
  return out;
}

absl::StatusOr<agentproto::v1::DesiredConfig> AgentRegistry::DesiredConfigFor(
    absl::string_view node) const {
  const ManagerState& s = *state_;
  auto found = s.FindNode("node", node);
  if (!found.ok()) {
    if (s.UnassignedAgent(node) == nullptr) return found.status();
    // In no fabric: nothing is wanted of the bridge.
    agentproto::v1::DesiredConfig empty;
    empty.set_node(NodeName(*ParseName("node", node, "nodes")));
    empty.set_generation(s.generation());
    return empty;
  }
  const FabricEntry& f = *found->first;
  const int idx = found->second;
  const core::NodeInfo& n = f.state.topology().node(idx);
  agentproto::v1::DesiredConfig out;
  out.set_node(NodeName(n.name));
  out.set_fabric(FabricName(f.id()));
  out.set_generation(s.generation());
  *out.mutable_profile() = ProfileToProto(*n.profile);
  *out.mutable_address_map() = MapView(s, f, idx);
  out.set_export_base(n.export_base);
  out.set_export_size(n.export_size);
  out.set_window_base(n.window_base);
  out.set_mmio_base(n.mmio_base);
  out.set_mmio_size(n.mmio_size);
  *out.mutable_ports() = PortViews(f, idx);
  for (const AttachmentEntry* a : NodeLeases<v1::Attachment>(s, f, idx)) {
    const v1::Attachment& r = a->record;
    const bool lender = r.lender() == out.node();
    if (!lender && r.borrower() != out.node()) continue;
    agentproto::v1::VfAssignment* va = out.add_vf_assignments();
    va->set_attachment(r.name());
    va->set_role(lender ? agentproto::v1::VfAssignment::LENDER
                        : agentproto::v1::VfAssignment::BORROWER);
    va->set_vf_address(r.vf_address());
    va->set_generation(a->required_generation);
    va->set_lender(r.lender());
    va->set_borrower(r.borrower());
    if (const AgentEntry* l =
            s.FindAgent(absl::StripPrefix(r.lender(), "nodes/"));
        l != nullptr) {
      va->set_lender_agent(l->control_address);
    }
    va->set_vm(r.vm());
    va->set_interrupts(r.interrupts());
    *va->mutable_windows() = r.windows();
    auto vf = s.FindVf("vf", r.vf());
    if (vf.ok() && vf->function != nullptr) {
      va->set_vendor_id(vf->function->vendor_id());
      va->set_device_id(vf->function->device_id());
      *va->mutable_bar_sizes() = vf->function->bar_sizes();
    }
  }
  return out;
}

absl::StatusOr<agentproto::v1::ReportStatusResponse> AgentRegistry::Report(
    const std::string& node, const agentproto::v1::ReportStatusRequest& req) {
  ManagerState& s = *state_;
  auto found = s.FindNode("node", node);
  if (!found.ok() && !absl::IsNotFound(found.status())) return found.status();
  auto it = s.agents.find(node);
  if (it == s.agents.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("node: ", node,
                     " has not registered with this manager; call "
                     "RegisterNode first"));
  }
  AgentEntry& a = *it->second;
  RETURN_IF_ERROR(CheckSession(node, a, req.session()));
  if (req.applied_generation() > s.generation()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "applied_generation: ", req.applied_generation(),
        " is newer than the current generation ", s.generation()));
  }
  agentproto::v1::ReportStatusResponse out;
  out.set_desired_generation(s.generation());
  if (req.sequence() != 0) {
    // Overtaken by a newer report of this session: what it says is old.
    if (req.sequence() <= a.report_sequence) return out;
    a.report_sequence = req.sequence();
  }
  const bool was_ready = a.state == v1::Node::READY;
  a.last_heartbeat = clock_->Now();
  a.state = v1::Node::READY;
  Rearm(node, a);
  bool errors_changed =
      a.errors.size() != static_cast<size_t>(req.errors_size());
  for (size_t i = 0; !errors_changed && i < a.errors.size(); ++i) {
    errors_changed = a.errors[i].SerializeAsString() !=
                     req.errors(static_cast<int>(i)).SerializeAsString();
  }
  a.errors.assign(req.errors().begin(), req.errors().end());
  a.repairs = req.repairs();
  a.recent_repairs.assign(req.recent_repairs().begin(),
                          req.recent_repairs().end());
  bool vf_changed = false;
  if (req.has_inventory()) {
    vf_changed = a.inventory.SerializeAsString() !=
                 req.inventory().SerializeAsString();
    a.inventory = req.inventory();
  }
  vf_changed |= TakeVfStatus(req.vf_health(), req.shadows(), &a);
  if (a.held_digest != req.held_config_digest() || !was_ready || vf_changed) {
    a.held_digest = req.held_config_digest();
    s.unsaved_holdings.insert(node);
  }
  a.applied_generation = req.applied_generation();
  // Within a session the held generation only moves forward.
  const bool moved_forward = a.RaiseHeld();
  // In no fabric (UnassignedNodeView): the agent's account of clearing its
  // bridge is kept for GetNode; no allocation depends on it.
  if (!found.ok()) return out;
  const auto& fn = *found;
  if (!was_ready || moved_forward || errors_changed || vf_changed) {
    if (!was_ready || req.has_inventory()) PublishNode(*fn.first, fn.second);
    // The common report, every agent's after each generation: only the
    // applied generation moved forward. That can settle leases but not
    // unsettle a READY one, so only the unsettled are looked at.
    const bool only_settles =
        was_ready && moved_forward && !errors_changed && !vf_changed;
    RefreshFabricLeases(s, fn.first->id(), fn.second, only_settles);
  }
  return out;
}

void AgentRegistry::ConfigUnchanged(const std::string& node, int64_t session,
                                    int64_t sent, int64_t same_through) {
  ManagerState& s = *state_;
  auto it = s.agents.find(node);
  if (it == s.agents.end() || session == 0 || session != it->second->session ||
      sent <= 0 || same_through < sent) {
    return;  // a reader's or a fenced session's stream: it tells nothing
  }
  AgentEntry& a = *it->second;
  a.sent_generation = sent;
  a.same_through = same_through;
  if (!a.RaiseHeld() || a.state != v1::Node::READY) return;
  auto fn = s.FindNode("node", node);
  if (!fn.ok()) return;
  // As for a report that only moves the applied generation forward.
  RefreshFabricLeases(s, fn->first->id(), fn->second, /*only_unsettled=*/true);
}

absl::Status AgentRegistry::CheckSession(absl::string_view node,
                                         const AgentEntry& a,
                                         int64_t session) const {
  if (session == 0 || session == a.session) return absl::OkStatus();
  if (a.presumed) {
    // The agent's session is another manager's (before a takeover or a
    // restart): it registers with this one.
    return absl::FailedPreconditionError(
        absl::StrCat("node: ", node, " has not registered with this manager; "
                     "call RegisterNode first"));
  }
  return absl::AbortedError(absl::StrCat(
      "session: ", session, " of node ", node,
      " was fenced by a newer registration (session ", a.session, " from ",
      a.control_address, "); another agent serves this node now"));
}

absl::Status AgentRegistry::StreamOpened(const std::string& node,
                                         int64_t session) {
  auto it = state_->agents.find(node);
  if (it == state_->agents.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("node: ", node, " has not registered with this manager; "
                     "call RegisterNode first"));
  }
  RETURN_IF_ERROR(CheckSession(node, *it->second, session));
  // A stream without a session (a reader such as a test harness, not the
  // agent) proves nothing about the agent's transport.
  if (session != 0) {
    ++it->second->open_streams;
    Rearm(node, *it->second);
  }
  return absl::OkStatus();
}

void AgentRegistry::StreamClosed(const std::string& node, int64_t session) {
  auto it = state_->agents.find(node);
  if (it == state_->agents.end() || session == 0 ||
      session != it->second->session) {
    return;  // a reader's, or a fenced session's stream: it never counted
  }
  AgentEntry& a = *it->second;
  if (a.open_streams > 0 && --a.open_streams == 0) {
    // The session's transport is gone: the agent died or reconnects (and
    // then registers again, giving its address anew). Its address is not
    // kept for a session that may never answer again.
    a.control_address.clear();
  }
  Rearm(node, a);
}

absl::Time AgentRegistry::SilentAfter(const AgentEntry& a) const {
  const absl::Duration allowed =
      a.open_streams > 0
          ? std::max(options_.heartbeat_timeout, options_.stream_grace)
          : options_.heartbeat_timeout;
  return a.last_heartbeat + allowed;
}

void AgentRegistry::Rearm(const std::string& node, const AgentEntry& a) {
  if (a.state == v1::Node::READY) {
    heartbeats_.Set(node, SilentAfter(a));
  } else {
    heartbeats_.Clear(node);
  }
}

size_t AgentRegistry::SweepSilent(absl::Time now, size_t limit) {
  ManagerState& s = *state_;
  const std::vector<std::string> due = heartbeats_.PopDue(now, limit);
  // By fabric id, the ids of its nodes that went silent.
  std::map<std::string, std::vector<int>> silent;
  for (const std::string& node : due) {
    auto it = s.agents.find(node);
    if (it == s.agents.end()) continue;
    AgentEntry* agent = it->second.get();
    if (agent->state != v1::Node::READY || !(SilentAfter(*agent) < now)) {
      Rearm(node, *agent);  // due at `now` exactly: silent only after it
      continue;
    }
    agent->state = v1::Node::NOT_READY;
    s.unsaved_holdings.insert(node);  // no longer kept
    auto fn = s.FindNode("node", node);
    if (!fn.ok()) {
      // In no fabric and silent: nothing to remember it for.
      s.agents.erase(it);
      continue;
    }
    PublishNode(*fn->first, fn->second);
    silent[fn->first->id()].push_back(fn->second);
  }
  // One pass over each fabric's leases for all of its nodes that went
  // silent, not one per node.
  for (const auto& [fabric, nodes] : silent) {
    RefreshLeasesCrossing(s, fabric, nodes);
  }
  return due.size();
}

size_t AgentRegistry::Presume(
    const std::map<std::string, internal::NodeHolding>& holdings) {
  ManagerState& s = *state_;
  const absl::Time now = clock_->Now();
  std::vector<std::string> presumed;
  for (const auto& [node, h] : holdings) {
    if (!s.FindNode("node", node).ok() || s.agents.count(node) != 0 ||
        h.config_digest().empty()) {
      s.unsaved_holdings.insert(node);
      continue;
    }
    auto a = std::make_unique<AgentEntry>();
    a->presumed = true;
    a->state = v1::Node::READY;
    a->last_heartbeat = now;
    a->control_address = h.control_address();
    a->backend = h.backend();
    a->inventory = h.inventory();
    TakeVfStatus(h.vf_health(), h.shadows(), a.get());
    a->held_digest = h.config_digest();
    s.agents[node] = std::move(a);
    presumed.push_back(node);
  }
  // A node's configuration names its lenders' agents, so a holding that
  // does not match is dropped before the others are judged, until none is.
  bool dropped = true;
  while (dropped) {
    dropped = false;
    for (auto it = presumed.begin(); it != presumed.end();) {
      absl::StatusOr<agentproto::v1::DesiredConfig> want = DesiredConfigFor(*it);
      if (want.ok() && ConfigDigest(*want) == s.agents.at(*it)->held_digest) {
        ++it;
        continue;
      }
      s.agents.erase(*it);
      s.unsaved_holdings.insert(*it);
      it = presumed.erase(it);
      dropped = true;
    }
  }
  for (const std::string& node : presumed) {
    AgentEntry& a = *s.agents.at(node);
    a.applied_generation = s.generation();
    a.held_generation = s.generation();
    Rearm(node, a);
  }
  return presumed.size();
}

absl::Status AgentRegistry::CheckTimers() const {
  size_t ready = 0;
  for (const auto& [node, a] : state_->agents) {
    if (a->state != v1::Node::READY) continue;
    ++ready;
    if (heartbeats_.Deadline(node) != SilentAfter(*a)) {
      return absl::InternalError(absl::StrCat(
          "heartbeat queue: READY agent ", node, " has no deadline or ",
          "the wrong one"));
    }
  }
  if (heartbeats_.size() != ready) {
    return absl::InternalError(absl::StrCat("heartbeat queue holds ",
                                            heartbeats_.size(),
                                            " deadlines for ", ready,
                                            " READY agents"));
  }
  return absl::OkStatus();
}

void AgentRegistry::PublishNode(const FabricEntry& f, int n) {
  v1::WatchEvent e;
  e.set_type(v1::WatchEvent::MODIFIED);
  *e.mutable_node() = NodeView(*state_, f, n);
  state_->hub().Publish(std::move(e));
}

}  // namespace fabric::service
