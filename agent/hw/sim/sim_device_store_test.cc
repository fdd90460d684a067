// The simulated devices' on-disk state: devices.json round trip, its
// corruption checks, and the BAR files.
#include "agent/hw/sim/sim_device_store.h"

#include <sys/stat.h>

#include <array>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/hw/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw::sim_internal {
namespace {

using ::fabric::agent::hw::testing::TempDir;
using ::testing::HasSubstr;

constexpr char kHardware[] = R"json({
  "bridgeProfile": "sim",
  "pfs": [
    {"address": "0000:3b:00.0", "vendorId": 32902, "deviceId": 5490,
     "vfDeviceId": 5452, "totalVfs": 8, "numVfs": 0,
     "vfOffset": 16, "vfStride": 1,
     "barSizes": ["33554432", "0", "0", "32768"],
     "vfBarSizes": ["65536", "0", "0", "16384"],
     "msixVectors": 4, "msixBar": 3}
  ]
})json";

absl::Status WriteStringToFile(const std::string& path,
                               const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  return out ? absl::OkStatus() : absl::InternalError("write " + path);
}

class SimDeviceStoreTest : public ::testing::Test {
 protected:
  SimDeviceStoreTest()
      : hw_(*ParseSimHardware(kHardware)), store_(dir_.path(), "n0", hw_) {
    EXPECT_TRUE(MakeDir(absl::StrCat(dir_.path(), "/n0")).ok());
    EXPECT_TRUE(MakeDir(store_.bar_dir()).ok());
  }

  TempDir dir_;
  const SimHardware hw_;
  const DeviceStore store_;
};

TEST_F(SimDeviceStoreTest, SaveThenLoadRoundTrips) {
  DeviceState s;
  DeviceState::Func pf;
  pf.address = hw_.pfs[0].address;
  pf.link_down = true;
  sim_config::Put(pf.cfg, 0x00, 4, 0x15728086);
  sim_config::Put(pf.cfg, 0xffc, 4, 0xdeadbeef);
  DeviceState::Func vf;
  vf.address = hw_.pfs[0].VfAddress(2);
  vf.vf = true;
  vf.vf_index = 2;
  vf.failed = true;
  s.funcs = {vf, pf};
  s.Sort();
  ASSERT_TRUE(store_.Save(s).ok());

  absl::StatusOr<DeviceState> got = store_.Load();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->funcs.size(), 2u);
  EXPECT_EQ(got->Find(hw_.pfs[0].address), 0);
  EXPECT_EQ(got->FindPf(0), 0);
  const DeviceState::Func& p = got->funcs[0];
  EXPECT_TRUE(p.link_down);
  EXPECT_EQ(p.cfg, pf.cfg);
  const DeviceState::Func& v = got->funcs[1];
  EXPECT_TRUE(v.vf);
  EXPECT_EQ(v.vf_index, 2);
  EXPECT_TRUE(v.failed);
  EXPECT_TRUE(got->Dead(0));  // its link is down
  EXPECT_TRUE(got->Dead(1));
  EXPECT_EQ(got->FindOrError(hw_.pfs[0].VfAddress(3)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SimDeviceStoreTest, LoadReportsAbsentAndCorruptFiles) {
  EXPECT_EQ(store_.Load().status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteStringToFile(store_.state_path(), "{not json").ok());
  EXPECT_EQ(store_.Load().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(
      StoredHardwareJson(store_.state_path(), "{not json").status().code(),
      absl::StatusCode::kDataLoss);
  ASSERT_TRUE(WriteStringToFile(store_.state_path(),
                                R"({"functions": [{"address": "0000:3b:00.0",
                                     "config": ["000: zz"]}]})")
                  .ok());
  absl::StatusOr<DeviceState> bad = store_.Load();
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr("bad config row"));
  ASSERT_TRUE(
      WriteStringToFile(store_.state_path(),
                        R"({"functions": [{"address": "0000:5e:00.0"}]})")
          .ok());
  EXPECT_THAT(store_.Load().status().message(),
              HasSubstr("its PF is not in the hardware"));
}

TEST_F(SimDeviceStoreTest, FunctionFilesHaveBarSizesAndMaskedVectors) {
  const discovery::PciAddress vf = hw_.pfs[0].VfAddress(0);
  ASSERT_TRUE(store_.CreateFunctionFiles(0, /*vf=*/true, vf).ok());
  struct stat st;
  ASSERT_EQ(stat(store_.BarPath(vf, 0).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 65536);
  std::array<uint8_t, 1> ctl{};
  ASSERT_TRUE(PRead(store_.BarPath(vf, 3),
                    vf::MsixEntryOffset(3) + vf::kMsixVectorControl,
                    absl::MakeSpan(ctl))
                  .ok());
  EXPECT_EQ(ctl[0], vf::kMsixVectorMasked);
  std::array<uint8_t, 2> past{};
  EXPECT_EQ(PRead(store_.BarPath(vf, 3), 16383, absl::MakeSpan(past)).code(),
            absl::StatusCode::kDataLoss);
  store_.RemoveFunctionFiles(0, true, vf);
  EXPECT_NE(stat(store_.BarPath(vf, 0).c_str(), &st), 0);
}

}  // namespace
}  // namespace fabric::agent::hw::sim_internal
