// The simulated host's hardware file: the examples load, and every rule
// refuses with a message naming its field.
#include "agent/hw/sim/sim_hardware.h"

#include <string>

#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw {
namespace {

using ::testing::HasSubstr;

constexpr char kGood[] = R"json({
  "bridgeProfile": "sim",
  "pfs": [
    {"address": "0000:3b:00.0", "vendorId": 32902, "deviceId": 5490,
     "vfDeviceId": 5452, "totalVfs": 8, "numVfs": 8,
     "vfOffset": 16, "vfStride": 1,
     "barSizes": ["33554432", "0", "0", "32768"],
     "vfBarSizes": ["65536", "0", "0", "16384"],
     "msixVectors": 4, "msixBar": 3}
  ]
})json";

// kGood with `from` replaced by `to` (which must occur).
std::string With(const std::string& from, const std::string& to) {
  const std::string good = kGood;
  EXPECT_NE(good.find(from), std::string::npos) << from;
  return absl::StrReplaceAll(good, {{from, to}});
}

TEST(SimHardwareTest, ParsesTheGoodFile) {
  absl::StatusOr<SimHardware> hw = ParseSimHardware(kGood);
  ASSERT_TRUE(hw.ok()) << hw.status();
  EXPECT_EQ(hw->bridge_profile, "sim");
  EXPECT_EQ(hw->mmio_base, kDefaultMmioBase);
  ASSERT_EQ(hw->pfs.size(), 1u);
  const SimPf& pf = hw->pfs[0];
  EXPECT_EQ(pf.address.ToString(), "0000:3b:00.0");
  EXPECT_EQ(pf.vendor_id, 0x8086);
  EXPECT_EQ(pf.vf_device_id, 0x154c);
  EXPECT_EQ(pf.class_code, kDefaultClassCode);
  EXPECT_EQ(pf.initial_vfs, 8);  // Defaults to totalVfs.
  EXPECT_EQ(pf.bar_sizes[0], 32u << 20);
  EXPECT_EQ(pf.vf_bar_sizes[3], 16384u);
  EXPECT_EQ(pf.VfAddress(0).ToString(), "0000:3b:02.0");
  EXPECT_EQ(pf.VfAddress(7).ToString(), "0000:3b:02.7");
  // Round trip.
  absl::StatusOr<SimHardware> again = ParseSimHardware(SimHardwareToJson(*hw));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(*again == *hw);
}

TEST(SimHardwareTest, LaysOutBarsAlignedAndApart) {
  absl::StatusOr<SimHardware> hw = ParseSimHardware(kGood);
  ASSERT_TRUE(hw.ok());
  absl::StatusOr<std::vector<PfBarLayout>> l = LayoutBars(*hw);
  ASSERT_TRUE(l.ok()) << l.status();
  const PfBarLayout& p = (*l)[0];
  EXPECT_EQ(p.bar_base[0], kDefaultMmioBase);
  EXPECT_EQ(p.bar_base[3], kDefaultMmioBase + (32u << 20));
  EXPECT_EQ(p.vf_bar_base[0] % 65536, 0u);
  EXPECT_GE(p.vf_bar_base[0], p.bar_base[3] + 32768);
  EXPECT_GE(p.vf_bar_base[3], p.vf_bar_base[0] + 8 * 65536);
  EXPECT_EQ(p.bar_base[1], 0u);
}

TEST(SimHardwareTest, ExampleFilesLoad) {
  absl::StatusOr<SimHardware> one =
      LoadSimHardware(std::string(HW_SIM_EXAMPLES) + "/one_pf.json");
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->pfs.size(), 1u);
  EXPECT_EQ(one->pfs[0].total_vfs, 8);
  absl::StatusOr<SimHardware> none =
      LoadSimHardware(std::string(HW_SIM_EXAMPLES) + "/no_pf.json");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->pfs.empty());
}

TEST(SimHardwareTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadSimHardware("/nonexistent/hw.json").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SimHardwareTest, BadJsonNamesThePath) {
  const std::string path = std::string(HW_SIM_EXAMPLES) + "/../sim_hardware.h";
  absl::StatusOr<SimHardware> hw = LoadSimHardware(path);
  EXPECT_EQ(hw.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(hw.status().message(), HasSubstr("sim_hardware.h: "));
}

struct BadCase {
  std::string name;
  std::string json;
  std::string message;  // Expected substring, starting with the field.
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class SimHardwareErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(SimHardwareErrorTest, NamesTheFieldAndLimit) {
  absl::StatusOr<SimHardware> hw = ParseSimHardware(GetParam().json);
  ASSERT_FALSE(hw.ok());
  EXPECT_EQ(hw.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(hw.status().message(), HasSubstr(GetParam().message));
}

const std::string kSecondPf = R"json(,
    {"address": "0000:3b:00.1", "vendorId": 32902, "deviceId": 5490,
     "vfDeviceId": 5452, "totalVfs": 8, "vfOffset": 15, "vfStride": 1,
     "barSizes": ["65536"], "vfBarSizes": ["65536"],
     "msixVectors": 4, "msixBar": 0}
  ])json";

INSTANTIATE_TEST_SUITE_P(
    Rules, SimHardwareErrorTest,
    ::testing::Values(
        BadCase{"NotJson", "{", "does not parse"},
        BadCase{"NoProfile", With("\"bridgeProfile\": \"sim\",", ""),
                "bridgeProfile: required"},
        BadCase{"UnknownProfile", With("\"sim\"", "\"nope\""),
                "bridgeProfile: unknown profile 'nope'"},
        BadCase{"BadAddress", With("0000:3b:00.0", "0000:3b:20.0"),
                "pfs[0].address: "},
        BadCase{"VendorFfff", With("32902", "65535"),
                "pfs[0].vendorId: 0xffff is not a vendor ID"},
        BadCase{"DeviceId", With("5490", "70000"),
                "pfs[0].deviceId: 70000 exceeds the limit 65535"},
        BadCase{"TotalVfs", With("\"totalVfs\": 8", "\"totalVfs\": 257"),
                "pfs[0].totalVfs: 257 exceeds the limit 256"},
        BadCase{"NumVfs", With("\"numVfs\": 8", "\"numVfs\": 9"),
                "pfs[0].numVfs: 9 exceeds the limit 8"},
        BadCase{"InitialVfs",
                With("\"numVfs\": 8", "\"numVfs\": 8, \"initialVfs\": 9"),
                "pfs[0].initialVfs: 9 exceeds the limit 8"},
        BadCase{"NoOffset", With("\"vfOffset\": 16", "\"vfOffset\": 0"),
                "pfs[0].vfOffset: must be >= 1"},
        BadCase{"NoStride", With("\"vfStride\": 1", "\"vfStride\": 0"),
                "pfs[0].vfStride: must be >= 1"},
        BadCase{"NotPowerOfTwo", With("\"32768\"", "\"1000\""),
                "pfs[0].barSizes[3]: 1000 is not a power of two"},
        BadCase{"TooSmallVfBar", With("\"16384\"", "\"2048\""),
                "pfs[0].vfBarSizes[3]: 2048 is outside [4096, 2^48]"},
        BadCase{"UpperHalfUsed",
                With("[\"33554432\", \"0\"", "[\"33554432\", \"4096\""),
                "pfs[0].barSizes[1]: must be 0: 64-bit BAR0"},
        BadCase{"Bar5",
                With("\"0\", \"0\", \"32768\"]",
                     "\"0\", \"0\", \"32768\", \"0\", \"16\"]"),
                "pfs[0].barSizes[5]: a 64-bit BAR at index 5"},
        BadCase{"TooManyBars",
                With("\"0\", \"0\", \"32768\"]",
                     "\"0\", \"0\", \"32768\", \"0\", \"0\", \"0\"]"),
                "pfs[0].barSizes: 7 entries"},
        BadCase{"MsixBarMissing", With("\"msixBar\": 3", "\"msixBar\": 1"),
                "pfs[0].msixBar: barSizes[1] is 0"},
        BadCase{"MsixBarRange", With("\"msixBar\": 3", "\"msixBar\": 6"),
                "pfs[0].msixBar: 6 is outside [0, 5]"},
        BadCase{"MsixVectors",
                With("\"msixVectors\": 4", "\"msixVectors\": 2049"),
                "pfs[0].msixVectors: 2049 is outside [1, 2048]"},
        BadCase{"MsixTableTooBig",
                With("\"msixVectors\": 4", "\"msixVectors\": 1024"),
                "pfs[0].msixVectors: the MSI-X table and PBA of 1024 vectors "
                "need 16512 bytes; vfBarSizes[3] is 16384"},
        BadCase{"RoutingIdOverflow", With("0000:3b:00.0", "0000:ff:1f.7"),
                "pfs[0].vfOffset: VF 0 would have routing ID 0x1000f"},
        BadCase{"DuplicateAddress",
                With("\n  ]",
                     absl::StrReplaceAll(kSecondPf, {{"3b:00.1", "3b:00.0"}})),
                "pfs[1].address: 0000:3b:00.0 is already used by pfs[0]"},
        BadCase{"VfCollision", With("\n  ]", kSecondPf),
                "pfs[1].vfOffset: VF 0 (0000:3b:02.0) collides with pfs[0] "
                "VF 0"},
        BadCase{"VfOnPf",
                With("\n  ]",
                     absl::StrReplaceAll(kSecondPf, {{"3b:00.1", "3b:02.3"},
                                                     {"\"vfOffset\": 15",
                                                      "\"vfOffset\": 200"}})),
                "pfs[0].vfOffset: VF 3 (0000:3b:02.3) collides with pfs[1]"},
        BadCase{"MmioTooSmall",
                With("\"bridgeProfile\": \"sim\",",
                     "\"bridgeProfile\": \"sim\", \"mmioSize\": \"1048576\","),
                "mmioSize: the BARs do not fit"},
        BadCase{"MmioMisaligned",
                With("\"bridgeProfile\": \"sim\",",
                     "\"bridgeProfile\": \"sim\", \"mmioBase\": \"100\","),
                "mmioBase: 0x64 is not 4 KiB-aligned"}),
    [](const ::testing::TestParamInfo<BadCase>& i) { return i.param.name; });

}  // namespace
}  // namespace fabric::agent::hw
