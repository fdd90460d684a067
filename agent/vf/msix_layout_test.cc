#include "agent/vf/msix_layout.h"

#include "agent/discovery/test_configs.h"
#include "gtest/gtest.h"

namespace fabric::agent::vf {
namespace {

using discovery::testing::ConfigBuilder;

TEST(MsixLayoutTest, EntriesAreSixteenLittleEndianBytes) {
  const MsixEntry e{0x0000'0002'fee0'1004ull, 0x41, false};
  const std::array<uint8_t, kMsixEntryBytes> b = EncodeMsixEntry(e);
  const std::array<uint8_t, kMsixEntryBytes> want = {
      0x04, 0x10, 0xe0, 0xfe, 0x02, 0, 0, 0, 0x41, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(b, want);
  EXPECT_EQ(EncodeMsixEntry(MsixEntry{})[kMsixVectorControl], 1);
  EXPECT_EQ(MsixEntryDword(e, kMsixAddrHi), 2u);
  EXPECT_EQ(MsixEntryOffset(3), 48u);
  EXPECT_EQ(MsixTableBytes(4), 64u);
  EXPECT_EQ(MsixPbaBytes(1), 8u);
  EXPECT_EQ(MsixPbaBytes(65), 16u);
}

TEST(MsixLayoutTest, FindsTheTableTheCapabilityNames) {
  std::vector<uint8_t> config = ConfigBuilder(256)
                                    .Set16(0x06, 0x0010)  // capability list
                                    .Set8(0x34, 0x70)
                                    .Cap(0x70, kMsixCapId, 0)
                                    .Set16(0x72, 7)  // 8 vectors
                                    .Set32(0x74, 0x2000 | 3)
                                    .Build();
  absl::StatusOr<MsixTable> t = FindMsixTable(config);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->cap, 0x70);
  EXPECT_EQ(t->vectors, 8);
  EXPECT_EQ(t->bir, 3);
  EXPECT_EQ(t->offset, 0x2000u);

  config[0x70] = 0x05;  // MSI, not MSI-X
  EXPECT_EQ(FindMsixTable(config).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace fabric::agent::vf
