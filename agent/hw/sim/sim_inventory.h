// The PCIe inventory of a simulated host: what discovery would report if the
// simulated functions were on a real bus, read from their simulated config
// spaces with the same parser discovery uses.
#ifndef FABRIC_AGENT_HW_SIM_SIM_INVENTORY_H_
#define FABRIC_AGENT_HW_SIM_SIM_INVENTORY_H_

#include "absl/status/statusor.h"
#include "agent/hw/sim/sriov_device.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::agent::hw {

// Every PF and enabled VF of `host`, with ids, BAR sizes and (PFs) SR-IOV
// details. VFs report the PF's vendor and the VF device id, as their own
// ID registers read 0xffff.
absl::StatusOr<v1::NodeInventory> SimulatedInventory(SimSriovHost& host);

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_SIM_SIM_INVENTORY_H_
