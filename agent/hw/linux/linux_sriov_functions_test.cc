// LinuxSriovFunctions against a fabricated sysfs tree in a temporary
// directory, and read-only against this machine's real PCI functions.
#include "agent/hw/linux/linux_sriov_functions.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/discovery/test_configs.h"
#include "agent/hw/testing/fake_sysfs.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw {
namespace {

using discovery::PciAddress;
using ::fabric::agent::hw::testing::FakeSysfs;
using ::testing::HasSubstr;

const PciAddress kPf = *discovery::ParsePciAddress("3b:00.0");
const PciAddress kVf = *discovery::ParsePciAddress("3b:02.0");
constexpr uint64_t kBar0Size = 16 << 10;

class LinuxSriovFunctionsTest : public ::testing::Test,
                                protected FakeSysfs {
 protected:
  LinuxSriovFunctionsTest() : fns_(root()) {
    pf_ = Device("0000:3b:00.0");
    // An 8086:1572 PF whose MSI-X table (4 vectors) is in BAR 0 at 0x1000.
    std::vector<uint8_t> config = discovery::testing::ConfigBuilder(4096)
                                      .Set16(0x00, 0x8086)
                                      .Set16(0x02, 0x1572)
                                      .Set32(0x08, 0x02000001)
                                      .Set16(0x06, 0x0010)
                                      .Set8(0x34, 0x70)
                                      .Cap(0x70, vf::kMsixCapId, 0)
                                      .Set16(0x72, 3)
                                      .Set32(0x74, 0x1000)
                                      .Build();
    WriteBytes(pf_ + "/config", config);
    WriteBytes(pf_ + "/resource0", std::vector<uint8_t>(kBar0Size, 0));
    Write(pf_ + "/sriov_totalvfs", "8\n");
    Write(pf_ + "/sriov_numvfs", "1\n");
    Write(pf_ + "/reset", "");
    const std::string vf = Device("0000:3b:02.0");
    WriteBytes(vf + "/config", discovery::testing::SriovVfConfig());
    symlink("../0000:3b:02.0", (pf_ + "/virtfn0").c_str());
    symlink("../0000:3b:00.0", (vf + "/physfn").c_str());
  }


  LinuxSriovFunctions fns_;
  std::string pf_;
};

TEST_F(LinuxSriovFunctionsTest, ConfigAccessesGoToTheirOffsets) {
  EXPECT_EQ(*fns_.ConfigRead(kPf, 0x00, 2), 0x8086u);
  EXPECT_EQ(*fns_.ConfigRead(kPf, 0x00, 4), 0x15728086u);
  EXPECT_EQ(*fns_.ConfigRead(kPf, 0x03, 1), 0x15u);
  ASSERT_TRUE(fns_.ConfigWrite(kPf, 0x04, 2, 0x0006).ok());
  const std::string config = Read(pf_ + "/config");
  ASSERT_EQ(config.size(), 4096u);
  EXPECT_EQ(config[4], 0x06);
  EXPECT_EQ(config[5], 0x00);
  EXPECT_EQ(config[0], static_cast<char>(0x86));  // nothing else written
  EXPECT_EQ(fns_.ConfigSpace(kPf)->size(), 4096u);
  EXPECT_EQ(fns_.ConfigRead(kPf, 0x01, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fns_.ConfigRead(kPf, 0xffe, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The VF's config file shows 256 bytes.
  EXPECT_EQ(fns_.ConfigRead(kVf, 0x100, 4).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(fns_.ConfigRead(*discovery::ParsePciAddress("5e:00.0"), 0, 2)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LinuxSriovFunctionsTest, BarAccessesGoThroughTheResourceFile) {
  const std::vector<uint8_t> data = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(fns_.BarWrite(kPf, 0, 0x102, data).ok());
  const std::string bar = Read(pf_ + "/resource0");
  ASSERT_EQ(bar.size(), kBar0Size);
  EXPECT_EQ(bar.substr(0x102, 6), "\x01\x02\x03\x04\x05\x06");
  std::vector<uint8_t> got(6);
  ASSERT_TRUE(fns_.BarRead(kPf, 0, 0x102, absl::MakeSpan(got)).ok());
  EXPECT_EQ(got, data);
  EXPECT_EQ(fns_.BarWrite(kPf, 0, kBar0Size - 2, data).code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(fns_.BarRead(kPf, 2, 0, absl::MakeSpan(got)).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LinuxSriovFunctionsTest, MsixEntryLandsInTheTableTheCapabilityNames) {
  const vf::MsixEntry e{0x2'0000'1000ull, 9, false};
  ASSERT_TRUE(fns_.WriteMsixEntry(kPf, 3, e).ok());
  const std::string bar = Read(pf_ + "/resource0");
  const std::array<uint8_t, vf::kMsixEntryBytes> want = vf::EncodeMsixEntry(e);
  EXPECT_EQ(bar.substr(0x1000 + 3 * 16, 16),
            std::string(want.begin(), want.end()));
  EXPECT_EQ(fns_.WriteMsixEntry(kPf, 4, e).code(),
            absl::StatusCode::kOutOfRange);
}

TEST_F(LinuxSriovFunctionsTest, NumVfsAndReset) {
  EXPECT_EQ(*fns_.NumVfs(kPf), 1);
  ASSERT_TRUE(fns_.SetNumVfs(kPf, 0).ok());
  EXPECT_EQ(Read(pf_ + "/sriov_numvfs"), "0");
  ASSERT_TRUE(fns_.ResetFunction(kPf).ok());
  EXPECT_EQ(Read(pf_ + "/reset"), "1");
  unlink((pf_ + "/reset").c_str());
  EXPECT_EQ(fns_.ResetFunction(kPf).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(fns_.ResetFunction(*discovery::ParsePciAddress("5e:00.0")).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LinuxSriovFunctionsTest, DmaAndRaisingVectorsAreUnimplemented) {
  absl::StatusOr<AccessResult> dma = fns_.Dma(kVf, 0x1000, {});
  EXPECT_EQ(dma.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(dma.status().message(), HasSubstr("NTB window"));
  absl::StatusOr<MsixResult> raise = fns_.RaiseMsix(kVf, 0);
  EXPECT_EQ(raise.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(raise.status().message(), HasSubstr("driver"));
}

TEST_F(LinuxSriovFunctionsTest, HealthReadsConfigSpace) {
  absl::StatusOr<FunctionHealth> pf = fns_.Health(kPf);
  ASSERT_TRUE(pf.ok()) << pf.status();
  EXPECT_TRUE(pf->config_readable && pf->vendor_ok && pf->pf_link_up);
  // A VF reads vendor 0xffff; its health comes from its PF.
  absl::StatusOr<FunctionHealth> vf = fns_.Health(kVf);
  ASSERT_TRUE(vf.ok()) << vf.status();
  EXPECT_TRUE(vf->config_readable && vf->vendor_ok && vf->pf_link_up);
  // The PF stops answering.
  WriteBytes(pf_ + "/config", std::vector<uint8_t>(4096, 0xff));
  vf = fns_.Health(kVf);
  ASSERT_TRUE(vf.ok()) << vf.status();
  EXPECT_FALSE(vf->vendor_ok);
  EXPECT_FALSE(vf->pf_link_up);
  EXPECT_EQ(fns_.Health(*discovery::ParsePciAddress("5e:00.0")).status().code(),
            absl::StatusCode::kNotFound);
}

// Read-only, on this machine's own functions (CI has virtio ones): the
// vendor and device ids read through config space equal sysfs's.
TEST(LinuxSriovFunctionsRealTest, ReadsRealConfigSpace) {
  LinuxSriovFunctions fns("/sys");
  const std::string root = "/sys/bus/pci/devices";
  DIR* dir = opendir(root.c_str());
  if (dir == nullptr) GTEST_SKIP() << root << " does not exist";
  int checked = 0;
  while (struct dirent* e = readdir(dir)) {
    absl::StatusOr<PciAddress> bdf = discovery::ParsePciAddress(e->d_name);
    if (!bdf.ok()) continue;
    absl::StatusOr<std::string> vendor =
        ReadFileToString(absl::StrCat(root, "/", e->d_name, "/vendor"));
    absl::StatusOr<std::string> device =
        ReadFileToString(absl::StrCat(root, "/", e->d_name, "/device"));
    absl::StatusOr<uint32_t> read_vendor = fns.ConfigRead(*bdf, 0x00, 2);
    absl::StatusOr<uint32_t> read_device = fns.ConfigRead(*bdf, 0x02, 2);
    if (!vendor.ok() || !device.ok() || !read_vendor.ok() ||
        !read_device.ok()) {
      continue;
    }
    uint32_t want_vendor = 0, want_device = 0;
    ASSERT_TRUE(absl::SimpleHexAtoi(absl::StripAsciiWhitespace(*vendor),
                                    &want_vendor));
    ASSERT_TRUE(absl::SimpleHexAtoi(absl::StripAsciiWhitespace(*device),
                                    &want_device));
    EXPECT_EQ(*read_vendor, want_vendor) << e->d_name;
    EXPECT_EQ(*read_device, want_device) << e->d_name;
    absl::StatusOr<std::vector<uint8_t>> config = fns.ConfigSpace(*bdf);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_GE(config->size(), 64u) << e->d_name;
    ++checked;
  }
  closedir(dir);
  if (checked == 0) {
    GTEST_SKIP() << "no PCI function under " << root
                 << " has a readable config space";
  }
}

}  // namespace
}  // namespace fabric::agent::hw
