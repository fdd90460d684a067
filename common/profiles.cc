#include "common/profiles.h"

#include <algorithm>

#include "absl/strings/str_join.h"

namespace fabric::core {
namespace {

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

std::vector<HardwareProfile> MakeProfiles() {
  std::vector<HardwareProfile> p = {
      {"amd",
       "AMD NTB 1022:145b: 3 memory windows, 16 doorbells, 16 scratchpads. "
       "Assumed: 4 KiB alignment and granularity, 1 GiB largest window, 16 "
       "mapping entries.",
       /*window_count=*/3, /*lut_entries=*/0, /*lut_entry_size=*/0,
       /*xlat_align=*/4 * kKiB, /*size_granularity=*/4 * kKiB,
       /*min_window_size=*/4 * kKiB, /*max_window_size=*/kGiB,
       /*mapping_entries=*/16, /*doorbells=*/16, /*scratchpads=*/16},
      {"idt",
       "IDT 89HPES NT switch: 4 direct windows plus one 24-entry lookup "
       "table, 64 mapping-table entries, 32 doorbells, no scratchpads. "
       "Assumed: 1 MiB per LUT entry, 4 KiB alignment and granularity, 1 GiB "
       "largest direct window.",
       4, 24, kMiB, 4 * kKiB, 4 * kKiB, 4 * kKiB, kGiB, 64, 32, 0},
      {"intel-xeon-gen1",
       "Intel Xeon NTB gen1 (Sandy Bridge to Haswell): 2 windows whose "
       "translated address is aligned to the full BAR size, 15 doorbells, 16 "
       "scratchpads. Assumed: 1 GiB BAR size (set in BIOS), 4 KiB "
       "granularity, 16 mapping entries.",
       2, 0, 0, kGiB, 4 * kKiB, 4 * kKiB, kGiB, 16, 15, 16},
      {"intel-xeon-gen4",
       "Intel Xeon NTB gen4: 2 windows (unverified), page-aligned "
       "translation, 32 doorbells, 16 scratchpads. Assumed: 1 GiB BAR size, "
       "16 mapping entries.",
       2, 0, 0, 4 * kKiB, 4 * kKiB, 4 * kKiB, kGiB, 16, 32, 16},
      {"sim",
       "Simulated bridge: 8 windows up to 1 GiB, 32 LUT entries of 1 MiB, 4 "
       "KiB alignment and granularity, 64 mapping entries, 32 doorbells, 16 "
       "scratchpads.",
       8, 32, kMiB, 4 * kKiB, 4 * kKiB, 4 * kKiB, kGiB, 64, 32, 16},
      {"switchtec",
       "Microchip Switchtec: direct windows of 4 KiB to 2 MiB (the Linux "
       "default max_mw_size), 32 LUT entries of 64 KiB each aligned to its "
       "size, 28 doorbells per partition, 128 scratchpads. Assumed: 2 direct "
       "windows, 64 mapping entries.",
       2, 32, 64 * kKiB, 4 * kKiB, 4 * kKiB, 4 * kKiB, 2 * kMiB, 64, 28, 128},
  };
  std::sort(p.begin(), p.end(),
            [](const HardwareProfile& a, const HardwareProfile& b) {
              return a.name < b.name;
            });
  return p;
}

}  // namespace

const std::vector<HardwareProfile>& AllProfiles() {
  static const std::vector<HardwareProfile>* const kProfiles =
      new std::vector<HardwareProfile>(MakeProfiles());
  return *kProfiles;
}

const HardwareProfile* FindProfile(absl::string_view name) {
  for (const HardwareProfile& p : AllProfiles()) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string KnownProfileNames() {
  return absl::StrJoin(
      AllProfiles(), ", ",
      [](std::string* out, const HardwareProfile& p) { out->append(p.name); });
}

uint64_t LargestMapping(const HardwareProfile& p) {
  uint64_t direct = p.window_count > 0 ? p.max_window_size : 0;
  uint64_t lut = static_cast<uint64_t>(p.lut_entries) * p.lut_entry_size;
  return std::max(direct, lut);
}

}  // namespace fabric::core
