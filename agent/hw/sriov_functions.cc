#include "agent/hw/sriov_functions.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace fabric::agent::hw {

absl::Status SriovFunctions::WriteMsixEntry(const discovery::PciAddress& bdf,
                                            int vector,
                                            const vf::MsixEntry& entry) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> config, ConfigSpace(bdf));
  absl::StatusOr<vf::MsixTable> table = vf::FindMsixTable(config);
  if (absl::IsNotFound(table.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat(bdf.ToString(), " has no MSI-X capability"));
  }
  RETURN_IF_ERROR(table.status());
  if (vector < 0 || vector >= table->vectors) {
    return absl::OutOfRangeError(
        absl::StrCat("vector: MSI-X vector ", vector, " of ", bdf.ToString(),
                     "; the table has ", table->vectors));
  }
  const std::array<uint8_t, vf::kMsixEntryBytes> bytes =
      vf::EncodeMsixEntry(entry);
  return BarWrite(bdf, table->bir,
                  table->offset + vf::MsixEntryOffset(vector),
                  absl::MakeConstSpan(bytes));
}

}  // namespace fabric::agent::hw
