#include "agent/hw/profile_limits.h"

#include "absl/strings/str_cat.h"

namespace fabric::agent::hw {

HardwareLimits LimitsFromProfile(const core::HardwareProfile& p) {
  HardwareLimits l;
  l.profile = p.name;
  l.window_count = p.window_count;
  l.lut_entries = p.lut_entries;
  l.lut_entry_size = p.lut_entry_size;
  l.xlat_align = p.xlat_align;
  l.size_granularity = p.size_granularity;
  l.min_window_size = p.min_window_size;
  l.max_window_size = p.max_window_size;
  l.mapping_entries = p.mapping_entries;
  l.doorbells = p.doorbells;
  l.scratchpads = p.scratchpads;
  return l;
}

absl::StatusOr<HardwareLimits> LimitsForProfile(absl::string_view field,
                                                absl::string_view name) {
  const core::HardwareProfile* p = core::FindProfile(name);
  if (p == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": unknown profile \"", name,
                     "\"; known: ", core::KnownProfileNames()));
  }
  return LimitsFromProfile(*p);
}

}  // namespace fabric::agent::hw
