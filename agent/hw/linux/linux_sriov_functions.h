// LinuxSriovFunctions: the SriovFunctions interface on a Linux host, through
// the files the PCI core creates under <sysfs_root>/bus/pci/devices/<bdf>/
// (the kernel's Documentation/ABI/testing/sysfs-bus-pci):
//  - config: the function's config space, read and written with pread /
//    pwrite at the register's offset (the kernel shows unprivileged readers
//    only the first 64 bytes);
//  - resource<N>: BAR N's memory, mapped with mmap (MAP_SHARED) for each
//    access; the file's size is the BAR's;
//  - sriov_numvfs / sriov_totalvfs / virtfn<N> / physfn: the VFs, through
//    LinuxSriov (sriov_sysfs.h);
//  - reset: function-level reset (writing "1");
//  - the inventory: discovery::Discover over the same sysfs tree.
// The root is a constructor parameter, so tests run against a fabricated
// tree.
//
// What Linux offers no interface for (UNIMPLEMENTED, with the reason):
// making a function DMA or signal an MSI-X vector on demand. Only the
// function's own driver makes it do either.
//
// Thread-safe: every call opens the files it needs and keeps no state.
#ifndef FABRIC_AGENT_HW_LINUX_LINUX_SRIOV_FUNCTIONS_H_
#define FABRIC_AGENT_HW_LINUX_LINUX_SRIOV_FUNCTIONS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agent/hw/linux/sriov_sysfs.h"
#include "agent/hw/sriov_functions.h"

namespace fabric::agent::hw {

class LinuxSriovFunctions final : public SriovFunctions {
 public:
  explicit LinuxSriovFunctions(std::string sysfs_root = "/sys");

  absl::StatusOr<v1::NodeInventory> Inventory() override;
  // OUT_OF_RANGE when the access lies past what the kernel shows of the
  // config space (64 bytes to unprivileged readers); PERMISSION_DENIED when
  // the file cannot be opened for writing.
  absl::StatusOr<uint32_t> ConfigRead(const discovery::PciAddress& bdf,
                                      uint16_t offset, int size) override;
  absl::Status ConfigWrite(const discovery::PciAddress& bdf, uint16_t offset,
                           int size, uint32_t value) override;
  absl::StatusOr<std::vector<uint8_t>> ConfigSpace(
      const discovery::PciAddress& bdf) override;
  // NOT_FOUND when resource<bar> is absent (BAR not implemented, or the
  // upper half of a 64-bit BAR).
  absl::Status BarRead(const discovery::PciAddress& bdf, int bar,
                       uint64_t offset, absl::Span<uint8_t> out) override;
  absl::Status BarWrite(const discovery::PciAddress& bdf, int bar,
                        uint64_t offset,
                        absl::Span<const uint8_t> data) override;
  absl::StatusOr<int> NumVfs(const discovery::PciAddress& pf) override;
  absl::Status SetNumVfs(const discovery::PciAddress& pf, int n) override;
  // FAILED_PRECONDITION when the function has no reset file (the kernel
  // knows no reset method for it).
  absl::Status ResetFunction(const discovery::PciAddress& bdf) override;
  // UNIMPLEMENTED (see above).
  absl::StatusOr<AccessResult> Dma(const discovery::PciAddress& bdf,
                                   uint64_t io_addr,
                                   absl::Span<const uint8_t> data) override;
  absl::StatusOr<MsixResult> RaiseMsix(const discovery::PciAddress& bdf,
                                       int vector) override;
  // From config space: a PF is readable when its Class Code dword is not
  // all-ones, vendor-ok when its Vendor ID is not 0xffff, and its link is
  // up when it is readable. A VF (it has a physfn link) is readable like a
  // PF; vendor-ok and link-up come from its PF, and vendor-ok also needs the
  // VF among the PF's enabled VFs.
  absl::StatusOr<FunctionHealth> Health(
      const discovery::PciAddress& bdf) override;

 private:
  std::string DeviceFile(const discovery::PciAddress& bdf,
                         const std::string& file) const;
  // Maps [offset, offset + len) of resource<bar> and calls `access` on it.
  absl::Status WithBar(const discovery::PciAddress& bdf, int bar,
                       uint64_t offset, uint64_t len, bool write,
                       const std::function<void(volatile uint8_t*)>& access);

  const std::string sysfs_root_;
  const LinuxSriov sriov_;
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_LINUX_LINUX_SRIOV_FUNCTIONS_H_
