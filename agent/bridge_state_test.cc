#include "agent/bridge_state.h"

#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent {
namespace {

TEST(DesiredStateTest, DiffNamesEveryChangedEntry) {
  agentproto::v1::DesiredConfig c;
  c.set_export_base(1 << 20);
  c.set_export_size(1 << 20);
  auto *w = c.mutable_address_map()->add_windows();
  w->set_slot_kind(v1::WINDOW);
  w->set_slot(3);
  w->set_local_base(0x1000);
  w->set_size(4096);
  auto *p = c.add_ports();
  p->set_number(2);
  p->set_peer_bridge("bridges/n1");
  p->set_peer_port(1);
  p->set_up(true);
  hw::BridgeState want = DesiredState(c);
  EXPECT_THAT(
      DiffEntries(hw::BridgeState(), want),
      testing::UnorderedElementsAre("host memory", "window 3", "port 2"));
  EXPECT_TRUE(DiffEntries(want, want).empty());
  hw::BridgeState have = want;
  have.windows[0].tag = "other"; // tags are bookkeeping, not hardware
  EXPECT_TRUE(DiffEntries(have, want).empty());
}

// A state with one of everything, MMIO range included.
hw::BridgeState FullState() {
  agentproto::v1::DesiredConfig c;
  c.set_export_base(1 << 20);
  c.set_export_size(1 << 20);
  c.set_window_base(1ull << 32);
  c.set_mmio_base(0xf000'0000);
  c.set_mmio_size(1 << 20);
  auto *m = c.mutable_address_map()->add_entries();
  m->set_kind(v1::MapEntry::FORWARD);
  m->set_base(1ull << 40);
  m->set_size(1 << 20);
  m->set_port(1);
  auto *w = c.mutable_address_map()->add_windows();
  w->set_slot_kind(v1::WINDOW);
  w->set_slot(0);
  w->set_local_base(1ull << 32);
  w->set_size(1 << 20);
  w->set_translated_addr(1ull << 40);
  w->set_allocation("allocations/a1");
  auto *i = c.mutable_address_map()->add_inbound();
  i->set_local_base(1 << 20);
  i->set_size(4096);
  i->set_allocation("allocations/a2");
  auto *p = c.add_ports();
  p->set_number(1);
  p->set_peer_bridge("bridges/n1");
  p->set_peer_port(2);
  p->set_up(true);
  return DesiredState(c);
}

struct Change {
  std::string name;
  std::function<void(hw::BridgeState &)> apply;
};

// Every field the hardware holds: each change is drift.
std::vector<Change> HardwareChanges() {
  return {
      {"memory.base", [](hw::BridgeState &s) { s.memory.base += 4096; }},
      {"memory.size", [](hw::BridgeState &s) { s.memory.size += 4096; }},
      {"memory.window_base",
       [](hw::BridgeState &s) { s.memory.window_base += 4096; }},
      {"memory.mmio_base",
       [](hw::BridgeState &s) { s.memory.mmio_base += 4096; }},
      {"memory.mmio_size",
       [](hw::BridgeState &s) { s.memory.mmio_size += 4096; }},
      {"map.kind",
       [](hw::BridgeState &s) { s.map[0].kind = hw::MapEntry::Kind::kClaim; }},
      {"map.base", [](hw::BridgeState &s) { s.map[0].base += 4096; }},
      {"map.size", [](hw::BridgeState &s) { s.map[0].size += 4096; }},
      {"map.port", [](hw::BridgeState &s) { s.map[0].port = 2; }},
      {"map.local_base", [](hw::BridgeState &s) { s.map[0].local_base = 1; }},
      {"window.local_base",
       [](hw::BridgeState &s) { s.windows[0].local_base += 4096; }},
      {"window.size", [](hw::BridgeState &s) { s.windows[0].size += 4096; }},
      {"window.xlat", [](hw::BridgeState &s) { s.windows[0].xlat += 4096; }},
      {"window.slot", [](hw::BridgeState &s) { s.windows[0].slot = 1; }},
      {"inbound.local_base",
       [](hw::BridgeState &s) { s.inbound[0].local_base += 4096; }},
      {"inbound.size", [](hw::BridgeState &s) { s.inbound[0].size += 4096; }},
      {"port.peer_bridge",
       [](hw::BridgeState &s) { s.ports[0].peer_bridge = "n2"; }},
      {"port.peer_port", [](hw::BridgeState &s) { s.ports[0].peer_port = 3; }},
      {"port.up", [](hw::BridgeState &s) { s.ports[0].up = false; }},
  };
}

// The diff and the fingerprint are one definition of equality: a change to
// any field the hardware holds shows in both; bookkeeping shows in neither.
TEST(BridgeStateTest, DiffAndFingerprintAgreeOnEveryField) {
  const hw::BridgeState want = FullState();
  for (const Change &change : HardwareChanges()) {
    hw::BridgeState have = want;
    change.apply(have);
    EXPECT_FALSE(DiffEntries(have, want).empty()) << change.name;
    EXPECT_NE(Fingerprint(have), Fingerprint(want)) << change.name;
  }
  hw::BridgeState have = want;
  have.windows[0].tag = "other";
  have.inbound[0].tag = "other";
  have.doorbell = 5;
  have.scratchpads = {1, 2, 3};
  EXPECT_TRUE(DiffEntries(have, want).empty());
  EXPECT_EQ(Fingerprint(have), Fingerprint(want));
}

TEST(BridgeStateTest, MmioDriftIsHostMemoryDrift) {
  const hw::BridgeState want = FullState();
  hw::BridgeState have = want;
  have.memory.mmio_base = 0;
  have.memory.mmio_size = 0;
  EXPECT_THAT(DiffEntries(have, want), testing::ElementsAre("host memory"));
  EXPECT_FALSE(SameHostMemory(have.memory, want.memory));
}

TEST(BridgeStateTest, RecordedFingerprintReadsScratchpadsZeroAndOne) {
  hw::BridgeState s;
  EXPECT_EQ(RecordedFingerprint(s), 0u);
  s.scratchpads = {0x89abcdef, 0x01234567};
  EXPECT_EQ(RecordedFingerprint(s), 0x0123456789abcdefull);
  EXPECT_NE(Fingerprint(s), 0u);
}

} // namespace
} // namespace fabric::agent
