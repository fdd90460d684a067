// The simulated host's PCIe hardware: which SR-IOV physical functions sit in
// it, read from the file given to `fabric-agent --backend sim
// --sim-hardware FILE` (protobuf JSON of fabric.agent.hw.sim.SimHardwareSpec,
// sim_hardware.proto). Field names may be lowerCamel or snake_case; 64-bit
// sizes may be JSON numbers or strings.
//
// A host with one Intel X710-like PF exposing 8 VFs (examples/one_pf.json):
//
//   {
//     "bridgeProfile": "sim",
//     "pfs": [
//       {"address": "0000:3b:00.0", "vendorId": 32902, "deviceId": 5490,
//        "vfDeviceId": 5452, "totalVfs": 8, "numVfs": 8,
//        "vfOffset": 16, "vfStride": 1,
//        "barSizes": ["33554432", "0", "0", "32768"],
//        "vfBarSizes": ["65536", "0", "0", "16384"],
//        "msixVectors": 4, "msixBar": 3}
//     ]
//   }
//
// A host without SR-IOV devices: {"bridgeProfile": "sim"}
// (examples/no_pf.json).
//
// Semantics and limits (each violation is INVALID_ARGUMENT naming the field,
// e.g. "pfs[0].barSizes[3]: 1000 is not a power of two"):
//  - bridgeProfile: required, a profile FindProfile knows (server/core).
//  - mmioBase / mmioSize: the host-physical range BARs are assigned from at
//    power-on (default kDefaultMmioBase / kDefaultMmioSize: 64 GiB at 3 TiB,
//    clear of the fabric's default export region at 4 GiB and its window
//    slots at 2 TiB). All BARs must fit.
//  - pfs[i].address: a PCI address; unique among PFs.
//  - vendorId 0x0001..0xfffe; deviceId, vfDeviceId 16 bits; classCode 24
//    bits (0 = 0x020000, Ethernet controller).
//  - totalVfs <= 256; initialVfs <= totalVfs (0 = totalVfs); numVfs (VFs
//    enabled at power-on) <= totalVfs.
//  - vfOffset >= 1 when totalVfs >= 1; vfStride >= 1 when totalVfs >= 2.
//    All totalVfs VF routing IDs must stay <= 0xffff and collide with no PF
//    and no other PF's VF.
//  - barSizes / vfBarSizes: at most 6 each. Every BAR is a 64-bit
//    prefetchable memory BAR: a non-zero size at index i uses i and i + 1
//    (so i <= 4 and entry i + 1 must be 0). PF BARs: 0 or a power of two in
//    [16, 2^48]; VF BARs (per VF): 0 or a power of two in [4096, 2^48]
//    (VF BARs are page-aligned; System Page Size is 4 KiB).
//  - msixVectors 1..2048, the table size of the PF and of each VF.
//    msixBar: an implemented BAR of the PF and, when totalVfs >= 1, of the
//    VFs; the table (16 bytes a vector) sits at offset 0 and the pending-bit
//    array right after it (8 bytes per 64 vectors); both must fit the BAR.
//
// BAR placement (power-on, also in LayoutBars): from mmioBase, PF by PF in
// file order, first the PF's BARs in index order, then its VF BAR regions
// (VF BAR j spans totalVfs * vfBarSizes[j]; VF i's BAR j is at region base
// + i * vfBarSizes[j]); each BAR or region aligned to its per-function size.
#ifndef FABRIC_AGENT_HW_SIM_SIM_HARDWARE_H_
#define FABRIC_AGENT_HW_SIM_SIM_HARDWARE_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/discovery/pci_address.h"
#include "agent/vf/msix_layout.h"

namespace fabric::agent::hw {

inline constexpr uint64_t kDefaultMmioBase = 0x300'0000'0000ull;  // 3 TiB
inline constexpr uint64_t kDefaultMmioSize = 0x10'0000'0000ull;   // 64 GiB
inline constexpr uint32_t kDefaultClassCode = 0x020000;
inline constexpr int kMaxVfsPerPf = 256;
inline constexpr int kMaxMsixVectors = 2048;
inline constexpr int kBarCount = 6;
inline constexpr uint64_t kMaxBarSize = 1ull << 48;
inline constexpr uint64_t kVfPageSize = 4096;

// The MSI-X layout inside BAR msix_bar, for `vectors` vectors: the table at
// offset 0 (vf::MsixTableBytes), the PBA right after it.
using vf::MsixPbaBytes;
using vf::MsixTableBytes;
inline constexpr uint64_t MsixPbaOffset(uint32_t vectors) {
  return MsixTableBytes(vectors);
}

// One physical function, validated. Values as in the file, defaults filled.
struct SimPf {
  discovery::PciAddress address;
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint16_t vf_device_id = 0;
  uint32_t class_code = kDefaultClassCode;
  uint16_t total_vfs = 0;
  uint16_t initial_vfs = 0;
  uint16_t num_vfs = 0;
  uint16_t vf_offset = 0;
  uint16_t vf_stride = 0;
  std::array<uint64_t, kBarCount> bar_sizes{};
  std::array<uint64_t, kBarCount> vf_bar_sizes{};
  uint32_t msix_vectors = 0;
  int msix_bar = 0;

  // The address of VF `index` (0-based): routing ID = PF's + vf_offset +
  // index * vf_stride, in the PF's domain. REQUIRES: index < total_vfs (the
  // loader checked that every such routing ID fits).
  discovery::PciAddress VfAddress(int index) const;
};

struct SimHardware {
  std::string bridge_profile;
  uint64_t mmio_base = kDefaultMmioBase;
  uint64_t mmio_size = kDefaultMmioSize;
  std::vector<SimPf> pfs;
};

bool operator==(const SimPf& a, const SimPf& b);
bool operator==(const SimHardware& a, const SimHardware& b);
inline bool operator!=(const SimHardware& a, const SimHardware& b) {
  return !(a == b);
}

// Reads and validates a hardware file. NOT_FOUND if absent; INVALID_ARGUMENT
// (prefixed with the path) if it does not parse or breaks a rule above.
absl::StatusOr<SimHardware> LoadSimHardware(const std::string& path);

// The same from JSON text.
absl::StatusOr<SimHardware> ParseSimHardware(const std::string& json);

// The JSON text of `hw` (snake_case field names; parses back to `hw`).
std::string SimHardwareToJson(const SimHardware& hw);

// Where power-on places the BARs of pfs[i] (see the header comment).
// 0 for an unimplemented BAR. vf_bar_base[j] is the VF BAR j region base (VF
// 0's BAR j). INVALID_ARGUMENT ("mmioSize: ...") if they do not fit.
struct PfBarLayout {
  std::array<uint64_t, kBarCount> bar_base{};
  std::array<uint64_t, kBarCount> vf_bar_base{};
};
absl::StatusOr<std::vector<PfBarLayout>> LayoutBars(const SimHardware& hw);

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_SIM_SIM_HARDWARE_H_
