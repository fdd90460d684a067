// Pure argument helpers of the commands layer: spec files, durations,
// labels, generated specs and spec comparison.
#include <cstdio>
#include <fstream>

#include "client/commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::client {
namespace {

using ::testing::HasSubstr;

TEST(ParseFabricSpecTest, ReadsProtobufJson) {
  absl::StatusOr<v1::FabricSpec> spec = ParseFabricSpec(R"({
    "name": "r1",
    "topology": "RING",
    "defaultExportSize": "1073741824",
    "nodes": [{"name": "a"}, {"name": "b", "profile": "sim"}]
  })",
                                                        "r1.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "r1");
  EXPECT_EQ(spec->topology(), v1::RING);
  EXPECT_EQ(spec->default_export_size(), uint64_t{1} << 30);
  ASSERT_EQ(spec->nodes_size(), 2);
  EXPECT_EQ(spec->nodes(1).profile(), "sim");
}

TEST(ParseFabricSpecTest, AcceptsProtoFieldNames) {
  absl::StatusOr<v1::FabricSpec> spec = ParseFabricSpec(
      R"({"name": "s", "topology": "STAR", "hub": "m",
          "default_profile": "sim", "nodes": [{"name": "m"}]})",
      "s.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->default_profile(), "sim");
}

TEST(ParseFabricSpecTest, SyntaxErrorNamesFileLineAndParserMessage) {
  absl::StatusOr<v1::FabricSpec> spec = ParseFabricSpec(
      "{\n  \"name\": \"r1\",\n  \"topology\": \"RING\"\n  \"nodes\": []\n}",
      "bad.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(IsUsageError(spec.status()));
  EXPECT_THAT(spec.status().message(), HasSubstr("bad.json: line 4, column 3"));
  EXPECT_THAT(spec.status().message(), HasSubstr("Expected , or }"));
}

TEST(ParseFabricSpecTest, UnknownFieldIsAnError) {
  absl::StatusOr<v1::FabricSpec> spec =
      ParseFabricSpec(R"({"name": "r1", "nodez": []})", "typo.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), HasSubstr("typo.json"));
  EXPECT_THAT(spec.status().message(), HasSubstr("nodez"));
}

TEST(ParseFabricSpecTest, BadEnumAndEmptyAndNamelessAreErrors) {
  EXPECT_THAT(
      ParseFabricSpec(R"({"name": "r1", "topology": "RINGG"})", "f")
          .status()
          .message(),
      HasSubstr("RINGG"));
  EXPECT_THAT(ParseFabricSpec("  \n", "f").status().message(),
              HasSubstr("empty"));
  EXPECT_THAT(ParseFabricSpec(R"({"topology": "RING"})", "f")
                  .status()
                  .message(),
              HasSubstr("no \"name\""));
}

TEST(ReadFabricSpecFileTest, ReadsFileAndReportsMissingOneAsUsageError) {
  std::string path = ::testing::TempDir() + "/spec_test_r1.json";
  {
    std::ofstream f(path);
    f << R"({"name": "r1", "topology": "RING", "nodes": [{"name": "a"}]})";
  }
  absl::StatusOr<v1::FabricSpec> spec = ReadFabricSpecFile(path);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->nodes(0).name(), "a");
  std::remove(path.c_str());

  absl::StatusOr<v1::FabricSpec> missing = ReadFabricSpecFile(path);
  EXPECT_TRUE(IsUsageError(missing.status()));
  EXPECT_THAT(missing.status().message(),
              HasSubstr("-f " + path + ": no such file"));
}

TEST(ParseDurationFlagTest, AcceptsUnitsAndBareSeconds) {
  EXPECT_EQ(*ParseDurationFlag("30s", "--ttl"), absl::Seconds(30));
  EXPECT_EQ(*ParseDurationFlag("5m", "--ttl"), absl::Minutes(5));
  EXPECT_EQ(*ParseDurationFlag("1h", "--ttl"), absl::Hours(1));
  EXPECT_EQ(*ParseDurationFlag("1h30m", "--ttl"), absl::Minutes(90));
  EXPECT_EQ(*ParseDurationFlag("250ms", "--timeout"), absl::Milliseconds(250));
  EXPECT_EQ(*ParseDurationFlag("12", "--timeout"), absl::Seconds(12));
}

TEST(ParseDurationFlagTest, RejectsGarbageZeroAndNegative) {
  for (const char* bad : {"soon", "5x", "", "0s", "-1m", "inf"}) {
    absl::StatusOr<absl::Duration> d = ParseDurationFlag(bad, "--ttl");
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_TRUE(IsUsageError(d.status())) << bad;
    EXPECT_THAT(d.status().message(), HasSubstr("--ttl")) << bad;
  }
}

TEST(ParseLabelsTest, SplitsOnFirstEquals) {
  absl::StatusOr<std::map<std::string, std::string>> labels =
      ParseLabels({"job=42", "expr=a=b", "empty="});
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ(labels->at("job"), "42");
  EXPECT_EQ(labels->at("expr"), "a=b");
  EXPECT_EQ(labels->at("empty"), "");
  EXPECT_THAT(ParseLabels({"novalue"}).status().message(),
              HasSubstr("--label"));
  EXPECT_FALSE(ParseLabels({"=v"}).ok());
}

TEST(ParseNameListTest, SplitsStripsAndJoinsRepeatedFlags) {
  absl::StatusOr<std::vector<std::string>> names =
      ParseNameList({"a, b", "c"}, "--nodes");
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b", "c"}));
  // The position counts across repeated flags.
  absl::Status empty = ParseNameList({"a,b", "c,"}, "--nodes").status();
  EXPECT_TRUE(IsUsageError(empty));
  EXPECT_THAT(empty.message(), HasSubstr("--nodes: name 4 is empty"));
  EXPECT_THAT(ParseNameList({}, "--nodes").status().message(),
              HasSubstr("--nodes: the list is empty"));
}

TEST(SpecBuildersTest, StarPutsHubFirstOnce) {
  v1::FabricSpec spec = StarSpec("s", "m", {"a", "m", "b"}, "sim", 4096);
  EXPECT_EQ(spec.topology(), v1::STAR);
  EXPECT_EQ(spec.hub(), "m");
  ASSERT_EQ(spec.nodes_size(), 3);
  EXPECT_EQ(spec.nodes(0).name(), "m");
  EXPECT_EQ(spec.nodes(1).name(), "a");
  EXPECT_EQ(spec.nodes(2).name(), "b");
  EXPECT_EQ(spec.default_profile(), "sim");
  EXPECT_EQ(spec.default_export_size(), 4096u);
}

TEST(SpecBuildersTest, RingKeepsOrder) {
  v1::FabricSpec spec = RingSpec("r", {"c", "a", "b"}, "", 0);
  EXPECT_EQ(spec.topology(), v1::RING);
  ASSERT_EQ(spec.nodes_size(), 3);
  EXPECT_EQ(spec.nodes(0).name(), "c");
}

TEST(SameFabricSpecTest, DocumentedDefaultsCompareEqual) {
  v1::FabricSpec user = RingSpec("r", {"a", "b"}, "", 0);
  v1::FabricSpec stored = RingSpec("r", {"a", "b"}, "sim", uint64_t{1} << 30);
  stored.mutable_nodes(0)->set_profile("sim");
  stored.mutable_nodes(1)->set_window_base(0x200'0000'0000);
  EXPECT_TRUE(SameFabricSpec(user, stored));

  v1::FabricSpec other = RingSpec("r", {"b", "a"}, "", 0);
  EXPECT_FALSE(SameFabricSpec(user, other));
  v1::FabricSpec bigger = RingSpec("r", {"a", "b"}, "", uint64_t{2} << 30);
  EXPECT_FALSE(SameFabricSpec(user, bigger));
}

TEST(QualifyTest, AddsCollectionOnce) {
  EXPECT_EQ(Qualify("allocations", "alloc-1"), "allocations/alloc-1");
  EXPECT_EQ(Qualify("allocations", "allocations/alloc-1"),
            "allocations/alloc-1");
}

TEST(ParseResourceKindTest, PluralSingularAndUnknown) {
  EXPECT_EQ(*ParseResourceKind("nodes"), ResourceKind::kNode);
  EXPECT_EQ(*ParseResourceKind("node"), ResourceKind::kNode);
  EXPECT_EQ(*ParseResourceKind("maps"), ResourceKind::kMap);
  EXPECT_EQ(*ParseResourceKind("allocations"), ResourceKind::kAllocation);
  absl::StatusOr<ResourceKind> bad = ParseResourceKind("widgets");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(IsUsageError(bad.status()));
}

TEST(NewRequestIdTest, IsRandom) {
  EXPECT_NE(NewRequestId(), NewRequestId());
  EXPECT_EQ(NewRequestId().size(), std::string("fabricctl-").size() + 32);
}

}  // namespace
}  // namespace fabric::client
