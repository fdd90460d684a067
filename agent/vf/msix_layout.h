// The MSI-X layout (PCI Local Bus Specification 3.0, section 6.8.2): the
// capability's registers, and the table and PBA in BAR memory. The one
// definition the agent, the simulator and the shadow devices share.
//
// Table entry `v` is 16 bytes at table offset + 16 * v: message address low
// (0), high (4), message data (8), vector control (12, bit 0 = masked). The
// PBA holds one bit per vector, in 64-bit words.
//
//   ASSIGN_OR_RETURN(MsixTable t, FindMsixTable(config));
//   std::array<uint8_t, kMsixEntryBytes> bytes = EncodeMsixEntry(entry);
//   write bytes at BAR t.bir, offset t.offset + MsixEntryOffset(vector)
#ifndef FABRIC_AGENT_VF_MSIX_LAYOUT_H_
#define FABRIC_AGENT_VF_MSIX_LAYOUT_H_

#include <array>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace fabric::agent::vf {

// The capability (id 0x11) and its registers, as offsets from its start.
inline constexpr uint8_t kMsixCapId = 0x11;
inline constexpr int kMsixCapBytes = 12;
inline constexpr int kMsixControl = 2;  // Message Control, 16 bits
inline constexpr int kMsixTableReg = 4;  // Table Offset / BIR
inline constexpr int kMsixPbaReg = 8;    // PBA Offset / BIR
// Message Control bits.
inline constexpr uint16_t kMsixEnable = 0x8000;
inline constexpr uint16_t kMsixFunctionMask = 0x4000;
inline constexpr uint16_t kMsixTableSizeMask = 0x07ff;  // N - 1
// Offset / BIR registers: BIR in the low 3 bits.
inline constexpr uint32_t kMsixBirMask = 0x7;

// A table entry.
inline constexpr int kMsixEntryBytes = 16;
inline constexpr int kMsixAddrLo = 0;
inline constexpr int kMsixAddrHi = 4;
inline constexpr int kMsixData = 8;
inline constexpr int kMsixVectorControl = 12;
inline constexpr uint32_t kMsixVectorMasked = 0x1;

// An MSI-X table entry.
struct MsixEntry {
  uint64_t address = 0;
  uint32_t data = 0;
  bool masked = true;
  friend bool operator==(const MsixEntry& a, const MsixEntry& b) {
    return a.address == b.address && a.data == b.data && a.masked == b.masked;
  }
};

// The vector count Message Control `control` announces.
inline constexpr int MsixVectors(uint16_t control) {
  return (control & kMsixTableSizeMask) + 1;
}
// Where entry `vector` starts, relative to the table.
inline constexpr uint64_t MsixEntryOffset(int vector) {
  return static_cast<uint64_t>(vector) * kMsixEntryBytes;
}
// The table's and the PBA's sizes for `vectors` vectors.
inline constexpr uint64_t MsixTableBytes(uint32_t vectors) {
  return uint64_t{kMsixEntryBytes} * vectors;
}
inline constexpr uint64_t MsixPbaBytes(uint32_t vectors) {
  return (vectors + 63ull) / 64 * 8;
}

// The 16 bytes of `e` as the table holds them (little-endian).
std::array<uint8_t, kMsixEntryBytes> EncodeMsixEntry(const MsixEntry& e);
// Entry `e`'s field at byte `field` (kMsixAddrLo ... kMsixVectorControl) as
// the dword a driver reads there.
uint32_t MsixEntryDword(const MsixEntry& e, int field);

// Where a function's table is: BAR `bir` at `offset`, of `vectors` entries;
// `cap` is the capability's config-space offset.
struct MsixTable {
  int cap = 0;
  int vectors = 0;
  int bir = 0;
  uint32_t offset = 0;
};
// The table `config` (a function's config space) describes. NOT_FOUND when
// the function has no MSI-X capability; the capability-list errors of
// discovery::ListCapabilities otherwise.
absl::StatusOr<MsixTable> FindMsixTable(absl::Span<const uint8_t> config);

}  // namespace fabric::agent::vf

#endif  // FABRIC_AGENT_VF_MSIX_LAYOUT_H_
