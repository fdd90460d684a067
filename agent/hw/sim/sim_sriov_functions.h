// SimSriovFunctions: the SriovFunctions interface over the simulator's
// device model (SimSriovHost). Every call goes to the model; the inventory
// is SimulatedInventory(). FLR is not modelled (UNIMPLEMENTED), and NumVfs /
// SetNumVfs follow SimSriovHost's sysfs-like rules. Thread-safe, as the
// model is.
#ifndef FABRIC_AGENT_HW_SIM_SIM_SRIOV_FUNCTIONS_H_
#define FABRIC_AGENT_HW_SIM_SIM_SRIOV_FUNCTIONS_H_

#include <cstdint>
#include <vector>

#include "agent/hw/sim/sriov_device.h"
#include "agent/hw/sriov_functions.h"

namespace fabric::agent::hw {

class SimSriovFunctions final : public SriovFunctions {
 public:
  // `host` is not owned and must outlive this object.
  explicit SimSriovFunctions(SimSriovHost* host) : host_(host) {}

  absl::StatusOr<v1::NodeInventory> Inventory() override;
  absl::StatusOr<uint32_t> ConfigRead(const discovery::PciAddress& bdf,
                                      uint16_t offset, int size) override;
  absl::Status ConfigWrite(const discovery::PciAddress& bdf, uint16_t offset,
                           int size, uint32_t value) override;
  absl::StatusOr<std::vector<uint8_t>> ConfigSpace(
      const discovery::PciAddress& bdf) override;
  absl::Status BarRead(const discovery::PciAddress& bdf, int bar,
                       uint64_t offset, absl::Span<uint8_t> out) override;
  absl::Status BarWrite(const discovery::PciAddress& bdf, int bar,
                        uint64_t offset,
                        absl::Span<const uint8_t> data) override;
  // The table is at offset 0 of the hardware file's msixBar, of msixVectors
  // entries; a dead function drops the write, as the model does.
  absl::Status WriteMsixEntry(const discovery::PciAddress& bdf, int vector,
                              const vf::MsixEntry& entry) override;
  absl::StatusOr<int> NumVfs(const discovery::PciAddress& pf) override;
  absl::Status SetNumVfs(const discovery::PciAddress& pf, int n) override;
  // UNIMPLEMENTED: the device model has no FLR.
  absl::Status ResetFunction(const discovery::PciAddress& bdf) override;
  absl::StatusOr<AccessResult> Dma(const discovery::PciAddress& bdf,
                                   uint64_t io_addr,
                                   absl::Span<const uint8_t> data) override;
  absl::StatusOr<MsixResult> RaiseMsix(const discovery::PciAddress& bdf,
                                       int vector) override;
  absl::StatusOr<FunctionHealth> Health(
      const discovery::PciAddress& bdf) override;

 private:
  // The hardware file's PF of the function.
  absl::StatusOr<const SimPf*> PfOf(const discovery::PciAddress& bdf);

  SimSriovHost* const host_;  // not owned
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_SIM_SIM_SRIOV_FUNCTIONS_H_
