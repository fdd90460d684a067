#include "agent/vf/msix_layout.h"

#include "absl/status/status.h"
#include "agent/discovery/config_space.h"
#include "common/status_macros.h"

namespace fabric::agent::vf {
namespace {

uint32_t Get32(absl::Span<const uint8_t> c, int off) {
  return static_cast<uint32_t>(c[off]) | static_cast<uint32_t>(c[off + 1]) << 8 |
         static_cast<uint32_t>(c[off + 2]) << 16 |
         static_cast<uint32_t>(c[off + 3]) << 24;
}

}  // namespace

std::array<uint8_t, kMsixEntryBytes> EncodeMsixEntry(const MsixEntry& e) {
  std::array<uint8_t, kMsixEntryBytes> bytes{};
  for (int field = 0; field < kMsixEntryBytes; field += 4) {
    const uint32_t v = MsixEntryDword(e, field);
    for (int i = 0; i < 4; ++i) {
      bytes[field + i] = static_cast<uint8_t>(v >> (8 * i));
    }
  }
  return bytes;
}

uint32_t MsixEntryDword(const MsixEntry& e, int field) {
  switch (field) {
    case kMsixAddrLo:
      return static_cast<uint32_t>(e.address);
    case kMsixAddrHi:
      return static_cast<uint32_t>(e.address >> 32);
    case kMsixData:
      return e.data;
    default:
      return e.masked ? kMsixVectorMasked : 0u;
  }
}

absl::StatusOr<MsixTable> FindMsixTable(absl::Span<const uint8_t> config) {
  ASSIGN_OR_RETURN(std::vector<discovery::Capability> caps,
                   discovery::ListCapabilities(config));
  for (const discovery::Capability& c : caps) {
    if (c.id != kMsixCapId) continue;
    if (c.offset + kMsixCapBytes > static_cast<int>(config.size())) break;
    MsixTable t;
    t.cap = c.offset;
    t.vectors = MsixVectors(static_cast<uint16_t>(
        config[c.offset + kMsixControl] |
        config[c.offset + kMsixControl + 1] << 8));
    const uint32_t table = Get32(config, c.offset + kMsixTableReg);
    t.bir = static_cast<int>(table & kMsixBirMask);
    t.offset = table & ~kMsixBirMask;
    return t;
  }
  return absl::NotFoundError("the function has no MSI-X capability");
}

}  // namespace fabric::agent::vf
