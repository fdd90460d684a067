#include "server/core/topology.h"

#include <string>
#include <vector>

#include "common/profiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/test_util.h"

namespace fabric::core {
namespace {

using ::fabric::core::testing::RingSpec;
using ::fabric::core::testing::StarSpec;
using ::testing::HasSubstr;

void ExpectInvalid(const FabricSpec& spec, const std::string& substr) {
  absl::StatusOr<Topology> t = Topology::Build(spec);
  ASSERT_FALSE(t.ok()) << "expected failure containing: " << substr;
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr(substr));
}

TEST(ProfilesTest, ShipsAllProfiles) {
  for (const char* name : {"intel-xeon-gen1", "intel-xeon-gen4", "amd", "idt",
                           "switchtec", "sim"}) {
    const HardwareProfile* p = FindProfile(name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(p->name, name);
    EXPECT_GT(p->window_count, 0);
    EXPECT_GT(p->mapping_entries, 0);
    if (p->lut_entries > 0) {
      EXPECT_EQ(p->lut_entry_size & (p->lut_entry_size - 1), 0u) << name;
    }
  }
  EXPECT_EQ(FindProfile("nope"), nullptr);
  EXPECT_EQ(FindProfile("intel-xeon-gen1")->xlat_align, 1ull << 30);
  EXPECT_EQ(FindProfile("intel-xeon-gen1")->doorbells, 15);
  EXPECT_EQ(FindProfile("amd")->window_count, 3);
  EXPECT_EQ(FindProfile("switchtec")->max_window_size, 2ull << 20);
  EXPECT_EQ(FindProfile("switchtec")->lut_entry_size, 64ull << 10);
  EXPECT_EQ(FindProfile("switchtec")->scratchpads, 128);
  EXPECT_EQ(FindProfile("idt")->scratchpads, 0);
  EXPECT_EQ(FindProfile("sim")->window_count, 8);
}

TEST(TopologyTest, RingShape) {
  absl::StatusOr<Topology> t = Topology::Build(RingSpec(4));
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->node_count(), 4);
  ASSERT_EQ(t->links().size(), 4u);
  for (int i = 0; i < 4; ++i) {
    auto peer = t->PortPeer(i, 2);
    ASSERT_TRUE(peer.has_value());
    EXPECT_EQ(peer->first, (i + 1) % 4);
    auto back = t->PortPeer((i + 1) % 4, 1);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->first, i);
    EXPECT_EQ(back->second, peer->second);
    EXPECT_EQ(t->node(i).port_count, 2);
    EXPECT_EQ(t->node(i).profile->name, "sim");
    EXPECT_EQ(t->node(i).export_base, kDefaultExportBase);
    EXPECT_EQ(t->node(i).export_size, 1ull << 30);
    EXPECT_EQ(t->node(i).window_base, kDefaultWindowBase);
    EXPECT_EQ(t->node(i).aperture_size, 1ull << 30);
    EXPECT_EQ(t->node(i).aperture_base,
              kApertureRegionBase + uint64_t(i) * (1ull << 30));
  }
  EXPECT_FALSE(t->PortPeer(0, 3).has_value());
  EXPECT_EQ(t->links()[3].name, "n3--n0");
  EXPECT_EQ(t->FindLink("n0", "n3"), 3);
  EXPECT_EQ(t->FindLink("n3", "n0"), 3);
  EXPECT_EQ(t->FindLinkByName("n1--n2"), 1);
  EXPECT_FALSE(t->FindLinkByName("n2--n1").has_value());
  EXPECT_FALSE(t->FindLink("n0", "n2").has_value());
  EXPECT_EQ(t->FindNode("n2"), 2);
  EXPECT_FALSE(t->FindNode("x").has_value());
}

TEST(TopologyTest, TwoNodeRingHasTwoLinks) {
  absl::StatusOr<Topology> t = Topology::Build(RingSpec(2));
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->links().size(), 2u);
  EXPECT_EQ(t->links()[0].name, "n0--n1");
  EXPECT_EQ(t->links()[1].name, "n1--n0");
  EXPECT_EQ(t->PortPeer(0, 1)->first, 1);
  EXPECT_EQ(t->PortPeer(0, 2)->first, 1);
}

TEST(TopologyTest, StarShape) {
  FabricSpec spec = StarSpec(3);
  // Hub in the middle of the node list.
  std::swap(spec.nodes[0], spec.nodes[1]);
  absl::StatusOr<Topology> t = Topology::Build(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  int hub = *t->FindNode("m");
  EXPECT_EQ(hub, 1);
  EXPECT_TRUE(t->node(hub).is_hub);
  EXPECT_EQ(t->node(hub).port_count, 3);
  EXPECT_EQ(t->PortPeer(hub, 1)->first, *t->FindNode("s0"));
  EXPECT_EQ(t->PortPeer(hub, 2)->first, *t->FindNode("s1"));
  EXPECT_EQ(t->PortPeer(hub, 3)->first, *t->FindNode("s2"));
  for (const char* s : {"s0", "s1", "s2"}) {
    int i = *t->FindNode(s);
    EXPECT_FALSE(t->node(i).is_hub);
    EXPECT_EQ(t->node(i).port_count, 1);
    EXPECT_EQ(t->PortPeer(i, 1)->first, hub);
  }
  EXPECT_EQ(t->links()[0].name, "m--s0");
}

TEST(TopologyTest, CustomShapeAndApertures) {
  FabricSpec spec;
  spec.name = "lab";
  spec.kind = TopologyKind::kCustom;
  spec.nodes = {{"a", "idt", 0, 3ull << 30}, {"b"}, {"c", "amd"}};
  spec.links = {{"a", 1, "b", 3}, {"b", 1, "c", 1}};
  absl::StatusOr<Topology> t = Topology::Build(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->node(0).aperture_size, 4ull << 30);
  EXPECT_EQ(t->node(2).aperture_base, kApertureRegionBase + (8ull << 30));
  EXPECT_EQ(t->node(1).port_count, 3);
  EXPECT_EQ(t->PortPeer(1, 3)->first, 0);
  EXPECT_FALSE(t->PortPeer(1, 2).has_value());
  EXPECT_EQ(t->node(2).profile->name, "amd");

  // Small exports still get a 1 MiB aperture.
  FabricSpec small = RingSpec(3);
  small.default_export_size = 64 << 10;
  t = Topology::Build(small);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->node(1).aperture_size, 1ull << 20);
}

TEST(TopologyValidationTest, Nodes) {
  ExpectInvalid(RingSpec(1), "nodes: a ring needs at least 2 nodes, got 1");
  ExpectInvalid(StarSpec(0), "nodes: a star needs at least 2 nodes, got 1");
  ExpectInvalid(RingSpec(4097), "nodes: at most 4096 nodes");

  FabricSpec dup = RingSpec(4);
  dup.nodes[3].name = "n1";
  ExpectInvalid(dup, "nodes[3].name: duplicate name \"n1\"");

  FabricSpec bad = RingSpec(3);
  bad.nodes[0].name = "A_1";
  ExpectInvalid(bad,
                "nodes[0].name: \"A_1\" must be 1-63 lowercase letters, "
                "digits or single hyphens, starting with a letter");
  for (const std::string& name : std::vector<std::string>{
           "", "1a", "a--b", "a-", "a b", std::string(64, 'a')}) {
    bad.nodes[0].name = name;
    ExpectInvalid(bad, "nodes[0].name:");
  }
  bad.nodes[0].name = "a-b-9";
  EXPECT_TRUE(Topology::Build(bad).ok());

  FabricSpec prof = RingSpec(3);
  prof.nodes[2].profile = "foo";
  ExpectInvalid(prof,
                "nodes[2].profile: unknown profile \"foo\"; known: amd, idt, "
                "intel-xeon-gen1");
  FabricSpec defprof = RingSpec(3, "bar");
  ExpectInvalid(defprof, "default_profile: unknown profile \"bar\"");

  FabricSpec size = RingSpec(3);
  size.nodes[1].export_size = 1000;
  ExpectInvalid(size, "nodes[1].export_size: 1000 is not a multiple of 4 KiB");
  size.nodes[1].export_size = 2ull << 40;
  ExpectInvalid(size, "nodes[1].export_size: 2 TiB exceeds the limit of 1 TiB");
  size.nodes[1].export_size = 0;
  size.default_export_size = 12345;
  ExpectInvalid(size, "default_export_size: 12345 is not a multiple of 4 KiB");

  FabricSpec base = RingSpec(3);
  base.nodes[0].export_base = 0x1001;
  ExpectInvalid(base, "nodes[0].export_base:");
  base.nodes[0].export_base = 0;
  base.nodes[0].window_base = 0x1000;
  ExpectInvalid(base, "nodes[0].window_base: 0x1000 is not aligned to 1 GiB");
  base.nodes[0].window_base = kDefaultExportBase;
  ExpectInvalid(base, "overlaps the export region");

  FabricSpec fname = RingSpec(2);
  fname.name = "My Fabric";
  ExpectInvalid(fname, "name: \"My Fabric\" must be");
}

TEST(TopologyValidationTest, HubAndLinks) {
  FabricSpec star = StarSpec(2);
  star.hub = "x";
  ExpectInvalid(star, "hub: \"x\" is not one of nodes");

  FabricSpec ring = RingSpec(3);
  ring.hub = "n0";
  ExpectInvalid(ring, "hub: only a star has a hub");
  ring.hub = "";
  ring.links = {{"n0", 1, "n1", 1}};
  ExpectInvalid(ring, "links: only a custom topology lists links");

  FabricSpec custom;
  custom.name = "c";
  custom.kind = TopologyKind::kCustom;
  custom.nodes = {{"a"}, {"b"}, {"c"}};
  custom.links = {{"a", 1, "zz", 1}};
  ExpectInvalid(custom, "links[0].b: \"zz\" is not one of nodes");
  custom.links = {{"a", 1, "b", 1}, {"a", 1, "c", 1}};
  ExpectInvalid(custom,
                "links[1]: port 1 of \"a\" is already used by link a--b");
  custom.links = {{"b", 1, "b", 2}};
  ExpectInvalid(custom, "links[0]: self link on \"b\"");
  custom.links = {{"a", 0, "b", 1}};
  ExpectInvalid(custom, "links[0].a_port: port 0 is outside 1..4096");
  custom.links = {{"a", 1, "b", 1}, {"a", 2, "b", 2}};
  ExpectInvalid(custom, "links[1]: duplicate link \"a--b\"");
}

TEST(TopologyValidationTest, MappingCapacity) {
  // intel-xeon-gen4 has 16 mapping entries: a hub of 16 servers needs 17.
  ExpectInvalid(StarSpec(16, "sim", "intel-xeon-gen4"),
                "nodes[0].profile: profile intel-xeon-gen4 of \"m\" has 16 "
                "mapping entries; this star of 17 nodes needs 17");
  EXPECT_TRUE(Topology::Build(StarSpec(15, "sim", "intel-xeon-gen4")).ok());
  EXPECT_TRUE(Topology::Build(StarSpec(63, "amd", "sim")).ok());
}

}  // namespace
}  // namespace fabric::core
