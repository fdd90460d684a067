#include "agent/hw/limits_check.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/units.h"

namespace fabric::agent::hw {
namespace {

std::string Range(uint64_t base, uint64_t size) {
  return absl::StrCat("[", FormatAddr(base), ", ", FormatAddr(base + size),
                      ")");
}

bool Wraps(uint64_t base, uint64_t size) { return base > UINT64_MAX - size; }

}  // namespace

std::string SlotName(SlotKind kind, int slot) {
  return absl::StrCat(kind == SlotKind::kWindow ? "window slot " : "LUT slot ",
                      slot);
}

absl::Status CheckLimits(const HardwareLimits& l) {
  if (l.window_count < 0 || l.lut_entries < 0 || l.mapping_entries < 0 ||
      l.doorbells < 0 || l.scratchpads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("limits of profile '", l.profile, "': negative count"));
  }
  if (l.doorbells > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("limits of profile '", l.profile, "': ", l.doorbells,
                     " doorbells do not fit the 64-bit doorbell register"));
  }
  if (l.xlat_align == 0 || l.size_granularity == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("limits of profile '", l.profile,
                     "': xlat_align and size_granularity must be non-zero"));
  }
  if (l.lut_entries > 0 && l.lut_entry_size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("limits of profile '", l.profile, "': ", l.lut_entries,
                     " LUT entries of size 0"));
  }
  if (l.window_count > 0 && l.max_window_size < l.min_window_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("limits of profile '", l.profile,
                     "': max_window_size below min_window_size"));
  }
  return absl::OkStatus();
}

uint64_t SlotLocalBase(const HardwareLimits& l, uint64_t window_base,
                       SlotKind kind, int slot) {
  if (kind == SlotKind::kWindow) {
    return window_base + static_cast<uint64_t>(slot) * l.max_window_size;
  }
  return window_base +
         static_cast<uint64_t>(l.window_count) * l.max_window_size +
         static_cast<uint64_t>(slot) * l.lut_entry_size;
}

absl::Status CheckSlot(const HardwareLimits& l, SlotKind kind, int slot) {
  const int count = kind == SlotKind::kWindow ? l.window_count : l.lut_entries;
  if (slot < 0 || slot >= count) {
    return absl::InvalidArgumentError(absl::StrCat(
        SlotName(kind, slot), ": index ", slot, " is outside the ", count,
        kind == SlotKind::kWindow ? " windows" : " LUT entries",
        " of profile '", l.profile, "'"));
  }
  return absl::OkStatus();
}

absl::Status CheckWindow(const HardwareLimits& l, const Window& w,
                         uint64_t slot_base) {
  const std::string name = SlotName(w.kind, w.slot);
  if (absl::Status s = CheckSlot(l, w.kind, w.slot); !s.ok()) return s;
  if (w.kind == SlotKind::kWindow) {
    if (w.size == 0 || w.size % l.size_granularity != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": size ", w.size,
                       " B is not a positive multiple of the size "
                       "granularity ",
                       FormatSize(l.size_granularity)));
    }
    if (w.size < l.min_window_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": size ", FormatSize(w.size),
          " is below the minimum window size ", FormatSize(l.min_window_size)));
    }
    if (w.size > l.max_window_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": size ", FormatSize(w.size),
          " is over the maximum window size ", FormatSize(l.max_window_size)));
    }
    if (w.xlat % l.xlat_align != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": translation ", FormatAddr(w.xlat),
                       " is not aligned to ", FormatSize(l.xlat_align)));
    }
  } else {
    if (w.size != l.lut_entry_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": size ", FormatSize(w.size), " is not the LUT entry size ",
          FormatSize(l.lut_entry_size)));
    }
    if (w.xlat % l.lut_entry_size != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": translation ", FormatAddr(w.xlat),
                       " is not aligned to the LUT entry size ",
                       FormatSize(l.lut_entry_size)));
    }
  }
  if (Wraps(w.xlat, w.size)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": translation ", FormatAddr(w.xlat), " + ",
                     FormatSize(w.size), " wraps around 64 bits"));
  }
  if (w.local_base != slot_base) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": local_base ", FormatAddr(w.local_base),
        " is not where the slot lives (", FormatAddr(slot_base), ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckMapEntries(const HardwareLimits& l,
                             const std::vector<MapEntry>& entries) {
  if (static_cast<int64_t>(entries.size()) > l.mapping_entries) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "mapping chip: ", entries.size(), " entries is over the limit of ",
        l.mapping_entries, " entries of profile '", l.profile, "'"));
  }
  std::vector<const MapEntry*> sorted;
  sorted.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const MapEntry& e = entries[i];
    if (e.size == 0 || Wraps(e.base, e.size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("mapping entry ", i, " at ", FormatAddr(e.base),
                       ": size ", e.size, " is empty or wraps around"));
    }
    if (e.kind == MapEntry::Kind::kForward && e.port < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("mapping entry ", i, " ", Range(e.base, e.size),
                       ": forward port ", e.port, " is not a port (>= 1)"));
    }
    if (e.kind == MapEntry::Kind::kClaim && Wraps(e.local_base, e.size)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mapping entry ", i, " ", Range(e.base, e.size), ": claim to ",
          FormatAddr(e.local_base), " wraps around 64 bits"));
    }
    sorted.push_back(&e);
  }
  std::sort(
      sorted.begin(), sorted.end(),
      [](const MapEntry* a, const MapEntry* b) { return a->base < b->base; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const MapEntry& a = *sorted[i - 1];
    const MapEntry& b = *sorted[i];
    if (b.base < a.base + a.size) {
      return absl::InvalidArgumentError(
          absl::StrCat("mapping entries ", Range(a.base, a.size), " and ",
                       Range(b.base, b.size), " overlap"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckHostMemory(const HostMemory& m) {
  if (Wraps(m.base, m.size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("host memory at ", FormatAddr(m.base), " of ",
                     FormatSize(m.size), " wraps around 64 bits"));
  }
  return absl::OkStatus();
}

absl::Status CheckInbound(const HostMemory& m,
                          const std::vector<Inbound>& inbound) {
  for (const Inbound& in : inbound) {
    auto within = [&](uint64_t base, uint64_t size) {
      return in.size > 0 && in.local_base >= base &&
             in.local_base - base <= size &&
             size - (in.local_base - base) >= in.size;
    };
    if (!within(m.base, m.size) &&
        !(m.mmio_size > 0 && within(m.mmio_base, m.mmio_size))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inbound grant '", in.tag, "' ", Range(in.local_base, in.size),
          " is not inside host memory ", Range(m.base, m.size),
          m.mmio_size > 0
              ? absl::StrCat(" or the device range ",
                             Range(m.mmio_base, m.mmio_size))
              : ""));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPort(const Port& p) {
  if (p.number < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("port ", p.number, " is not a port number (>= 1)"));
  }
  if (p.up && p.peer_bridge.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("port ", p.number, " has no cable and cannot be up"));
  }
  return absl::OkStatus();
}

absl::Status CheckDoorbell(const HardwareLimits& l, uint64_t bits) {
  const uint64_t valid =
      l.doorbells >= 64 ? ~uint64_t{0} : (uint64_t{1} << l.doorbells) - 1;
  if (bits == 0 || (bits & ~valid) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "doorbell bits ", FormatAddr(bits), " are not within the ", l.doorbells,
        " doorbells (valid mask ", FormatAddr(valid), ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckScratchpad(const HardwareLimits& l, int index) {
  if (index < 0 || index >= l.scratchpads) {
    return absl::InvalidArgumentError(
        absl::StrCat("scratchpad ", index, " is outside the ", l.scratchpads,
                     " scratchpads of profile '", l.profile, "'"));
  }
  return absl::OkStatus();
}

}  // namespace fabric::agent::hw
