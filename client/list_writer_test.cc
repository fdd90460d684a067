#include "client/list_writer.h"

#include <sstream>

#include "client/output.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::client {
namespace {

v1::Node NodeNamed(const std::string& name) {
  v1::Node n;
  n.set_name(name);
  return n;
}

TEST(TableWriterTest, OneBatchIsTheTableSizedByAllItsRows) {
  Table table({"NAME", "STATE", "NOTE"});
  table.AddRow({"a", "READY"});
  table.AddRow({"longer-name", "", "x"});
  std::ostringstream whole;
  table.Print(whole, 2);
  EXPECT_EQ(whole.str(),
            "  NAME          STATE   NOTE\n"
            "  a             READY   -\n"
            "  longer-name   -       x\n");

  std::ostringstream batch;
  TableWriter(std::vector<std::string>{"NAME", "STATE", "NOTE"}, 2)
      .Write({{"a", "READY"}, {"longer-name", "", "x"}}, batch);
  EXPECT_EQ(batch.str(), whole.str());
}

TEST(TableWriterTest, LaterWiderCellsOverflowAndTheNextColumnRealigns) {
  TableWriter w({"NAME", "STATE", "NOTE"});
  std::ostringstream out;
  w.Write({{"a", "READY", "x"}}, out);
  w.Write({{"a-much-longer-name", "READY", "y"}, {"b", "GONE", "z"}}, out);
  EXPECT_EQ(out.str(),
            "NAME   STATE   NOTE\n"
            "a      READY   x\n"
            "a-much-longer-name   READY   y\n"
            "b      GONE    z\n");
}

TEST(ListWriterTest, TablePagesShareOneHeader) {
  std::ostringstream out;
  ListWriter w(OutputFormat::kTable, {"NAME"}, &out);
  w.Add(NodeNamed("nodes/a"), {"a"});
  w.EndPage();
  EXPECT_EQ(out.str(), "NAME\na\n");  // the first page is out before the next
  w.Add(NodeNamed("nodes/b"), {"b"});
  w.EndPage();
  w.EndPage();  // an empty page prints nothing
  w.Finish();
  EXPECT_EQ(out.str(), "NAME\na\nb\n");
  EXPECT_EQ(w.count(), 2);
}

TEST(ListWriterTest, EmptyListSaysSo) {
  std::ostringstream table, json;
  ListWriter t(OutputFormat::kTable, {"NAME"}, &table);
  t.EndPage();
  t.Finish();
  ListWriter j(OutputFormat::kJson, {"NAME"}, &json);
  j.Finish();
  EXPECT_EQ(table.str(), "No resources found.\n");
  EXPECT_EQ(json.str(), "[]\n");
}

TEST(ListWriterTest, JsonPagesAreOneArrayAsToJsonArrayPrintsIt) {
  std::vector<v1::Node> nodes = {NodeNamed("nodes/a"), NodeNamed("nodes/b"),
                                 NodeNamed("nodes/c")};
  std::ostringstream out;
  ListWriter w(OutputFormat::kJson, {}, &out);
  w.Add(nodes[0], {});
  w.EndPage();
  w.Add(nodes[1], {});
  w.Add(nodes[2], {});
  w.EndPage();
  w.Finish();
  EXPECT_EQ(out.str(), ToJsonArray(nodes) + "\n");
}

TEST(ListWriterTest, BlocksAreSeparatedByABlankLine) {
  std::ostringstream out;
  ListWriter w(OutputFormat::kTable, {}, &out);
  w.AddBlock(NodeNamed("nodes/a"), [](std::ostream& o) { o << "block a\n"; });
  w.EndPage();
  w.AddBlock(NodeNamed("nodes/b"), [](std::ostream& o) { o << "block b\n"; });
  w.Finish();
  EXPECT_EQ(out.str(), "block a\n\nblock b\n");
}

}  // namespace
}  // namespace fabric::client
