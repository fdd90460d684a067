// Hardware discovery for the node agent: which PCI functions the node has,
// which of them are NTBs, SR-IOV physical functions and virtual functions,
// with their BAR sizes and SR-IOV layout, as a fabric.v1.NodeInventory.
//
// Reads through libpci from the live bus, an `lspci -x/-xxx/-xxxx` dump, or
// a sysfs tree under another root (for tests and offline inspection).
// libpci's fatal errors never end the process; they come back as statuses.
//
//   DiscoveryOptions opts;
//   opts.source = DiscoveryOptions::Source::kDumpFile;
//   opts.path = "node7.lspci";
//   ASSIGN_OR_RETURN(fabric::v1::NodeInventory inv, Discover(opts));
//   std::cout << FormatInventory(inv);
#ifndef FABRIC_AGENT_DISCOVERY_INVENTORY_H_
#define FABRIC_AGENT_DISCOVERY_INVENTORY_H_

#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::agent::discovery {

struct DiscoveryOptions {
  enum class Source {
    kLiveBus,    // this machine: libpci's sysfs method on /sys
    kDumpFile,   // `path` is an lspci -x/-xxx/-xxxx text dump
    kSysfsTree,  // `path` is a sysfs root: the directory holding
                 // bus/pci/devices
  };
  Source source = Source::kLiveBus;
  std::string path;  // ignored for kLiveBus
};

// Discovers the PCI functions. Contract:
//  - Functions come sorted by address ("dddd:bb:dd.f").
//  - class_code is the 24-bit class code (base, sub-class, prog-if).
//  - kind: NTB when the vendor/device is a known NTB (pci_ids.h) or the class
//    is 0x0680 "bridge, other"; else SRIOV_PF when the function has the
//    SR-IOV extended capability (or sysfs `sriov_totalvfs`); else SRIOV_VF
//    when sysfs has a `physfn` link or a PF's VF addresses include it; else
//    OTHER.
//  - bar_sizes: six entries (index = BAR number, 0 = unimplemented or upper
//    half of a 64-bit BAR) when the source knows sizes (sysfs `resource`);
//    empty for dumps, which do not hold sizes. Nothing is guessed.
//  - sriov (set whenever the function has SR-IOV): register values from the
//    capability; sysfs `sriov_totalvfs`, `sriov_numvfs` and the `virtfnN`
//    links win over config space when present (they are the kernel's view,
//    and unprivileged readers only get 64 bytes of config space).
//    vf_addresses are the `virtfnN` targets, else derived from First VF
//    Offset and VF Stride for NumVFs VFs. vf_bar_sizes are the first VF's
//    own BAR sizes when that VF is present with known sizes, else empty.
//  - A VF whose config space reads vendor 0xffff (as VFs do in dumps) gets
//    its PF's vendor and the VF Device ID.
//  - description: the NTB table's text, else the pci.ids name, else
//    "unknown". A function whose capability lists are corrupt is still
//    listed, with the problem appended to its description.
// Errors: INVALID_ARGUMENT for a malformed dump (naming file and line) or a
// missing path; NOT_FOUND when the dump or sysfs root does not exist;
// FAILED_PRECONDITION for libpci's own fatal errors (text included).
// Thread-compatible: libpci's error hooks are per thread, so concurrent
// calls from different threads are fine.
absl::StatusOr<fabric::v1::NodeInventory> Discover(
    const DiscoveryOptions& options);

// A human-readable table: address, kind, vendor:device, class, BAR sizes,
// description; then one detail block per SR-IOV function.
std::string FormatInventory(const fabric::v1::NodeInventory& inv);

// The body of `fabric-agent --discover`: discovers, prints the table (or the
// NodeInventory as JSON when `json`) to `out`, errors to `err`. Returns the
// process exit code: 0 on success, 1 when discovery failed.
int RunDiscover(const DiscoveryOptions& options, bool json, std::ostream& out,
                std::ostream& err);

}  // namespace fabric::agent::discovery

#endif  // FABRIC_AGENT_DISCOVERY_INVENTORY_H_
