// Pure decoding of PCI configuration space bytes: the type 0/1 header, BARs,
// the standard and extended capability lists, and the SR-IOV extended
// capability with the VF addresses it implies. No libpci, no I/O.
//
// Every function takes the raw bytes as read from the device (64, 256 or 4096
// bytes: what `lspci -x`, `-xxx` and `-xxxx` dump, and what sysfs `config`
// yields to unprivileged and privileged readers). Multi-byte fields are
// little-endian. Malformed bytes give DATA_LOSS and a message naming the
// offset and what is wrong; a buffer of an unusable size gives
// INVALID_ARGUMENT.
//
//   ASSIGN_OR_RETURN(ConfigHeader h, ParseHeader(bytes));
//   ASSIGN_OR_RETURN(std::optional<SriovCapability> sriov, FindSriov(bytes));
//   if (sriov) { ASSIGN_OR_RETURN(auto vfs, VfAddresses(pf, *sriov, n)); }
#ifndef FABRIC_AGENT_DISCOVERY_CONFIG_SPACE_H_
#define FABRIC_AGENT_DISCOVERY_CONFIG_SPACE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/discovery/pci_address.h"

namespace fabric::agent::discovery {

using ConfigBytes = absl::Span<const uint8_t>;

inline constexpr size_t kConfigHeaderBytes = 64;      // lspci -x
inline constexpr size_t kConfigLegacyBytes = 256;     // lspci -xxx
inline constexpr size_t kConfigExtendedBytes = 4096;  // lspci -xxxx
inline constexpr uint16_t kExtCapIdSriov = 0x0010;
// Base class and sub-class (upper 16 of the 24 class-code bits) of
// "bridge, other", the class NT functions use.
inline constexpr uint32_t kClassBridgeOther = 0x0680;

// Returns OK when `config` is 64, 256 or 4096 bytes, INVALID_ARGUMENT
// ("config space is 100 bytes; expected 64, 256 or 4096") otherwise.
absl::Status CheckConfigSize(ConfigBytes config);

struct ConfigHeader {
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint16_t command = 0;
  uint16_t status = 0;
  uint8_t revision = 0;
  // 24 bits: base class [23:16], sub-class [15:8], programming interface.
  uint32_t class_code = 0;
  uint8_t header_type = 0;  // layout, bit 7 (multi-function) removed
  bool multifunction = false;
};

// Decodes the common header. REQUIRES nothing beyond CheckConfigSize.
absl::StatusOr<ConfigHeader> ParseHeader(ConfigBytes config);

struct Bar {
  int index = 0;     // 0-5; a 64-bit BAR also consumes index + 1
  uint64_t raw = 0;  // register value(s); upper dword for 64-bit
  bool io = false;   // I/O space rather than memory
  bool is_64bit = false;
  bool prefetchable = false;
  uint64_t address = 0;  // raw with the flag bits cleared
};

// Decodes the raw BAR registers of `count` consecutive BARs at `offset`
// (header type 0: 6 BARs at 0x10; type 1: 2 BARs). Unimplemented BARs
// (raw 0) are included; the upper half of a 64-bit BAR is not listed.
// DATA_LOSS when the last BAR claims to be 64-bit, or when a memory BAR uses
// the reserved type 0b11.
absl::StatusOr<std::vector<Bar>> DecodeBars(absl::Span<const uint32_t> raw);

// The BARs of the function: 6 for header type 0, 2 for type 1 (bridge), none
// for type 2 (CardBus). INVALID_ARGUMENT for other header types.
absl::StatusOr<std::vector<Bar>> ParseBars(ConfigBytes config);

struct Capability {
  uint16_t id = 0;
  uint16_t offset = 0;
  uint8_t version = 0;  // extended capabilities only
};

// Walks the standard capability list (pointer at 0x34 when status bit 4 is
// set). Returns an empty list when the status bit is clear. Errors:
// INVALID_ARGUMENT when `config` is only 64 bytes and the list is non-empty;
// DATA_LOSS for a pointer below 0x40 or past the end, or a loop
// ("capability list loops at 0x48").
absl::StatusOr<std::vector<Capability>> ListCapabilities(ConfigBytes config);

// Walks the extended capability list from 0x100. An all-zero or all-ones
// header at 0x100 means "none". Errors: INVALID_ARGUMENT unless `config` is
// 4096 bytes ("config space is 256 bytes; extended capabilities need 4096");
// DATA_LOSS for a next pointer below 0x100 ("extended capability at 0x100
// points to 0x0a4 (below 0x100)"), a misaligned one, or a loop.
absl::StatusOr<std::vector<Capability>> ListExtendedCapabilities(
    ConfigBytes config);

// The SR-IOV extended capability (PCIe base spec, "SR-IOV Extended
// Capability"), as raw register values.
struct SriovCapability {
  uint16_t offset = 0;  // of the capability header in config space
  uint32_t capabilities = 0;
  uint16_t control = 0;
  uint16_t status = 0;
  uint16_t initial_vfs = 0;
  uint16_t total_vfs = 0;
  uint16_t num_vfs = 0;
  uint8_t function_dependency_link = 0;
  uint16_t first_vf_offset = 0;
  uint16_t vf_stride = 0;
  uint16_t vf_device_id = 0;
  uint32_t supported_page_sizes = 0;
  uint32_t system_page_size = 0;
  std::array<uint32_t, 6> vf_bar_raw{};

  bool vf_enable() const { return control & 0x1; }
  bool ari_capable_hierarchy() const { return control & 0x10; }
};

// Finds and decodes the SR-IOV capability. Returns nullopt when the function
// has none; errors as ListExtendedCapabilities, plus DATA_LOSS when the
// capability does not fit in config space or NumVFs exceeds TotalVFs.
absl::StatusOr<std::optional<SriovCapability>> FindSriov(ConfigBytes config);

// The routing-ID derivation of the SR-IOV spec: VF i (0-based) has routing ID
// pf.RoutingId() + first_vf_offset + i * vf_stride, in pf's domain. Returns
// `count` addresses. INVALID_ARGUMENT when count > 0 and the offset is 0, or
// count > 1 and the stride is 0; OUT_OF_RANGE when a routing ID passes
// 0xffff (the VFs would need buses past 0xff).
absl::StatusOr<std::vector<PciAddress>> VfAddresses(const PciAddress& pf,
                                                    uint16_t first_vf_offset,
                                                    uint16_t vf_stride,
                                                    uint32_t count);

}  // namespace fabric::agent::discovery

#endif  // FABRIC_AGENT_DISCOVERY_CONFIG_SPACE_H_
