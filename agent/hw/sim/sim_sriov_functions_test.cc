// SimSriovFunctions against the simulator's device model.
#include "agent/hw/sim/sim_sriov_functions.h"

#include "agent/hw/sim/sim_hardware.h"
#include "agent/hw/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw {
namespace {

using ::testing::HasSubstr;

constexpr char kOnePf[] = R"json({
  "bridgeProfile": "sim",
  "pfs": [{"address": "0000:3b:00.0", "vendorId": 32902, "deviceId": 5490,
           "vfDeviceId": 5452, "totalVfs": 8, "initialVfs": 8, "numVfs": 2,
           "vfOffset": 16, "vfStride": 1,
           "barSizes": ["33554432", "0", "0", "32768"],
           "vfBarSizes": ["65536", "0", "0", "16384"],
           "msixVectors": 4, "msixBar": 3}]})json";

const discovery::PciAddress kPf = *discovery::ParsePciAddress("3b:00.0");
const discovery::PciAddress kVf = *discovery::ParsePciAddress("3b:02.0");

class SimSriovFunctionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto spec = ParseSimHardware(kOnePf);
    ASSERT_TRUE(spec.ok()) << spec.status();
    auto host = SimSriovHost::Open(dir_.path(), "n1", *spec);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = *std::move(host);
    fns_ = std::make_unique<SimSriovFunctions>(host_.get());
  }

  testing::TempDir dir_;
  std::unique_ptr<SimSriovHost> host_;
  std::unique_ptr<SimSriovFunctions> fns_;
};

TEST_F(SimSriovFunctionsTest, InventoryAndConfigComeFromTheModel) {
  auto inv = fns_->Inventory();
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->functions_size(), 3);  // the PF and 2 VFs
  EXPECT_EQ(*fns_->ConfigRead(kPf, 0x00, 2), 32902u);
  EXPECT_EQ(*fns_->NumVfs(kPf), 2);
  ASSERT_TRUE(fns_->SetNumVfs(kPf, 0).ok());
  EXPECT_EQ(fns_->ConfigRead(kVf, 0x00, 2).status().code(),
            absl::StatusCode::kNotFound);
}

// The model's own table location and the interface's default (through the
// MSI-X capability) agree, byte for byte.
TEST_F(SimSriovFunctionsTest, MsixEntryLandsWhereTheCapabilitySays) {
  const vf::MsixEntry e{0x200'4000'0008ull, 0x41, false};
  ASSERT_TRUE(fns_->WriteMsixEntry(kVf, 1, e).ok());
  std::array<uint8_t, vf::kMsixEntryBytes> got{};
  ASSERT_TRUE(
      fns_->BarRead(kVf, 3, vf::MsixEntryOffset(1), absl::MakeSpan(got)).ok());
  EXPECT_EQ(got, vf::EncodeMsixEntry(e));
  ASSERT_TRUE(fns_->SriovFunctions::WriteMsixEntry(kVf, 2, e).ok());
  ASSERT_TRUE(
      fns_->BarRead(kVf, 3, vf::MsixEntryOffset(2), absl::MakeSpan(got)).ok());
  EXPECT_EQ(got, vf::EncodeMsixEntry(e));
  EXPECT_EQ(fns_->WriteMsixEntry(kVf, 4, e).code(),
            absl::StatusCode::kOutOfRange);
}

TEST_F(SimSriovFunctionsTest, FlrIsUnimplemented) {
  absl::Status s = fns_->ResetFunction(kVf);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("does not model FLR"));
}

}  // namespace
}  // namespace fabric::agent::hw
