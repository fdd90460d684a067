#include "agent/hw/sim/sim_sriov_functions.h"

#include "absl/strings/str_cat.h"
#include "agent/hw/sim/sim_inventory.h"
#include "common/status_macros.h"

namespace fabric::agent::hw {

using discovery::PciAddress;

absl::StatusOr<v1::NodeInventory> SimSriovFunctions::Inventory() {
  return SimulatedInventory(*host_);
}

absl::StatusOr<uint32_t> SimSriovFunctions::ConfigRead(const PciAddress& bdf,
                                                       uint16_t offset,
                                                       int size) {
  return host_->ConfigRead(bdf, offset, size);
}

absl::Status SimSriovFunctions::ConfigWrite(const PciAddress& bdf,
                                            uint16_t offset, int size,
                                            uint32_t value) {
  return host_->ConfigWrite(bdf, offset, size, value);
}

absl::StatusOr<std::vector<uint8_t>> SimSriovFunctions::ConfigSpace(
    const PciAddress& bdf) {
  return host_->ConfigSpace(bdf);
}

absl::Status SimSriovFunctions::BarRead(const PciAddress& bdf, int bar,
                                        uint64_t offset,
                                        absl::Span<uint8_t> out) {
  return host_->MmioRead(bdf, bar, offset, out);
}

absl::Status SimSriovFunctions::BarWrite(const PciAddress& bdf, int bar,
                                         uint64_t offset,
                                         absl::Span<const uint8_t> data) {
  return host_->MmioWrite(bdf, bar, offset, data);
}

absl::Status SimSriovFunctions::WriteMsixEntry(const PciAddress& bdf,
                                               int vector,
                                               const vf::MsixEntry& entry) {
  ASSIGN_OR_RETURN(const SimPf* pf, PfOf(bdf));
  if (vector < 0 || static_cast<uint32_t>(vector) >= pf->msix_vectors) {
    return absl::OutOfRangeError(
        absl::StrCat("vector: MSI-X vector ", vector, " of ", bdf.ToString(),
                     "; the table has ", pf->msix_vectors));
  }
  const std::array<uint8_t, vf::kMsixEntryBytes> bytes =
      vf::EncodeMsixEntry(entry);
  return host_->MmioWrite(bdf, pf->msix_bar, vf::MsixEntryOffset(vector),
                          absl::MakeConstSpan(bytes));
}

absl::StatusOr<int> SimSriovFunctions::NumVfs(const PciAddress& pf) {
  return host_->NumVfs(pf);
}

absl::Status SimSriovFunctions::SetNumVfs(const PciAddress& pf, int n) {
  return host_->SetNumVfs(pf, n);
}

absl::Status SimSriovFunctions::ResetFunction(const PciAddress& bdf) {
  return absl::UnimplementedError(absl::StrCat(
      "function-level reset of ", bdf.ToString(),
      ": the simulator's device model does not model FLR"));
}

absl::StatusOr<AccessResult> SimSriovFunctions::Dma(
    const PciAddress& bdf, uint64_t io_addr, absl::Span<const uint8_t> data) {
  return host_->Dma(bdf, io_addr, data);
}

absl::StatusOr<MsixResult> SimSriovFunctions::RaiseMsix(const PciAddress& bdf,
                                                        int vector) {
  return host_->RaiseMsix(bdf, vector);
}

absl::StatusOr<FunctionHealth> SimSriovFunctions::Health(
    const PciAddress& bdf) {
  return host_->Health(bdf);
}

absl::StatusOr<const SimPf*> SimSriovFunctions::PfOf(const PciAddress& bdf) {
  ASSIGN_OR_RETURN(std::vector<SimFunction> fns, host_->Functions());
  for (const SimFunction& f : fns) {
    if (f.address != bdf) continue;
    for (const SimPf& pf : host_->hardware().pfs) {
      if (pf.address == f.pf) return &pf;
    }
  }
  return absl::NotFoundError(
      absl::StrCat("function ", bdf.ToString(), " is not present"));
}

}  // namespace fabric::agent::hw
