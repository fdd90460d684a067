// LinuxBridge against a fabricated debugfs + sysfs tree. The reports the
// test plants are in the formats drivers/ntb/test/ntb_tool.c prints; the
// files are plain files, so a write shows up as the text written.
#include "agent/hw/linux/linux_bridge.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "agent/hw/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw {
namespace {

using ::fabric::agent::hw::testing::TempDir;
using ::testing::HasSubstr;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr char kDevice[] = "0000:03:00.1";
constexpr uint64_t kBar =
    0x38'0000'0000ull;  // Phys Address of MW k: kBar + k MiB.
constexpr uint64_t kDma = 0x7f00'0000ull;

HardwareLimits TestLimits() {
  HardwareLimits l;
  l.profile = "test";
  l.window_count = 2;
  l.lut_entries = 2;
  l.lut_entry_size = 64 * kKiB;
  l.xlat_align = 4 * kKiB;
  l.size_granularity = 4 * kKiB;
  l.min_window_size = 4 * kKiB;
  l.max_window_size = kMiB;
  l.mapping_entries = 0;
  l.doorbells = 16;
  l.scratchpads = 4;
  return l;
}

// tool_peer_mw_trans_read()'s report.
std::string OutboundReport(int widx, int port, int pidx, uint64_t phys,
                           uint64_t map_size, uint64_t xlat, uint64_t size) {
  return absl::StrFormat(
      "Outbound MW:        \t%d\n"
      "Port attached       \t%d (%d)\n"
      "Virtual address     \t0x%016x\n"
      "Phys Address        \t0x%016x\n"
      "Mapping Size        \t0x%016x\n"
      "Translation Address \t0x%016x\n"
      "Window Size         \t0x%016x\n",
      widx, port, pidx, port == -1 ? 0 : 0xffffc90000100000ull, phys, map_size,
      xlat, size);
}

// tool_mw_trans_read()'s report.
std::string InboundReport(int widx, int port, int pidx, uint64_t dma,
                          uint64_t size) {
  return absl::StrFormat(
      "Inbound MW     \t%d\n"
      "Port           \t%d (%d)\n"
      "Window Address \t0x%016x\n"
      "DMA Address    \t0x%016x\n"
      "Window Size    \t0x%016x\n"
      "Alignment      \t0x%016x\n"
      "Size Alignment \t0x%016x\n"
      "Size Max       \t0x%016x\n",
      widx, port, pidx, dma == 0 ? 0 : 0xffff888000000000ull, dma, size,
      4 * kKiB, 4 * kKiB, kMiB);
}

class LinuxBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Mkdirs(root_.path() + "/sys/bus/ntb/devices/" + kDevice);
    tool_ = root_.path() + "/debug/ntb_tool/" + kDevice;
    Mkdirs(tool_ + "/peer0");
    Mkdirs(tool_ + "/peer1");
    Put("port", "0\n");
    Put("link", "");
    Put("db", "0\n");
    Put("db_valid_mask", "0xffff\n");
    Put("peer_db", "0\n");
    for (int i = 0; i < 4; ++i) Put("spad" + std::to_string(i), "0x0\n");
    Put("peer0/port", "2\n");
    Put("peer0/link", "Y\n");
    Put("peer1/port", "4\n");
    Put("peer1/link", "N\n");
    for (int p = 0; p < 2; ++p) {
      const std::string dir = "peer" + std::to_string(p) + "/";
      Put(dir + "mw_trans0", InboundReport(0, p == 0 ? 2 : 4, p, 0, 0));
      for (int k = 0; k < 4; ++k) {
        Put(dir + "peer_mw_trans" + std::to_string(k),
            OutboundReport(k, -1, -1, kBar + k * kMiB, kMiB, 0, 0));
      }
    }
    options_.debugfs_root = root_.path() + "/debug";
    options_.sysfs_root = root_.path() + "/sys";
    options_.device = kDevice;
    options_.name = "n0";
    options_.peer_index = {{"n1", 0}, {"n2", 1}};
    absl::StatusOr<std::unique_ptr<LinuxBridge>> b =
        LinuxBridge::Open(options_, TestLimits());
    ASSERT_TRUE(b.ok()) << b.status();
    b_ = *std::move(b);
  }

  static void Mkdirs(const std::string& path) {
    for (size_t i = 1; i <= path.size(); ++i) {
      if (i == path.size() || path[i] == '/') {
        mkdir(path.substr(0, i).c_str(), 0755);
      }
    }
  }
  void Put(const std::string& rel, const std::string& text) {
    std::ofstream(tool_ + "/" + rel) << text;
  }
  std::string Get(const std::string& rel) {
    std::ifstream in(tool_ + "/" + rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  TempDir root_;
  std::string tool_;
  LinuxBridge::Options options_;
  std::unique_ptr<LinuxBridge> b_;
};

TEST_F(LinuxBridgeTest, SetWindowWritesAddrColonSizeToTheRightFile) {
  ASSERT_TRUE(b_->SetWindow({SlotKind::kWindow, 1, kBar + kMiB, 64 * kKiB,
                             0x1000'0000'0000ull, "g1"})
                  .ok());
  EXPECT_EQ(Get("peer0/peer_mw_trans1"), "0x100000000000:65536");
  // LUT slot 1 is memory window window_count + 1 = 3.
  ASSERT_TRUE(b_->SetWindow({SlotKind::kLut, 1, kBar + 3 * kMiB, 64 * kKiB,
                             0x1000'0001'0000ull, "g2"})
                  .ok());
  EXPECT_EQ(Get("peer0/peer_mw_trans3"), "0x100000010000:65536");
}

TEST_F(LinuxBridgeTest, SetWindowRefusesWhatTheChipWouldRefuse) {
  const std::string before = Get("peer0/peer_mw_trans0");
  auto expect_refused = [&](const Window& w, const std::string& sub) {
    absl::Status s = b_->SetWindow(w);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(sub));
  };
  expect_refused({SlotKind::kWindow, 0, kBar + kMiB, 4 * kKiB, 0x10000, ""},
                 "not where the slot lives");
  expect_refused({SlotKind::kWindow, 0, kBar, 4 * kKiB, 0x10800, ""},
                 "not aligned");
  expect_refused({SlotKind::kWindow, 0, kBar, 2 * kMiB, 0x10000, ""},
                 "maximum window size 1 MiB");
  expect_refused({SlotKind::kWindow, 2, kBar + 2 * kMiB, 4 * kKiB, 0x10000, ""},
                 "window slot 2");
  expect_refused({SlotKind::kLut, 0, kBar + 2 * kMiB, 4 * kKiB, 0x10000, ""},
                 "LUT entry size 64 KiB");
  EXPECT_EQ(Get("peer0/peer_mw_trans0"), before);
}

TEST_F(LinuxBridgeTest, ReadParsesWhatNtbToolPrints) {
  Put("peer0/peer_mw_trans0",
      OutboundReport(0, 2, 0, kBar, kMiB, 0x1000'0000'0000ull, 64 * kKiB));
  Put("peer0/peer_mw_trans2", OutboundReport(2, 2, 0, kBar + 2 * kMiB, kMiB,
                                             0x2000'0000'0000ull, 64 * kKiB));
  Put("peer1/mw_trans0", InboundReport(0, 4, 1, kDma, 16 * kKiB));
  Put("db", "0x5\n");
  Put("spad2", "0xdead\n");
  ASSERT_TRUE(b_->SetHostMemory({0x1'0000'0000ull, kMiB, kBar}).ok());
  absl::StatusOr<BridgeState> s = b_->Read();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->memory == (HostMemory{0x1'0000'0000ull, kMiB, kBar}));
  EXPECT_TRUE(s->map.empty());
  ASSERT_EQ(s->windows.size(), 2u);
  EXPECT_TRUE(s->windows[0] == (Window{SlotKind::kWindow, 0, kBar, 64 * kKiB,
                                       0x1000'0000'0000ull, ""}));
  EXPECT_TRUE(s->windows[1] == (Window{SlotKind::kLut, 0, kBar + 2 * kMiB,
                                       64 * kKiB, 0x2000'0000'0000ull, ""}));
  ASSERT_EQ(s->inbound.size(), 1u);
  EXPECT_TRUE(s->inbound[0] == (Inbound{kDma, 16 * kKiB, ""}));
  ASSERT_EQ(s->ports.size(), 2u);
  EXPECT_TRUE(s->ports[0] == (Port{1, "n1", 2, true}));
  EXPECT_TRUE(s->ports[1] == (Port{2, "n2", 4, false}));
  EXPECT_EQ(s->doorbell, 0x5u);
  EXPECT_EQ(s->scratchpads, (std::vector<uint32_t>{0, 0, 0xdead, 0}));

  // Programming what is programmed writes nothing (a rewrite would tear the
  // mapping down and set it up again).
  ASSERT_TRUE(b_->SetWindow(s->windows[0]).ok());
  EXPECT_THAT(Get("peer0/peer_mw_trans0"), HasSubstr("Translation Address"));
  ASSERT_TRUE(b_->ClearWindow(SlotKind::kWindow, 0).ok());
  EXPECT_EQ(Get("peer0/peer_mw_trans0"), "0:0");
  const std::string cleared = Get("peer0/peer_mw_trans1");
  ASSERT_TRUE(b_->ClearWindow(SlotKind::kWindow, 1).ok());  // Already clear.
  EXPECT_EQ(Get("peer0/peer_mw_trans1"), cleared);

  Put("peer0/peer_mw_trans1", "garbage");
  EXPECT_EQ(b_->Read().status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LinuxBridgeTest, LinkDoorbellAndScratchpads) {
  ASSERT_TRUE(b_->SetPort({1, "n1", 2, true}).ok());
  EXPECT_EQ(Get("link"), "Y");
  ASSERT_TRUE(b_->SetPort({2, "n2", 4, false}).ok());
  EXPECT_EQ(Get("link"), "Y");  // Device-wide: n1 still wants it up.
  ASSERT_TRUE(b_->SetPort({1, "n1", 2, false}).ok());
  EXPECT_EQ(Get("link"), "N");
  EXPECT_EQ(b_->SetPort({2, "n1", 2, true}).code(),
            absl::StatusCode::kInvalidArgument);  // n1 is peer 0 = port 1.
  EXPECT_EQ(b_->SetPort({3, "n9", 1, true}).code(),
            absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(b_->RingPeerDoorbell("n1", 0x5).ok());
  EXPECT_EQ(Get("peer_db"), "s 0x5");
  absl::Status bad = b_->RingPeerDoorbell("n1", 1 << 16);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("16 doorbells"));
  EXPECT_EQ(b_->RingPeerDoorbell("n9", 1).code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(b_->WriteScratchpad(2, 0xdead).ok());
  EXPECT_EQ(Get("spad2"), "0xdead");
  EXPECT_EQ(b_->WriteScratchpad(4, 1).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LinuxBridgeTest, NoInterfaceMeansUnimplemented) {
  EXPECT_TRUE(b_->SetMapEntries({}).ok());
  absl::Status s = b_->SetMapEntries(
      {{MapEntry::Kind::kForward, 0x1000'0000'0000ull, kMiB, 1, 0}});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(s.message()), HasSubstr("no Linux interface"));

  s = b_->SetInbound({{kDma, 16 * kKiB, "g1"}});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(s.message()), HasSubstr("kernel chooses"));
  // Already allocated there (e.g. by hand): nothing to do.
  Put("peer1/mw_trans0", InboundReport(0, 4, 1, kDma, 16 * kKiB));
  EXPECT_TRUE(b_->SetInbound({{kDma, 16 * kKiB, "g1"}}).ok());
  EXPECT_THAT(Get("peer1/mw_trans0"), HasSubstr("DMA Address"));
  // An empty list frees it: ntb_tool takes size 0.
  EXPECT_TRUE(b_->SetInbound({}).ok());
  EXPECT_EQ(Get("peer1/mw_trans0"), "0");
}

TEST_F(LinuxBridgeTest, DataPathThroughNtbToolFiles) {
  Put("peer0/peer_mw_trans0",
      OutboundReport(0, 2, 0, kBar, kMiB, 0x1000'0000'0000ull, 64 * kKiB));
  const std::vector<uint8_t> data = {1, 2, 3, 4};
  // No peer_mw0 file: no way to write through the window.
  EXPECT_EQ(b_->HostWrite(kBar + 16, data).status().code(),
            absl::StatusCode::kUnimplemented);
  Put("peer0/peer_mw0", std::string(64, '\0'));
  absl::StatusOr<AccessResult> r = b_->HostWrite(kBar + 16, data);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->landed);
  EXPECT_EQ(r->addr, 0x1000'0000'0010ull);
  EXPECT_EQ(Get("peer0/peer_mw0").substr(16, 4), "\x01\x02\x03\x04");
  r = b_->HostWrite(kBar + 64 * kKiB - 2, data);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->landed);
  EXPECT_EQ(r->reason, "crosses window end");

  // Host memory is reachable only behind an inbound buffer (peerN/mwN).
  std::vector<uint8_t> out(4);
  EXPECT_EQ(b_->HostRead(kDma, absl::MakeSpan(out)).code(),
            absl::StatusCode::kUnimplemented);
  Put("peer1/mw_trans0", InboundReport(0, 4, 1, kDma, 16 * kKiB));
  Put("peer1/mw0", std::string(16 * kKiB, '\0'));
  r = b_->HostWrite(kDma + 8, data);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->landed);
  EXPECT_EQ(r->node, "n0");
  ASSERT_TRUE(b_->HostRead(kDma + 8, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, data);
}

TEST_F(LinuxBridgeTest, DiscoversCountsFromTheTree) {
  HardwareLimits base = TestLimits();
  base.window_count = 0;
  base.doorbells = 0;
  base.scratchpads = 0;
  absl::StatusOr<HardwareLimits> l =
      LinuxBridge::DiscoverLimits(options_, base);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->window_count, 2);
  EXPECT_EQ(l->lut_entries, 2);
  EXPECT_EQ(l->doorbells, 16);
  EXPECT_EQ(l->scratchpads, 4);
}

TEST(LinuxBridgeOpenTest, MissingDeviceOrToolIsNotFound) {
  TempDir root;
  LinuxBridge::Options o;
  o.debugfs_root = root.path() + "/debug";
  o.sysfs_root = root.path() + "/sys";
  o.device = kDevice;
  EXPECT_EQ(LinuxBridge::Open(o, TestLimits()).status().code(),
            absl::StatusCode::kNotFound);
  const std::string sys = root.path() + "/sys/bus/ntb/devices/" + kDevice;
  for (const std::string& d : {root.path() + "/sys", root.path() + "/sys/bus",
                               root.path() + "/sys/bus/ntb",
                               root.path() + "/sys/bus/ntb/devices", sys}) {
    mkdir(d.c_str(), 0755);
  }
  absl::Status s = LinuxBridge::Open(o, TestLimits()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr("ntb_tool"));
}

}  // namespace
}  // namespace fabric::agent::hw
