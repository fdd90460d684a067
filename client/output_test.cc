#include "client/output.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::client {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(OutputFormatTest, ParsesTableAndJson) {
  EXPECT_EQ(*ParseOutputFormat("table"), OutputFormat::kTable);
  EXPECT_EQ(*ParseOutputFormat("JSON"), OutputFormat::kJson);
  absl::StatusOr<OutputFormat> bad = ParseOutputFormat("yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("-o"));
  EXPECT_THAT(bad.status().message(), HasSubstr("yaml"));
}

TEST(TableTest, AlignsColumnsAndTrimsTrailingSpace) {
  Table t({"NAME", "STATE"});
  t.AddRow({"a", "READY"});
  t.AddRow({"longer-name", ""});
  std::ostringstream out;
  t.Print(out);
  EXPECT_EQ(out.str(),
            "NAME          STATE\n"
            "a             READY\n"
            "longer-name   -\n");
}

TEST(TableTest, IndentsEveryLine) {
  Table t({"A"});
  t.AddRow({"x"});
  std::ostringstream out;
  t.Print(out, 2);
  EXPECT_EQ(out.str(), "  A\n  x\n");
}

TEST(ShortNameTest, StripsCollectionAndSingleton) {
  EXPECT_EQ(ShortName("nodes/a"), "a");
  EXPECT_EQ(ShortName("bridges/b/addressMap"), "b");
  EXPECT_EQ(ShortName("plain"), "plain");
}

v1::Node TestNode() {
  v1::Node n;
  n.set_name("nodes/a");
  n.set_fabric("fabrics/r1");
  n.set_bridge("bridges/a");
  n.set_aperture_base(0x1000'0000'0000);
  n.set_aperture_size(uint64_t{4} << 30);
  n.set_export_base(0x1'0000'0000);
  n.set_export_size(uint64_t{1} << 30);
  n.set_lent_bytes(uint64_t{4} << 20);
  n.set_window_base(0x200'0000'0000);
  n.set_agent_state(v1::Node::READY);
  n.set_applied_generation(3);
  n.set_desired_generation(4);
  return n;
}

TEST(PrintNodesTest, TableHasHeadersSizesAndAddresses) {
  std::ostringstream out;
  PrintNodes({TestNode()}, OutputFormat::kTable, out);
  EXPECT_THAT(out.str(), StartsWith("NAME   FABRIC   ROLE     AGENT   "));
  EXPECT_THAT(out.str(), HasSubstr("\na      r1       server   READY   "
                                   "0x1000_0000_0000   1 GiB    4 MiB   3/4\n"));
}

TEST(PrintNodesTest, EmptyListSaysSo) {
  std::ostringstream table, json;
  PrintNodes({}, OutputFormat::kTable, table);
  PrintNodes({}, OutputFormat::kJson, json);
  EXPECT_EQ(table.str(), "No resources found.\n");
  EXPECT_EQ(json.str(), "[]\n");
}

TEST(PrintNodesTest, JsonIsAnArrayThatRoundTrips) {
  std::ostringstream out;
  PrintNodes({TestNode(), TestNode()}, OutputFormat::kJson, out);
  std::string s = out.str();
  EXPECT_THAT(s, StartsWith("[\n  {"));
  EXPECT_THAT(s, HasSubstr("\"name\": \"nodes/a\""));
  EXPECT_THAT(s, HasSubstr("\"agentState\": \"READY\""));
  // 64-bit integers are strings in protobuf JSON.
  EXPECT_THAT(s, HasSubstr("\"lentBytes\": \"4194304\""));
  // Default values are printed too, so scripts can rely on every field.
  EXPECT_THAT(s, HasSubstr("\"hub\": false"));
}

TEST(ToJsonTest, SingleMessageIsAnObject) {
  v1::Link l;
  l.set_name("links/a--b");
  l.set_up(true);
  std::string s = ToJson(l);
  EXPECT_THAT(s, StartsWith("{"));
  EXPECT_THAT(s, HasSubstr("\"up\": true"));
}

TEST(PrintLinksTest, ShowsEndsAndState) {
  v1::Link l;
  l.set_name("links/a--b");
  l.set_fabric("fabrics/r1");
  l.set_a_bridge("bridges/a");
  l.set_a_port(2);
  l.set_b_bridge("bridges/b");
  l.set_b_port(1);
  std::ostringstream out;
  PrintLinks({l}, OutputFormat::kTable, out);
  EXPECT_EQ(out.str(),
            "NAME   FABRIC   A     B     STATE\n"
            "a--b   r1       a:2   b:1   down\n");
}

TEST(PrintAddressMapTest, ShowsEntriesWindowsAndInbound) {
  v1::AddressMap m;
  m.set_name("bridges/a/addressMap");
  m.set_bridge("bridges/a");
  m.set_generation(7);
  v1::MapEntry* claim = m.add_entries();
  claim->set_kind(v1::MapEntry::CLAIM);
  claim->set_base(0x1000'0000'0000);
  claim->set_size(uint64_t{1} << 30);
  claim->set_local_base(0x1'0000'0000);
  claim->set_covers("a");
  v1::MapEntry* fwd = m.add_entries();
  fwd->set_kind(v1::MapEntry::FORWARD);
  fwd->set_base(0x1000'4000'0000);
  fwd->set_size(uint64_t{2} << 30);
  fwd->set_port(2);
  fwd->set_covers("b..c");
  v1::WindowEntry* w = m.add_windows();
  w->set_slot_kind(v1::WINDOW);
  w->set_slot(0);
  w->set_local_base(0x200'0000'0000);
  w->set_size(uint64_t{4} << 20);
  w->set_translated_addr(0x1000'4000'0000);
  w->set_allocation("allocations/alloc-1");
  std::ostringstream out;
  PrintAddressMap(m, out);
  std::string s = out.str();
  EXPECT_THAT(s, StartsWith("bridges/a/addressMap (bridge a, generation 7)\n"
                            "Entries (2):\n"
                            "  KIND      FABRIC RANGE"));
  EXPECT_THAT(s, HasSubstr("CLAIM     0x1000_0000_0000-0x1000_3fff_ffff   "
                           "1 GiB   local 0x1_0000_0000   a\n"));
  EXPECT_THAT(s, HasSubstr("FORWARD   0x1000_4000_0000-0x1000_bfff_ffff   "
                           "2 GiB   port 2"));
  EXPECT_THAT(s, HasSubstr("window 0   0x200_0000_0000-0x200_003f_ffff   "
                           "4 MiB   0x1000_4000_0000   alloc-1\n"));
  EXPECT_THAT(s, HasSubstr("Inbound (0):\n"));
}

TEST(DescribeNodeTest, ShowsEverythingUseful) {
  std::ostringstream out;
  DescribeNode(TestNode(), out);
  std::string s = out.str();
  EXPECT_THAT(s, HasSubstr("Fabric:               fabrics/r1\n"));
  EXPECT_THAT(s, HasSubstr("Aperture:             0x1000_0000_0000-"
                           "0x1000_ffff_ffff (4 GiB)\n"));
  EXPECT_THAT(s, HasSubstr("Lent:                 4 MiB of 1 GiB\n"));
  EXPECT_THAT(s, HasSubstr("Agent:                READY\n"));
  EXPECT_THAT(s, HasSubstr("Generation:           applied 3, desired 4 "
                           "(behind)\n"));
}

TEST(DescribeBridgeTest, ShowsLimitsPortsAndUsage) {
  v1::Bridge b;
  b.set_name("bridges/a");
  b.mutable_profile()->set_name("sim");
  b.mutable_profile()->set_mapping_entries(64);
  b.mutable_profile()->set_window_count(4);
  b.set_map_entries(3);
  b.set_windows_used(1);
  v1::Port* p = b.add_ports();
  p->set_number(1);
  p->set_link("links/c--a");
  p->set_peer_bridge("bridges/c");
  p->set_peer_port(2);
  p->set_up(true);
  b.add_ports()->set_number(2);
  std::ostringstream out;
  DescribeBridge(b, out);
  std::string s = out.str();
  EXPECT_THAT(s, HasSubstr("Map entries used:     3/64\n"));
  EXPECT_THAT(s, HasSubstr("Windows used:         1/4\n"));
  EXPECT_THAT(s, HasSubstr("  1      c--a   c:2    up\n"));
  EXPECT_THAT(s, HasSubstr("  2      -      -      unwired\n"));
}

TEST(AllocationSummaryTest, NamesBorrowerTargetSizeAddressAndState) {
  v1::Allocation a;
  a.set_name("allocations/alloc-1234");
  a.set_borrower("nodes/a");
  a.set_target("b");
  a.set_size(uint64_t{4} << 20);
  a.set_borrower_addr(0x200'0000'0000);
  a.set_state(v1::Allocation::PENDING);
  EXPECT_EQ(AllocationSummary(a),
            "allocations/alloc-1234 borrower a sees 4 MiB of b at "
            "0x200_0000_0000 (PENDING)");
}

TEST(DescribeAllocationTest, ShowsPathAndLabels) {
  v1::Allocation a;
  a.set_name("allocations/alloc-1");
  a.set_size(4096);
  a.add_path("bridges/a");
  a.add_path("bridges/b");
  (*a.mutable_labels())["job"] = "42";
  (*a.mutable_labels())["app"] = "x";
  a.mutable_ttl()->set_seconds(300);
  std::ostringstream out;
  DescribeAllocation(a, out);
  std::string s = out.str();
  EXPECT_THAT(s, HasSubstr("Path:                 a -> b\n"));
  EXPECT_THAT(s, HasSubstr("Labels:               app=x,job=42\n"));
  EXPECT_THAT(s, HasSubstr("TTL:                  300s\n"));
}

}  // namespace
}  // namespace fabric::client
