// Fuzzes the config-space decoders (agent/discovery/config_space.h): the
// header, BARs, the standard and extended capability walkers, SR-IOV and
// the VF addresses it implies.
//
// Input: byte 0 picks the buffer size (0: 64, 1: 256, 2: 4096 bytes, 3: the
// rest of the input as it is, any size); the rest of the input fills the
// buffer from offset 0 (zero padded, or cut). Properties, besides no crash
// and no sanitizer finding:
//  - Each decoder fails only with the codes its contract names.
//  - Capability lists: entries inside their space (standard ones at 0x40 or
//    above, extended ones dword-aligned from 0x100), no offset twice, the
//    pointer chain as the bytes say.
//  - BARs: indices ascending below the register count, a 64-bit BAR taking
//    two registers, the flag bits cleared from the address.
//  - FindSriov finds the first SR-IOV capability of the extended list and
//    decodes its registers; VfAddresses gives NumVFs routing IDs spaced by
//    the stride.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "agent/discovery/config_space.h"
#include "agent/discovery/pci_address.h"
#include "tests/fuzz/fuzz_check.h"

namespace fabric::fuzz {
namespace {

namespace discovery = ::fabric::agent::discovery;
using absl::StatusCode;

uint16_t Get16(const std::vector<uint8_t>& c, size_t off) {
  return static_cast<uint16_t>(c[off] | c[off + 1] << 8);
}
uint32_t Get32(const std::vector<uint8_t>& c, size_t off) {
  return Get16(c, off) | static_cast<uint32_t>(Get16(c, off + 2)) << 16;
}

bool SizeOk(const std::vector<uint8_t>& c) {
  return c.size() == 64 || c.size() == 256 || c.size() == 4096;
}

void CheckHeaderAndBars(const std::vector<uint8_t>& c) {
  absl::StatusOr<discovery::ConfigHeader> h = discovery::ParseHeader(c);
  FUZZ_CHECK(h.ok() == SizeOk(c), "ParseHeader: ", h.status().ToString());
  if (!h.ok()) {
    FUZZ_CHECK(h.status().code() == StatusCode::kInvalidArgument,
               h.status().ToString());
    return;
  }
  FUZZ_CHECK(h->vendor_id == Get16(c, 0) && h->device_id == Get16(c, 2) &&
                 h->class_code == Get32(c, 8) >> 8 &&
                 h->header_type == (c[0x0e] & 0x7f),
             "header fields");
  absl::StatusOr<std::vector<discovery::Bar>> bars = discovery::ParseBars(c);
  if (!bars.ok()) {
    FUZZ_CHECK(bars.status().code() == StatusCode::kInvalidArgument ||
                   bars.status().code() == StatusCode::kDataLoss,
               bars.status().ToString());
    return;
  }
  const int registers = h->header_type == 0 ? 6 : h->header_type == 1 ? 2 : 0;
  FUZZ_CHECK(h->header_type <= 2, "BARs of header type ",
             static_cast<int>(h->header_type));
  int next = 0;
  for (const discovery::Bar& b : *bars) {
    FUZZ_CHECK(b.index == next, "BAR index ", b.index, ", expected ", next);
    next = b.index + (b.is_64bit ? 2 : 1);
    FUZZ_CHECK(next <= registers, "BAR", b.index, " past the registers");
    FUZZ_CHECK(!(b.io && b.is_64bit), "a 64-bit I/O BAR");
    FUZZ_CHECK((b.address & (b.io ? 0x3 : 0xf)) == 0,
               "flag bits left in the address of BAR", b.index);
    const uint32_t low = Get32(c, 0x10 + 4 * b.index);
    FUZZ_CHECK(static_cast<uint32_t>(b.raw) == low, "BAR", b.index, " raw");
  }
  FUZZ_CHECK(next == registers, "BARs cover ", next, " of ", registers,
             " registers");
}

std::optional<std::vector<discovery::Capability>> CheckStandardCaps(
    const std::vector<uint8_t>& c) {
  absl::StatusOr<std::vector<discovery::Capability>> caps =
      discovery::ListCapabilities(c);
  if (!caps.ok()) {
    FUZZ_CHECK(caps.status().code() == StatusCode::kInvalidArgument ||
                   caps.status().code() == StatusCode::kDataLoss,
               caps.status().ToString());
    return std::nullopt;
  }
  FUZZ_CHECK(SizeOk(c), "listed capabilities of a ", c.size(), "-byte space");
  if (!(Get16(c, 6) & 0x10)) {
    FUZZ_CHECK(caps->empty(), "capabilities without the status bit");
    return *std::move(caps);
  }
  std::set<int> seen;
  const size_t ptr_reg = (c[0x0e] & 0x7f) == 2 ? 0x14 : 0x34;
  size_t expected = c[ptr_reg] & 0xfc;
  for (const discovery::Capability& cap : *caps) {
    FUZZ_CHECK(cap.offset == expected, "capability at ", cap.offset,
               ", the chain points to ", expected);
    FUZZ_CHECK(cap.offset >= 0x40 && cap.offset + 1 < c.size(),
               "capability offset ", cap.offset);
    FUZZ_CHECK(seen.insert(cap.offset).second, "capability ", cap.offset,
               " twice");
    FUZZ_CHECK(cap.id == c[cap.offset], "capability id");
    expected = c[cap.offset + 1] & 0xfc;
  }
  FUZZ_CHECK(expected == 0, "list stops at ", expected, " before its end");
  return *std::move(caps);
}

void CheckExtendedCaps(const std::vector<uint8_t>& c) {
  absl::StatusOr<std::vector<discovery::Capability>> caps =
      discovery::ListExtendedCapabilities(c);
  if (!caps.ok()) {
    FUZZ_CHECK(caps.status().code() == StatusCode::kInvalidArgument ||
                   caps.status().code() == StatusCode::kDataLoss,
               caps.status().ToString());
    FUZZ_CHECK(caps.status().code() == StatusCode::kInvalidArgument ||
                   c.size() == 4096,
               "DATA_LOSS for a ", c.size(), "-byte space");
  } else {
    FUZZ_CHECK(c.size() == 4096, "extended capabilities of a ", c.size(),
               "-byte space");
    std::set<int> seen;
    size_t expected = 0x100;
    for (const discovery::Capability& cap : *caps) {
      FUZZ_CHECK(cap.offset == expected, "extended capability at ", cap.offset,
                 ", the chain points to ", expected);
      FUZZ_CHECK(cap.offset >= 0x100 && cap.offset % 4 == 0 &&
                     cap.offset + 4 <= c.size(),
                 "extended capability offset ", cap.offset);
      FUZZ_CHECK(seen.insert(cap.offset).second, "extended capability ",
                 cap.offset, " twice");
      const uint32_t header = Get32(c, cap.offset);
      FUZZ_CHECK(
          cap.id == (header & 0xffff) && cap.version == ((header >> 16) & 0xf),
          "extended capability header");
      expected = header >> 20;
    }
    FUZZ_CHECK(expected == 0 || caps->empty(), "list stops early");
  }

  absl::StatusOr<std::optional<discovery::SriovCapability>> sriov =
      discovery::FindSriov(c);
  if (!sriov.ok()) {
    FUZZ_CHECK(sriov.status().code() == StatusCode::kInvalidArgument ||
                   sriov.status().code() == StatusCode::kDataLoss,
               sriov.status().ToString());
    return;
  }
  FUZZ_CHECK(caps.ok(), "FindSriov succeeded where the list did not");
  const discovery::Capability* first = nullptr;
  for (const discovery::Capability& cap : *caps) {
    if (cap.id == discovery::kExtCapIdSriov) {
      first = &cap;
      break;
    }
  }
  FUZZ_CHECK(sriov->has_value() == (first != nullptr), "SR-IOV found ",
             sriov->has_value(), ", listed ", first != nullptr);
  if (first == nullptr) return;
  const discovery::SriovCapability& s = **sriov;
  FUZZ_CHECK(s.offset == first->offset && s.offset + 0x40 <= c.size(),
             "SR-IOV offset ", s.offset);
  FUZZ_CHECK(s.total_vfs == Get16(c, s.offset + 0x0e) &&
                 s.num_vfs == Get16(c, s.offset + 0x10) &&
                 s.first_vf_offset == Get16(c, s.offset + 0x14) &&
                 s.vf_stride == Get16(c, s.offset + 0x16) &&
                 s.vf_bar_raw[5] == Get32(c, s.offset + 0x38),
             "SR-IOV registers");
  FUZZ_CHECK(s.num_vfs <= s.total_vfs, "NumVFs above TotalVFs");

  discovery::PciAddress pf =
      discovery::PciAddress::FromRoutingId(Get16(c, 0x2c), Get16(c, 0x2e));
  absl::StatusOr<std::vector<discovery::PciAddress>> vfs =
      discovery::VfAddresses(pf, s.first_vf_offset, s.vf_stride, s.num_vfs);
  if (!vfs.ok()) {
    FUZZ_CHECK(vfs.status().code() == StatusCode::kInvalidArgument ||
                   vfs.status().code() == StatusCode::kOutOfRange,
               vfs.status().ToString());
    return;
  }
  FUZZ_CHECK(vfs->size() == s.num_vfs, "VF count");
  for (size_t i = 0; i < vfs->size(); ++i) {
    const discovery::PciAddress& vf = (*vfs)[i];
    FUZZ_CHECK(vf.domain == pf.domain && vf.device < 32 && vf.function < 8,
               "VF ", i, " address ", vf.ToString());
    FUZZ_CHECK(
        vf.RoutingId() == pf.RoutingId() + s.first_vf_offset + i * s.vf_stride,
        "VF ", i, " routing id");
  }
}

}  // namespace
}  // namespace fabric::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fabric::fuzz;  // NOLINT(build/namespaces): entry point
  if (size == 0) return 0;
  static constexpr size_t kSizes[] = {64, 256, 4096};
  const size_t bytes = data[0] % 4 < 3 ? kSizes[data[0] % 4] : size - 1;
  std::vector<uint8_t> config(bytes, 0);
  if (bytes > 0)
    std::memcpy(config.data(), data + 1, std::min(bytes, size - 1));

  const absl::Status size_ok = discovery::CheckConfigSize(config);
  FUZZ_CHECK(size_ok.ok() == SizeOk(config), size_ok.ToString());
  if (!SizeOk(config)) {
    // Every decoder must refuse an unusable size, never read past it.
    FUZZ_CHECK(!discovery::ParseHeader(config).ok(), "ParseHeader");
    FUZZ_CHECK(!discovery::ListCapabilities(config).ok(), "ListCapabilities");
    FUZZ_CHECK(!discovery::ListExtendedCapabilities(config).ok(),
               "ListExtendedCapabilities");
    FUZZ_CHECK(!discovery::FindSriov(config).ok(), "FindSriov");
    return 0;
  }
  CheckHeaderAndBars(config);
  CheckStandardCaps(config);
  CheckExtendedCaps(config);
  return 0;
}
