#include "agent/vf/config_virtualizer.h"

#include <algorithm>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/discovery/config_space.h"
#include "common/status_macros.h"

namespace fabric::agent::vf {
namespace {

namespace discovery = ::fabric::agent::discovery;

constexpr int kConfigSpaceBytes = 4096;
constexpr int kLegacyBytes = 256;
constexpr uint8_t kCapIdPcie = 0x10;

// Command register.
constexpr uint16_t kCmdMemory = 1 << 1;
constexpr uint16_t kCmdBusMaster = 1 << 2;
constexpr uint16_t kCmdIntxDisable = 1 << 10;
constexpr uint16_t kCmdForwarded = kCmdMemory | kCmdBusMaster;
// Writable bits 0-9 other than the forwarded ones; 11-15 are reserved.
constexpr uint16_t kCmdEmulated = 0x03ff & ~kCmdForwarded;
// Status register bits that are RW1C (parity, aborts, SERR#).
constexpr uint16_t kStatusRw1c = 0xf900;
// MSI-X Message Control: Enable and Function Mask.
constexpr uint16_t kMsixCtlForwarded = kMsixEnable | kMsixFunctionMask;
// PCIe Device Control: Initiate Function Level Reset.
constexpr uint16_t kDevCtlFlr = 1 << 15;

uint16_t Get16(absl::Span<const uint8_t> c, int off) {
  return static_cast<uint16_t>(c[off] | c[off + 1] << 8);
}
uint32_t Get32(absl::Span<const uint8_t> c, int off) {
  return static_cast<uint32_t>(Get16(c, off)) |
         static_cast<uint32_t>(Get16(c, off + 2)) << 16;
}

uint32_t ByteMask(int size) {
  return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

absl::Status CheckAccess(const char* what, int offset, int size, int limit) {
  if (size != 1 && size != 2 && size != 4) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s access of size %d at offset 0x%x: size must be 1, 2 or 4", what,
        size, offset));
  }
  if (offset < 0 || offset + size > limit) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s access of size %d at offset 0x%x: offset must be in [0, 0x%x)",
        what, size, offset, limit));
  }
  if (offset % size != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s access of size %d at offset 0x%x is not naturally aligned", what,
        size, offset));
  }
  return absl::OkStatus();
}

absl::Status CheckBars(const std::vector<VirtualBar>& bars) {
  std::array<bool, 6> taken{};
  for (const VirtualBar& b : bars) {
    if (b.index < 0 || b.index > 5 || (b.is64 && b.index == 5)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bar%d: index must be 0-5 (0-4 for a 64-bit bar)", b.index));
    }
    if (b.size < 16 || (b.size & (b.size - 1)) != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bar%d: size 0x%x is not a power of two of at least 16", b.index,
          b.size));
    }
    if (!b.is64 && b.size > (uint64_t{1} << 31)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bar%d: a 32-bit bar cannot be 0x%x bytes", b.index, b.size));
    }
    if ((b.borrower_base & (b.size - 1)) != 0 ||
        (!b.is64 && b.borrower_base > 0xffffffffu)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bar%d: base 0x%x is not size-aligned or does not fit the bar",
          b.index, b.borrower_base));
    }
    for (int r = b.index; r <= b.index + (b.is64 ? 1 : 0); ++r) {
      if (taken[r]) {
        return absl::InvalidArgumentError(
            absl::StrFormat("bar%d: register %d is already taken", b.index, r));
      }
      taken[r] = true;
    }
  }
  return absl::OkStatus();
}

}  // namespace

ConfigVirtualizer::ConfigVirtualizer(RealAccess real,
                                     ConfigVirtualizerOptions options,
                                     uint16_t snapshot_command)
    : real_(std::move(real)),
      options_(std::move(options)),
      snapshot_command_(snapshot_command) {
  field_at_.fill(-1);
  real_mask_.fill(0xff);
  bar_of_register_.fill(-1);
}

absl::string_view ConfigVirtualizer::RuleAt(int offset) const {
  if (offset < 0 || offset >= kConfigSpaceBytes) return "invalid";
  if (field_at_[offset] < 0) return "protected";
  switch (fields_[field_at_[offset]].kind) {
    case FieldKind::kVendorId:
      return "vendor_id";
    case FieldKind::kDeviceId:
      return "device_id";
    case FieldKind::kReadOnly:
      return "read_only";
    case FieldKind::kCommand:
      return "command";
    case FieldKind::kStatus:
      return "status";
    case FieldKind::kBar:
      return "bar";
    case FieldKind::kRom:
      return "rom";
    case FieldKind::kInterruptLine:
      return "interrupt_line";
    case FieldKind::kMsixControl:
      return "msix_control";
    case FieldKind::kDeviceControl:
      return "device_control";
    case FieldKind::kLink:
      return "link";
    case FieldKind::kReadOnlyRegion:
      return "read_only_region";
    case FieldKind::kProtectedRegion:
      return "protected";
  }
  return "protected";
}

const std::vector<std::string>& ConfigVirtualizer::RuleNames() {
  static const auto* names =
      new std::vector<std::string>{"vendor_id",    "device_id",
                                   "read_only",    "command",
                                   "status",       "bar",
                                   "rom",          "interrupt_line",
                                   "msix_control", "device_control",
                                   "link",         "read_only_region",
                                   "protected",    "invalid",
                                   kMsixTableRule};
  return *names;
}

void ConfigVirtualizer::AddField(Field field) {
  const int end = std::min(field.offset + field.size, kConfigSpaceBytes);
  const auto index = static_cast<int16_t>(fields_.size());
  for (int b = field.offset; b < end; ++b) field_at_[b] = index;
  fields_.push_back(std::move(field));
}

absl::StatusOr<std::unique_ptr<ConfigVirtualizer>> ConfigVirtualizer::Create(
    absl::Span<const uint8_t> real_config, std::vector<VirtualBar> bars,
    RealAccess real, ConfigVirtualizerOptions options) {
  if (real_config.size() != kLegacyBytes &&
      real_config.size() != kConfigSpaceBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config snapshot is %d bytes; expected 256 or 4096",
                        real_config.size()));
  }
  if (!real.read || !real.write) {
    return absl::InvalidArgumentError("RealAccess needs read and write");
  }
  if (options.vendor_id == 0 || options.vendor_id == 0xffff) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vendor id 0x%04x is not a valid PF vendor", options.vendor_id));
  }
  ASSIGN_OR_RETURN(discovery::ConfigHeader header,
                   discovery::ParseHeader(real_config));
  if (header.header_type != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "header type %d is not an endpoint (type 0)", header.header_type));
  }
  ASSIGN_OR_RETURN(std::vector<discovery::Capability> caps,
                   discovery::ListCapabilities(real_config));
  std::vector<discovery::Capability> ext_caps;
  if (real_config.size() == kConfigSpaceBytes) {
    ASSIGN_OR_RETURN(ext_caps,
                     discovery::ListExtendedCapabilities(real_config));
  }
  RETURN_IF_ERROR(CheckBars(bars));

  const bool has_msix = std::any_of(
      caps.begin(), caps.end(),
      [](const discovery::Capability& c) { return c.id == kMsixCapId; });
  if (has_msix && (!real.write_msix_entry || !options.translate_msi_address)) {
    return absl::InvalidArgumentError(
        "the VF has MSI-X: RealAccess::write_msix_entry and "
        "translate_msi_address are required");
  }

  auto v = absl::WrapUnique(new ConfigVirtualizer(
      std::move(real), std::move(options), header.command));
  absl::MutexLock lock(&v->mu_);
  for (const VirtualBar& b : bars) {
    const int i = static_cast<int>(v->bars_.size());
    v->bars_.push_back(BarState{b});
    v->bar_of_register_[b.index] = i;
    if (b.is64) {
      v->bar_of_register_[b.index + 1] = i;
      v->register_is_high_[b.index + 1] = true;
    }
  }

  // Regions first, so that the registers added later take their bytes.
  auto add_regions = [&](const std::vector<discovery::Capability>& list,
                         int end, const char* kind, int digits) {
    std::vector<int> starts;
    for (const auto& c : list) starts.push_back(c.offset);
    std::sort(starts.begin(), starts.end());
    for (const auto& c : list) {
      auto next = std::upper_bound(starts.begin(), starts.end(), c.offset);
      const int stop = next == starts.end() ? end : *next;
      v->AddField({c.offset, stop - c.offset, FieldKind::kProtectedRegion, 0,
                   absl::StrCat(kind, " 0x",
                                absl::Hex(c.id, digits == 4
                                                    ? absl::kZeroPad4
                                                    : absl::kZeroPad2))});
    }
  };
  add_regions(caps, kLegacyBytes, "capability", 2);
  add_regions(ext_caps, kConfigSpaceBytes, "extended capability", 4);

  for (const discovery::Capability& c : caps) {
    const int at = c.offset;
    if (c.id == kMsixCapId) {
      if (at + kMsixCapBytes > kLegacyBytes) {
        return absl::DataLossError(
            absl::StrFormat("msi-x capability at 0x%02x runs past 0x100", at));
      }
      v->AddField({at, kMsixCapBytes, FieldKind::kReadOnlyRegion, 0,
                   "msi-x capability"});
      v->AddField({at + kMsixControl, 2, FieldKind::kMsixControl, 0,
                   "msi-x control"});
      v->AddField({at + kMsixTableReg, 4, FieldKind::kReadOnly, 0,
                   "msi-x table offset/bir"});
      v->AddField({at + kMsixPbaReg, 4, FieldKind::kReadOnly, 0,
                   "msi-x pba offset/bir"});
      v->msix_vectors_ = MsixVectors(Get16(real_config, at + kMsixControl));
      const uint32_t table = Get32(real_config, at + kMsixTableReg);
      v->msix_table_bir_ = static_cast<int>(table & kMsixBirMask);
      v->msix_table_offset_ = table & ~kMsixBirMask;
      const int bir = v->msix_table_bir_;
      if (bir > 5 || v->bar_of_register_[bir] < 0 ||
          v->register_is_high_[bir]) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "msi-x table is in bar%d, which has no VirtualBar", bir));
      }
      const uint64_t table_end =
          uint64_t{v->msix_table_offset_} +
          MsixTableBytes(static_cast<uint32_t>(v->msix_vectors_));
      if (table_end > v->bars_[v->bar_of_register_[bir]].bar.size) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "msi-x table (%d vectors at 0x%x) does not fit in bar%d",
            v->msix_vectors_, v->msix_table_offset_, bir));
      }
      v->msix_shadow_.assign(v->msix_vectors_, MsixEntry{});
      v->msix_real_.assign(v->msix_vectors_, MsixEntry{});
    } else if (c.id == kCapIdPcie) {
      if (at + 0x14 > kLegacyBytes) {
        return absl::DataLossError(absl::StrFormat(
            "pci express capability at 0x%02x runs past 0x100", at));
      }
      const int version = Get16(real_config, at + 2) & 0xf;
      const int length =
          std::min(version >= 2 ? 0x3c : 0x24, kLegacyBytes - at);
      v->AddField(
          {at, length, FieldKind::kReadOnlyRegion, 0, "pcie capability"});
      v->AddField(
          {at + 0x08, 2, FieldKind::kDeviceControl, 0, "pcie device control"});
      v->AddField({at + 0x10, 2, FieldKind::kLink, 0, "link control"});
      v->AddField({at + 0x12, 2, FieldKind::kLink, 0, "link status"});
    }
  }

  // The type 0 header.
  v->AddField({0x00, 2, FieldKind::kVendorId, 0, "vendor id"});
  v->AddField({0x02, 2, FieldKind::kDeviceId, 0, "device id"});
  v->AddField({0x04, 2, FieldKind::kCommand, 0, "command"});
  v->AddField({0x06, 2, FieldKind::kStatus, 0, "status"});
  v->AddField({0x08, 1, FieldKind::kReadOnly, 0, "revision id"});
  v->AddField({0x09, 3, FieldKind::kReadOnly, 0, "class code"});
  v->AddField({0x0e, 1, FieldKind::kReadOnly, 0, "header type"});
  for (int r = 0; r < 6; ++r) {
    v->AddField(
        {0x10 + 4 * r, 4, FieldKind::kBar, r, absl::StrFormat("bar%d", r)});
  }
  v->AddField({0x2c, 2, FieldKind::kReadOnly, 0, "subsystem vendor id"});
  v->AddField({0x2e, 2, FieldKind::kReadOnly, 0, "subsystem id"});
  v->AddField({0x30, 4, FieldKind::kRom, 0, "expansion rom"});
  v->AddField({0x34, 1, FieldKind::kReadOnly, 0, "capabilities pointer"});
  v->AddField({0x3c, 1, FieldKind::kInterruptLine, 0, "interrupt line"});
  v->AddField({0x3d, 1, FieldKind::kReadOnly, 0, "interrupt pin"});

  // Which bits of each byte come from the real VF.
  for (int b = 0; b < kConfigSpaceBytes; ++b) {
    if (v->field_at_[b] < 0) continue;
    switch (v->fields_[v->field_at_[b]].kind) {
      case FieldKind::kVendorId:
      case FieldKind::kDeviceId:
      case FieldKind::kBar:
      case FieldKind::kRom:
      case FieldKind::kInterruptLine:
        v->real_mask_[b] = 0;
        break;
      default:
        break;
    }
  }
  v->real_mask_[0x04] = kCmdForwarded & 0xff;
  v->real_mask_[0x05] = kCmdForwarded >> 8;
  return v;
}

uint32_t ConfigVirtualizer::BarRegisterValue(int reg) const {
  if (bar_of_register_[reg] < 0) return 0;
  const BarState& s = bars_[bar_of_register_[reg]];
  const uint64_t size_mask = ~(s.bar.size - 1);
  if (register_is_high_[reg]) {
    return static_cast<uint32_t>(
        (s.sizing_high ? size_mask : s.bar.borrower_base) >> 32);
  }
  const uint32_t type =
      (s.bar.is64 ? 0x4u : 0u) | (s.bar.prefetchable ? 0x8u : 0u);
  const auto low =
      static_cast<uint32_t>(s.sizing_low ? size_mask : s.bar.borrower_base);
  return (low & ~uint32_t{0xf}) | type;
}

uint32_t ConfigVirtualizer::VirtualFieldValue(const Field& f) const {
  switch (f.kind) {
    case FieldKind::kVendorId:
      return options_.vendor_id;
    case FieldKind::kDeviceId:
      return options_.device_id;
    case FieldKind::kCommand:
      return emulated_command_ | kCmdIntxDisable;
    case FieldKind::kBar:
      return BarRegisterValue(f.bar_register);
    case FieldKind::kInterruptLine:
      return interrupt_line_;
    default:
      return 0;  // kRom, and fields read entirely from the VF
  }
}

absl::StatusOr<uint32_t> ConfigVirtualizer::Read(int offset, int size) {
  RETURN_IF_ERROR(CheckAccess("config", offset, size, kConfigSpaceBytes));
  absl::MutexLock lock(&mu_);
  bool need_real = false;
  for (int i = 0; i < size; ++i) need_real |= real_mask_[offset + i] != 0;
  uint32_t real_value = 0;
  if (need_real) {
    ASSIGN_OR_RETURN(real_value, real_.read(offset, size));
  }
  uint32_t out = 0;
  for (int i = 0; i < size; ++i) {
    const int b = offset + i;
    const uint8_t mask = real_mask_[b];
    uint8_t virt = 0;
    if (mask != 0xff) {
      const Field& f = fields_[field_at_[b]];
      virt = static_cast<uint8_t>(VirtualFieldValue(f) >> (8 * (b - f.offset)));
    }
    const auto real_byte = static_cast<uint8_t>(real_value >> (8 * i));
    out |= static_cast<uint32_t>((real_byte & mask) | (virt & ~mask))
           << (8 * i);
  }
  ++counters_.reads;
  return out;
}

absl::StatusOr<WriteResult> ConfigVirtualizer::Write(int offset, int size,
                                                     uint32_t value) {
  RETURN_IF_ERROR(CheckAccess("config", offset, size, kConfigSpaceBytes));
  bool flr = false;
  absl::StatusOr<WriteResult> result = WriteResult{};
  {
    absl::MutexLock lock(&mu_);
    std::vector<Part> parts;
    int b = offset;
    while (b < offset + size) {
      const int field = field_at_[b];
      int e = b + 1;
      while (e < offset + size && field_at_[e] == field) ++e;
      const uint32_t part_value =
          (value >> (8 * (b - offset))) & ByteMask(e - b);
      absl::StatusOr<Part> p = WritePart(field, b, e - b, part_value, &flr);
      if (!p.ok()) {
        result = p.status();
        break;
      }
      parts.push_back(*std::move(p));
      b = e;
    }
    if (result.ok()) result = Record(parts);
  }
  // Also when a later part failed: the reset of the shadow has happened,
  // so the owner must reset the real VF.
  if (flr && options_.on_flr) options_.on_flr();
  return result;
}

absl::StatusOr<ConfigVirtualizer::Part> ConfigVirtualizer::WritePart(
    int field, int offset, int size, uint32_t value, bool* flr) {
  if (field < 0) {
    return Part{WriteOutcome::kDropped,
                absl::StrFormat("config offset 0x%03x is protected", offset)};
  }
  const Field& f = fields_[field];
  // Register fields are at most a dword; regions (which ignore the value)
  // can be longer, and shifting by 32 or more would be undefined.
  const int shift = f.size <= 4 ? 8 * (offset - f.offset) : 0;
  const uint32_t in_field = ByteMask(size) << shift;  // bytes written
  const uint32_t v = value << shift;                  // value in field place
  switch (f.kind) {
    case FieldKind::kVendorId:
    case FieldKind::kDeviceId:
    case FieldKind::kReadOnly:
      return Part{WriteOutcome::kDropped, f.name + " is read-only"};
    case FieldKind::kReadOnlyRegion:
      return Part{
          WriteOutcome::kDropped,
          absl::StrFormat("%s offset 0x%03x is read-only", f.name, offset)};
    case FieldKind::kProtectedRegion:
      return Part{
          WriteOutcome::kDropped,
          absl::StrFormat("%s offset 0x%03x is protected", f.name, offset)};
    case FieldKind::kLink:
      return Part{WriteOutcome::kDropped, "a VF cannot change the PF's link"};
    case FieldKind::kCommand: {
      emulated_command_ = static_cast<uint16_t>(
          (emulated_command_ & ~in_field) | (v & in_field & kCmdEmulated));
      if ((in_field & kCmdForwarded) == 0) {
        return Part{WriteOutcome::kEmulated,
                    "command bits other than memory space and bus master "
                    "enable are emulated"};
      }
      const uint32_t real_cmd = (snapshot_command_ & ~kCmdForwarded) |
                                kCmdIntxDisable | (v & kCmdForwarded);
      RETURN_IF_ERROR(
          real_.write(offset, size, (real_cmd & in_field) >> shift));
      return Part{WriteOutcome::kForwarded, ""};
    }
    case FieldKind::kStatus:
      RETURN_IF_ERROR(
          real_.write(offset, size, (v & in_field & kStatusRw1c) >> shift));
      return Part{WriteOutcome::kForwarded, ""};
    case FieldKind::kBar:
      return WriteBar(f, offset, size, value);
    case FieldKind::kRom:
      return Part{WriteOutcome::kEmulated, "expansion rom is not implemented"};
    case FieldKind::kInterruptLine:
      interrupt_line_ = static_cast<uint8_t>(value);
      return Part{WriteOutcome::kEmulated, "interrupt line is emulated"};
    case FieldKind::kMsixControl:
      if ((in_field & kMsixCtlForwarded) == 0) {
        return Part{WriteOutcome::kDropped, "msi-x table size is read-only"};
      }
      RETURN_IF_ERROR(real_.write(offset, size,
                                  (v & in_field & kMsixCtlForwarded) >> shift));
      return Part{WriteOutcome::kForwarded, ""};
    case FieldKind::kDeviceControl: {
      // The rest of the register first: when the VF refuses it, no reset
      // is requested either (the shadow must not reset unless on_flr runs).
      RETURN_IF_ERROR(
          real_.write(offset, size, (v & in_field & ~kDevCtlFlr) >> shift));
      if ((v & in_field & kDevCtlFlr) == 0) {
        return Part{WriteOutcome::kForwarded, ""};
      }
      *flr = true;
      ++counters_.flr_requests;
      ResetEmulatedState();
      return Part{WriteOutcome::kForwarded,
                  "function level reset emulated as a VF reset request"};
    }
  }
  return Part{WriteOutcome::kDropped, "unhandled register"};  // unreachable
}

absl::StatusOr<ConfigVirtualizer::Part> ConfigVirtualizer::WriteBar(
    const Field& f, int offset, int size, uint32_t value) {
  const int reg = f.bar_register;
  if (bar_of_register_[reg] < 0) {
    return Part{WriteOutcome::kEmulated,
                absl::StrFormat("bar%d is not implemented", reg)};
  }
  BarState& s = bars_[bar_of_register_[reg]];
  const int shift = 8 * (offset - f.offset);
  const uint32_t in_field = ByteMask(size) << shift;
  const uint32_t merged =
      (BarRegisterValue(reg) & ~in_field) | ((value << shift) & in_field);
  const uint64_t size_mask = ~(s.bar.size - 1);
  const int index = s.bar.index;
  if (register_is_high_[reg]) {
    s.sizing_high = merged == 0xffffffffu;
    if (!s.sizing_high) {
      const uint64_t high = merged & static_cast<uint32_t>(size_mask >> 32);
      s.bar.borrower_base = (s.bar.borrower_base & 0xffffffffu) | (high << 32);
    }
  } else {
    s.sizing_low = (merged | 0xfu) == 0xffffffffu;
    if (!s.sizing_low) {
      const uint64_t low =
          merged & static_cast<uint32_t>(size_mask) & ~uint32_t{0xf};
      s.bar.borrower_base = (s.bar.borrower_base & ~uint64_t{0xffffffff}) | low;
    }
  }
  if (s.sizing_low || s.sizing_high) {
    return Part{WriteOutcome::kEmulated,
                absl::StrFormat("bar%d sizing is emulated", index)};
  }
  return Part{WriteOutcome::kEmulated,
              absl::StrFormat("bar%d is virtualized; the real VF keeps its "
                              "fabric address",
                              index)};
}

void ConfigVirtualizer::ResetEmulatedState() {
  emulated_command_ = 0;
  for (BarState& s : bars_) s.sizing_low = s.sizing_high = false;
  // The reset masks every vector of the real VF as well.
  for (MsixEntry& e : msix_shadow_) e = MsixEntry{};
  for (MsixEntry& e : msix_real_) e.masked = true;
}

WriteResult ConfigVirtualizer::Record(const std::vector<Part>& parts) {
  bool forwarded = false;
  bool emulated = false;
  std::vector<std::string> reasons;
  for (const Part& p : parts) {
    forwarded |= p.outcome == WriteOutcome::kForwarded;
    emulated |= p.outcome == WriteOutcome::kEmulated;
    if (p.outcome == WriteOutcome::kDropped) {
      ++counters_.dropped_by_reason[p.reason];
    }
    if (!p.reason.empty()) reasons.push_back(p.reason);
  }
  WriteResult r;
  if (forwarded) {
    r.outcome = WriteOutcome::kForwarded;
    ++counters_.writes_forwarded;
  } else if (emulated) {
    r.outcome = WriteOutcome::kEmulated;
    ++counters_.writes_emulated;
  } else {
    r.outcome = WriteOutcome::kDropped;
    ++counters_.writes_dropped;
  }
  r.reason = absl::StrJoin(reasons, "; ");
  return r;
}

absl::StatusOr<uint32_t> ConfigVirtualizer::ReadMsixTable(int offset,
                                                          int size) {
  if (msix_vectors_ == 0) {
    return absl::FailedPreconditionError("the VF has no MSI-X capability");
  }
  if (size != 4) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "msi-x table access of size %d at offset 0x%x: dword only", size,
        offset));
  }
  RETURN_IF_ERROR(CheckAccess("msi-x table", offset, size,
                              msix_vectors_ * kMsixEntryBytes));
  absl::MutexLock lock(&mu_);
  ++counters_.reads;
  return MsixEntryDword(msix_shadow_[offset / kMsixEntryBytes],
                        offset % kMsixEntryBytes);
}

absl::StatusOr<WriteResult> ConfigVirtualizer::WriteMsixTable(int offset,
                                                              int size,
                                                              uint32_t value) {
  if (msix_vectors_ == 0) {
    return absl::FailedPreconditionError("the VF has no MSI-X capability");
  }
  if (size != 4) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "msi-x table access of size %d at offset 0x%x: dword only", size,
        offset));
  }
  RETURN_IF_ERROR(CheckAccess("msi-x table", offset, size,
                              msix_vectors_ * kMsixEntryBytes));
  absl::MutexLock lock(&mu_);
  const int vector = offset / kMsixEntryBytes;
  MsixEntry& e = msix_shadow_[vector];
  bool mask_changed = false;
  switch (offset % kMsixEntryBytes) {
    case kMsixAddrLo:
      e.address = (e.address & ~uint64_t{0xffffffff}) | value;
      break;
    case kMsixAddrHi:
      e.address = (e.address & 0xffffffffu) | (uint64_t{value} << 32);
      break;
    case kMsixData:
      e.data = value;
      break;
    default: {
      const bool masked = value & kMsixVectorMasked;
      mask_changed = masked != e.masked;
      e.masked = masked;
      break;
    }
  }
  Part part;
  if (e.masked && (!mask_changed || msix_real_[vector].masked)) {
    part = {WriteOutcome::kEmulated,
            "msi-x vector is masked; kept in the shadow table"};
  } else {
    ASSIGN_OR_RETURN(part, ProgramMsixVector(vector));
  }
  return Record({part});
}

absl::StatusOr<ConfigVirtualizer::Part> ConfigVirtualizer::ProgramMsixVector(
    int vector) {
  const MsixEntry& shadow = msix_shadow_[vector];
  MsixEntry entry = msix_real_[vector];
  Part part{WriteOutcome::kForwarded, ""};
  if (shadow.masked) {
    entry.masked = true;
  } else {
    absl::StatusOr<uint64_t> fabric =
        options_.translate_msi_address(shadow.address);
    if (fabric.ok()) {
      entry = MsixEntry{*fabric, shadow.data, false};
    } else {
      part = {WriteOutcome::kDropped,
              "msi-x message address has no fabric translation"};
      if (entry.masked) return part;
      entry.masked = true;  // keep the real vector quiet
    }
  }
  RETURN_IF_ERROR(real_.write_msix_entry(vector, entry));
  msix_real_[vector] = entry;
  ++counters_.msix_entries_programmed;
  return part;
}

std::vector<VirtualBar> ConfigVirtualizer::bars() const {
  absl::MutexLock lock(&mu_);
  std::vector<VirtualBar> out;
  for (const BarState& s : bars_) out.push_back(s.bar);
  return out;
}

ConfigCounters ConfigVirtualizer::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace fabric::agent::vf
