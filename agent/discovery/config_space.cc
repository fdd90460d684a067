#include "agent/discovery/config_space.h"

#include <set>
#include <string>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace fabric::agent::discovery {
namespace {

constexpr size_t kStatusReg = 0x06;
constexpr uint16_t kStatusCapList = 1 << 4;
constexpr size_t kCapPtrReg = 0x34;
constexpr size_t kFirstCapOffset = 0x40;
constexpr size_t kExtCapStart = 0x100;
// No list can hold more entries than there are dwords to put them in.
constexpr int kMaxCaps = (kConfigLegacyBytes - kFirstCapOffset) / 4;
constexpr size_t kSriovCapBytes = 0x40;

uint8_t Read8(ConfigBytes c, size_t off) { return c[off]; }
uint16_t Read16(ConfigBytes c, size_t off) {
  return static_cast<uint16_t>(c[off] | c[off + 1] << 8);
}
uint32_t Read32(ConfigBytes c, size_t off) {
  return static_cast<uint32_t>(c[off]) |
         static_cast<uint32_t>(c[off + 1]) << 8 |
         static_cast<uint32_t>(c[off + 2]) << 16 |
         static_cast<uint32_t>(c[off + 3]) << 24;
}

}  // namespace

absl::Status CheckConfigSize(ConfigBytes config) {
  if (config.size() == kConfigHeaderBytes ||
      config.size() == kConfigLegacyBytes ||
      config.size() == kConfigExtendedBytes) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "config space is %d bytes; expected 64, 256 or 4096", config.size()));
}

absl::StatusOr<ConfigHeader> ParseHeader(ConfigBytes config) {
  RETURN_IF_ERROR(CheckConfigSize(config));
  ConfigHeader h;
  h.vendor_id = Read16(config, 0x00);
  h.device_id = Read16(config, 0x02);
  h.command = Read16(config, 0x04);
  h.status = Read16(config, kStatusReg);
  h.revision = Read8(config, 0x08);
  h.class_code = Read32(config, 0x08) >> 8;
  h.header_type = Read8(config, 0x0e) & 0x7f;
  h.multifunction = Read8(config, 0x0e) & 0x80;
  return h;
}

absl::StatusOr<std::vector<Bar>> DecodeBars(absl::Span<const uint32_t> raw) {
  std::vector<Bar> bars;
  for (size_t i = 0; i < raw.size(); ++i) {
    Bar b;
    b.index = static_cast<int>(i);
    b.raw = raw[i];
    if (raw[i] & 0x1) {
      b.io = true;
      b.address = raw[i] & ~uint64_t{0x3};
      bars.push_back(b);
      continue;
    }
    const uint32_t type = (raw[i] >> 1) & 0x3;
    b.prefetchable = raw[i] & 0x8;
    if (type == 0x3) {
      return absl::DataLossError(absl::StrFormat(
          "BAR%d (0x%08x) uses the reserved memory type 0b11", i, raw[i]));
    }
    if (type == 0x2) {
      if (i + 1 >= raw.size()) {
        return absl::DataLossError(absl::StrFormat(
            "BAR%d (0x%08x) is 64-bit but has no upper half", i, raw[i]));
      }
      b.is_64bit = true;
      b.raw = uint64_t{raw[i + 1]} << 32 | raw[i];
      ++i;
    }
    b.address = b.raw & ~uint64_t{0xf};
    bars.push_back(b);
  }
  return bars;
}

absl::StatusOr<std::vector<Bar>> ParseBars(ConfigBytes config) {
  ASSIGN_OR_RETURN(ConfigHeader h, ParseHeader(config));
  size_t count = 0;
  switch (h.header_type) {
    case 0:
      count = 6;
      break;
    case 1:
      count = 2;
      break;
    case 2:
      count = 0;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown header type 0x%02x at 0x0e", h.header_type));
  }
  std::vector<uint32_t> raw;
  for (size_t i = 0; i < count; ++i)
    raw.push_back(Read32(config, 0x10 + 4 * i));
  return DecodeBars(raw);
}

absl::StatusOr<std::vector<Capability>> ListCapabilities(ConfigBytes config) {
  RETURN_IF_ERROR(CheckConfigSize(config));
  std::vector<Capability> caps;
  if (!(Read16(config, kStatusReg) & kStatusCapList)) return caps;
  // CardBus bridges keep the pointer at 0x14; types 0 and 1 at 0x34.
  const size_t ptr_reg = (Read8(config, 0x0e) & 0x7f) == 2 ? 0x14 : kCapPtrReg;
  size_t at = ptr_reg;
  size_t next = Read8(config, ptr_reg) & 0xfc;  // low two bits are reserved
  if (next != 0 && config.size() < kConfigLegacyBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config space is %d bytes; the capability list at 0x%02x needs 256",
        config.size(), next));
  }
  std::set<size_t> seen;
  while (next != 0) {
    if (next < kFirstCapOffset) {
      return absl::DataLossError(absl::StrFormat(
          "capability pointer at 0x%02x points to 0x%02x (below 0x40)", at,
          next));
    }
    if (!seen.insert(next).second || static_cast<int>(seen.size()) > kMaxCaps) {
      return absl::DataLossError(
          absl::StrFormat("capability list loops at 0x%02x", next));
    }
    Capability cap;
    cap.offset = static_cast<uint16_t>(next);
    cap.id = Read8(config, next);
    caps.push_back(cap);
    at = next + 1;
    next = Read8(config, next + 1) & 0xfc;
  }
  return caps;
}

absl::StatusOr<std::vector<Capability>> ListExtendedCapabilities(
    ConfigBytes config) {
  RETURN_IF_ERROR(CheckConfigSize(config));
  if (config.size() < kConfigExtendedBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config space is %d bytes; extended capabilities need 4096",
        config.size()));
  }
  std::vector<Capability> caps;
  size_t at = kExtCapStart;
  uint32_t header = Read32(config, at);
  if (header == 0 || header == 0xffffffff) return caps;
  std::set<size_t> seen;
  constexpr int kMaxExtCaps = (kConfigExtendedBytes - kExtCapStart) / 4;
  while (true) {
    if (!seen.insert(at).second ||
        static_cast<int>(seen.size()) > kMaxExtCaps) {
      return absl::DataLossError(
          absl::StrFormat("extended capability list loops at 0x%03x", at));
    }
    Capability cap;
    cap.offset = static_cast<uint16_t>(at);
    cap.id = static_cast<uint16_t>(header & 0xffff);
    cap.version = static_cast<uint8_t>((header >> 16) & 0xf);
    caps.push_back(cap);
    const size_t next = header >> 20;
    if (next == 0) break;
    if (next < kExtCapStart) {
      return absl::DataLossError(absl::StrFormat(
          "extended capability at 0x%03x points to 0x%03x (below 0x100)", at,
          next));
    }
    if (next % 4 != 0) {
      return absl::DataLossError(absl::StrFormat(
          "extended capability at 0x%03x points to 0x%03x (not dword-aligned)",
          at, next));
    }
    at = next;
    header = Read32(config, at);
  }
  return caps;
}

absl::StatusOr<std::optional<SriovCapability>> FindSriov(ConfigBytes config) {
  ASSIGN_OR_RETURN(std::vector<Capability> caps,
                   ListExtendedCapabilities(config));
  for (const Capability& cap : caps) {
    if (cap.id != kExtCapIdSriov) continue;
    const size_t o = cap.offset;
    if (o + kSriovCapBytes > config.size()) {
      return absl::DataLossError(absl::StrFormat(
          "SR-IOV capability at 0x%03x needs 0x40 bytes; config space ends at "
          "0x%03x",
          o, config.size()));
    }
    SriovCapability s;
    s.offset = static_cast<uint16_t>(o);
    s.capabilities = Read32(config, o + 0x04);
    s.control = Read16(config, o + 0x08);
    s.status = Read16(config, o + 0x0a);
    s.initial_vfs = Read16(config, o + 0x0c);
    s.total_vfs = Read16(config, o + 0x0e);
    s.num_vfs = Read16(config, o + 0x10);
    s.function_dependency_link = Read8(config, o + 0x12);
    s.first_vf_offset = Read16(config, o + 0x14);
    s.vf_stride = Read16(config, o + 0x16);
    s.vf_device_id = Read16(config, o + 0x1a);
    s.supported_page_sizes = Read32(config, o + 0x1c);
    s.system_page_size = Read32(config, o + 0x20);
    for (size_t i = 0; i < s.vf_bar_raw.size(); ++i) {
      s.vf_bar_raw[i] = Read32(config, o + 0x24 + 4 * i);
    }
    if (s.num_vfs > s.total_vfs) {
      return absl::DataLossError(absl::StrFormat(
          "SR-IOV capability at 0x%03x: NumVFs %d exceeds TotalVFs %d", o,
          s.num_vfs, s.total_vfs));
    }
    return s;
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<PciAddress>> VfAddresses(const PciAddress& pf,
                                                    uint16_t first_vf_offset,
                                                    uint16_t vf_stride,
                                                    uint32_t count) {
  std::vector<PciAddress> vfs;
  if (count == 0) return vfs;
  if (first_vf_offset == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "PF %s: First VF Offset is 0 with %d VFs", pf.ToString(), count));
  }
  if (count > 1 && vf_stride == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "PF %s: VF Stride is 0 with %d VFs", pf.ToString(), count));
  }
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t rid =
        uint64_t{pf.RoutingId()} + first_vf_offset + uint64_t{i} * vf_stride;
    if (rid > 0xffff) {
      return absl::OutOfRangeError(absl::StrFormat(
          "PF %s: VF %d has routing ID 0x%x, past 0xffff (offset 0x%x, "
          "stride %d)",
          pf.ToString(), i, rid, first_vf_offset, vf_stride));
    }
    vfs.push_back(
        PciAddress::FromRoutingId(pf.domain, static_cast<uint16_t>(rid)));
  }
  return vfs;
}

}  // namespace fabric::agent::discovery
