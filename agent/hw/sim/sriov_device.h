// The simulator's SR-IOV device model: every simulated PCIe function of one
// host (its PFs, from the hardware file, and their enabled VFs), with real
// config spaces, BAR memory, MSI-X and DMA through the simulated data path.
//
// Files, all under <sim_dir>/<node>/ (the node's bridge directory):
//  - devices.json: SimDevicesState (sim_hardware.proto) as protobuf JSON,
//    replaced by an atomic rename under an flock on devices.lock (not the
//    bridge's lock: a DMA walks the bridges' files while holding it). It
//    holds the hardware it was made from, each function's config space
//    (lspci -xxxx style rows) and its failed / link-down switches, so the
//    devices survive agent restarts.
//  - devices/<bdf>.bar<i>: BAR i's memory of function <bdf>, a sparse file of
//    the BAR's size. Removed when the VF goes away.
//
// Config space (4096 bytes, type 0 header, every BAR 64-bit prefetchable):
//  - PF: vendor/device from the file; Command 0x0002 at power-on (memory
//    decode on, bus mastering off); capability list 0x40 PCI Express
//    (v2, endpoint, 8 GT/s x8) -> 0x80 MSI-X (table BIR msixBar offset 0,
//    PBA right after it); extended list 0x100 SR-IOV (InitialVFs, TotalVFs,
//    NumVFs, First VF Offset, VF Stride, VF Device ID, Supported Page Sizes
//    = System Page Size = 4 KiB, VF BAR0-5).
//  - VF: Vendor and Device ID read 0xffff (the VF Device ID is in the PF's
//    SR-IOV capability); its own BARs read 0 (they are the PF's VF BARs:
//    VF i's BAR j = VF BAR j + i * vfBarSizes[j]); Command has only Bus
//    Master Enable (plus Parity/SERR) writable: memory decode follows the
//    PF's VF MSE bit; the same PCIe and MSI-X capabilities, no extended
//    capabilities.
// Writes follow per-byte write masks: read-only bits ignore writes; a BAR
// takes only its size-aligned bits, so writing all-ones reads back the size
// mask; Status and other RW1C registers are read-only here. Side effects:
// NumVFs takes writes only while VF Enable is clear and only values <=
// TotalVFs; setting VF Enable creates NumVFs VFs (fresh config space, MSI-X
// vectors masked, zeroed BARs), clearing it removes them; clearing MSI-X
// Function Mask or setting MSI-X Enable delivers pending vectors.
// Not modelled: I/O BARs, INTx, FLR, ARI, ATS, power management, an IOMMU
// (a DMA address is a host-physical address), writes to VF Migration bits.
//
// A failed function (SetFunctionFailed) or one behind a PF link that is
// down (SetPfLinkUp; it takes the PF's VFs along) answers like a dead
// device: config and MMIO reads return all-ones, writes are dropped, and
// Dma / RaiseMsix / SetNumVfs are UNAVAILABLE.
//
// Usage:
//   ASSIGN_OR_RETURN(SimHardware hw, LoadSimHardware(path));
//   ASSIGN_OR_RETURN(auto host, SimSriovHost::Open(sim_dir, "n0", hw));
//   RETURN_IF_ERROR(host->SetNumVfs(pf, 4));
//   ASSIGN_OR_RETURN(uint32_t id, host->ConfigRead(pf, 0x00, 4));
//
// Thread-safe; several processes may share one sim_dir (every call reads
// the state file, and every change is a locked read-modify-write).
#ifndef FABRIC_AGENT_HW_SIM_SRIOV_DEVICE_H_
#define FABRIC_AGENT_HW_SIM_SRIOV_DEVICE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "agent/discovery/pci_address.h"
#include "agent/hw/bridge_hardware.h"
#include "agent/hw/sriov_functions.h"
#include "agent/hw/sim/sim_config_space.h"
#include "agent/hw/sim/sim_device_store.h"
#include "agent/hw/sim/sim_hardware.h"
#include "agent/hw/sim/sim_world.h"

namespace fabric::agent::hw {

// One present function.
struct SimFunction {
  discovery::PciAddress address;
  bool is_vf = false;
  discovery::PciAddress pf;  // the PF (equals address for a PF)
  int vf_index = -1;         // VFs: 0-based
};

// One function as an inventory sees it: its config space (as
// SimSriovHost::ConfigSpace) and BARs (as BarSize / BarAddress; a size of 0
// for a BAR not implemented, which has address 0).
struct SimFunctionImage {
  SimFunction function;
  std::vector<uint8_t> config;
  std::array<uint64_t, 6> bar_sizes{};
  std::array<uint64_t, 6> bar_addresses{};
};

class SimSriovHost {
 public:
  // Opens the devices of `node` under `sim_dir`, creating the directories and
  // the power-on state from `hw` (PFs with numVfs VFs enabled) when
  // devices.json is absent. An existing state is kept as it is.
  // INVALID_ARGUMENT: bad node name. FAILED_PRECONDITION: devices.json was
  // made from different hardware (delete it to power-cycle). DATA_LOSS: it
  // does not parse.
  static absl::StatusOr<std::unique_ptr<SimSriovHost>> Open(
      const std::string& sim_dir, const std::string& node,
      const SimHardware& hw);
  // Opens the devices already made for `node` under `sim_dir` (by another
  // process, say), with the hardware stored in their devices.json. NOT_FOUND
  // when the node has no simulated devices.
  static absl::StatusOr<std::unique_ptr<SimSriovHost>> OpenExisting(
      const std::string& sim_dir, const std::string& node);

  const SimHardware& hardware() const { return hw_; }

  // PFs and enabled VFs, sorted by address.
  absl::StatusOr<std::vector<SimFunction>> Functions() ABSL_LOCKS_EXCLUDED(mu_);
  // Functions() with each one's config space and BARs, read at once from
  // one load of the devices' state: a consistent view, at the cost of one
  // read of it (each accessor below reads it on every call, about 0.1 ms,
  // so a function-by-function inventory of a PF with 8 VFs took 16 ms).
  absl::StatusOr<std::vector<SimFunctionImage>> Images()
      ABSL_LOCKS_EXCLUDED(mu_);

  // Config access of `size` 1, 2 or 4 bytes at `offset` (aligned to size,
  // below 4096); INVALID_ARGUMENT otherwise, NOT_FOUND for an absent
  // function. A dead function reads all-ones and drops writes (OK).
  absl::StatusOr<uint32_t> ConfigRead(const discovery::PciAddress& bdf,
                                      uint16_t offset, int size)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ConfigWrite(const discovery::PciAddress& bdf, uint16_t offset,
                           int size, uint32_t value) ABSL_LOCKS_EXCLUDED(mu_);
  // The whole 4096 bytes as ConfigRead would return them.
  absl::StatusOr<std::vector<uint8_t>> ConfigSpace(
      const discovery::PciAddress& bdf) ABSL_LOCKS_EXCLUDED(mu_);

  // Like writing sysfs sriov_numvfs: n == the enabled count is a no-op;
  // changing between two non-zero counts is FAILED_PRECONDITION (write 0
  // first); n > TotalVFs is INVALID_ARGUMENT; n > 0 sets NumVFs, VF Enable
  // and VF MSE; 0 clears them and removes the VFs. NOT_FOUND: not a PF.
  absl::Status SetNumVfs(const discovery::PciAddress& pf, int n)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The enabled VF count (NumVFs while VF Enable is set, else 0).
  absl::StatusOr<int> NumVfs(const discovery::PciAddress& pf)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Where BAR `bar` of the function decodes now (from its BAR register, or a
  // VF's from the PF's VF BAR), and its size. NOT_FOUND if the BAR is not
  // implemented (or is the upper half of a 64-bit BAR).
  absl::StatusOr<uint64_t> BarAddress(const discovery::PciAddress& bdf, int bar)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> BarSize(const discovery::PciAddress& bdf, int bar)
      ABSL_LOCKS_EXCLUDED(mu_);

  // A CPU access to BAR `bar` at `offset`. OUT_OF_RANGE past the BAR's end;
  // FAILED_PRECONDITION "memory space disabled" unless the function decodes
  // memory (PF: Command bit 1; VF: the PF's VF MSE). The MSI-X table is at
  // offset 0 of BAR msixBar, the PBA after it; PBA writes are dropped
  // (read-only). A write that unmasks a pending vector delivers it.
  absl::Status MmioRead(const discovery::PciAddress& bdf, int bar,
                        uint64_t offset, absl::Span<uint8_t> out)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status MmioWrite(const discovery::PciAddress& bdf, int bar,
                         uint64_t offset, absl::Span<const uint8_t> data)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A CPU write at host-physical `addr`: MmioWrite on the BAR that decodes
  // it now. NOT_FOUND when no function's BAR does; OUT_OF_RANGE when the
  // write passes the end of the BAR it starts in.
  absl::Status MmioWriteAt(uint64_t addr, absl::Span<const uint8_t> data)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The function writes `data` at I/O address `io_addr`: the host's write
  // SimWorld::Write(sim_dir, node, io_addr, data), i.e. through the host's
  // NTB windows when io_addr lies in one. A fault is a result.
  // FAILED_PRECONDITION "bus mastering disabled" unless Command bit 2 is set.
  absl::StatusOr<AccessResult> Dma(const discovery::PciAddress& bdf,
                                   uint64_t io_addr,
                                   absl::Span<const uint8_t> data)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Signals MSI-X vector `vector`. FAILED_PRECONDITION unless MSI-X Enable
  // and Bus Master Enable are set; OUT_OF_RANGE past the table. If the
  // vector or the whole function is masked, sets its PBA bit: kPending. Else
  // writes the entry's 4-byte message data, little-endian, at its message
  // address through the data path (as Dma): kDelivered.
  absl::StatusOr<MsixResult> RaiseMsix(const discovery::PciAddress& bdf,
                                       int vector) ABSL_LOCKS_EXCLUDED(mu_);
  // Clears the vector's mask bit (as a driver writing Vector Control
  // would). If its PBA bit is set and the function can send (MSI-X enabled,
  // not function-masked, bus master), clears it and delivers: kDelivered;
  // else kNothingPending (or kPending if it stays pending).
  absl::StatusOr<MsixResult> Unmask(const discovery::PciAddress& bdf,
                                    int vector) ABSL_LOCKS_EXCLUDED(mu_);

  // NOT_FOUND unless `bdf` is a present function or a VF address of a PF
  // (then: not readable, vendor not ok).
  absl::StatusOr<FunctionHealth> Health(const discovery::PciAddress& bdf)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Fault injection for tests.
  absl::Status SetPfLinkUp(const discovery::PciAddress& pf, bool up)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SetFunctionFailed(const discovery::PciAddress& bdf, bool failed)
      ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& sim_dir() const { return sim_dir_; }
  const std::string& node() const { return node_; }

 private:
  using State = sim_internal::DeviceState;

  SimSriovHost(std::string sim_dir, std::string node, SimHardware hw);

  absl::StatusOr<State> Load() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Save(const State& s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Creates VFs [0, count) of pfs[pf_index] in `s` (and their files).
  absl::Status EnableVfs(State& s, int pf_index, int count) const;
  void DisableVfs(State& s, int pf_index) const;
  // Sends every pending, now deliverable vector of function `fi`.
  absl::Status DeliverPending(State& s, int fi, int only_vector,
                              MsixResult* result) const;
  absl::StatusOr<MsixResult> Send(const State& s, int fi, int vector) const;

  const std::string sim_dir_;
  const std::string node_;
  const SimHardware hw_;
  // devices.json and the BAR files; refers to hw_.
  const sim_internal::DeviceStore store_;
  // Serializes this object's callers; processes serialize on the flock.
  mutable absl::Mutex mu_;
};

// The simulated devices of every node under a sim_dir, as the data path
// reaches them: SimWorld::Write carries a CPU write that lands in a node's
// device MMIO range into the BAR that decodes it (SimSriovHost::MmioWriteAt
// on that node's devices, opened from their files on each write, since
// another process owns them). Thread-safe.
class SimDevicesMmio final : public SimDeviceMmio {
 public:
  explicit SimDevicesMmio(std::string sim_dir) : sim_dir_(std::move(sim_dir)) {}
  absl::Status Write(const std::string& node, uint64_t addr,
                     absl::Span<const uint8_t> data) override;

 private:
  const std::string sim_dir_;
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_SIM_SRIOV_DEVICE_H_
