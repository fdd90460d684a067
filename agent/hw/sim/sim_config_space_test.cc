// The simulated config space: power-on contents, write masks and access
// checks (the register semantics over them are in sriov_device_test.cc).
#include "agent/hw/sim/sim_config_space.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw::sim_config {
namespace {

using ::testing::HasSubstr;

// One PF with two memory BARs and two VFs.
constexpr char kHardware[] = R"json({"bridgeProfile": "sim", "pfs": [{
    "address": "0000:3b:00.0", "vendorId": 32902, "deviceId": 5490,
    "vfDeviceId": 5452, "totalVfs": 2, "vfOffset": 16, "vfStride": 1,
    "barSizes": ["33554432", "0", "0", "32768"],
    "vfBarSizes": ["65536", "0", "0", "16384"],
    "msixVectors": 4, "msixBar": 3}]})json";

SimHardware Hw() { return *ParseSimHardware(kHardware); }

TEST(SimConfigSpaceTest, GetAndPutAreLittleEndian) {
  Config c{};
  Put(c, 0x10, 4, 0x11223344);
  EXPECT_EQ(c[0x10], 0x44);
  EXPECT_EQ(c[0x13], 0x11);
  EXPECT_EQ(Get(c, 0x10, 2), 0x3344u);
  EXPECT_EQ(Get(c, 0x10, 4), 0x11223344u);
}

TEST(SimConfigSpaceTest, PfPowerOnPlacesBarsAndCapabilities) {
  const SimHardware hw = Hw();
  const std::vector<PfBarLayout> layout = *LayoutBars(hw);
  Config cfg;
  Config mask;
  Build(hw.pfs[0], /*vf=*/false, /*multifunction=*/false, layout[0], cfg, mask);
  EXPECT_EQ(Get(cfg, 0x00, 2), 32902u);
  EXPECT_EQ(Get(cfg, 0x02, 2), 5490u);
  EXPECT_EQ(Get(cfg, kCommand, 2), kCmdMemory);
  EXPECT_EQ(Get(cfg, 0x34, 1), kSimPcieCapOffset);
  EXPECT_EQ(BarValue(cfg, kBar0), layout[0].bar_base[0]);
  EXPECT_EQ(BarValue(cfg, kSriovVfBar0), layout[0].vf_bar_base[0]);
  // A 32 MiB BAR keeps only its size-aligned bits writable.
  EXPECT_EQ(Get(mask, kBar0, 4), 0xfe000000u);
  EXPECT_EQ(Get(cfg, kSriovNumVfs, 2), 0u);
  EXPECT_EQ(Get(mask, kSriovNumVfs, 2), 0xffffu);
  EXPECT_EQ(mask, MaskOf(hw.pfs[0], false));
}

TEST(SimConfigSpaceTest, VfReadsNoIdsNoBarsAndOnlyBusMasterWritable) {
  const SimHardware hw = Hw();
  Config cfg;
  Config mask;
  Build(hw.pfs[0], /*vf=*/true, false, PfBarLayout{}, cfg, mask);
  EXPECT_EQ(Get(cfg, 0x00, 4), 0xffffffffu);
  EXPECT_EQ(Get(cfg, 0x2e, 2), 5452u);  // subsystem: the VF Device ID
  EXPECT_EQ(Get(cfg, kBar0, 4), 0u);
  EXPECT_EQ(Get(mask, kBar0, 4), 0u);
  EXPECT_EQ(Get(mask, kCommand, 2) & kCmdMemory, 0u);
  EXPECT_NE(Get(mask, kCommand, 2) & kCmdBusMaster, 0u);
  EXPECT_EQ(Get(cfg, kSimSriovCapOffset, 4), 0u);  // no extended caps
}

TEST(SimConfigSpaceTest, CheckAccess) {
  EXPECT_TRUE(CheckAccess(0x00, 4).ok());
  EXPECT_TRUE(CheckAccess(0xffe, 2).ok());
  EXPECT_TRUE(CheckAccess(0xfff, 1).ok());
  EXPECT_EQ(CheckAccess(0x02, 4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckAccess(0x00, 3).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(CheckAccess(0x1000, 1).message(), HasSubstr("0x1000"));
}

}  // namespace
}  // namespace fabric::agent::hw::sim_config
