// Test helper: the hardware state the manager's model (server/core) asks of
// one node's bridge, for programming simulated bridges directly in tests.
#ifndef FABRIC_AGENT_HW_TESTING_CORE_STATE_H_
#define FABRIC_AGENT_HW_TESTING_CORE_STATE_H_

#include "agent/hw/bridge_hardware.h"
#include "server/core/fabric_state.h"

namespace fabric::agent::hw::testing {

// What the agent would program on `node`'s bridge for the model `fs`.
inline BridgeState StateFor(const core::FabricState& fs, int node) {
  const core::Topology& t = fs.topology();
  const core::NodeInfo& info = t.node(node);
  const core::BridgeConfig c = fs.ConfigFor(node);
  BridgeState s;
  s.memory = {info.export_base, info.export_size, info.window_base};
  for (const core::MapEntry& e : c.map) {
    s.map.push_back({e.kind == core::MapEntry::Kind::kClaim
                         ? MapEntry::Kind::kClaim
                         : MapEntry::Kind::kForward,
                     e.base, e.size, e.port, e.local_base});
  }
  for (const core::WindowEntry& w : c.windows) {
    s.windows.push_back(
        {w.kind == core::SlotKind::kLut ? SlotKind::kLut : SlotKind::kWindow,
         w.slot, w.local_base, w.size, w.xlat, w.grant_id});
  }
  for (const core::InboundEntry& in : c.inbound) {
    s.inbound.push_back({in.local_base, in.size, in.grant_id});
  }
  for (const core::Topology::PortLink& pl : t.ports(node)) {
    const core::Link& link = t.links()[pl.link];
    const int peer_port =
        (link.a == node && link.a_port == pl.port) ? link.b_port : link.a_port;
    s.ports.push_back(
        {pl.port, t.node(pl.peer).name, peer_port, fs.link_up(pl.link)});
  }
  return s;
}

}  // namespace fabric::agent::hw::testing

#endif  // FABRIC_AGENT_HW_TESTING_CORE_STATE_H_
