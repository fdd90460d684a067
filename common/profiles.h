// Hardware profiles: the limits of each supported NTB bridge that bound the
// address map and the placement of memory windows.
#ifndef FABRIC_COMMON_PROFILES_H_
#define FABRIC_COMMON_PROFILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace fabric::core {

// Limits of one bridge model. All sizes are in bytes.
//
// On a borrower, direct window k occupies the host-physical range
// [window_base + k * max_window_size, +max_window_size) and LUT slot s occupies
// [window_base + window_count * max_window_size + s * lut_entry_size,
//  +lut_entry_size).
struct HardwareProfile {
  std::string name;
  std::string description;    // Says which figures are assumptions.
  int window_count;           // Direct outbound memory windows.
  int lut_entries;            // Lookup-table slots; 0 = no lookup table.
  uint64_t lut_entry_size;    // Bytes per LUT slot (power of two); 0 if none.
  uint64_t xlat_align;        // Alignment of a direct window's fabric address.
  uint64_t size_granularity;  // Window sizes are a multiple of this.
  uint64_t min_window_size;
  uint64_t max_window_size;  // Direct windows only.
  int mapping_entries;  // Capacity of the address-mapping chip (claim+forward).
  int doorbells;
  int scratchpads;
};

// Returns the profile called `name`, or nullptr if there is none. The pointer
// stays valid for the life of the process.
const HardwareProfile* FindProfile(absl::string_view name);

// All shipped profiles, sorted by name. The vector is never modified.
const std::vector<HardwareProfile>& AllProfiles();

// The names of all profiles joined by ", " (for error messages).
std::string KnownProfileNames();

// The largest single grant `p` can map: the larger of one direct window and
// the whole lookup table.
uint64_t LargestMapping(const HardwareProfile& p);

}  // namespace fabric::core

#endif  // FABRIC_COMMON_PROFILES_H_
