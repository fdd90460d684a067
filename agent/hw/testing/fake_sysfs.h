// A fabricated sysfs tree for tests of the Linux hardware backends: PCI
// device directories under ROOT/bus/pci/devices/ and the attribute files in
// them, in a temporary directory removed with the object. Test-only; a test
// fixture derives from it to write the tree.
#ifndef FABRIC_AGENT_HW_TESTING_FAKE_SYSFS_H_
#define FABRIC_AGENT_HW_TESTING_FAKE_SYSFS_H_

#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/hw/testing/temp_dir.h"
#include "common/file_util.h"

namespace fabric::agent::hw::testing {

class FakeSysfs {
 public:
  // The directory that stands for /sys.
  const std::string& root() const { return dir_.path(); }

  // Creates ROOT/bus/pci/devices/BDF (and its parents) and returns its path.
  std::string Device(const std::string& bdf) const {
    const std::string p = absl::StrCat(root(), "/bus/pci/devices/", bdf);
    Mkdirs(p);
    return p;
  }

  // mkdir -p.
  static void Mkdirs(const std::string& path) {
    for (size_t i = 1; i <= path.size(); ++i) {
      if (i == path.size() || path[i] == '/') {
        mkdir(path.substr(0, i).c_str(), 0755);
      }
    }
  }
  // Replaces the file at `path` with `text` / `bytes`.
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
  }
  static void WriteBytes(const std::string& path,
                         const std::vector<uint8_t>& bytes) {
    std::ofstream(path, std::ios::trunc | std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  // The file's contents; the test fails on a missing file (bad optional).
  static std::string Read(const std::string& path) {
    return *ReadFileToString(path);
  }

 private:
  TempDir dir_;
};

}  // namespace fabric::agent::hw::testing

#endif  // FABRIC_AGENT_HW_TESTING_FAKE_SYSFS_H_
