#include "common/units.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric {
namespace {

TEST(ParseSizeTest, AcceptsBinaryUnits) {
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("4K"), 4096u);
  EXPECT_EQ(*ParseSize("64KiB"), 65536u);
  EXPECT_EQ(*ParseSize("2 MiB"), 2u << 20);
  EXPECT_EQ(*ParseSize("1g"), 1u << 30);
  EXPECT_EQ(*ParseSize("3GB"), 3ull << 30);
  EXPECT_EQ(*ParseSize("1TiB"), 1ull << 40);
}

TEST(ParseSizeTest, RejectsGarbageNamingTheField) {
  auto s = ParseSize("lots", "--size");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), testing::HasSubstr("--size"));
  EXPECT_FALSE(ParseSize("4XB").ok());
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseSize("16384PiB").ok());  // 2^64 overflows
}

TEST(FormatSizeTest, PicksLargestExactUnit) {
  EXPECT_EQ(FormatSize(0), "0 B");
  EXPECT_EQ(FormatSize(1536), "1536 B");
  EXPECT_EQ(FormatSize(4096), "4 KiB");
  EXPECT_EQ(FormatSize(3ull << 30), "3 GiB");
  EXPECT_EQ(FormatSize((1ull << 30) + (1ull << 20)), "1025 MiB");
}

TEST(FormatSizeTest, RoundTrips) {
  for (uint64_t v : {1ull, 4096ull, 3ull << 20, 5ull << 40, 12345ull}) {
    EXPECT_EQ(*ParseSize(FormatSize(v)), v) << v;
  }
}

TEST(FormatAddrTest, GroupsDigits) {
  EXPECT_EQ(FormatAddr(0), "0x0");
  EXPECT_EQ(FormatAddr(0x100000000000ull), "0x1000_0000_0000");
  EXPECT_EQ(FormatAddr(0x12345), "0x1_2345");
}

}  // namespace
}  // namespace fabric
