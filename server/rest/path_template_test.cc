#include "server/rest/path_template.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::rest {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

PathTemplate MustParse(absl::string_view text) {
  absl::StatusOr<PathTemplate> t = PathTemplate::Parse(text);
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

TEST(PathTemplateTest, LiteralsMatchExactly) {
  PathTemplate t = MustParse("/v1/fabrics");
  EXPECT_TRUE(t.Match("/v1/fabrics").has_value());
  EXPECT_TRUE(t.Match("/v1/fabrics")->empty());
  EXPECT_FALSE(t.Match("/v1/fabric").has_value());
  EXPECT_FALSE(t.Match("/v1/fabrics/f1").has_value());
  EXPECT_FALSE(t.Match("v1/fabrics").has_value());
}

TEST(PathTemplateTest, AVariableBindsTheSegmentsItMatched) {
  PathTemplate t = MustParse("/v1/{name=nodes/*/vfs/*}");
  EXPECT_THAT(*t.Match("/v1/nodes/n1/vfs/0000-3b-00.4"),
              ElementsAre(Pair("name", "nodes/n1/vfs/0000-3b-00.4")));
  EXPECT_FALSE(t.Match("/v1/nodes/n1/vf/x").has_value());
  EXPECT_FALSE(t.Match("/v1/nodes//vfs/x").has_value());  // empty segment
  EXPECT_THAT(t.Fields(), ElementsAre("name"));
}

TEST(PathTemplateTest, AVariableWithoutAPatternIsOneSegment) {
  PathTemplate t = MustParse("/v1/things/{thing.id}");
  EXPECT_THAT(*t.Match("/v1/things/a1"), ElementsAre(Pair("thing.id", "a1")));
  EXPECT_FALSE(t.Match("/v1/things/a1/b").has_value());
}

TEST(PathTemplateTest, TheVerbMustBeThere) {
  PathTemplate t = MustParse("/v1/{name=links/*}:setState");
  EXPECT_EQ(t.verb(), "setState");
  EXPECT_THAT(*t.Match("/v1/links/n1--n2:setState"),
              ElementsAre(Pair("name", "links/n1--n2")));
  EXPECT_FALSE(t.Match("/v1/links/n1--n2").has_value());
  EXPECT_FALSE(t.Match("/v1/links/n1--n2:verify").has_value());
}

TEST(PathTemplateTest, AColonInsideAValueIsNotAVerbWithoutOne) {
  PathTemplate t = MustParse("/v1/{name=allocations/*}");
  EXPECT_THAT(*t.Match("/v1/allocations/a:b"),
              ElementsAre(Pair("name", "allocations/a:b")));
}

TEST(PathTemplateTest, DoubleStarTakesTheRest) {
  PathTemplate t = MustParse("/v1/{path=files/**}");
  EXPECT_THAT(*t.Match("/v1/files/a/b/c"),
              ElementsAre(Pair("path", "files/a/b/c")));
  EXPECT_FALSE(t.Match("/v1/files").has_value());
}

TEST(PathTemplateTest, BadTemplatesAreRefusedSayingWhy) {
  struct Case {
    const char* text;
    const char* why;
  } cases[] = {
      {"v1/x", "must start with"},
      {"/v1//x", "empty segment"},
      {"/v1/{name", "not closed"},
      {"/v1/{a={b}}", "nest"},
      {"/v1/{1a}", "bad field path"},
      {"/v1/{a}/{a}", "bound twice"},
      {"/v1/**/x", "last segment"},
      {"/v1/x:", "verb"},
      {"/v1/{a}b", "end its segment"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PathTemplate> t = PathTemplate::Parse(c.text);
    ASSERT_FALSE(t.ok()) << c.text;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(t.status().message(), HasSubstr(c.why)) << c.text;
    EXPECT_THAT(t.status().message(), HasSubstr(c.text));
  }
}

}  // namespace
}  // namespace fabric::rest
