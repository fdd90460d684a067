#include "agent/vf/config_virtualizer.h"

#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/discovery/test_configs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::vf {
namespace {

using ::fabric::agent::discovery::testing::ConfigBuilder;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint16_t kPfVendor = 0x8086;
constexpr uint16_t kVfDevice = 0x154c;
constexpr uint16_t kSnapshotCommand = 0x0100;  // SERR# enable, set by lender
constexpr uint64_t kFabricDoorbell = 0x700000000000;

// A 4096-byte VF config space: vendor/device 0xffff as a VF reads, MSI-X
// (0x70, 4 vectors, table in BAR3 at 0x2000, PBA at 0x3000) -> PCIe v2
// (0xa0); AER (0x100) -> ARI (0x150).
std::vector<uint8_t> VfConfig() {
  ConfigBuilder b(4096);
  b.Set16(0x00, 0xffff).Set16(0x02, 0xffff);
  b.Set16(0x04, kSnapshotCommand).Set16(0x06, 0x0010);
  b.Set8(0x08, 0x02).Set8(0x09, 0x00).Set16(0x0a, 0x0200);
  b.Set8(0x0c, 0x10).Set8(0x0d, 0x00).Set8(0x0e, 0x00);
  // The real VF's BARs hold fabric addresses (VF BARs read 0 on real
  // hardware; anything here must never leak to the borrower).
  b.Set32(0x10, 0xdead000c).Set32(0x14, 0x00000099);
  b.Set16(0x2c, 0x8086).Set16(0x2e, 0x0001);
  b.Set8(0x34, 0x70).Set8(0x3d, 0x00);
  b.Cap(0x70, 0x11, 0xa0);
  b.Set16(0x72, 0x0003);      // 4 vectors
  b.Set32(0x74, 0x00002003);  // table: BAR3 + 0x2000
  b.Set32(0x78, 0x00003003);  // PBA: BAR3 + 0x3000
  b.Cap(0xa0, 0x10, 0x00);
  b.Set16(0xa2, 0x0002);      // version 2, endpoint
  b.Set32(0xa4, 0x10008fc2);  // device capabilities (FLR capable)
  b.Set16(0xa8, 0x2810);      // device control
  b.Set32(0xac, 0x0041e043);  // link capabilities
  b.Set16(0xb0, 0x0040).Set16(0xb2, 0x1043);
  b.ExtCap(0x100, 0x0001, 2, 0x150);  // AER
  b.Set32(0x104, 0x00000010);
  b.ExtCap(0x150, 0x000e, 1, 0x000);  // ARI
  return b.Build();
}

std::vector<VirtualBar> VfBars() {
  return {
      // 8 GiB: the upper dword holds size bits too.
      {0, uint64_t{8} << 30, true, true, 0x0000004000000000},
      {3, 16 * 1024, true, true, 0x0000004200010000},
      {5, 4096, false, false, 0xfe000000},
  };
}

// The real VF: a byte array, plus a log of every forwarded write.
class FakeVf {
 public:
  explicit FakeVf(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}

  RealAccess Access() {
    RealAccess a;
    a.read = [this](int offset, int size) -> absl::StatusOr<uint32_t> {
      absl::MutexLock lock(&mu_);
      ++reads_;
      if (!read_error_.ok()) return read_error_;
      uint32_t v = 0;
      for (int i = 0; i < size; ++i)
        v |= uint32_t{bytes_[offset + i]} << (8 * i);
      return v;
    };
    a.write = [this](int offset, int size, uint32_t value) -> absl::Status {
      absl::MutexLock lock(&mu_);
      if (!write_error_.ok()) return write_error_;
      writes_.emplace_back(offset, size, value);
      for (int i = 0; i < size; ++i) {
        bytes_[offset + i] = static_cast<uint8_t>(value >> (8 * i));
      }
      return absl::OkStatus();
    };
    a.write_msix_entry = [this](int vector, const MsixEntry& e) {
      absl::MutexLock lock(&mu_);
      msix_.emplace_back(vector, e);
      return absl::OkStatus();
    };
    return a;
  }

  std::vector<uint8_t> bytes() const {
    absl::MutexLock lock(&mu_);
    return bytes_;
  }
  std::vector<std::tuple<int, int, uint32_t>> writes() const {
    absl::MutexLock lock(&mu_);
    return writes_;
  }
  std::vector<std::pair<int, MsixEntry>> msix() const {
    absl::MutexLock lock(&mu_);
    return msix_;
  }
  int reads() const {
    absl::MutexLock lock(&mu_);
    return reads_;
  }
  void set_read_error(absl::Status s) {
    absl::MutexLock lock(&mu_);
    read_error_ = std::move(s);
  }
  void set_write_error(absl::Status s) {
    absl::MutexLock lock(&mu_);
    write_error_ = std::move(s);
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<uint8_t> bytes_;
  std::vector<std::tuple<int, int, uint32_t>> writes_;
  std::vector<std::pair<int, MsixEntry>> msix_;
  int reads_ = 0;
  absl::Status read_error_;
  absl::Status write_error_;
};

// Borrower MSI doorbells 0xfee00000-0xfeefffff reach the shadow device at
// kFabricDoorbell + the same offset; nothing else is mapped.
absl::StatusOr<uint64_t> Translate(uint64_t a) {
  if (a >= 0xfee00000 && a < 0xfef00000)
    return kFabricDoorbell + (a - 0xfee00000);
  return absl::NotFoundError("unmapped");
}

ConfigVirtualizerOptions Options(int* flr_calls = nullptr) {
  ConfigVirtualizerOptions o;
  o.vendor_id = kPfVendor;
  o.device_id = kVfDevice;
  o.translate_msi_address = Translate;
  if (flr_calls != nullptr) o.on_flr = [flr_calls] { ++*flr_calls; };
  return o;
}

class ConfigVirtualizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto v = ConfigVirtualizer::Create(VfConfig(), VfBars(), vf_.Access(),
                                       Options(&flr_calls_));
    ASSERT_TRUE(v.ok()) << v.status();
    v_ = std::move(*v);
  }

  uint32_t Read(int offset, int size) {
    absl::StatusOr<uint32_t> r = v_->Read(offset, size);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(0xdeadbeef);
  }
  WriteResult Write(int offset, int size, uint32_t value) {
    absl::StatusOr<WriteResult> r = v_->Write(offset, size, value);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(WriteResult{});
  }
  uint32_t RealByte(int offset) const { return vf_.bytes()[offset]; }

  FakeVf vf_{VfConfig()};
  int flr_calls_ = 0;
  std::unique_ptr<ConfigVirtualizer> v_;
};

TEST_F(ConfigVirtualizerTest, IdentityIsThePfVendorAndVfDeviceWithoutRealRead) {
  EXPECT_EQ(Read(0x00, 4), uint32_t{kVfDevice} << 16 | kPfVendor);
  EXPECT_EQ(Read(0x00, 2), kPfVendor);
  EXPECT_EQ(Read(0x02, 2), kVfDevice);
  EXPECT_EQ(Read(0x01, 1), kPfVendor >> 8);
  EXPECT_EQ(vf_.reads(), 0);
}

TEST_F(ConfigVirtualizerTest, IdentityRegistersReadFromTheRealVf) {
  EXPECT_EQ(Read(0x08, 1), 0x02u);         // revision
  EXPECT_EQ(Read(0x08, 4), 0x02000002u);   // class 020000, revision 2
  EXPECT_EQ(Read(0x0e, 1), 0x00u);         // header type
  EXPECT_EQ(Read(0x2c, 4), 0x00018086u);   // subsystem
  EXPECT_EQ(Read(0x34, 1), 0x70u);         // capabilities pointer
  EXPECT_EQ(Read(0x3d, 1), 0x00u);         // interrupt pin
  EXPECT_EQ(Read(0x70, 4), 0x0003a011u);   // MSI-X header + control
  EXPECT_EQ(Read(0x104, 4), 0x00000010u);  // extended space passes through
}

TEST_F(ConfigVirtualizerTest, RuleAtNamesTheRuleOfEachRegisterFromItsSet) {
  const std::vector<std::pair<int, std::string>> cases = {
      {0x00, "vendor_id"},      {0x02, "device_id"},
      {0x04, "command"},        {0x06, "status"},
      {0x08, "read_only"},      {0x0c, "protected"},
      {0x10, "bar"},            {0x30, "rom"},
      {0x3c, "interrupt_line"}, {0x72, "msix_control"},
      {0x74, "read_only"},      {0x70, "read_only_region"},
      {0xa8, "device_control"}, {0xb0, "link"},
      {0xa4, "read_only_region"}, {0x104, "protected"},
      {-1, "invalid"},          {4096, "invalid"}};
  const std::vector<std::string>& names = ConfigVirtualizer::RuleNames();
  for (const auto& [offset, rule] : cases) {
    EXPECT_EQ(v_->RuleAt(offset), rule) << "offset " << offset;
    EXPECT_THAT(names, ::testing::Contains(rule));
  }
  EXPECT_THAT(names, ::testing::Contains(kMsixTableRule));
}

TEST_F(ConfigVirtualizerTest, ReadOnlyWritesAreDroppedAndCounted) {
  const std::vector<uint8_t> before = vf_.bytes();
  struct Case {
    int offset, size;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {0x00, 2, "vendor id is read-only"},
      {0x02, 2, "device id is read-only"},
      {0x08, 1, "revision id is read-only"},
      {0x0a, 2, "class code is read-only"},
      {0x0e, 1, "header type is read-only"},
      {0x2c, 2, "subsystem vendor id is read-only"},
      {0x2e, 2, "subsystem id is read-only"},
      {0x34, 1, "capabilities pointer is read-only"},
      {0x3d, 1, "interrupt pin is read-only"},
      {0x74, 4, "msi-x table offset/bir is read-only"},
      {0x78, 4, "msi-x pba offset/bir is read-only"},
      {0x70, 1, "msi-x capability offset 0x070 is read-only"},
      {0x72, 1, "msi-x table size is read-only"},
      {0xa4, 4, "pcie capability offset 0x0a4 is read-only"},
      {0xaa, 2, "pcie capability offset 0x0aa is read-only"},
      {0xb0, 2, "a VF cannot change the PF's link"},
      {0xb2, 2, "a VF cannot change the PF's link"},
      {0x0c, 1, "config offset 0x00c is protected"},
      {0x28, 4, "config offset 0x028 is protected"},
      {0x104, 4, "extended capability 0x0001 offset 0x104 is protected"},
      {0x154, 2, "extended capability 0x000e offset 0x154 is protected"},
      // The last capability's region runs to the end of its space.
      {0x800, 4, "extended capability 0x000e offset 0x800 is protected"},
      {0x40, 4, "config offset 0x040 is protected"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.reason);
    WriteResult r = Write(c.offset, c.size, 0xa5a5a5a5);
    EXPECT_EQ(r.outcome, WriteOutcome::kDropped);
    EXPECT_EQ(r.reason, c.reason);
  }
  EXPECT_EQ(vf_.bytes(), before);
  EXPECT_THAT(vf_.writes(), IsEmpty());
  ConfigCounters n = v_->counters();
  EXPECT_EQ(n.writes_dropped, cases.size());
  EXPECT_EQ(n.writes_forwarded + n.writes_emulated, 0u);
  EXPECT_EQ(n.dropped_by_reason["vendor id is read-only"], 1u);
  EXPECT_EQ(n.dropped_by_reason["a VF cannot change the PF's link"], 2u);
  // The identity still reads as before.
  EXPECT_EQ(Read(0x00, 2), kPfVendor);
}

TEST_F(ConfigVirtualizerTest, DwordWriteOverMixedRegistersNamesEachPart) {
  WriteResult r = Write(0x0c, 4, 0xffffffff);
  EXPECT_EQ(r.outcome, WriteOutcome::kDropped);
  EXPECT_EQ(r.reason,
            "config offset 0x00c is protected; header type is read-only; "
            "config offset 0x00f is protected");
  ConfigCounters n = v_->counters();
  EXPECT_EQ(n.writes_dropped, 1u);
  EXPECT_EQ(n.dropped_by_reason.size(), 3u);
  EXPECT_EQ(RealByte(0x0c), 0x10u);
}

TEST_F(ConfigVirtualizerTest, CommandForwardsMemoryAndBusMasterOnly) {
  EXPECT_EQ(Read(0x04, 2), 0x0400u);       // INTx disable forced on
  WriteResult r = Write(0x04, 2, 0x0007);  // I/O + memory + bus master
  EXPECT_EQ(r.outcome, WriteOutcome::kForwarded);
  // Memory and bus master from the borrower; the lender's SERR# kept;
  // INTx disable set; I/O enable not sent.
  EXPECT_THAT(vf_.writes(), ElementsAre(std::make_tuple(0x04, 2, 0x0506u)));
  EXPECT_EQ(Read(0x04, 2), 0x0407u);  // I/O emulated, memory/BM from real

  r = Write(0x05, 1, 0x01);  // SERR# only: high byte, nothing to forward
  EXPECT_EQ(r.outcome, WriteOutcome::kEmulated);
  EXPECT_EQ(vf_.writes().size(), 1u);
  EXPECT_EQ(Read(0x04, 2), 0x0507u);

  r = Write(0x04, 2, 0x0000);  // borrower clears everything, incl. INTx dis.
  EXPECT_EQ(r.outcome, WriteOutcome::kForwarded);
  EXPECT_EQ(std::get<2>(vf_.writes().back()), 0x0500u);
  EXPECT_EQ(Read(0x04, 2), 0x0400u);

  r = Write(0x04, 1, 0x04);  // byte write: bus master only
  EXPECT_EQ(r.outcome, WriteOutcome::kForwarded);
  EXPECT_EQ(vf_.writes().back(), std::make_tuple(0x04, 1, 0x04u));
}

TEST_F(ConfigVirtualizerTest, StatusWritesForwardOnlyRw1cBits) {
  WriteResult r = Write(0x06, 2, 0xffff);
  EXPECT_EQ(r.outcome, WriteOutcome::kForwarded);
  EXPECT_TRUE(r.reason.empty());
  EXPECT_THAT(vf_.writes(), ElementsAre(std::make_tuple(0x06, 2, 0xf900u)));
}

TEST_F(ConfigVirtualizerTest, DwordWriteAtCommandForwardsBothRegisters) {
  WriteResult r = Write(0x04, 4, 0x80000002);
  EXPECT_EQ(r.outcome, WriteOutcome::kForwarded);
  EXPECT_THAT(vf_.writes(), ElementsAre(std::make_tuple(0x04, 2, 0x0502u),
                                        std::make_tuple(0x06, 2, 0x8000u)));
}

TEST_F(ConfigVirtualizerTest, BarsReadTheBorrowerBaseWithTypeBits) {
  EXPECT_EQ(Read(0x10, 4), 0x0000000cu);  // 64-bit prefetchable, base low 0
  EXPECT_EQ(Read(0x14, 4), 0x00000040u);
  EXPECT_EQ(Read(0x1c, 4), 0x0001000cu);
  EXPECT_EQ(Read(0x20, 4), 0x00000042u);
  EXPECT_EQ(Read(0x24, 4), 0xfe000000u);  // 32-bit, not prefetchable
  EXPECT_EQ(Read(0x18, 4), 0u);           // unimplemented
  EXPECT_EQ(Read(0x1c, 1), 0x0cu);
  EXPECT_EQ(vf_.reads(), 0);  // the real VF's fabric BARs never show
}

TEST_F(ConfigVirtualizerTest, BarSizingReturnsTheSizeMaskAndIsNeverForwarded) {
  const std::vector<uint8_t> before = vf_.bytes();
  // 16 KiB 64-bit BAR3: low and high dwords.
  WriteResult r = Write(0x1c, 4, 0xffffffff);
  EXPECT_EQ(r.outcome, WriteOutcome::kEmulated);
  EXPECT_EQ(r.reason, "bar3 sizing is emulated");
  EXPECT_EQ(Read(0x1c, 4), 0xffffc00cu);
  EXPECT_EQ(Read(0x1c, 4), 0xffffc00cu);  // holds until rewritten
  Write(0x20, 4, 0xffffffff);
  EXPECT_EQ(Read(0x20, 4), 0xffffffffu);
  // 8 GiB BAR0: the size shows in the upper dword.
  Write(0x10, 4, 0xffffffff);
  Write(0x14, 4, 0xffffffff);
  EXPECT_EQ(Read(0x10, 4), 0x0000000cu);
  EXPECT_EQ(Read(0x14, 4), 0xfffffffeu);
  // 4 KiB 32-bit BAR5.
  Write(0x24, 4, 0xffffffff);
  EXPECT_EQ(Read(0x24, 4), 0xfffff000u);
  // Unimplemented BAR2 stays 0.
  r = Write(0x18, 4, 0xffffffff);
  EXPECT_EQ(r.outcome, WriteOutcome::kEmulated);
  EXPECT_EQ(r.reason, "bar2 is not implemented");
  EXPECT_EQ(Read(0x18, 4), 0u);
  // Sizing never changed the recorded base.
  EXPECT_EQ(v_->bars()[1].borrower_base, 0x0000004200010000u);
  EXPECT_EQ(vf_.bytes(), before);
  EXPECT_THAT(vf_.writes(), IsEmpty());
}

TEST_F(ConfigVirtualizerTest, BarWritesMoveTheVirtualBaseAlignedToSize) {
  Write(0x1c, 4, 0xffffffff);  // size, then program a new base
  WriteResult r = Write(0x1c, 4, 0x12345678);
  EXPECT_EQ(r.outcome, WriteOutcome::kEmulated);
  EXPECT_THAT(r.reason, HasSubstr("real VF keeps its fabric address"));
  EXPECT_EQ(Read(0x1c, 4), 0x1234400cu);  // aligned to 16 KiB, type bits
  Write(0x20, 4, 0x00000041);
  EXPECT_EQ(Read(0x20, 4), 0x41u);
  EXPECT_EQ(v_->bars()[1].borrower_base, 0x0000004112344000u);
  Write(0x24, 2, 0x1234);  // partial write to the 32-bit BAR's low half
  EXPECT_EQ(Read(0x24, 4), 0xfe001000u);
  EXPECT_THAT(vf_.writes(), IsEmpty());
  EXPECT_EQ(RealByte(0x10), 0x0cu);
  EXPECT_EQ(RealByte(0x13), 0xdeu);
  EXPECT_EQ(v_->counters().writes_emulated, 4u);
}

TEST_F(ConfigVirtualizerTest, RomReadsZeroAndWritesAreEmulated) {
  WriteResult r = Write(0x30, 4, 0xfffff801);
  EXPECT_EQ(r.outcome, WriteOutcome::kEmulated);
  EXPECT_EQ(Read(0x30, 4), 0u);
  EXPECT_THAT(vf_.writes(), IsEmpty());
}

TEST_F(ConfigVirtualizerTest, InterruptLineIsEmulated) {
  EXPECT_EQ(Write(0x3c, 1, 0x0b).outcome, WriteOutcome::kEmulated);
  EXPECT_EQ(Read(0x3c, 1), 0x0bu);
  EXPECT_EQ(Read(0x3c, 4), 0x0000000bu);  // pin 0 from the real VF
  EXPECT_EQ(RealByte(0x3c), 0u);
}

TEST_F(ConfigVirtualizerTest, MsixControlForwardsEnableAndFunctionMask) {
  WriteResult r = Write(0x72, 2, 0xc7ff);
  EXPECT_EQ(r.outcome, WriteOutcome::kForwarded);
  EXPECT_THAT(vf_.writes(), ElementsAre(std::make_tuple(0x72, 2, 0xc000u)));
  r = Write(0x73, 1, 0x80);
  EXPECT_EQ(r.outcome, WriteOutcome::kForwarded);
  EXPECT_EQ(vf_.writes().back(), std::make_tuple(0x73, 1, 0x80u));
  // A dword write at the header: header dropped, control forwarded.
  r = Write(0x70, 4, 0x80000000);
  EXPECT_EQ(r.outcome, WriteOutcome::kForwarded);
  EXPECT_EQ(r.reason, "msi-x capability offset 0x070 is read-only");
  EXPECT_EQ(vf_.writes().back(), std::make_tuple(0x72, 2, 0x8000u));
}

TEST_F(ConfigVirtualizerTest, DeviceControlForwardsButFlrIsAResetRequest) {
  WriteResult r = Write(0xa8, 2, 0x2830);
  EXPECT_EQ(r.outcome, WriteOutcome::kForwarded);
  EXPECT_THAT(vf_.writes(), ElementsAre(std::make_tuple(0xa8, 2, 0x2830u)));

  Write(0x04, 2, 0x0007);  // emulated I/O enable, to see the reset clear it
  Write(0x1c, 4, 0xffffffff);
  r = Write(0xa8, 2, 0xa810);
  EXPECT_EQ(r.outcome, WriteOutcome::kForwarded);
  EXPECT_THAT(r.reason, HasSubstr("function level reset"));
  EXPECT_EQ(vf_.writes().back(), std::make_tuple(0xa8, 2, 0x2810u));
  EXPECT_EQ(flr_calls_, 1);
  EXPECT_EQ(v_->counters().flr_requests, 1u);
  EXPECT_EQ(Read(0x04, 2) & 0x1, 0u);     // emulated bits reset
  EXPECT_EQ(Read(0x1c, 4), 0x0001000cu);  // sizing latch cleared, base kept
  r = Write(0xa9, 1, 0x80);               // byte write of the FLR bit
  EXPECT_EQ(vf_.writes().back(), std::make_tuple(0xa9, 1, 0x00u));
  EXPECT_EQ(flr_calls_, 2);
}

// Found by config_virtualizer_fuzzer: the shadow used to reset (and count
// the FLR) before the Device Control write failed, so on_flr never ran and
// the real VF kept vectors the shadow said were masked.
TEST_F(ConfigVirtualizerTest, RefusedFlrWriteResetsNothing) {
  ASSERT_TRUE(v_->WriteMsixTable(12, 4, 0).ok());  // unmask vector 0
  Write(0x04, 2, 0x0007);
  vf_.set_write_error(absl::UnavailableError("link down"));
  absl::StatusOr<WriteResult> r = v_->Write(0xa8, 2, 0xa810);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  vf_.set_write_error(absl::OkStatus());
  EXPECT_EQ(flr_calls_, 0);
  EXPECT_EQ(v_->counters().flr_requests, 0u);
  EXPECT_EQ(Read(0x04, 2) & 0x1, 1u);        // emulated bits kept
  EXPECT_EQ(*v_->ReadMsixTable(12, 4), 0u);  // vector 0 still unmasked
  r = v_->Write(0xa8, 2, 0xa810);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(flr_calls_, 1);
  EXPECT_EQ(*v_->ReadMsixTable(12, 4), 1u);
}

TEST_F(ConfigVirtualizerTest, MsixTableProgramsTheTranslatedAddress) {
  EXPECT_EQ(v_->msix_vectors(), 4);
  EXPECT_EQ(v_->msix_table_bir(), 3);
  EXPECT_EQ(v_->msix_table_offset(), 0x2000u);
  const int e1 = 1 * 16;
  // Programmed while masked: kept in the shadow only.
  EXPECT_EQ(v_->WriteMsixTable(e1 + 0, 4, 0xfee01000)->outcome,
            WriteOutcome::kEmulated);
  EXPECT_EQ(v_->WriteMsixTable(e1 + 4, 4, 0)->outcome, WriteOutcome::kEmulated);
  EXPECT_EQ(v_->WriteMsixTable(e1 + 8, 4, 0x4021)->outcome,
            WriteOutcome::kEmulated);
  EXPECT_THAT(vf_.msix(), IsEmpty());
  // Unmask: the real VF gets the fabric address and the borrower's data.
  absl::StatusOr<WriteResult> r = v_->WriteMsixTable(e1 + 12, 4, 0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->outcome, WriteOutcome::kForwarded);
  ASSERT_EQ(vf_.msix().size(), 1u);
  EXPECT_EQ(vf_.msix()[0].first, 1);
  EXPECT_EQ(vf_.msix()[0].second,
            (MsixEntry{kFabricDoorbell + 0x1000, 0x4021, false}));
  // The borrower reads back what it wrote, not the fabric address.
  EXPECT_EQ(*v_->ReadMsixTable(e1 + 0, 4), 0xfee01000u);
  EXPECT_EQ(*v_->ReadMsixTable(e1 + 8, 4), 0x4021u);
  EXPECT_EQ(*v_->ReadMsixTable(e1 + 12, 4), 0u);
  EXPECT_EQ(*v_->ReadMsixTable(0 + 12, 4), 1u);  // vector 0 still masked
  // Changing data while unmasked re-programs; masking programs it masked.
  v_->WriteMsixTable(e1 + 8, 4, 0x4022).IgnoreError();
  EXPECT_EQ(vf_.msix().back().second.data, 0x4022u);
  v_->WriteMsixTable(e1 + 12, 4, 1).IgnoreError();
  EXPECT_EQ(vf_.msix().back().second,
            (MsixEntry{kFabricDoorbell + 0x1000, 0x4022, true}));
  EXPECT_EQ(v_->counters().msix_entries_programmed, 3u);
}

TEST_F(ConfigVirtualizerTest, MsixAddressWithoutTranslationStaysMasked) {
  const int e2 = 2 * 16;
  v_->WriteMsixTable(e2 + 0, 4, 0x12345000).IgnoreError();
  absl::StatusOr<WriteResult> r = v_->WriteMsixTable(e2 + 12, 4, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome, WriteOutcome::kDropped);
  EXPECT_EQ(r->reason, "msi-x message address has no fabric translation");
  EXPECT_THAT(vf_.msix(), IsEmpty());
  EXPECT_EQ(
      v_->counters()
          .dropped_by_reason["msi-x message address has no fabric translation"],
      1u);
  // Now a good address: programmed unmasked.
  r = v_->WriteMsixTable(e2 + 0, 4, 0xfee00000);
  EXPECT_EQ(r->outcome, WriteOutcome::kForwarded);
  EXPECT_EQ(vf_.msix().back().second, (MsixEntry{kFabricDoorbell, 0, false}));
  // And back to a bad one while unmasked: the real vector gets masked.
  r = v_->WriteMsixTable(e2 + 4, 4, 0x1);
  EXPECT_EQ(r->outcome, WriteOutcome::kDropped);
  EXPECT_TRUE(vf_.msix().back().second.masked);
}

TEST_F(ConfigVirtualizerTest, FlrMasksTheMsixTable) {
  v_->WriteMsixTable(0, 4, 0xfee00000).IgnoreError();
  v_->WriteMsixTable(12, 4, 0).IgnoreError();
  Write(0xa8, 2, 0x8000);
  EXPECT_EQ(*v_->ReadMsixTable(12, 4), 1u);
  EXPECT_EQ(*v_->ReadMsixTable(0, 4), 0u);
}

TEST_F(ConfigVirtualizerTest, MsixTableRejectsBadAccesses) {
  EXPECT_EQ(v_->WriteMsixTable(0, 2, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(v_->WriteMsixTable(64, 4, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(v_->ReadMsixTable(2, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(v_->ReadMsixTable(-4, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ConfigVirtualizerTest, BadOffsetsAndSizesAreRejected) {
  struct Case {
    int offset, size;
    const char* text;
  };
  for (const Case& c : std::vector<Case>{{0x1000, 4, "0x1000"},
                                         {-4, 4, "offset -0x4"},
                                         {0x02, 4, "0x2"},
                                         {0x01, 2, "0x1"},
                                         {0x00, 3, "size 3"},
                                         {0x00, 8, "size 8"},
                                         {0xffe, 4, "0xffe"}}) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<uint32_t> r = v_->Read(c.offset, c.size);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    absl::StatusOr<WriteResult> w = v_->Write(c.offset, c.size, 0);
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(w.status().message()), HasSubstr("size"));
  }
  EXPECT_THAT(std::string(v_->Read(0x1000, 4).status().message()),
              HasSubstr("0x1000"));
  EXPECT_EQ(v_->counters().reads, 0u);
  EXPECT_EQ(vf_.reads(), 0);
}

TEST_F(ConfigVirtualizerTest, RealAccessErrorsPassThrough) {
  vf_.set_read_error(absl::UnavailableError("lender unreachable"));
  EXPECT_EQ(v_->Read(0x08, 4).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(v_->Read(0x00, 4).ok());  // virtual: needs no lender
  vf_.set_write_error(absl::UnavailableError("lender unreachable"));
  EXPECT_EQ(v_->Write(0x04, 2, 6).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(ConfigVirtualizerTest, CountersAddUp) {
  Read(0x00, 4);
  Read(0x08, 4);
  Write(0x04, 2, 0x6);  // forwarded
  Write(0x3c, 1, 5);    // emulated
  Write(0x00, 2, 0);    // dropped
  Write(0x00, 4, 0);    // dropped (two reasons)
  ConfigCounters n = v_->counters();
  EXPECT_EQ(n.reads, 2u);
  EXPECT_EQ(n.writes_forwarded, 1u);
  EXPECT_EQ(n.writes_emulated, 1u);
  EXPECT_EQ(n.writes_dropped, 2u);
  EXPECT_EQ(n.dropped_by_reason["vendor id is read-only"], 2u);
  EXPECT_EQ(n.dropped_by_reason["device id is read-only"], 1u);
}

TEST_F(ConfigVirtualizerTest, ConcurrentAccessesAreCounted) {
  constexpr int kThreads = 4;
  constexpr int kOps = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kOps; ++i) {
        v_->Read(0x10 + 4 * (i % 6), 4).IgnoreError();
        v_->Write(t % 2 ? 0x1c : 0x3c, t % 2 ? 4 : 1, i).IgnoreError();
      }
    });
  }
  for (auto& th : threads) th.join();
  ConfigCounters n = v_->counters();
  EXPECT_EQ(n.reads, uint64_t{kThreads * kOps});
  EXPECT_EQ(n.writes_emulated, uint64_t{kThreads * kOps});
}

TEST(ConfigVirtualizerCreateTest, RejectsBadInputs) {
  FakeVf vf(VfConfig());
  auto create = [&](std::vector<uint8_t> config, std::vector<VirtualBar> bars,
                    RealAccess real, ConfigVirtualizerOptions o) {
    return ConfigVirtualizer::Create(config, std::move(bars), std::move(real),
                                     std::move(o))
        .status();
  };
  EXPECT_TRUE(create(VfConfig(), VfBars(), vf.Access(), Options()).ok());
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  // Snapshot sizes and types.
  const std::vector<uint8_t> full = VfConfig();
  std::vector<uint8_t> header_only(full.begin(), full.begin() + 64);
  EXPECT_EQ(create(header_only, VfBars(), vf.Access(), Options()).code(),
            kInvalid);
  std::vector<uint8_t> bridge = VfConfig();
  bridge[0x0e] = 0x01;
  EXPECT_EQ(create(bridge, VfBars(), vf.Access(), Options()).code(), kInvalid);
  std::vector<uint8_t> looping = VfConfig();
  looping[0xa1] = 0x70;
  EXPECT_EQ(create(looping, VfBars(), vf.Access(), Options()).code(),
            absl::StatusCode::kDataLoss);
  // Access and options.
  RealAccess no_read = vf.Access();
  no_read.read = nullptr;
  EXPECT_EQ(create(VfConfig(), VfBars(), no_read, Options()).code(), kInvalid);
  RealAccess no_msix = vf.Access();
  no_msix.write_msix_entry = nullptr;
  EXPECT_EQ(create(VfConfig(), VfBars(), no_msix, Options()).code(), kInvalid);
  ConfigVirtualizerOptions vf_vendor = Options();
  vf_vendor.vendor_id = 0xffff;
  EXPECT_EQ(create(VfConfig(), VfBars(), vf.Access(), vf_vendor).code(),
            kInvalid);
  ConfigVirtualizerOptions no_translate = Options();
  no_translate.translate_msi_address = nullptr;
  EXPECT_EQ(create(VfConfig(), VfBars(), vf.Access(), no_translate).code(),
            kInvalid);
  // BARs.
  auto with_bars = [&](std::vector<VirtualBar> bars) {
    return create(VfConfig(), std::move(bars), vf.Access(), Options()).code();
  };
  VirtualBar bar3{3, 16 * 1024, true, true, 0};
  EXPECT_EQ(with_bars({bar3, {0, 3000, false, false, 0}}), kInvalid);  // size
  EXPECT_EQ(with_bars({bar3, {0, 4096, false, false, 0x800}}), kInvalid);
  EXPECT_EQ(with_bars({bar3, {4, 4096, false, false, 0}}), kInvalid);  // 3+4
  EXPECT_EQ(with_bars({bar3, {5, 4096, true, false, 0}}), kInvalid);
  EXPECT_EQ(with_bars({bar3, {6, 4096, false, false, 0}}), kInvalid);
  EXPECT_EQ(with_bars({bar3, {0, uint64_t{1} << 32, false, false, 0}}),
            kInvalid);
  // The MSI-X table must sit in a BAR that is there and big enough.
  EXPECT_EQ(with_bars({{0, 4096, false, false, 0}}), kInvalid);
  EXPECT_EQ(with_bars({{3, 8192, true, true, 0}}), kInvalid);
}

TEST(ConfigVirtualizerCreateTest, WorksOnDiscoverysVfSnapshot) {
  // discovery's X710 VF: MSI-X (0x70, 5 vectors, table in BAR0) -> PCIe.
  FakeVf vf(discovery::testing::SriovVfConfig());
  auto v = ConfigVirtualizer::Create(discovery::testing::SriovVfConfig(),
                                     {{0, 64 * 1024, true, true, 0x80000000}},
                                     vf.Access(), Options());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*(*v)->Read(0x00, 4), uint32_t{kVfDevice} << 16 | kPfVendor);
  EXPECT_EQ((*v)->msix_vectors(), 5);
  EXPECT_EQ(*(*v)->Read(0x10, 4), 0x8000000cu);
  EXPECT_EQ((*v)->Write(0xa8, 2, 0)->outcome, WriteOutcome::kForwarded);

  // Without MSI-X the table calls fail cleanly and no translator is needed.
  ConfigBuilder b(256);
  b.Set16(0x00, 0xffff).Set16(0x02, 0xffff).Set16(0x0a, 0x0200);
  FakeVf plain(b.Build());
  ConfigVirtualizerOptions o;
  o.vendor_id = kPfVendor;
  o.device_id = kVfDevice;
  RealAccess a = plain.Access();
  a.write_msix_entry = nullptr;
  auto p = ConfigVirtualizer::Create(b.Build(), {}, a, o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->msix_vectors(), 0);
  EXPECT_EQ((*p)->WriteMsixTable(0, 4, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*p)->Write(0x40, 4, 0)->reason,
            "config offset 0x040 is protected");
}

}  // namespace
}  // namespace fabric::agent::vf
