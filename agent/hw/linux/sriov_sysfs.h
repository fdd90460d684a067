// LinuxSriov: SR-IOV on a Linux host through sysfs, i.e. the files the PCI
// core creates under <sysfs_root>/bus/pci/devices/<bdf>/ (see the kernel's
// Documentation/ABI/testing/sysfs-bus-pci and drivers/pci/iov.c):
//  - sriov_totalvfs: TotalVFs from the PF's SR-IOV capability (read-only);
//  - sriov_numvfs: the enabled VF count. Writing N enables N VFs; the kernel
//    refuses (EBUSY) a new non-zero count while VFs are enabled, so changing
//    between two non-zero counts writes 0 first; writing the current count is
//    a no-op; N > TotalVFs is ERANGE. The PF's driver must support it
//    (ENOENT without sriov_configure);
//  - virtfn<N>: the PF's links to its VFs (../<vf bdf>); physfn: a VF's link
//    to its PF.
// The root is configurable so tests run against a fabricated tree.
//
// LinuxSriovFunctions (linux_sriov_functions.h) builds the SriovFunctions
// interface on it.
//
// Thread-compatible.
#ifndef FABRIC_AGENT_HW_LINUX_SRIOV_SYSFS_H_
#define FABRIC_AGENT_HW_LINUX_SRIOV_SYSFS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/discovery/pci_address.h"

namespace fabric::agent::hw {

class LinuxSriov {
 public:
  explicit LinuxSriov(std::string sysfs_root = "/sys");

  // NOT_FOUND when the device or its file is absent (not SR-IOV capable);
  // DATA_LOSS when the file holds no number.
  absl::StatusOr<int> TotalVfs(const discovery::PciAddress& pf) const;
  absl::StatusOr<int> NumVfs(const discovery::PciAddress& pf) const;

  // Enables n VFs (0 disables them). n == NumVfs is a no-op; n > TotalVfs is
  // INVALID_ARGUMENT without writing; between two non-zero counts writes "0"
  // then n. Kernel refusals come back as the errno's status (EBUSY ->
  // FAILED_PRECONDITION, ENOENT -> NOT_FOUND: no PF driver with SR-IOV
  // support, ENOMEM/EIO... -> INTERNAL).
  absl::Status SetNumVfs(const discovery::PciAddress& pf, int n) const;

  // The enabled VFs in virtfn order (virtfn0, virtfn1, ...).
  absl::StatusOr<std::vector<discovery::PciAddress>> VfAddresses(
      const discovery::PciAddress& pf) const;

  // The VF's PF; NOT_FOUND if `vf` has no physfn link (not a VF).
  absl::StatusOr<discovery::PciAddress> PhysFn(
      const discovery::PciAddress& vf) const;

  // <sysfs_root>/bus/pci/devices/<bdf>
  std::string DevicePath(const discovery::PciAddress& bdf) const;

 private:
  absl::StatusOr<int> ReadCount(const discovery::PciAddress& pf,
                                const std::string& file) const;
  absl::StatusOr<discovery::PciAddress> ReadLink(const std::string& path) const;

  const std::string sysfs_root_;
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_LINUX_SRIOV_SYSFS_H_
