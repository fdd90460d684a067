#include "agent/hw/testing/mock_sriov_functions.h"

#include "agent/discovery/test_configs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw {
namespace {

using ::testing::_;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Return;

const discovery::PciAddress kVf = *discovery::ParsePciAddress("3b:02.0");

// A VF whose MSI-X table (4 vectors) is in BAR 3 at 0x2000.
std::vector<uint8_t> VfConfig() {
  return discovery::testing::ConfigBuilder(256)
      .Set16(0x06, 0x0010)
      .Set8(0x34, 0x70)
      .Cap(0x70, vf::kMsixCapId, 0)
      .Set16(0x72, 3)
      .Set32(0x74, 0x2000 | 3)
      .Build();
}

TEST(MockSriovFunctionsTest, DefaultWriteMsixEntryWritesTheEntryInItsBar) {
  MockSriovFunctions fns;
  fns.DelegateWriteMsixEntryToDefault();
  const vf::MsixEntry entry{0x2'0000'1000ull, 7, false};
  const std::array<uint8_t, vf::kMsixEntryBytes> bytes =
      vf::EncodeMsixEntry(entry);
  EXPECT_CALL(fns, ConfigSpace(kVf)).WillOnce(Return(VfConfig()));
  EXPECT_CALL(fns, BarWrite(kVf, 3, 0x2000 + 2 * 16, ElementsAreArray(bytes)))
      .WillOnce(Return(absl::OkStatus()));
  EXPECT_TRUE(fns.WriteMsixEntry(kVf, 2, entry).ok());
}

TEST(MockSriovFunctionsTest, DefaultWriteMsixEntryRefusesVectorsPastTheTable) {
  MockSriovFunctions fns;
  fns.DelegateWriteMsixEntryToDefault();
  EXPECT_CALL(fns, ConfigSpace(kVf)).WillOnce(Return(VfConfig()));
  EXPECT_CALL(fns, BarWrite(_, _, _, _)).Times(0);
  absl::Status s = fns.WriteMsixEntry(kVf, 4, vf::MsixEntry{});
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(s.message(), HasSubstr("the table has 4"));
}

TEST(MockSriovFunctionsTest, DefaultWriteMsixEntryNeedsAnMsixCapability) {
  MockSriovFunctions fns;
  fns.DelegateWriteMsixEntryToDefault();
  EXPECT_CALL(fns, ConfigSpace(kVf))
      .WillOnce(Return(std::vector<uint8_t>(256, 0)));
  EXPECT_EQ(fns.WriteMsixEntry(kVf, 0, vf::MsixEntry{}).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace fabric::agent::hw
