// The narrow hardware interface to one host's SR-IOV functions (PFs and
// their VFs), in the project's terms: the functions present, config-space
// accesses, BAR memory, the enabled VF count, function-level reset, MSI-X
// table entries, and the probes and proofs VF lending needs (health, a DMA
// by the function, raising a vector).
//
// Implementations: LinuxSriovFunctions (sysfs config / resourceN /
// sriov_numvfs / reset, agent/hw/linux), SimSriovFunctions (the simulator's
// device model, agent/hw/sim) and MockSriovFunctions (gMock, for tests only,
// agent/hw/testing). The agent core sees only this interface; the program's
// main chooses the implementation.
//
// Contract for every implementation:
//  - Thread-safe: the lender serves several borrowers at once.
//  - A function is named by its routing id (discovery::PciAddress).
//    NOT_FOUND for a function that is not present.
//  - Config accesses are 1, 2 or 4 bytes, aligned to their size, below 4096;
//    INVALID_ARGUMENT (naming the offset and size) otherwise. Values are
//    little-endian, as on the bus.
//  - A step the platform offers no interface for returns UNIMPLEMENTED with
//    the reason, and never pretends.
#ifndef FABRIC_AGENT_HW_SRIOV_FUNCTIONS_H_
#define FABRIC_AGENT_HW_SRIOV_FUNCTIONS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/discovery/pci_address.h"
#include "agent/hw/bridge_hardware.h"
#include "agent/vf/msix_layout.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::agent::hw {

// An MSI-X message: what a vector writes, and where.
struct MsixMessage {
  uint64_t addr = 0;
  uint32_t data = 0;
};

// What raising (or unmasking) a vector did.
struct MsixResult {
  enum class Outcome {
    kDelivered,       // the message was written; see `access`
    kPending,         // masked: the PBA bit is set, delivered on unmask
    kNothingPending,  // Unmask only: no message was pending
  };
  Outcome outcome = Outcome::kNothingPending;
  MsixMessage message;  // kDelivered: the table entry's address and data
  AccessResult access;  // kDelivered: where the 4-byte write went
};

// The lender's probe of one function.
struct FunctionHealth {
  bool config_readable = false;  // present, not failed, PF link up
  // PF: Vendor ID reads != 0xffff. VF: its PF reads a vendor ID and has VF
  // Enable set with this VF below NumVFs.
  bool vendor_ok = false;
  bool pf_link_up = false;
};

class SriovFunctions {
 public:
  virtual ~SriovFunctions() = default;

  // The host's PCIe functions as inventory entries (at least every SR-IOV
  // PF and enabled VF, with kind, ids, BAR sizes and SR-IOV details).
  virtual absl::StatusOr<v1::NodeInventory> Inventory() = 0;

  // Config space. A function that does not answer (failed, link down)
  // reads all-ones and drops writes, as on the bus.
  virtual absl::StatusOr<uint32_t> ConfigRead(const discovery::PciAddress& bdf,
                                              uint16_t offset, int size) = 0;
  virtual absl::Status ConfigWrite(const discovery::PciAddress& bdf,
                                   uint16_t offset, int size,
                                   uint32_t value) = 0;
  // The config space as ConfigRead would return it: 4096 bytes, or fewer
  // where the platform shows fewer (Linux shows unprivileged readers 64).
  virtual absl::StatusOr<std::vector<uint8_t>> ConfigSpace(
      const discovery::PciAddress& bdf) = 0;

  // CPU accesses to memory BAR `bar` (0-5) at `offset` from its start.
  // OUT_OF_RANGE past the BAR's end; NOT_FOUND for a BAR that is not
  // implemented.
  virtual absl::Status BarRead(const discovery::PciAddress& bdf, int bar,
                               uint64_t offset, absl::Span<uint8_t> out) = 0;
  virtual absl::Status BarWrite(const discovery::PciAddress& bdf, int bar,
                                uint64_t offset,
                                absl::Span<const uint8_t> data) = 0;

  // Writes MSI-X table entry `vector` (in the BAR and at the offset the
  // function's MSI-X capability names). OUT_OF_RANGE (field `vector`, with
  // the table size) past the table; FAILED_PRECONDITION when the function
  // has no MSI-X capability. This default finds the table through
  // ConfigSpace() and writes the entry with one BarWrite().
  virtual absl::Status WriteMsixEntry(const discovery::PciAddress& bdf,
                                      int vector, const vf::MsixEntry& entry);

  // The enabled VF count of PF `pf`, and changing it (0 disables every VF).
  // n == the enabled count is a no-op; n > TotalVFs is INVALID_ARGUMENT.
  virtual absl::StatusOr<int> NumVfs(const discovery::PciAddress& pf) = 0;
  virtual absl::Status SetNumVfs(const discovery::PciAddress& pf, int n) = 0;

  // Function-level reset of `bdf`.
  virtual absl::Status ResetFunction(const discovery::PciAddress& bdf) = 0;

  // The function writes `data` at I/O address `io_addr` (a proof of the
  // DMA path). A fault is a result, not an error. FAILED_PRECONDITION
  // unless the function may master the bus.
  virtual absl::StatusOr<AccessResult> Dma(const discovery::PciAddress& bdf,
                                           uint64_t io_addr,
                                           absl::Span<const uint8_t> data) = 0;
  // The function signals MSI-X vector `vector`: kDelivered, or kPending when
  // the vector or the function is masked. FAILED_PRECONDITION unless MSI-X
  // and bus mastering are enabled; OUT_OF_RANGE past the table.
  virtual absl::StatusOr<MsixResult> RaiseMsix(const discovery::PciAddress& bdf,
                                               int vector) = 0;

  // Probes the function (see FunctionHealth).
  virtual absl::StatusOr<FunctionHealth> Health(
      const discovery::PciAddress& bdf) = 0;
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_SRIOV_FUNCTIONS_H_
