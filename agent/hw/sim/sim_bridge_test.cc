#include "agent/hw/sim/sim_bridge.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_replace.h"
#include "agent/hw/sim/sim_world.h"
#include "agent/hw/sim/state_file.h"
#include "agent/hw/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw {
namespace {

using ::fabric::agent::hw::testing::TempDir;
using ::testing::HasSubstr;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kMemBase = 0x1'0000'0000ull;
constexpr uint64_t kWinBase = 0x200'0000'0000ull;
constexpr uint64_t kFabric = 0x1000'0000'0000ull;

HardwareLimits SimLimits() {
  HardwareLimits l;
  l.profile = "sim";
  l.window_count = 8;
  l.lut_entries = 32;
  l.lut_entry_size = kMiB;
  l.xlat_align = 4 * kKiB;
  l.size_granularity = 4 * kKiB;
  l.min_window_size = 4 * kKiB;
  l.max_window_size = kGiB;
  l.mapping_entries = 64;
  l.doorbells = 32;
  l.scratchpads = 16;
  return l;
}

uint64_t DirectAt(int slot) { return kWinBase + slot * kGiB; }
uint64_t LutAt(int slot) { return kWinBase + 8 * kGiB + slot * kMiB; }

std::string FileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ino_t Inode(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return st.st_ino;
}

std::unique_ptr<SimBridge> MustOpen(const std::string& dir,
                                    const std::string& node,
                                    const HardwareLimits& l = SimLimits()) {
  absl::StatusOr<std::unique_ptr<SimBridge>> b = SimBridge::Open(dir, node, l);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *std::move(b) : nullptr;
}

class SimBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    b_ = MustOpen(dir_.path(), "n0");
    ASSERT_NE(b_, nullptr);
    ASSERT_TRUE(b_->SetHostMemory({kMemBase, 64 * kMiB, kWinBase}).ok());
    ASSERT_TRUE(b_->SetWindow(GoodWindow()).ok());
    ASSERT_TRUE(b_->SetMapEntries({{MapEntry::Kind::kClaim, kFabric, 64 * kMiB,
                                    0, kMemBase}})
                    .ok());
    ASSERT_TRUE(b_->SetInbound({{kMemBase, 64 * kKiB, "g1"}}).ok());
  }

  static Window GoodWindow() {
    return {SlotKind::kWindow, 2, DirectAt(2), 64 * kKiB, kFabric + kGiB, "g"};
  }
  std::string StatePath() const {
    return sim_internal::StatePath(dir_.path(), "n0");
  }

  TempDir dir_;
  std::unique_ptr<SimBridge> b_;
};

struct Refusal {
  std::string name;
  std::function<absl::Status(SimBridge&)> call;
  absl::StatusCode code;
  std::vector<std::string> substrings;
};

TEST_F(SimBridgeTest, RefusesWhatTheChipWouldRefuseAndChangesNothing) {
  std::vector<MapEntry> too_many;
  for (int i = 0; i < 65; ++i) {
    too_many.push_back(
        {MapEntry::Kind::kForward, kFabric + i * kMiB, kMiB, 1, 0});
  }
  auto window = [](SlotKind k, int slot, uint64_t local, uint64_t size,
                   uint64_t xlat) {
    return Window{k, slot, local, size, xlat, "t"};
  };
  const std::vector<Refusal> refusals = {
      {"slot past count",
       [&](SimBridge& b) {
         return b.SetWindow(
             window(SlotKind::kWindow, 8, DirectAt(8), 4 * kKiB, kFabric));
       },
       absl::StatusCode::kInvalidArgument,
       {"window slot 8", "outside the 8 windows"}},
      {"LUT slot past count",
       [&](SimBridge& b) {
         return b.SetWindow(
             window(SlotKind::kLut, 32, LutAt(32), kMiB, kFabric));
       },
       absl::StatusCode::kInvalidArgument,
       {"LUT slot 32", "outside the 32 LUT entries"}},
      {"misaligned xlat",
       [&](SimBridge& b) {
         return b.SetWindow(window(SlotKind::kWindow, 1, DirectAt(1), 4 * kKiB,
                                   kFabric + 0x800));
       },
       absl::StatusCode::kInvalidArgument,
       {"window slot 1", "0x1000_0000_0800", "not aligned to 4 KiB"}},
      {"size off granularity",
       [&](SimBridge& b) {
         return b.SetWindow(
             window(SlotKind::kWindow, 1, DirectAt(1), 5000, kFabric));
       },
       absl::StatusCode::kInvalidArgument,
       {"window slot 1", "size 5000 B", "granularity 4 KiB"}},
      {"over max",
       [&](SimBridge& b) {
         return b.SetWindow(
             window(SlotKind::kWindow, 1, DirectAt(1), 2 * kGiB, kFabric));
       },
       absl::StatusCode::kInvalidArgument,
       {"window slot 1", "2 GiB", "maximum window size 1 GiB"}},
      {"LUT size",
       [&](SimBridge& b) {
         return b.SetWindow(
             window(SlotKind::kLut, 3, LutAt(3), 2 * kMiB, kFabric));
       },
       absl::StatusCode::kInvalidArgument,
       {"LUT slot 3", "2 MiB", "LUT entry size 1 MiB"}},
      {"LUT xlat alignment",
       [&](SimBridge& b) {
         return b.SetWindow(
             window(SlotKind::kLut, 3, LutAt(3), kMiB, kFabric + 4 * kKiB));
       },
       absl::StatusCode::kInvalidArgument,
       {"LUT slot 3", "aligned to the LUT entry size 1 MiB"}},
      {"misplaced local_base",
       [&](SimBridge& b) {
         return b.SetWindow(
             window(SlotKind::kWindow, 1, DirectAt(2), 4 * kKiB, kFabric));
       },
       absl::StatusCode::kInvalidArgument,
       {"window slot 1", "not where the slot lives", "(0x200_4000_0000)"}},
      {"misplaced LUT local_base",
       [&](SimBridge& b) {
         return b.SetWindow(
             window(SlotKind::kLut, 0, DirectAt(7), kMiB, kFabric));
       },
       absl::StatusCode::kInvalidArgument,
       {"LUT slot 0", "not where the slot lives"}},
      {"too many map entries",
       [&](SimBridge& b) { return b.SetMapEntries(too_many); },
       absl::StatusCode::kResourceExhausted,
       {"65 entries", "limit of 64"}},
      {"overlapping map entries",
       [&](SimBridge& b) {
         return b.SetMapEntries(
             {{MapEntry::Kind::kForward, kFabric, 2 * kMiB, 1, 0},
              {MapEntry::Kind::kForward, kFabric + kMiB, kMiB, 2, 0}});
       },
       absl::StatusCode::kInvalidArgument,
       {"overlap"}},
      {"inbound outside memory",
       [&](SimBridge& b) {
         return b.SetInbound(
             {{kMemBase + 64 * kMiB - 4 * kKiB, 8 * kKiB, "x"}});
       },
       absl::StatusCode::kInvalidArgument,
       {"inbound grant 'x'", "not inside host memory"}},
      {"memory shrinks under a grant",
       [&](SimBridge& b) {
         return b.SetHostMemory({kMemBase + kMiB, kMiB, kWinBase});
       },
       absl::StatusCode::kInvalidArgument,
       {"inbound grant 'g1'"}},
      {"window_base moves a window",
       [&](SimBridge& b) {
         return b.SetHostMemory({kMemBase, 64 * kMiB, kWinBase + kGiB});
       },
       absl::StatusCode::kInvalidArgument,
       {"window slot 2"}},
      {"scratchpad index",
       [&](SimBridge& b) { return b.WriteScratchpad(16, 1); },
       absl::StatusCode::kInvalidArgument,
       {"scratchpad 16", "16 scratchpads"}},
      {"own doorbell bit",
       [&](SimBridge& b) { return b.ClearDoorbell(uint64_t{1} << 32); },
       absl::StatusCode::kInvalidArgument,
       {"doorbell bits 0x1_0000_0000", "32 doorbells"}},
      {"bad ApplyState is all or nothing",
       [&](SimBridge& b) {
         BridgeState s;
         s.memory = {kMemBase, 64 * kMiB, kWinBase};
         s.windows.push_back(
             window(SlotKind::kWindow, 0, DirectAt(0), 4 * kKiB, kFabric));
         s.windows.push_back(
             window(SlotKind::kWindow, 1, DirectAt(1), 4 * kKiB, kFabric + 1));
         return b.ApplyState(s);
       },
       absl::StatusCode::kInvalidArgument,
       {"window slot 1", "not aligned"}},
  };
  for (const Refusal& r : refusals) {
    SCOPED_TRACE(r.name);
    absl::StatusOr<BridgeState> before = b_->Read();
    ASSERT_TRUE(before.ok());
    const std::string text_before = FileText(StatePath());
    absl::Status s = r.call(*b_);
    EXPECT_EQ(s.code(), r.code) << s;
    for (const std::string& sub : r.substrings) {
      EXPECT_THAT(std::string(s.message()), HasSubstr(sub));
    }
    absl::StatusOr<BridgeState> after = b_->Read();
    ASSERT_TRUE(after.ok());
    EXPECT_TRUE(*after == *before);
    EXPECT_EQ(FileText(StatePath()), text_before);
  }
}

TEST_F(SimBridgeTest, ReapplyingIsIdempotentAndWritesNothing) {
  const ino_t ino = Inode(StatePath());
  ASSERT_TRUE(b_->SetWindow(GoodWindow()).ok());
  ASSERT_TRUE(b_->SetInbound({{kMemBase, 64 * kKiB, "g1"}}).ok());
  ASSERT_TRUE(b_->SetHostMemory({kMemBase, 64 * kMiB, kWinBase}).ok());
  ASSERT_TRUE(b_->ClearWindow(SlotKind::kLut, 5).ok());  // Already empty.
  absl::StatusOr<BridgeState> s = b_->Read();
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(b_->ApplyState(*s).ok());
  EXPECT_EQ(Inode(StatePath()), ino);  // No rewrite happened.
  absl::StatusOr<BridgeState> again = b_->Read();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(*again == *s);
}

TEST_F(SimBridgeTest, ReopenKeepsStateAndTheHardwaresLimits) {
  ASSERT_TRUE(b_->WriteScratchpad(3, 0xabcd).ok());
  absl::StatusOr<BridgeState> before = b_->Read();
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->windows.size(), 1u);
  EXPECT_EQ(before->scratchpads.size(), 16u);
  EXPECT_EQ(before->scratchpads[3], 0xabcdu);

  HardwareLimits other = SimLimits();
  other.profile = "amd";
  other.window_count = 3;
  b_.reset();
  std::unique_ptr<SimBridge> again = MustOpen(dir_.path(), "n0", other);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->limits().profile, "sim");
  EXPECT_EQ(again->limits().window_count, 8);
  absl::StatusOr<BridgeState> after = again->Read();
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(*after == *before);

  // Deleting the state file is replacing the hardware.
  again.reset();
  ASSERT_EQ(unlink(StatePath().c_str()), 0);
  std::unique_ptr<SimBridge> fresh = MustOpen(dir_.path(), "n0", other);
  EXPECT_EQ(fresh->limits().profile, "amd");
  absl::StatusOr<BridgeState> empty = fresh->Read();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->windows.empty());
}

TEST_F(SimBridgeTest, StateIsReadableJsonThatPeopleCanEdit) {
  std::string text = FileText(StatePath());
  EXPECT_THAT(text, HasSubstr("\"windows\""));
  EXPECT_THAT(text, HasSubstr("\"window_base\""));
  EXPECT_THAT(text, HasSubstr("\"tag\": \"g1\""));
  text =
      absl::StrReplaceAll(text, {{"\"tag\": \"g1\"", "\"tag\": \"edited\""}});
  std::ofstream(StatePath()) << text;
  absl::StatusOr<BridgeState> s = b_->Read();
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->inbound.size(), 1u);
  EXPECT_EQ(s->inbound[0].tag, "edited");

  std::ofstream(StatePath()) << "{ not json";
  EXPECT_EQ(b_->Read().status().code(), absl::StatusCode::kDataLoss);
}

// Whether every byte of `text` is printable ASCII (so valid UTF-8).
bool PrintableAscii(const std::string& text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// A state file may hold anything; the error quotes it only as a short
// excerpt, escaped, so it can travel in any message (protobuf refuses
// string fields that are not UTF-8).
TEST_F(SimBridgeTest, UnreadableStateIsQuotedShortAndEscaped) {
  std::string noise = "\xff\xfe";
  for (int i = 0; i < (1 << 20); ++i) noise.push_back(static_cast<char>(i * 7));
  const std::string long_name(10000, 'x');
  const std::vector<std::pair<std::string, std::string>> files = {
      {noise, "does not parse"},
      {"{\"windows\": [{\"slot\": 1}, \xc3\xa9\xff", "does not parse"},
      {"[1, 2, 3]", "does not parse"},
      {"{\"" + long_name + "\": 1}", "does not parse"},
      {"{\"bridge\": \"" + long_name + "\xc3\xa9\"}", "belongs to bridge"},
      {"{\"bridge\": \"n0\"}", "holds limits no chip has"},
  };
  for (const auto& [text, says] : files) {
    std::ofstream(StatePath(), std::ios::binary | std::ios::trunc) << text;
    absl::Status s = b_->Read().status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    const std::string message(s.message());
    EXPECT_THAT(message, HasSubstr(StatePath()));
    EXPECT_THAT(message, HasSubstr(says));
    EXPECT_TRUE(PrintableAscii(message)) << message;
    EXPECT_LE(message.size(), StatePath().size() + 512) << message;

    absl::StatusOr<sim_internal::SimRecord> r =
        sim_internal::RecordFromJson(text);
    if (!r.ok()) {
      EXPECT_TRUE(PrintableAscii(std::string(r.status().message())));
      EXPECT_LE(r.status().message().size(), sim_internal::kMaxParseErrorBytes);
    }
  }
  std::ofstream(StatePath(), std::ios::binary | std::ios::trunc) << noise;
  EXPECT_THAT(std::string(b_->Read().status().message()),
              HasSubstr("near \"\\xff\\xfe"));
}

// A lost state file is a chip whose registers were lost: reads fail until
// the next change programs it from its reset state, which keeps the chip's
// limits and the host's memory.
TEST_F(SimBridgeTest, LostStateIsReprogrammedFromReset) {
  std::vector<uint8_t> data = {1, 2, 3, 4};
  ASSERT_TRUE(b_->HostWrite(kMemBase + 4096, data)->landed);
  absl::StatusOr<BridgeState> before = b_->Read();
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(b_->WriteScratchpad(3, 0xabcd).ok());

  std::ofstream(StatePath(), std::ios::trunc) << "\xff garbage";
  EXPECT_EQ(b_->Read().status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(b_->ApplyState(*before).ok());
  absl::StatusOr<BridgeState> after = b_->Read();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->map == before->map);
  EXPECT_TRUE(after->windows == before->windows);
  EXPECT_TRUE(after->inbound == before->inbound);
  EXPECT_EQ(after->scratchpads, std::vector<uint32_t>(16, 0));
  EXPECT_EQ(b_->limits().window_count, 8);
  std::vector<uint8_t> out(4);
  ASSERT_TRUE(b_->HostRead(kMemBase + 4096, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, data);

  // A deleted file: one register write brings the chip back, with only
  // what was written since the reset.
  ASSERT_EQ(unlink(StatePath().c_str()), 0);
  EXPECT_EQ(b_->Read().status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(b_->WriteScratchpad(3, 0xabcd).ok());
  after = b_->Read();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->windows.empty());
  EXPECT_EQ(after->memory.size, 0u);
  EXPECT_EQ(after->scratchpads[3], 0xabcdu);

  // Even a change that leaves the reset state as it is writes the file.
  std::ofstream(StatePath(), std::ios::trunc) << "[]";
  ASSERT_TRUE(b_->ApplyState(BridgeState()).ok());
  EXPECT_TRUE(b_->Read().ok());
  // A refused change leaves the lost file as it was.
  std::ofstream(StatePath(), std::ios::trunc) << "[]";
  EXPECT_EQ(
      b_->SetWindow({SlotKind::kWindow, 8, DirectAt(8), 4 * kKiB, kFabric, "t"})
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FileText(StatePath()), "[]");
}

TEST_F(SimBridgeTest, MemoryFileIsSparseAndSized) {
  struct stat st;
  ASSERT_EQ(stat(sim_internal::MemoryPath(dir_.path(), "n0").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 64 * kMiB);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, kMiB);
  std::vector<uint8_t> data = {1, 2, 3, 4};
  absl::StatusOr<AccessResult> w = b_->HostWrite(kMemBase + 4096, data);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w->landed);
  EXPECT_EQ(w->node, "n0");
  std::vector<uint8_t> out(4);
  ASSERT_TRUE(b_->HostRead(kMemBase + 4096, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, data);
  EXPECT_EQ(b_->HostRead(kMemBase + 64 * kMiB - 2, absl::MakeSpan(out)).code(),
            absl::StatusCode::kOutOfRange);
}

TEST_F(SimBridgeTest, InjectedFailuresChangeNothing) {
  const std::string text = FileText(StatePath());
  b_->InjectApplyFailure(absl::UnavailableError("injected"), 2);
  EXPECT_EQ(b_->ClearWindow(SlotKind::kWindow, 2).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(b_->SetInbound({}).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(FileText(StatePath()), text);
  EXPECT_TRUE(b_->SetInbound({}).ok());
  absl::StatusOr<BridgeState> s = b_->Read();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->inbound.empty());
}

TEST_F(SimBridgeTest, DoorbellNeedsAnUpLinkAndThePeersLimits) {
  std::unique_ptr<SimBridge> n1 = MustOpen(dir_.path(), "n1");
  ASSERT_TRUE(b_->SetPort({2, "n1", 1, true}).ok());
  EXPECT_EQ(b_->RingPeerDoorbell("n1", 1).code(),
            absl::StatusCode::kUnavailable);  // n1's end is not up.
  ASSERT_TRUE(n1->SetPort({1, "n0", 2, true}).ok());
  absl::Status bad = b_->RingPeerDoorbell("n1", uint64_t{1} << 40);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("32 doorbells"));
  EXPECT_EQ(b_->RingPeerDoorbell("nobody", 1).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(b_->RingPeerDoorbell("n1", 0x5).ok());
  ASSERT_TRUE(b_->RingPeerDoorbell("n1", 0x2).ok());
  absl::StatusOr<BridgeState> s = n1->Read();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->doorbell, 0x7u);
  ASSERT_TRUE(n1->ClearDoorbell(0x1).ok());
  EXPECT_EQ(n1->Read()->doorbell, 0x6u);
}

TEST_F(SimBridgeTest, ConcurrentWritersLoseNothing) {
  std::unique_ptr<SimBridge> n1 = MustOpen(dir_.path(), "n1");
  ASSERT_TRUE(b_->SetPort({2, "n1", 1, true}).ok());
  ASSERT_TRUE(n1->SetPort({1, "n0", 2, true}).ok());
  // n0 rings 16 doorbells of n1 while n1 writes its scratchpads: both are
  // read-modify-writes of n1's file and none may be lost.
  std::thread ringer([&] {
    for (int i = 0; i < 16; ++i) {
      EXPECT_TRUE(b_->RingPeerDoorbell("n1", uint64_t{1} << i).ok());
    }
  });
  for (int i = 0; i < 16; ++i) {
    EXPECT_TRUE(n1->WriteScratchpad(i, 100 + i).ok());
  }
  ringer.join();
  absl::StatusOr<BridgeState> s = n1->Read();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->doorbell, 0xffffu);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(s->scratchpads[i], 100u + i);
}

TEST(SimBridgeOpenTest, RefusesBadNamesAndImpossibleLimits) {
  TempDir dir;
  EXPECT_EQ(SimBridge::Open(dir.path(), "a/b", SimLimits()).status().code(),
            absl::StatusCode::kInvalidArgument);
  HardwareLimits l = SimLimits();
  l.xlat_align = 0;
  EXPECT_EQ(SimBridge::Open(dir.path(), "n0", l).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fabric::agent::hw
