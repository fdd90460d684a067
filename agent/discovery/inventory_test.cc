#include "agent/discovery/inventory.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "agent/discovery/test_configs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::discovery {
namespace {

namespace fs = std::filesystem;
using fabric::v1::NodeInventory;
using fabric::v1::PciFunction;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::string kTestdata = DISCOVERY_TESTDATA;

const PciFunction* Find(const NodeInventory& inv, const std::string& addr) {
  for (const PciFunction& f : inv.functions()) {
    if (f.address() == addr) return &f;
  }
  return nullptr;
}

std::vector<std::string> Addresses(const NodeInventory& inv) {
  std::vector<std::string> out;
  for (const PciFunction& f : inv.functions()) out.push_back(f.address());
  return out;
}

DiscoveryOptions DumpOptions(const std::string& file) {
  DiscoveryOptions o;
  o.source = DiscoveryOptions::Source::kDumpFile;
  o.path = file;
  return o;
}

TEST(InventoryDumpTest, ClassifiesGoodDump) {
  absl::StatusOr<NodeInventory> inv =
      Discover(DumpOptions(kTestdata + "/good.lspci"));
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_THAT(Addresses(*inv),
              ElementsAre("0000:3b:00.0", "0000:3b:02.0", "0000:3b:02.1",
                          "0000:ae:00.0", "0000:d8:00.0"));

  const PciFunction* pf = Find(*inv, "0000:3b:00.0");
  ASSERT_NE(pf, nullptr);
  EXPECT_EQ(pf->kind(), PciFunction::SRIOV_PF);
  EXPECT_EQ(pf->vendor_id(), 0x8086u);
  EXPECT_EQ(pf->device_id(), 0x1572u);
  EXPECT_EQ(pf->class_code(), 0x020000u);
  EXPECT_THAT(pf->bar_sizes(), IsEmpty());  // a dump holds no sizes
  ASSERT_TRUE(pf->has_sriov());
  EXPECT_EQ(pf->sriov().initial_vfs(), 8u);
  EXPECT_EQ(pf->sriov().total_vfs(), 8u);
  EXPECT_EQ(pf->sriov().num_vfs(), 2u);
  EXPECT_EQ(pf->sriov().vf_offset(), 0x10u);
  EXPECT_EQ(pf->sriov().vf_stride(), 1u);
  EXPECT_EQ(pf->sriov().vf_device_id(), 0x154cu);
  EXPECT_THAT(pf->sriov().vf_addresses(),
              ElementsAre("0000:3b:02.0", "0000:3b:02.1"));
  EXPECT_THAT(pf->sriov().vf_bar_sizes(), IsEmpty());

  for (const char* addr : {"0000:3b:02.0", "0000:3b:02.1"}) {
    const PciFunction* vf = Find(*inv, addr);
    ASSERT_NE(vf, nullptr);
    EXPECT_EQ(vf->kind(), PciFunction::SRIOV_VF) << addr;
    // Config space says ffff:ffff; the PF says what the VF is.
    EXPECT_EQ(vf->vendor_id(), 0x8086u);
    EXPECT_EQ(vf->device_id(), 0x154cu);
  }

  const PciFunction* ntb = Find(*inv, "0000:ae:00.0");
  ASSERT_NE(ntb, nullptr);
  EXPECT_EQ(ntb->kind(), PciFunction::NTB);
  EXPECT_EQ(ntb->description(), "Intel Xeon NTB (Skylake)");
  EXPECT_EQ(ntb->class_code(), 0x068000u);

  const PciFunction* unknown = Find(*inv, "0000:d8:00.0");
  ASSERT_NE(unknown, nullptr);
  EXPECT_EQ(unknown->kind(), PciFunction::OTHER);
  EXPECT_EQ(unknown->description(), "unknown");
  EXPECT_EQ(unknown->vendor_id(), 0xfeedu);
}

TEST(InventoryDumpTest, MalformedDumpNamesTheLine) {
  const std::string path = kTestdata + "/short_line.lspci";
  absl::StatusOr<NodeInventory> inv = Discover(DumpOptions(path));
  EXPECT_EQ(inv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(inv.status().ToString(), HasSubstr(path + ":8: expected 16"));
}

TEST(InventoryDumpTest, MissingDumpIsNotFound) {
  EXPECT_EQ(Discover(DumpOptions("/nonexistent.lspci")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Discover(DumpOptions("")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A fabricated sysfs tree in a fresh temp dir, removed after each test. It
// holds what libpci's sysfs method reads (config, resource, vendor, device,
// class, irq) plus the SR-IOV attributes and links.
class SysfsTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/sysfs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    devices_ = root_ / "bus" / "pci" / "devices";
    fs::create_directories(devices_);
  }
  void TearDown() override { fs::remove_all(root_); }

  static void Write(const fs::path& p, const std::string& text) {
    std::ofstream(p, std::ios::binary) << text;
  }

  struct Bar {
    uint64_t start = 0;
    uint64_t size = 0;
    uint64_t flags = 0;
  };

  // Creates devices/<addr>/ with the attribute files. `bars` are BAR0-5,
  // `iov` the six SR-IOV resources that follow the ROM line when non-empty.
  fs::path AddDevice(const std::string& addr, uint16_t vendor, uint16_t device,
                     uint32_t class_code, const std::vector<uint8_t>& config,
                     std::vector<Bar> bars, std::vector<Bar> iov = {}) {
    const fs::path dir = devices_ / addr;
    fs::create_directories(dir);
    Write(dir / "config", std::string(config.begin(), config.end()));
    Write(dir / "vendor", absl::StrFormat("0x%04x\n", vendor));
    Write(dir / "device", absl::StrFormat("0x%04x\n", device));
    Write(dir / "class", absl::StrFormat("0x%06x\n", class_code));
    Write(dir / "irq", "0\n");
    bars.resize(6);
    bars.push_back({});  // expansion ROM
    if (!iov.empty()) {
      iov.resize(6);
      bars.insert(bars.end(), iov.begin(), iov.end());
    }
    std::string resource;
    for (const Bar& b : bars) {
      const uint64_t end = b.size ? b.start + b.size - 1 : 0;
      resource +=
          absl::StrFormat("0x%016x 0x%016x 0x%016x\n", b.start, end, b.flags);
    }
    Write(dir / "resource", resource);
    return dir;
  }

  void Link(const fs::path& dir, const std::string& name,
            const std::string& target) {
    fs::create_directory_symlink(fs::path("..") / target, dir / name);
  }

  // PF 0000:3b:00.0 with VFs 3b:02.0 and 3b:02.1, an Intel NTB and an
  // unknown device.
  void BuildNode(const std::string& total_vfs = "8") {
    constexpr uint64_t kPref64 = 0x14220c;
    constexpr uint64_t kMem32 = 0x40200;
    const fs::path pf = AddDevice("0000:3b:00.0", 0x8086, 0x1572, 0x020000,
                                  testing::SriovPfConfig(2),
                                  {{0x38ffd0000000, 16 << 20, kPref64},
                                   {},
                                   {},
                                   {0x38ffd1800000, 32 << 10, kPref64}},
                                  {{0x38ffd2000000, 8 * (64 << 10), kPref64},
                                   {},
                                   {},
                                   {0x38ffd2200000, 8 * (16 << 10), kPref64}});
    Write(pf / "sriov_totalvfs", total_vfs + "\n");
    Write(pf / "sriov_numvfs", "2\n");
    for (unsigned i = 0; i < 2; ++i) {
      const std::string vf_addr = absl::StrFormat("0000:3b:02.%d", i);
      const fs::path vf = AddDevice(
          vf_addr, 0x8086, 0x154c, 0x020000, testing::SriovVfConfig(),
          {{0x38ffd2000000 + uint64_t{64 << 10} * i, 64 << 10, kPref64},
           {},
           {},
           {0x38ffd2200000 + uint64_t{16 << 10} * i, 16 << 10, kPref64}});
      Link(vf, "physfn", "0000:3b:00.0");
      Link(pf, absl::StrFormat("virtfn%d", i), vf_addr);
    }
    AddDevice("0000:ae:00.0", 0x8086, 0x201c, 0x068000,
              testing::IntelNtbConfig(),
              {{0xc6f00000, 64 << 10, kMem32},
               {},
               {0x3a0000000000, 1ull << 30, kPref64},
               {},
               {0x3b0000000000, 1ull << 30, kPref64}});
    AddDevice("0000:d8:00.0", 0xfeed, 0xbeef, 0xff0000,
              testing::UnknownDeviceConfig(256),
              {{0xf7000000, 4 << 10, kMem32}});
  }

  DiscoveryOptions Options() const {
    DiscoveryOptions o;
    o.source = DiscoveryOptions::Source::kSysfsTree;
    o.path = root_.string();
    return o;
  }

  fs::path root_;
  fs::path devices_;
};

TEST_F(SysfsTreeTest, FindsPfVfsAndNtb) {
  BuildNode();
  absl::StatusOr<NodeInventory> inv = Discover(Options());
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_THAT(Addresses(*inv),
              ElementsAre("0000:3b:00.0", "0000:3b:02.0", "0000:3b:02.1",
                          "0000:ae:00.0", "0000:d8:00.0"));

  const PciFunction* pf = Find(*inv, "0000:3b:00.0");
  ASSERT_NE(pf, nullptr);
  EXPECT_EQ(pf->kind(), PciFunction::SRIOV_PF);
  EXPECT_THAT(pf->bar_sizes(), ElementsAre(16 << 20, 0, 0, 32 << 10, 0, 0));
  EXPECT_EQ(pf->sriov().total_vfs(), 8u);
  EXPECT_EQ(pf->sriov().num_vfs(), 2u);
  EXPECT_EQ(pf->sriov().vf_device_id(), 0x154cu);
  EXPECT_THAT(pf->sriov().vf_addresses(),
              ElementsAre("0000:3b:02.0", "0000:3b:02.1"));
  // From the first VF's own resource file.
  EXPECT_THAT(pf->sriov().vf_bar_sizes(),
              ElementsAre(64 << 10, 0, 0, 16 << 10, 0, 0));

  const PciFunction* vf = Find(*inv, "0000:3b:02.1");
  ASSERT_NE(vf, nullptr);
  EXPECT_EQ(vf->kind(), PciFunction::SRIOV_VF);
  EXPECT_EQ(vf->vendor_id(), 0x8086u);  // sysfs has the real IDs
  EXPECT_EQ(vf->device_id(), 0x154cu);

  const PciFunction* ntb = Find(*inv, "0000:ae:00.0");
  ASSERT_NE(ntb, nullptr);
  EXPECT_EQ(ntb->kind(), PciFunction::NTB);
  EXPECT_EQ(ntb->description(), "Intel Xeon NTB (Skylake)");
  EXPECT_THAT(ntb->bar_sizes(),
              ElementsAre(64 << 10, 0, 1ull << 30, 0, 1ull << 30, 0));

  const PciFunction* other = Find(*inv, "0000:d8:00.0");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->kind(), PciFunction::OTHER);
  EXPECT_EQ(other->description(), "unknown");
  EXPECT_THAT(other->bar_sizes(), ElementsAre(4 << 10, 0, 0, 0, 0, 0));
}

TEST_F(SysfsTreeTest, SysfsSriovAttributesWinOverConfigSpace) {
  BuildNode(/*total_vfs=*/"4");  // e.g. the driver capped TotalVFs
  absl::StatusOr<NodeInventory> inv = Discover(Options());
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(Find(*inv, "0000:3b:00.0")->sriov().total_vfs(), 4u);
}

TEST_F(SysfsTreeTest, UnprivilegedReadOfPfStillShowsSriovFromSysfs) {
  BuildNode();
  // Unprivileged readers get only the first 64 bytes of `config`.
  std::vector<uint8_t> pf = testing::SriovPfConfig(2);
  Write(devices_ / "0000:3b:00.0" / "config",
        std::string(pf.begin(), pf.begin() + 64));
  absl::StatusOr<NodeInventory> inv = Discover(Options());
  ASSERT_TRUE(inv.ok()) << inv.status();
  const PciFunction* f = Find(*inv, "0000:3b:00.0");
  EXPECT_EQ(f->kind(), PciFunction::SRIOV_PF);
  EXPECT_EQ(f->sriov().total_vfs(), 8u);
  EXPECT_EQ(f->sriov().vf_offset(), 0u);  // unknown without config space
  EXPECT_THAT(f->sriov().vf_addresses(),
              ElementsAre("0000:3b:02.0", "0000:3b:02.1"));
}

TEST_F(SysfsTreeTest, CorruptCapabilityListIsReportedNotFatal) {
  BuildNode();
  AddDevice("0000:00:05.0", 0x1af4, 0x1000, 0x020000,
            testing::LoopingCapsConfig(), {});
  absl::StatusOr<NodeInventory> inv = Discover(Options());
  ASSERT_TRUE(inv.ok()) << inv.status();
  const PciFunction* f = Find(*inv, "0000:00:05.0");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->kind(), PciFunction::OTHER);
  EXPECT_THAT(f->description(), HasSubstr("capability list loops at 0x40"));
}

TEST_F(SysfsTreeTest, LibpciFatalErrorBecomesStatus) {
  BuildNode();
  fs::remove(devices_ / "0000:ae:00.0" / "vendor");
  // libpci treats a missing `vendor` as fatal; the process must survive.
  absl::StatusOr<NodeInventory> inv = Discover(Options());
  EXPECT_EQ(inv.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(inv.status().ToString(), HasSubstr("0000:ae:00.0/vendor"));
  // And the next discovery works again.
  Write(devices_ / "0000:ae:00.0" / "vendor", "0x8086\n");
  EXPECT_TRUE(Discover(Options()).ok());
}

TEST_F(SysfsTreeTest, MissingRootIsNotFound) {
  DiscoveryOptions o = Options();
  o.path = (root_ / "nope").string();
  EXPECT_EQ(Discover(o).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SysfsTreeTest, FormatsTableAndSriovDetails) {
  BuildNode();
  absl::StatusOr<NodeInventory> inv = Discover(Options());
  ASSERT_TRUE(inv.ok()) << inv.status();
  const std::string text = FormatInventory(*inv);
  EXPECT_THAT(text, HasSubstr("ADDRESS"));
  EXPECT_THAT(text, HasSubstr("0000:ae:00.0  NTB"));
  EXPECT_THAT(text, HasSubstr("8086:201c"));
  EXPECT_THAT(text, HasSubstr("0:64 KiB 2:1 GiB 4:1 GiB"));
  EXPECT_THAT(text, HasSubstr("SR-IOV 0000:3b:00.0: 2 of 8 VFs enabled"));
  EXPECT_THAT(text, HasSubstr("VFs: 0000:3b:02.0 0000:3b:02.1"));
}

TEST(RunDiscoverTest, PrintsJsonAndTable) {
  std::ostringstream out, err;
  EXPECT_EQ(RunDiscover(DumpOptions(kTestdata + "/good.lspci"), /*json=*/true,
                        out, err),
            0);
  EXPECT_THAT(out.str(), HasSubstr("\"kind\": \"SRIOV_PF\""));
  EXPECT_THAT(out.str(), HasSubstr("\"vfAddresses\""));
  EXPECT_EQ(err.str(), "");
  std::ostringstream table;
  EXPECT_EQ(
      RunDiscover(DumpOptions(kTestdata + "/good.lspci"), false, table, err),
      0);
  EXPECT_THAT(table.str(), HasSubstr("Intel Xeon NTB (Skylake)"));
  EXPECT_THAT(table.str(), HasSubstr("?"));  // BAR sizes unknown in a dump
}

TEST(RunDiscoverTest, ReportsErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(
      RunDiscover(DumpOptions(kTestdata + "/bad_hex.lspci"), false, out, err),
      1);
  EXPECT_THAT(err.str(), HasSubstr("bad_hex.lspci:5:"));
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace fabric::agent::discovery
