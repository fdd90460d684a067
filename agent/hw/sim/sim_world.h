// The simulator's data path over a whole <sim_dir> (domain.md section 4):
// follows an access from the issuing host through its outbound window and
// every bridge's mapping-chip entries, reading each bridge's state file.
//
// A write by host H at addr:
//  - addr in none of H's windows: a local access; it lands in H's memory if
//    [addr, addr+len) lies in it, else faults "not host memory".
//  - else the window translates it into a fabric address fa; the whole
//    access must lie in that window ("crosses window end").
//  - at each bridge, starting with H's: an entry containing fa must cover
//    [fa, fa+len) ("no matching entry", "crosses entry end"); a claim
//    translates into that bridge's host and must lie within one inbound grant
//    ("outside every grant"); a forward leaves by its port to the peer bridge
//    recorded there, if both ends' port records are up and name each other
//    ("link down at port P"). Crossing more links than there are bridges in
//    sim_dir faults "loop".
// A fault is a result (landed == false, reason set), never an error; errors
// are for unreadable state or I/O failures.
//
// Stateless and thread-safe; concurrent processes may change the state files
// under it (each walk reads each file it needs once, whole).
#ifndef FABRIC_AGENT_HW_SIM_SIM_WORLD_H_
#define FABRIC_AGENT_HW_SIM_SIM_WORLD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/hw/bridge_hardware.h"

namespace fabric::agent::hw {

// The devices of the simulated world: CPU writes that land in a node's
// device MMIO range (a lent VF's BAR) are carried into them. Implemented by
// the SR-IOV device model (SimDevicesMmio in sriov_device.h), which depends
// on SimWorld, not the other way round.
class SimDeviceMmio {
 public:
  virtual ~SimDeviceMmio() = default;
  // Writes `data` at host-physical `addr` of `node`'s device MMIO range.
  // What the device refuses (no BAR decodes the range, memory space
  // disabled, past a BAR's end) is NOT_FOUND, FAILED_PRECONDITION or
  // OUT_OF_RANGE; other errors are I/O failures.
  virtual absl::Status Write(const std::string& node, uint64_t addr,
                             absl::Span<const uint8_t> data) = 0;
};

class SimWorld {
 public:
  // Where an access of `len` bytes at `addr` by `src_node` would go.
  // NOT_FOUND if src_node has no state in sim_dir.
  static absl::StatusOr<AccessResult> Walk(const std::string& sim_dir,
                                           const std::string& src_node,
                                           uint64_t addr, uint64_t len);

  // Walks like Walk and, when the access lands, writes `data` into the
  // landing host's memory file, or, when it lands in the host's device MMIO
  // range, into the device through `devices` (UNIMPLEMENTED without one).
  // A fault writes nothing; so does a device's refusal, which is a fault too
  // (an unsupported request on PCIe).
  static absl::StatusOr<AccessResult> Write(const std::string& sim_dir,
                                            const std::string& src_node,
                                            uint64_t addr,
                                            absl::Span<const uint8_t> data,
                                            SimDeviceMmio* devices = nullptr);

  // Reads `node`'s own memory at host-physical `addr`. OUT_OF_RANGE unless
  // [addr, addr + out.size()) lies in its memory.
  static absl::Status ReadMemory(const std::string& sim_dir,
                                 const std::string& node, uint64_t addr,
                                 absl::Span<uint8_t> out);

  // The nodes with a state file in sim_dir, sorted.
  static absl::StatusOr<std::vector<std::string>> Nodes(
      const std::string& sim_dir);
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_SIM_SIM_WORLD_H_
