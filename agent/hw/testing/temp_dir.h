// A temporary directory for hardware-layer tests, removed with its contents
// when the object goes away. Test-only.
#ifndef FABRIC_AGENT_HW_TESTING_TEMP_DIR_H_
#define FABRIC_AGENT_HW_TESTING_TEMP_DIR_H_

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace fabric::agent::hw::testing {

class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TEST_TMPDIR");
    std::string tmpl =
        std::string(base != nullptr ? base : "/tmp") + "/fabric_hw_test.XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) abort();
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    nftw(
        path_.c_str(),
        [](const char* p, const struct stat*, int, struct FTW*) {
          return remove(p);
        },
        16, FTW_DEPTH | FTW_PHYS);
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace fabric::agent::hw::testing

#endif  // FABRIC_AGENT_HW_TESTING_TEMP_DIR_H_
