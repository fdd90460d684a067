#include "client/output.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

TEST(OutputFormatTest, ParsesTableAndJson) {
  EXPECT_EQ(*ParseOutputFormat("table"), OutputFormat::kTable);
  EXPECT_EQ(*ParseOutputFormat("JSON"), OutputFormat::kJson);
  absl::StatusOr<OutputFormat> bad = ParseOutputFormat("yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("-o"));
  EXPECT_THAT(bad.status().message(), HasSubstr("yaml"));
}

TEST(ManagerRowTest, ShowsTheLeaseInHexWithItsTtlOrDashes) {
  v1::Manager standby;
  standby.set_address("10.0.0.2:7070");
  standby.set_role(v1::Manager::STANDBY);
  standby.set_store("etcd://10.0.0.9:2379/f");
  standby.set_lease_id(0x694d7b1f3c2a0011);
  standby.set_lease_ttl_seconds(2);
  EXPECT_EQ(TableRow(standby),
            (std::vector<std::string>{"10.0.0.2:7070", "STANDBY",
                                      "etcd://10.0.0.9:2379/f",
                                      "694d7b1f3c2a0011", "2s"}));
  v1::Manager lone;
  lone.set_address("127.0.0.1:7070");
  lone.set_role(v1::Manager::LEADER);
  lone.set_store("sqlite:fabric.db");
  EXPECT_EQ(TableRow(lone),
            (std::vector<std::string>{"127.0.0.1:7070", "LEADER",
                                      "sqlite:fabric.db", "-", "-"}));
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

TEST(DescribeNodeTest, ShowsRefusedEntriesWithTheirRetries) {
  v1::Node n = TestNode();
  v1::ApplyError* e = n.add_apply_errors();
  e->set_entry("window 3");
  e->set_message("refused");
  e->set_allocation("allocations/alloc-1");
  e->set_attempts(4);
  e->mutable_retry_in()->set_nanos(800'000'000);
  v1::ApplyError* m = n.add_apply_errors();
  m->set_entry("map entries");
  m->set_message("refused too");
  std::ostringstream out;
  DescribeNode(n, out);
  EXPECT_THAT(out.str(),
              HasSubstr("Apply error:          window 3: refused "
                        "(allocations/alloc-1); attempt 4, next 800ms after "
                        "the last report\n"));
  EXPECT_THAT(out.str(),
              HasSubstr("Apply error:          map entries: refused too\n"));
}

TEST(DescribeNodeTest, ShowsTakeoversAndNodesInNoFabric) {
  v1::Node n = TestNode();
  n.set_agent_session(7);
  n.set_agent_takeover("session 7 from b:1 replaced session 6 from a:1 at T");
  std::ostringstream out;
  DescribeNode(n, out);
  EXPECT_THAT(out.str(), HasSubstr("Agent session:        7\n"));
  EXPECT_THAT(out.str(), HasSubstr("Takeover:             session 7 from b:1 "
                                   "replaced session 6 from a:1 at T\n"));

  v1::Node loose;
  loose.set_name("nodes/n9");
  loose.set_agent_state(v1::Node::READY);
  std::ostringstream none;
  DescribeNode(loose, none);
  EXPECT_THAT(none.str(), HasSubstr("the node is in no fabric"));
  EXPECT_THAT(none.str(), HasSubstr("keeps its bridge cleared"));
  EXPECT_THAT(none.str(), Not(HasSubstr("Aperture")));
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

v1::VirtualFunction TestVf() {
  v1::VirtualFunction v;
  v.set_name("nodes/n1/vfs/0000-3b-00.4");
  v.set_node("nodes/n1");
  v.set_address("0000:3b:00.4");
  v.set_pf_address("0000:3b:00.0");
  v.set_vendor_id(0x8086);
  v.set_device_id(0x154c);
  v.set_state(v1::VirtualFunction::FREE);
  v.set_health(v1::VirtualFunction::HEALTHY);
  v.add_bar_sizes(64 << 10);
  v.add_bar_sizes(0);
  v.add_bar_sizes(0);
  v.add_bar_sizes(16 << 10);
  return v;
}

TEST(VfShortNameTest, FromNodeAndAddressOrFromTheName) {
  EXPECT_EQ(VfShortName("nodes/n1", "0000:3b:00.4", ""), "n1/0000:3b:00.4");
  EXPECT_EQ(VfShortName("", "", "nodes/n1/vfs/0000-3b-00.4"),
            "n1/0000:3b:00.4");
  EXPECT_EQ(VfShortName("", "", "odd"), "odd");
}

TEST(PrintVirtualFunctionsTest, ShowsStateBorrowerAndHealthReason) {
  v1::VirtualFunction lent = TestVf();
  lent.set_name("nodes/n1/vfs/0000-3b-00.5");
  lent.set_address("0000:3b:00.5");
  lent.set_state(v1::VirtualFunction::LENT);
  lent.set_attachment("attachments/att-1");
  lent.set_borrower("nodes/n2");
  lent.set_health(v1::VirtualFunction::UNHEALTHY);
  lent.set_health_reason("vendor id reads 0xffff");
  // Only the name, as for a lent VF whose lender no longer reports it.
  v1::VirtualFunction gone;
  gone.set_name("nodes/n3/vfs/0000-3b-00.6");
  gone.set_state(v1::VirtualFunction::LENT);
  gone.set_borrower("nodes/n1");
  std::ostringstream out;
  PrintVirtualFunctions({TestVf(), lent, gone}, OutputFormat::kTable, out);
  EXPECT_EQ(out.str(),
            "NAME              NODE   ADDRESS        PF             "
            "VENDOR:DEVICE   STATE        HEALTH\n"
            "n1/0000:3b:00.4   n1     0000:3b:00.4   0000:3b:00.0   "
            "8086:154c       FREE         HEALTHY\n"
            "n1/0000:3b:00.5   n1     0000:3b:00.5   0000:3b:00.0   "
            "8086:154c       LENT to n2   UNHEALTHY (vendor id reads "
            "0xffff)\n"
            "n3/0000:3b:00.6   -      -              -              "
            "0000:0000       LENT to n1   UNKNOWN\n");
}

TEST(PrintVirtualFunctionsTest, EmptyAndJson) {
  std::ostringstream table, json;
  PrintVirtualFunctions({}, OutputFormat::kTable, table);
  EXPECT_EQ(table.str(), "No resources found.\n");
  PrintVirtualFunctions({TestVf()}, OutputFormat::kJson, json);
  EXPECT_THAT(json.str(), StartsWith("[\n  {"));
  EXPECT_THAT(json.str(), HasSubstr("\"vendorId\": 32902"));
  EXPECT_THAT(json.str(), HasSubstr("\"state\": \"FREE\""));
}

TEST(DescribeVirtualFunctionTest, ShowsEveryField) {
  v1::VirtualFunction v = TestVf();
  v.set_state(v1::VirtualFunction::LENT);
  v.set_attachment("attachments/att-1");
  v.set_borrower("nodes/n2");
  std::ostringstream out;
  DescribeVirtualFunction(v, out);
  EXPECT_EQ(out.str(),
            "Name:                 nodes/n1/vfs/0000-3b-00.4\n"
            "Node:                 nodes/n1\n"
            "Address:              0000:3b:00.4\n"
            "PF:                   0000:3b:00.0\n"
            "Vendor:device:        8086:154c\n"
            "State:                LENT\n"
            "Attachment:           attachments/att-1\n"
            "Borrower:             nodes/n2\n"
            "Health:               HEALTHY\n"
            "Health reason:        -\n"
            "BARs:                 bar0 64 KiB, bar3 16 KiB\n");
}

v1::Attachment TestAttachment() {
  v1::Attachment a;
  a.set_name("attachments/att-1");
  a.set_fabric("fabrics/r1");
  a.set_vf("nodes/n1/vfs/0000-3b-00.4");
  a.set_lender("nodes/n1");
  a.set_vf_address("0000:3b:00.4");
  a.set_borrower("nodes/n2");
  a.set_vm("vm1");
  a.set_interrupts(v1::Attachment::AUTO);
  a.set_dma_size(1 << 20);
  a.set_state(v1::Attachment::READY);
  a.set_vf_health(v1::VirtualFunction::HEALTHY);
  a.set_shadow_device("shadow-att-1");
  a.set_required_generation(9);
  v1::AttachmentWindow* mmio = a.add_windows();
  mmio->set_role("mmio-bar0");
  mmio->set_from_node("n2");
  mmio->set_to_node("n1");
  mmio->set_local_addr(0x200'0000'0000);
  mmio->set_target_addr(0x3800'0000'0000);
  mmio->set_fabric_addr(0x1000'8000'0000);
  mmio->set_size(1 << 20);
  mmio->set_slot_kind(v1::WINDOW);
  mmio->set_slot(0);
  mmio->set_slot_count(1);
  v1::AttachmentWindow* dma = a.add_windows();
  dma->set_role("dma");
  dma->set_from_node("n1");
  dma->set_to_node("n2");
  dma->set_local_addr(0x200'0010'0000);
  dma->set_target_addr(0x1'0000'0000);
  dma->set_fabric_addr(0x1001'0000'0000);
  dma->set_size(2 << 20);
  dma->set_slot_kind(v1::LUT);
  dma->set_slot(4);
  dma->set_slot_count(2);
  v1::VfCounters* c = a.mutable_counters();
  c->set_delivered_direct(12);
  c->set_delivered_via_hypervisor(3);
  c->set_exits_avoided(12);
  c->set_exits(3);
  c->set_injected_at_entry(2);
  c->set_coalesced(1);
  (*c->mutable_dropped_by_reason())["vector masked"] = 1;
  (*c->mutable_dropped_by_reason())["no such vector"] = 2;
  c->set_config_reads(40);
  c->set_config_writes_forwarded(5);
  c->set_config_writes_emulated(4);
  c->set_config_writes_dropped(1);
  (*c->mutable_config_dropped_by_reason())["vendor id is read-only"] = 1;
  return a;
}

TEST(PrintAttachmentsTest, ShowsVfBorrowerPolicyStateAndHealth) {
  v1::Attachment pending = TestAttachment();
  pending.set_name("attachments/att-2");
  pending.set_vm("");
  pending.set_interrupts(v1::Attachment::DIRECT);
  pending.set_state(v1::Attachment::PENDING);
  pending.set_state_reason("waiting for the shadow device on n2");
  pending.set_vf_health(v1::VirtualFunction::UNHEALTHY);
  pending.set_vf_health_reason("PF link down");
  std::ostringstream out;
  PrintAttachments({TestAttachment(), pending}, OutputFormat::kTable, out);
  EXPECT_EQ(out.str(),
            "NAME    VF                BORROWER   VM    INTERRUPTS   STATE"
            "                                           HEALTH\n"
            "att-1   n1/0000:3b:00.4   n2         vm1   AUTO         READY"
            "                                           HEALTHY\n"
            "att-2   n1/0000:3b:00.4   n2         -     DIRECT       PENDING "
            "(waiting for the shadow device on n2)   UNHEALTHY (PF link "
            "down)\n");
}

TEST(DescribeAttachmentTest, ShowsWindowsAndEveryCounter) {
  std::ostringstream out;
  DescribeAttachment(TestAttachment(), out);
  std::string s = out.str();
  EXPECT_THAT(s, StartsWith("Name:                 attachments/att-1\n"
                            "Fabric:               fabrics/r1\n"
                            "VF:                   nodes/n1/vfs/0000-3b-00.4\n"
                            "Lender:               nodes/n1\n"
                            "VF address:           0000:3b:00.4\n"
                            "Borrower:             nodes/n2\n"
                            "VM:                   vm1\n"
                            "Interrupt policy:     AUTO\n"
                            "DMA size:             1 MiB\n"
                            "State:                READY\n"
                            "Reason:               -\n"
                            "VF health:            HEALTHY\n"
                            "VF health reason:     -\n"
                            "Shadow device:        shadow-att-1\n"));
  EXPECT_THAT(s, HasSubstr("Required generation:  9\n"));
  EXPECT_THAT(
      s, HasSubstr(
             "Windows (2):\n"
             "  ROLE        FROM -> TO   LOCAL ADDR        TARGET ADDR        "
             "FABRIC ADDR        SIZE    SLOT\n"
             "  mmio-bar0   n2 -> n1     0x200_0000_0000   0x3800_0000_0000   "
             "0x1000_8000_0000   1 MiB   window 0\n"
             "  dma         n1 -> n2     0x200_0010_0000   0x1_0000_0000      "
             "0x1001_0000_0000   2 MiB   lut 4 (2 slots)\n"));
  EXPECT_THAT(s, HasSubstr("Interrupt delivery:\n"
                           "  Delivered direct:           12\n"
                           "  Delivered via hypervisor:   3\n"
                           "  Exits avoided:              12\n"
                           "  Exits:                      3\n"
                           "  Injected at entry:          2\n"
                           "  Coalesced:                  1\n"
                           "  Dropped:                    3\n"
                           "    no such vector:           2\n"
                           "    vector masked:            1\n"
                           "Config space:\n"
                           "  Reads:                      40\n"
                           "  Writes forwarded:           5\n"
                           "  Writes emulated:            4\n"
                           "  Writes dropped:             1\n"
                           "    vendor id is read-only:   1\n"));
}

TEST(DescribeAttachmentTest, HostOwnedWithoutWindows) {
  v1::Attachment a;
  a.set_name("attachments/att-3");
  a.set_state(v1::Attachment::PENDING);
  a.set_state_reason("dma window: generation 4 not applied by n1");
  std::ostringstream out;
  DescribeAttachment(a, out);
  EXPECT_THAT(out.str(), HasSubstr("VM:                   - (the host)\n"));
  EXPECT_THAT(out.str(), HasSubstr("Reason:               dma window: "
                                   "generation 4 not applied by n1\n"));
  EXPECT_THAT(out.str(), HasSubstr("Windows (0):\nInterrupt delivery:\n"));
}

TEST(AttachmentSummaryTest, NamesVfBorrowerVmPolicyAndState) {
  v1::Attachment a = TestAttachment();
  a.set_state(v1::Attachment::PENDING);
  EXPECT_EQ(AttachmentSummary(a),
            "attachments/att-1 VF n1/0000:3b:00.4 lent to n2, vm vm1, "
            "interrupts AUTO (PENDING)");
  a.set_vm("");
  a.set_interrupts(v1::Attachment::DIRECT);
  EXPECT_EQ(AttachmentSummary(a),
            "attachments/att-1 VF n1/0000:3b:00.4 lent to n2, interrupts "
            "DIRECT (PENDING)");
}

TEST(CountersSummaryTest, OneLineWithDropReasons) {
  EXPECT_EQ(CountersSummary(TestAttachment().counters()),
            "shadow device totals: 12 direct, 3 via hypervisor, 12 exits "
            "avoided, 3 exits, 2 injected at entry, 1 coalesced, 3 dropped "
            "(no such vector: 2, vector masked: 1)");
  EXPECT_EQ(CountersSummary(v1::VfCounters()),
            "shadow device totals: 0 direct, 0 via hypervisor, 0 exits "
            "avoided, 0 exits, 0 injected at entry, 0 coalesced, 0 dropped");
}

TEST(ShadowWriteOutcomeTest, TheWordsFabricctlPrinted) {
  EXPECT_EQ(ShadowWriteOutcome(v1::AccessShadowResponse::FORWARDED),
            "forwarded");
  EXPECT_EQ(ShadowWriteOutcome(v1::AccessShadowResponse::EMULATED), "emulated");
  EXPECT_EQ(ShadowWriteOutcome(v1::AccessShadowResponse::DROPPED), "dropped");
  EXPECT_EQ(ShadowWriteOutcome(v1::AccessShadowResponse::OUTCOME_UNSPECIFIED),
            "");
}

}  // namespace
}  // namespace fabric::client
