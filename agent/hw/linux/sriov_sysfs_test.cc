// LinuxSriov against a fabricated sysfs tree in a temporary directory.
#include "agent/hw/linux/sriov_sysfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/hw/testing/fake_sysfs.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw {
namespace {

using discovery::PciAddress;
using ::fabric::agent::hw::testing::FakeSysfs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

PciAddress Addr(const std::string& s) { return *discovery::ParsePciAddress(s); }

class LinuxSriovTest : public ::testing::Test, protected FakeSysfs {
 protected:
  LinuxSriovTest() : sriov_(root()) {
    Mkdirs(absl::StrCat(root(), "/bus/pci/devices"));
    pf_ = Device("0000:3b:00.0");
    Write(pf_ + "/sriov_totalvfs", "8\n");
    Write(pf_ + "/sriov_numvfs", "0\n");
  }

  // What the kernel shows with n VFs of the PF at 3b:00.0 (offset 16,
  // stride 1): virtfnN -> ../0000:3b:02.N and each VF's physfn.
  void EnableVfs(int n) {
    Write(pf_ + "/sriov_numvfs", absl::StrCat(n, "\n"));
    for (int i = 0; i < n; ++i) {
      const std::string vf = absl::StrCat("0000:3b:02.", i);
      Device(vf);
      symlink(absl::StrCat("../", vf).c_str(),
              absl::StrCat(pf_, "/virtfn", i).c_str());
      symlink("../0000:3b:00.0",
              absl::StrCat(root(), "/bus/pci/devices/", vf, "/physfn")
                  .c_str());
    }
  }

  LinuxSriov sriov_;
  std::string pf_;
};

TEST_F(LinuxSriovTest, ReadsCountsAndLinks) {
  EXPECT_EQ(*sriov_.TotalVfs(Addr("3b:00.0")), 8);
  EXPECT_EQ(*sriov_.NumVfs(Addr("3b:00.0")), 0);
  EXPECT_TRUE(sriov_.VfAddresses(Addr("3b:00.0"))->empty());
  EnableVfs(3);
  EXPECT_EQ(*sriov_.NumVfs(Addr("3b:00.0")), 3);
  EXPECT_THAT(*sriov_.VfAddresses(Addr("3b:00.0")),
              ElementsAre(Addr("3b:02.0"), Addr("3b:02.1"), Addr("3b:02.2")));
  EXPECT_EQ(*sriov_.PhysFn(Addr("3b:02.1")), Addr("3b:00.0"));
  EXPECT_EQ(sriov_.PhysFn(Addr("3b:00.0")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LinuxSriovTest, MissingDeviceOrFileIsNotFound) {
  EXPECT_EQ(sriov_.TotalVfs(Addr("5e:00.0")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(sriov_.VfAddresses(Addr("5e:00.0")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(sriov_.PhysFn(Addr("5e:00.0")).status().code(),
            absl::StatusCode::kNotFound);
  Device("0000:5e:00.0");  // Present, but no SR-IOV files.
  EXPECT_EQ(sriov_.NumVfs(Addr("5e:00.0")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LinuxSriovTest, GarbageIsDataLoss) {
  Write(pf_ + "/sriov_numvfs", "lots\n");
  absl::StatusOr<int> n = sriov_.NumVfs(Addr("3b:00.0"));
  EXPECT_EQ(n.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(n.status().message(), HasSubstr("sriov_numvfs"));
}

TEST_F(LinuxSriovTest, SetNumVfsChecksTotalAndSkipsNoOps) {
  EXPECT_EQ(sriov_.SetNumVfs(Addr("3b:00.0"), 9).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Read(pf_ + "/sriov_numvfs"), "0\n");  // Nothing written.
  ASSERT_TRUE(sriov_.SetNumVfs(Addr("3b:00.0"), 4).ok());
  EXPECT_EQ(Read(pf_ + "/sriov_numvfs"), "4");
  ASSERT_TRUE(sriov_.SetNumVfs(Addr("3b:00.0"), 0).ok());
  EXPECT_EQ(Read(pf_ + "/sriov_numvfs"), "0");
  // Same count: not written at all (a read-only file would refuse).
  Write(pf_ + "/sriov_numvfs", "2\n");
  chmod((pf_ + "/sriov_numvfs").c_str(), 0444);
  if (geteuid() != 0) {
    EXPECT_TRUE(sriov_.SetNumVfs(Addr("3b:00.0"), 2).ok());
    EXPECT_FALSE(sriov_.SetNumVfs(Addr("3b:00.0"), 0).ok());
  }
}

// sriov_numvfs as a FIFO plays the kernel: it serves the current count to
// the read and records each write, so the exact sequence is visible.
TEST_F(LinuxSriovTest, ChangingBetweenNonZeroCountsWritesZeroFirst) {
  const std::string path = pf_ + "/sriov_numvfs";
  unlink(path.c_str());
  ASSERT_EQ(mkfifo(path.c_str(), 0644), 0);
  // Everything written, in order (two quick writes may share one reader).
  std::string written;
  std::thread kernel([&] {
    {  // The read of the current count.
      const int fd = open(path.c_str(), O_WRONLY);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(write(fd, "4\n", 2), 2);
      close(fd);
    }
    while (written.size() < 2) {
      const int fd = open(path.c_str(), O_RDONLY);
      ASSERT_GE(fd, 0);
      char buf[16];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) written.append(buf, n);
      close(fd);
    }
  });
  EXPECT_TRUE(sriov_.SetNumVfs(Addr("3b:00.0"), 8).ok());
  kernel.join();
  EXPECT_EQ(written, "08");  // "0", then "8".
}

}  // namespace
}  // namespace fabric::agent::hw
