#include "agent/hw/bridge_hardware.h"

#include <tuple>

#include "common/status_macros.h"

namespace fabric::agent::hw {

bool operator==(const MapEntry& a, const MapEntry& b) {
  return std::tie(a.kind, a.base, a.size, a.port, a.local_base) ==
         std::tie(b.kind, b.base, b.size, b.port, b.local_base);
}

bool operator==(const Window& a, const Window& b) {
  return std::tie(a.kind, a.slot, a.local_base, a.size, a.xlat, a.tag) ==
         std::tie(b.kind, b.slot, b.local_base, b.size, b.xlat, b.tag);
}

bool operator==(const Inbound& a, const Inbound& b) {
  return std::tie(a.local_base, a.size, a.tag) ==
         std::tie(b.local_base, b.size, b.tag);
}

bool operator==(const Port& a, const Port& b) {
  return std::tie(a.number, a.peer_bridge, a.peer_port, a.up) ==
         std::tie(b.number, b.peer_bridge, b.peer_port, b.up);
}

bool operator==(const HostMemory& a, const HostMemory& b) {
  return std::tie(a.base, a.size, a.window_base, a.mmio_base, a.mmio_size) ==
         std::tie(b.base, b.size, b.window_base, b.mmio_base, b.mmio_size);
}

bool operator==(const BridgeState& a, const BridgeState& b) {
  return a.memory == b.memory && a.map == b.map && a.windows == b.windows &&
         a.inbound == b.inbound && a.ports == b.ports &&
         a.doorbell == b.doorbell && a.scratchpads == b.scratchpads;
}

absl::Status BridgeHardware::ApplyState(const BridgeState& desired) {
  ASSIGN_OR_RETURN(BridgeState now, Read());
  if (!(now.memory == desired.memory)) {
    RETURN_IF_ERROR(SetHostMemory(desired.memory));
  }
  if (now.map != desired.map) RETURN_IF_ERROR(SetMapEntries(desired.map));
  for (const Window& have : now.windows) {
    bool wanted = false;
    for (const Window& w : desired.windows) {
      if (w.kind == have.kind && w.slot == have.slot) wanted = true;
    }
    if (!wanted) RETURN_IF_ERROR(ClearWindow(have.kind, have.slot));
  }
  for (const Window& w : desired.windows) {
    bool same = false;
    for (const Window& have : now.windows) {
      if (have == w) same = true;
    }
    if (!same) RETURN_IF_ERROR(SetWindow(w));
  }
  if (now.inbound != desired.inbound) {
    RETURN_IF_ERROR(SetInbound(desired.inbound));
  }
  for (const Port& p : desired.ports) {
    bool same = false;
    for (const Port& have : now.ports) {
      if (have == p) same = true;
    }
    if (!same) RETURN_IF_ERROR(SetPort(p));
  }
  return absl::OkStatus();
}

}  // namespace fabric::agent::hw
