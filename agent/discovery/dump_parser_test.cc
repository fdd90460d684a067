#include "agent/discovery/dump_parser.h"

#include <string>

#include "agent/discovery/test_configs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::discovery {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kTestdata = DISCOVERY_TESTDATA;

std::string Header64(const std::string& addr) {
  return testing::ToLspci(addr, "Device", testing::UnknownDeviceConfig(64));
}

TEST(DumpParserTest, ParsesGoodDump) {
  absl::StatusOr<std::vector<DumpedFunction>> d =
      ReadLspciDump(kTestdata + "/good.lspci");
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->size(), 5u);
  EXPECT_EQ((*d)[0].address.ToString(), "0000:3b:00.0");
  EXPECT_EQ((*d)[0].config, testing::SriovPfConfig(2));
  EXPECT_EQ((*d)[0].line, 1);
  EXPECT_THAT((*d)[0].description, StartsWith("Ethernet controller: Intel"));
  EXPECT_EQ((*d)[1].config.size(), 256u);
  EXPECT_EQ((*d)[3].address.ToString(), "0000:ae:00.0");
  EXPECT_EQ((*d)[3].config, testing::IntelNtbConfig());
  EXPECT_EQ((*d)[4].address.ToString(), "0000:d8:00.0");  // no domain given
  EXPECT_EQ((*d)[4].config.size(), 64u);
}

TEST(DumpParserTest, AcceptsCrlfAndFiveDigitDomains) {
  std::string text = testing::ToLspci("10000:00:01.0", "Bridge",
                                      testing::UnknownDeviceConfig(64));
  std::string crlf;
  for (char c : text) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  absl::StatusOr<std::vector<DumpedFunction>> d = ParseLspciDump(crlf, "x");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)[0].address.domain, 0x10000u);
}

TEST(DumpParserTest, BadHexNamesFileAndLine) {
  const std::string path = kTestdata + "/bad_hex.lspci";
  absl::StatusOr<std::vector<DumpedFunction>> d = ReadLspciDump(path);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().ToString(), HasSubstr(": " + path + ":5: "));
  EXPECT_THAT(d.status().ToString(),
              HasSubstr("expected 16 hex bytes after \"30:\"; field 1 is "
                        "\"zz\""));
}

TEST(DumpParserTest, ShortLineNamesLine) {
  absl::StatusOr<std::vector<DumpedFunction>> d =
      ReadLspciDump(kTestdata + "/short_line.lspci");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().ToString(),
              HasSubstr(":8: expected 16 hex bytes after \"60:\", found 15"));
}

TEST(DumpParserTest, DataBeforeHeader) {
  absl::StatusOr<std::vector<DumpedFunction>> d =
      ReadLspciDump(kTestdata + "/missing_header.lspci");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().ToString(),
              HasSubstr(":1: data before any device header"));
}

TEST(DumpParserTest, DataAfterBlankLine) {
  std::string text = Header64("00:01.0") +
                     "\n40: 00 00 00 00 00 00 00 00 "
                     "00 00 00 00 00 00 00 00\n";
  EXPECT_THAT(ParseLspciDump(text, "f").status().ToString(),
              HasSubstr("f:7: data after an empty line"));
}

TEST(DumpParserTest, OffsetsOutOfOrder) {
  std::string text = Header64("00:01.0");
  // Swap the "10:" and "20:" lines.
  const size_t a = text.find("10:");
  const size_t b = text.find("20:");
  const size_t line_len = b - a;
  std::string l10 = text.substr(a, line_len), l20 = text.substr(b, line_len);
  text.replace(a, line_len, l20).replace(b, line_len, l10);
  EXPECT_THAT(ParseLspciDump(text, "f").status().ToString(),
              HasSubstr("f:3: offsets out of order: expected \"10:\", found "
                        "\"20:\""));
}

TEST(DumpParserTest, BadAddress) {
  std::string text = Header64("00:20.0");
  absl::Status s = ParseLspciDump(text, "f").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.ToString(), HasSubstr("f:1: bad PCI address \"00:20.0\""));
  EXPECT_THAT(ParseLspciDump(Header64("0:01.0"), "f").status().ToString(),
              HasSubstr("f:1: bad address \"0:01.0\""));
}

TEST(DumpParserTest, HeaderNeedsDescription) {
  std::string text = Header64("00:01.0");
  text.replace(0, text.find('\n'), "00:01.0");
  EXPECT_THAT(ParseLspciDump(text, "f").status().ToString(),
              HasSubstr("f:1: device header \"00:01.0\" needs a space"));
}

TEST(DumpParserTest, DuplicateDevice) {
  std::string text = Header64("00:01.0") + "\n" + Header64("0000:00:01.0");
  EXPECT_THAT(ParseLspciDump(text, "f").status().ToString(),
              HasSubstr("f:7: device 0000:00:01.0 already appeared at line 1"));
}

TEST(DumpParserTest, WrongConfigSize) {
  std::string text = Header64("00:01.0");
  text += "40: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n";
  EXPECT_THAT(ParseLspciDump(text, "f").status().ToString(),
              HasSubstr("f:1: device 0000:00:01.0 has 80 bytes of config "
                        "space; expected 64, 256 or 4096"));
}

TEST(DumpParserTest, GarbageLine) {
  std::string text = Header64("00:01.0") + "hello world\n";
  EXPECT_THAT(ParseLspciDump(text, "f").status().ToString(),
              HasSubstr("f:6: expected a device header"));
}

TEST(DumpParserTest, MissingFinalNewline) {
  std::string text = Header64("00:01.0");
  text.pop_back();
  EXPECT_THAT(ParseLspciDump(text, "f").status().ToString(),
              HasSubstr("f:5: last line has no newline"));
}

TEST(DumpParserTest, EmptyDump) {
  EXPECT_THAT(ParseLspciDump("", "f").status().ToString(),
              HasSubstr("no devices"));
  EXPECT_THAT(ParseLspciDump("\n\n", "f").status().ToString(),
              HasSubstr("no devices"));
}

TEST(DumpParserTest, MissingFile) {
  EXPECT_EQ(ReadLspciDump("/nonexistent/dump.lspci").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace fabric::agent::discovery
