// The config space of a simulated PCIe function (SimSriovHost): its register
// offsets, little-endian field access, the power-on contents of a PF's or a
// VF's 4096 bytes and their per-byte write masks. The layout (capabilities at
// kSimPcieCapOffset, kSimMsixCapOffset, kSimSriovCapOffset; every BAR 64-bit
// prefetchable) is described in sriov_device.h.
//
// Pure functions over values: no I/O, thread-compatible.
#ifndef FABRIC_AGENT_HW_SIM_SIM_CONFIG_SPACE_H_
#define FABRIC_AGENT_HW_SIM_SIM_CONFIG_SPACE_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "agent/hw/sim/sim_hardware.h"
#include "agent/hw/sriov_functions.h"

namespace fabric::agent::hw {

// Config-space layout of every simulated function.
inline constexpr uint16_t kSimPcieCapOffset = 0x40;
inline constexpr uint16_t kSimMsixCapOffset = 0x80;
inline constexpr uint16_t kSimSriovCapOffset = 0x100;

namespace sim_config {

// One function's 4096 config bytes (or their write mask).
using Config = std::array<uint8_t, 4096>;

inline constexpr uint16_t kCommand = 0x04;
inline constexpr uint32_t kCmdMemory = 0x0002;
inline constexpr uint32_t kCmdBusMaster = 0x0004;
inline constexpr uint16_t kBar0 = 0x10;
inline constexpr uint16_t kMsixCtrl = kSimMsixCapOffset + vf::kMsixControl;
inline constexpr uint16_t kSriovCtrl = kSimSriovCapOffset + 0x08;
inline constexpr uint16_t kSriovNumVfs = kSimSriovCapOffset + 0x10;
inline constexpr uint16_t kSriovVfBar0 = kSimSriovCapOffset + 0x24;
inline constexpr uint32_t kVfEnable = 0x0001;
inline constexpr uint32_t kVfMse = 0x0008;

// The `size`-byte little-endian field at `off` (the caller keeps it inside
// `c`; size <= 4).
uint32_t Get(const Config& c, size_t off, int size);
void Put(Config& c, size_t off, int size, uint32_t v);

// The address a 64-bit memory BAR register pair at `off` holds (flags
// stripped).
uint64_t BarValue(const Config& cfg, size_t off);

// Writes the power-on config space of `pf` (vf == false; `layout` places its
// BARs, `multifunction` sets the header-type bit) or of one of its VFs
// (vf == true; `layout` and `multifunction` are ignored) into `cfg`, and its
// write mask into `mask`. NumVFs and VF Enable start clear.
void Build(const SimPf& pf, bool vf, bool multifunction,
           const PfBarLayout& layout, Config& cfg, Config& mask);

// The write mask of a PF's (or its VF's) config space, as Build makes it.
Config MaskOf(const SimPf& pf, bool vf);

// OK for a config access of 1, 2 or 4 bytes, aligned to its size, below
// 0x1000; INVALID_ARGUMENT naming the size and offset otherwise.
absl::Status CheckAccess(uint16_t offset, int size);

}  // namespace sim_config
}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_SIM_SIM_CONFIG_SPACE_H_
