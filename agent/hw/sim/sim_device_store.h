// The on-disk state of one node's simulated SR-IOV devices (SimSriovHost):
// the parsed devices.json (DeviceState) and the files under
// <sim_dir>/<node>/ that hold it (DeviceStore). File formats are described
// in sriov_device.h.
//
// DeviceStore does no locking: the caller holds the flock on lock_path()
// around every read-modify-write (see FileLock in state_file.h), and
// serializes its own threads. It keeps a reference to the hardware it is
// made with, which must outlive it.
#ifndef FABRIC_AGENT_HW_SIM_SIM_DEVICE_STORE_H_
#define FABRIC_AGENT_HW_SIM_SIM_DEVICE_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/discovery/pci_address.h"
#include "agent/hw/sim/sim_config_space.h"
#include "agent/hw/sim/sim_hardware.h"

namespace fabric::agent::hw::sim_internal {

// Every present function of one node, as devices.json holds them.
struct DeviceState {
  struct Func {
    discovery::PciAddress address;
    int pf_index = 0;  // into SimHardware::pfs
    bool vf = false;
    int vf_index = -1;
    bool failed = false;
    bool link_down = false;  // PFs only
    sim_config::Config cfg{};
  };
  std::vector<Func> funcs;  // sorted by address

  // Index into funcs of the function at `a`, or -1.
  int Find(const discovery::PciAddress& a) const;
  // As Find, but NOT_FOUND naming the address.
  absl::StatusOr<int> FindOrError(const discovery::PciAddress& a) const;
  // Index into funcs of PF `pf_index`, or -1.
  int FindPf(int pf_index) const;
  void Sort();
  // Function `fi` is failed, or behind a PF link that is down.
  bool Dead(int fi) const;
};

class DeviceStore {
 public:
  DeviceStore(const std::string& sim_dir, const std::string& node,
              const SimHardware& hw);

  const std::string& state_path() const { return state_path_; }  // devices.json
  const std::string& lock_path() const { return lock_path_; }    // devices.lock
  const std::string& bar_dir() const { return bar_dir_; }        // devices/

  // Reads devices.json. NOT_FOUND when absent; DATA_LOSS (naming the file and
  // the function) when it does not parse or names functions `hw` lacks.
  absl::StatusOr<DeviceState> Load() const;
  // Replaces devices.json by an atomic rename (no fsync).
  absl::Status Save(const DeviceState& s) const;

  // The sparse file holding BAR `bar` of the function at `addr`.
  std::string BarPath(const discovery::PciAddress& addr, int bar) const;
  // Creates (or truncates) the BAR files of PF pf_index (vf == false) or of
  // one of its VFs at `addr`, every MSI-X vector masked.
  absl::Status CreateFunctionFiles(int pf_index, bool vf,
                                   const discovery::PciAddress& addr) const;
  // Removes them; missing files are ignored.
  void RemoveFunctionFiles(int pf_index, bool vf,
                           const discovery::PciAddress& addr) const;

 private:
  const SimHardware& hw_;
  const std::string node_;
  const std::string state_path_;
  const std::string lock_path_;
  const std::string bar_dir_;
};

// The hardware stored in the devices.json text read from `path`, as JSON.
// DATA_LOSS "<path> does not parse" when the text is not a SimDevicesState.
absl::StatusOr<std::string> StoredHardwareJson(const std::string& path,
                                               const std::string& text);

// mkdir that accepts an existing directory.
absl::Status MakeDir(const std::string& path);

// Reads exactly out.size() bytes of `path` at `off` (DATA_LOSS if the file
// is shorter), or writes all of `data` there.
absl::Status PRead(const std::string& path, uint64_t off,
                   absl::Span<uint8_t> out);
absl::Status PWrite(const std::string& path, uint64_t off,
                    absl::Span<const uint8_t> data);

}  // namespace fabric::agent::hw::sim_internal

#endif  // FABRIC_AGENT_HW_SIM_SIM_DEVICE_STORE_H_
