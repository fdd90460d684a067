// Fuzzes the config-space virtualization of a lent VF
// (agent/vf/config_virtualizer.h): a borrower's arbitrary sequence of config
// reads and writes and MSI-X table accesses against a fake real VF.
//
// Input (little-endian, read from the front; see make_corpus.py):
//   u8  layout flags: bit 0 4096-byte snapshot (else 256), bit 1 MSI-X,
//       bit 2 PCI Express, bit 3 PCIe capability version 2, bit 4 extended
//       capabilities (AER -> ARI; 4096 only), bit 5 MSI-X first in the list
//   u8  MSI-X vectors - 1 (low 5 bits), u8 table BIR (low 3 bits),
//   u16 table offset / 8
//   u8  BAR count (low 2 bits), then per BAR: u8 register, u8 log2(size) - 4,
//       u8 flags (bit 0 64-bit, bit 1 prefetchable), u64 borrower base
//   u8  poke count (low 4 bits), then per poke: u16 offset, u8 value: bytes
//       of the snapshot overwritten after it is built (corrupt layouts)
//   then operations until the input ends, u8 opcode % 8:
//     0 Read(u16 offset, u8 size)   1 Write(u16 offset, u8 size, u32 value)
//     2 ReadMsixTable(u16, u8)      3 WriteMsixTable(u16, u8, u32)
//     4 fail the real VF's next access (u8: 0 read, 1 write, 2 msi-x entry)
//     5 size BAR register (u8) with all ones
//     6 Initiate FLR through PCIe Device Control
//     7 Read(u16 dword index, size 4)
//
// Properties checked after every operation, besides no crash and no
// sanitizer finding:
//  - Every write that reaches the real VF lands inside a register the rules
//    forward (Command, Status, MSI-X Message Control, PCIe Device Control)
//    and changes only the bits they forward: Command sends the snapshot's
//    own bits but Memory Space, Bus Master and INTx Disable; Status only
//    RW1C bits; MSI-X Control only Enable and Function Mask; Device Control
//    never Initiate FLR. So every other byte of the real VF (IDs, its BARs
//    holding fabric addresses, the capability lists, other capabilities and
//    the extended space) keeps its snapshot value.
//  - An unmasked MSI-X entry programmed into the real VF carries a fabric
//    address that translate_msi_address produced; a vector the borrower
//    masked is masked on the real VF, an unmasked one carries the
//    borrower's data at the translated address (or stays masked when the
//    address has no translation).
//  - Read of a valid (offset, size) never fails unless the real VF's read
//    failed, and returns, byte by byte: the options' vendor and device IDs;
//    Command from the emulated bits, the real VF's Memory Space and Bus
//    Master and INTx Disable set; BARs as the borrower programmed them (the
//    size mask after all ones), never the real VF's; ROM 0; the Interrupt
//    Line last written; every other byte as the real VF has it.
//  - Invalid accesses fail with INVALID_ARGUMENT (FAILED_PRECONDITION for
//    the MSI-X table of a VF without MSI-X) and change nothing.
//  - A config write is kForwarded exactly when it wrote to the real VF; the
//    counters count every successful access once; bars() stay size-aligned.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "agent/discovery/config_space.h"
#include "agent/discovery/test_configs.h"
#include "agent/vf/config_virtualizer.h"
#include "tests/fuzz/fuzz_check.h"

namespace fabric::fuzz {
namespace {

namespace discovery = ::fabric::agent::discovery;
using ::fabric::agent::discovery::testing::ConfigBuilder;
using ::fabric::agent::vf::ConfigVirtualizer;
using ::fabric::agent::vf::ConfigVirtualizerOptions;
using ::fabric::agent::vf::MsixEntry;
using ::fabric::agent::vf::RealAccess;
using ::fabric::agent::vf::VirtualBar;
using ::fabric::agent::vf::WriteOutcome;
using ::fabric::agent::vf::WriteResult;

constexpr int kSpace = 4096;
constexpr uint16_t kPfVendor = 0x8086;
constexpr uint16_t kVfDevice = 0x154c;
constexpr uint16_t kSnapshotCommand = 0x0100;  // SERR# enable, the lender's
constexpr uint16_t kCmdForwarded = 0x0006;     // memory space, bus master
constexpr uint16_t kCmdIntxDisable = 0x0400;
constexpr uint16_t kCmdEmulated = 0x03ff & ~kCmdForwarded;
constexpr uint16_t kStatusRw1c = 0xf900;
constexpr uint16_t kMsixCtlForwarded = 0xc000;
constexpr uint16_t kDevCtlFlr = 0x8000;
constexpr int kMsixAt = 0x70;
constexpr int kPcieAt = 0xa0;
// Borrower MSI doorbells [kMsiBase, kMsiBase + kMsiSize) reach the shadow at
// kDoorbell + the same offset; nothing else translates.
constexpr uint64_t kMsiBase = 0xfee00000;
constexpr uint64_t kMsiSize = 0x100000;
constexpr uint64_t kDoorbell = 0x700000000000;

absl::StatusOr<uint64_t> Translate(uint64_t a) {
  if (a >= kMsiBase && a - kMsiBase < kMsiSize) return kDoorbell + a - kMsiBase;
  return absl::NotFoundError("no translation");
}

uint32_t ByteMask(int size) {
  return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

// A register of the real VF that the rules let the borrower write.
struct Writable {
  enum Kind { kCommand, kStatus, kMsixControl, kDeviceControl } kind;
  int offset;  // 2 bytes each
};

// The real VF: 4096 bytes of config space and its MSI-X table. Checks
// every write against the forwarding rules and fails an access on request.
class FakeVf {
 public:
  enum FailOn { kNone = -1, kRead = 0, kWrite = 1, kMsix = 2 };

  FakeVf(std::vector<uint8_t> snapshot, std::vector<Writable> writable,
         int vectors)
      : snapshot_(std::move(snapshot)),
        writable_(std::move(writable)),
        table_(vectors) {
    snapshot_.resize(kSpace, 0);
    bytes_ = snapshot_;
    snapshot_command_ =
        static_cast<uint16_t>(snapshot_[0x04] | snapshot_[0x05] << 8);
  }

  RealAccess Access() {
    RealAccess a;
    a.read = [this](int offset, int size) -> absl::StatusOr<uint32_t> {
      FUZZ_CHECK((size == 1 || size == 2 || size == 4) && offset >= 0 &&
                     offset + size <= kSpace && offset % size == 0,
                 "real read of ", size, " bytes at ", offset);
      if (TakeFailure(kRead)) return absl::UnavailableError("injected");
      uint32_t v = 0;
      for (int i = 0; i < size; ++i) v |= uint32_t{bytes_[offset + i]} << 8 * i;
      return v;
    };
    a.write = [this](int offset, int size, uint32_t value) -> absl::Status {
      CheckWrite(offset, size, value);
      if (TakeFailure(kWrite)) return absl::UnavailableError("injected");
      ++writes_;
      Apply(offset, size, value);
      return absl::OkStatus();
    };
    a.write_msix_entry = [this](int vector,
                                const MsixEntry& e) -> absl::Status {
      FUZZ_CHECK(vector >= 0 && vector < static_cast<int>(table_.size()),
                 "msi-x vector ", vector, " of ", table_.size());
      FUZZ_CHECK(e.masked || (e.address >= kDoorbell &&
                              e.address - kDoorbell < kMsiSize),
                 absl::StrFormat("vector %d unmasked at 0x%x, not a "
                                 "translated address",
                                 vector, e.address));
      if (TakeFailure(kMsix)) return absl::UnavailableError("injected");
      table_[vector] = e;
      return absl::OkStatus();
    };
    return a;
  }

  // What the owner does on_flr: the real VF's reset masks every vector.
  void Flr() {
    ++flrs_;
    for (MsixEntry& e : table_) e.masked = true;
  }

  void FailNext(FailOn f) { fail_ = f; }
  // Whether an injected failure ever fired, and how many did.
  bool failed() const { return failures_ > 0; }
  int failures() const { return failures_; }
  int writes() const { return writes_; }
  int flrs() const { return flrs_; }
  uint8_t byte(int b) const { return bytes_[b]; }
  const std::vector<MsixEntry>& table() const { return table_; }
  bool IsWritable(int b) const {
    for (const Writable& w : writable_) {
      if (b >= w.offset && b < w.offset + 2) return true;
    }
    return false;
  }

  // Every byte outside the forwarded registers holds its snapshot value.
  void CheckProtected() const {
    for (int b = 0; b < kSpace; ++b) {
      if (bytes_[b] != snapshot_[b] && !IsWritable(b)) {
        Fail("real VF byte 0x%03x changed from 0x%02x to 0x%02x", b,
             snapshot_[b], bytes_[b]);
      }
    }
  }

 private:
  template <typename... Args>
  [[noreturn]] static void Fail(const absl::FormatSpec<Args...>& f,
                                const Args&... args) {
    ::fabric::fuzz::Fail("real VF", __FILE__, __LINE__,
                         absl::StrFormat(f, args...));
  }

  bool TakeFailure(FailOn f) {
    if (fail_ != f) return false;
    fail_ = kNone;
    ++failures_;
    return true;
  }

  // The write is allowed when it fits one forwarded register and changes
  // only the bits that register forwards (any one of them, should a
  // corrupt layout put two registers on the same bytes).
  void CheckWrite(int offset, int size, uint32_t value) const {
    if (size < 1 || size > 4 || (value & ~ByteMask(size)) != 0) {
      Fail("real write of %d bytes of 0x%x at 0x%03x", size, value, offset);
    }
    bool inside = false;
    for (const Writable& w : writable_) {
      if (offset < w.offset || offset + size > w.offset + 2) continue;
      inside = true;
      const int shift = 8 * (offset - w.offset);
      const uint32_t in_field = ByteMask(size) << shift;
      const uint32_t v = value << shift;
      bool ok = false;
      switch (w.kind) {
        case Writable::kCommand:
          ok = ((v ^ snapshot_command_) & in_field &
                ~uint32_t{kCmdForwarded | kCmdIntxDisable}) == 0;
          break;
        case Writable::kStatus:
          ok = (v & ~uint32_t{kStatusRw1c}) == 0;
          break;
        case Writable::kMsixControl:
          ok = (v & ~uint32_t{kMsixCtlForwarded}) == 0;
          break;
        case Writable::kDeviceControl:
          ok = (v & kDevCtlFlr) == 0;
          break;
      }
      if (ok) return;
    }
    if (!inside) {
      Fail("real write of %d bytes of 0x%x at protected offset 0x%03x", size,
           value, offset);
    }
    Fail(
        "real write of %d bytes of 0x%x at 0x%03x changes bits the rules "
        "do not forward",
        size, value, offset);
  }

  // As the hardware would take it: Status bits are write-one-to-clear,
  // MSI-X Control keeps its read-only table size.
  void Apply(int offset, int size, uint32_t value) {
    for (int i = 0; i < size; ++i) {
      const int b = offset + i;
      const auto v = static_cast<uint8_t>(value >> 8 * i);
      uint8_t& cur = bytes_[b];
      const Writable* reg = nullptr;
      for (const Writable& w : writable_) {
        if (b >= w.offset && b < w.offset + 2) reg = &w;
      }
      const int byte_in_reg = b - reg->offset;
      switch (reg->kind) {
        case Writable::kStatus:
          cur &= static_cast<uint8_t>(~v);
          break;
        case Writable::kMsixControl: {
          const auto keep =
              static_cast<uint8_t>(~(kMsixCtlForwarded >> 8 * byte_in_reg));
          cur = static_cast<uint8_t>((cur & keep) | (v & ~keep));
          break;
        }
        default:
          cur = v;
      }
    }
  }

  std::vector<uint8_t> snapshot_;
  std::vector<uint8_t> bytes_;
  const std::vector<Writable> writable_;
  std::vector<MsixEntry> table_;
  uint16_t snapshot_command_ = 0;
  FailOn fail_ = kNone;
  int failures_ = 0;
  int writes_ = 0;
  int flrs_ = 0;
};

struct Layout {
  std::vector<uint8_t> snapshot;
  std::vector<VirtualBar> bars;
};

Layout BuildLayout(ByteReader& in) {
  const uint8_t flags = in.U8();
  const bool extended_space = flags & 0x01;
  const bool msix = flags & 0x02;
  const bool pcie = flags & 0x04;
  const bool pcie_v2 = flags & 0x08;
  const bool ext_caps = (flags & 0x10) && extended_space;
  const bool msix_first = flags & 0x20;
  const int vectors = (in.U8() & 0x1f) + 1;
  const int bir = in.U8() & 0x7;
  const uint32_t table_offset = uint32_t{in.U16()} * 8;

  Layout l;
  const int bar_count = in.U8() & 0x3;
  for (int i = 0; i < bar_count; ++i) {
    VirtualBar b;
    b.index = in.U8() % 6;
    const uint8_t log2 = in.U8();
    const uint8_t bar_flags = in.U8();
    b.is64 = bar_flags & 0x1;
    b.prefetchable = bar_flags & 0x2;
    b.size = uint64_t{1} << (4 + log2 % 36);
    if (!b.is64 && b.size > (uint64_t{1} << 31)) b.size = uint64_t{1} << 31;
    b.borrower_base = in.U64() & ~(b.size - 1);
    if (!b.is64) b.borrower_base &= 0xffffffffu;
    l.bars.push_back(b);
  }

  ConfigBuilder c(extended_space ? kSpace : 256);
  c.Set16(0x00, 0xffff).Set16(0x02, 0xffff);  // as a VF reads
  c.Set16(0x04, kSnapshotCommand).Set16(0x06, (msix || pcie) ? 0x0010 : 0);
  c.Set8(0x08, 0x02).Set16(0x0a, 0x0200).Set8(0x0c, 0x10).Set8(0x0e, 0x00);
  // The real VF's BARs hold fabric addresses; none may reach the borrower.
  for (int r = 0; r < 6; ++r) c.Set32(0x10 + 4 * r, 0xdead000cu + 0x10 * r);
  c.Set32(0x30, 0xfeed0001);
  c.Set16(0x2c, 0x8086).Set16(0x2e, 0x0001).Set8(0x3d, 0x00);
  const int first = msix && pcie ? (msix_first ? kMsixAt : kPcieAt)
                    : msix       ? kMsixAt
                    : pcie       ? kPcieAt
                                 : 0;
  c.Set8(0x34, static_cast<uint8_t>(first));
  if (msix) {
    c.Cap(kMsixAt, 0x11, pcie && msix_first ? kPcieAt : 0);
    c.Set16(kMsixAt + 2, static_cast<uint16_t>(vectors - 1));
    c.Set32(kMsixAt + 4, table_offset | bir);
    c.Set32(kMsixAt + 8, (table_offset + 16 * vectors) | bir);
  }
  if (pcie) {
    c.Cap(kPcieAt, 0x10, msix && !msix_first ? kMsixAt : 0);
    c.Set16(kPcieAt + 2, pcie_v2 ? 0x0002 : 0x0001);
    c.Set32(kPcieAt + 4, 0x10008fc2);  // device capabilities: FLR
    c.Set16(kPcieAt + 8, 0x2810);      // device control
    c.Set32(kPcieAt + 0x0c, 0x0041e043);
    c.Set16(kPcieAt + 0x10, 0x0040).Set16(kPcieAt + 0x12, 0x1043);
  }
  if (ext_caps) {
    c.ExtCap(0x100, 0x0001, 2, 0x150);  // AER
    c.Set32(0x104, 0x00000010);
    c.ExtCap(0x150, 0x000e, 1, 0x000);  // ARI
  }
  l.snapshot = c.Build();
  const int pokes = in.U8() & 0xf;
  for (int i = 0; i < pokes; ++i) {
    const uint16_t at = in.U16();
    l.snapshot[at % l.snapshot.size()] = in.U8();
  }
  return l;
}

// The registers the rules forward, found in the snapshot as discovery
// finds them.
std::vector<Writable> WritableRegisters(const std::vector<uint8_t>& snapshot) {
  std::vector<Writable> out = {{Writable::kCommand, 0x04},
                               {Writable::kStatus, 0x06}};
  absl::StatusOr<std::vector<discovery::Capability>> caps =
      discovery::ListCapabilities(snapshot);
  if (!caps.ok()) return out;
  for (const discovery::Capability& c : *caps) {
    if (c.id == 0x11) out.push_back({Writable::kMsixControl, c.offset + 2});
    if (c.id == 0x10) out.push_back({Writable::kDeviceControl, c.offset + 8});
  }
  return out;
}

int Offset(uint16_t raw) {
  if (raw >= 0xfff0) return static_cast<int>(raw) - 0x10000;  // -16..-1
  return raw % (kSpace + 16);
}

int Size(uint8_t raw) {
  static constexpr int kSizes[] = {1, 2, 4, 4, 2, 1, 3, 0};
  return kSizes[raw % 8];
}

bool ValidConfigAccess(int offset, int size) {
  return (size == 1 || size == 2 || size == 4) && offset >= 0 &&
         offset + size <= kSpace && offset % size == 0;
}

// The borrower's view the rules promise, kept beside the virtualizer.
class Harness {
 public:
  Harness(Layout layout, FakeVf* vf, ConfigVirtualizer* v)
      : layout_(std::move(layout)), vf_(vf), v_(v) {
    for (int r = 0; r < 6; ++r) {
      bar_[r] = BarOf(r);
      expect_bar_[r] = bar_[r] ? BarValue(r, Base(r)) : 0;
    }
    vectors_ = v_->msix_vectors();
  }

  void Run(ByteReader& in) {
    int ops = 0;
    while (!in.empty() && ops++ < 512) {
      const uint8_t op = in.U8();
      const int flrs_before = vf_->flrs();
      switch (op % 8) {
        case 0: {
          const int offset = Offset(in.U16());
          Read(offset, Size(in.U8()));
          break;
        }
        case 1: {
          const int offset = Offset(in.U16());
          const int size = Size(in.U8());
          Write(offset, size, in.U32());
          break;
        }
        case 2: {
          const int offset = in.U16() % (16 * vectors_ + 32);
          ReadTable(offset, Size(in.U8()));
          break;
        }
        case 3: {
          const int offset = in.U16() % (16 * vectors_ + 32);
          const int size = Size(in.U8());
          WriteTable(offset, size, in.U32());
          break;
        }
        case 4:
          vf_->FailNext(static_cast<FakeVf::FailOn>(in.U8() % 3));
          break;
        case 5:
          Write(0x10 + 4 * (in.U8() % 6), 4, 0xffffffffu);
          break;
        case 6:
          Write(kPcieAt + 8, 2, kDevCtlFlr);
          break;
        case 7:
          Read(4 * (in.U16() % (kSpace / 4)), 4);
          break;
      }
      // The MSI-X tables change only through table writes and resets.
      CheckAfterOp(/*msix=*/op % 8 == 3 || vf_->flrs() != flrs_before);
    }
    CheckAfterOp(/*msix=*/true, /*last=*/true);
  }

 private:
  bool Modelled() const { return !vf_->failed(); }

  std::optional<VirtualBar> BarOf(int reg) const {
    for (const VirtualBar& b : layout_.bars) {
      if (b.index == reg || (b.is64 && b.index + 1 == reg)) return b;
    }
    return std::nullopt;
  }
  bool IsHigh(int reg) const { return bar_[reg] && bar_[reg]->index != reg; }
  uint64_t Base(int reg) const { return bar_[reg]->borrower_base; }

  // What BAR register `reg` reads with `base` programmed.
  uint32_t BarValue(int reg, uint64_t base) const {
    const VirtualBar& b = *bar_[reg];
    if (IsHigh(reg)) return static_cast<uint32_t>(base >> 32);
    const uint32_t type = (b.is64 ? 0x4u : 0u) | (b.prefetchable ? 0x8u : 0u);
    return (static_cast<uint32_t>(base) & ~uint32_t{0xf}) | type;
  }
  // ... and after all ones (sizing).
  uint32_t BarSizeMask(int reg) const {
    const uint64_t mask = ~(bar_[reg]->size - 1);
    if (IsHigh(reg)) return static_cast<uint32_t>(mask >> 32);
    return BarValue(reg, mask);
  }

  uint8_t ExpectedByte(int b) const {
    if (b < 2) return static_cast<uint8_t>(kPfVendor >> 8 * b);
    if (b < 4) return static_cast<uint8_t>(kVfDevice >> 8 * (b - 2));
    if (b < 6) {
      const uint16_t cmd = static_cast<uint16_t>(
          (vf_->byte(0x04) | vf_->byte(0x05) << 8) & kCmdForwarded);
      const uint16_t v =
          cmd | ((emulated_command_ | kCmdIntxDisable) & ~kCmdForwarded);
      return static_cast<uint8_t>(v >> 8 * (b - 4));
    }
    if (b >= 0x10 && b < 0x28) {
      return static_cast<uint8_t>(*expect_bar_[(b - 0x10) / 4] >> 8 * (b % 4));
    }
    if (b >= 0x30 && b < 0x34) return 0;
    if (b == 0x3c) return interrupt_line_;
    return vf_->byte(b);
  }

  // Whether ExpectedByte knows byte `b` now.
  bool Known(int b) const {
    if ((b >= 0x04 && b < 0x06) || b == 0x3c) return Modelled();
    if (b >= 0x10 && b < 0x28) {
      return Modelled() && expect_bar_[(b - 0x10) / 4].has_value();
    }
    return true;
  }

  void Read(int offset, int size) {
    const int failures_before = vf_->failures();
    absl::StatusOr<uint32_t> r = v_->Read(offset, size);
    if (!ValidConfigAccess(offset, size)) {
      FUZZ_CHECK(r.status().code() == absl::StatusCode::kInvalidArgument,
                 "Read(", offset, ", ", size, "): ", r.status().ToString());
      return;
    }
    if (!r.ok()) {
      FUZZ_CHECK(vf_->failures() > failures_before, "Read(", offset, ", ", size,
                 ") failed without a real VF failure: ", r.status().ToString());
      return;
    }
    ++reads_;
    for (int i = 0; i < size; ++i) {
      const int b = offset + i;
      const auto got = static_cast<uint8_t>(*r >> 8 * i);
      if (Known(b)) {
        FUZZ_CHECK(got == ExpectedByte(b),
                   absl::StrFormat("Read(0x%03x, %d) = 0x%08x: byte 0x%03x is "
                                   "0x%02x, expected 0x%02x",
                                   offset, size, *r, b, got, ExpectedByte(b)));
      }
    }
    // A BAR never shows address bits below its size (base or size mask),
    // whatever was written to it.
    if (size == 4 && offset >= 0x10 && offset < 0x28) {
      const int reg = (offset - 0x10) / 4;
      if (!bar_[reg]) {
        FUZZ_CHECK(*r == 0, "unimplemented BAR", reg, " reads ", *r);
      } else if (IsHigh(reg)) {
        FUZZ_CHECK((*r & ((bar_[reg]->size - 1) >> 32)) == 0, "BAR", reg,
                   " high reads ", *r);
      } else {
        FUZZ_CHECK((*r & ~uint32_t{0xf} & (bar_[reg]->size - 1)) == 0 &&
                       (*r & 0xf) == (BarValue(reg, 0) & 0xf),
                   "BAR", reg, " reads ", *r);
      }
    }
  }

  void Write(int offset, int size, uint32_t value) {
    const int writes_before = vf_->writes();
    const int flrs_before = vf_->flrs();
    const int failures_before = vf_->failures();
    absl::StatusOr<WriteResult> r = v_->Write(offset, size, value);
    if (!ValidConfigAccess(offset, size)) {
      FUZZ_CHECK(r.status().code() == absl::StatusCode::kInvalidArgument,
                 "Write(", offset, ", ", size, "): ", r.status().ToString());
      FUZZ_CHECK(vf_->writes() == writes_before, "rejected write forwarded");
      return;
    }
    if (!r.ok()) {
      FUZZ_CHECK(vf_->failures() > failures_before, "Write(", offset, ", ",
                 size,
                 ") failed without a real VF failure: ", r.status().ToString());
      return;
    }
    ++writes_;
    const bool forwarded = vf_->writes() > writes_before;
    FUZZ_CHECK(
        forwarded == (r->outcome == WriteOutcome::kForwarded),
        absl::StrFormat("Write(0x%03x, %d, 0x%x): outcome %d, real "
                        "writes %d (%s)",
                        offset, size, value, static_cast<int>(r->outcome),
                        vf_->writes() - writes_before, r->reason));
    for (int i = 0; i < size; ++i) {
      const int b = offset + i;
      const uint32_t v = (value >> 8 * i) & 0xff;
      if (b == 0x04 || b == 0x05) {
        const int shift = 8 * (b - 0x04);
        emulated_command_ =
            static_cast<uint16_t>((emulated_command_ & ~(0xffu << shift)) |
                                  ((v << shift) & kCmdEmulated));
      }
      if (b == 0x3c) interrupt_line_ = static_cast<uint8_t>(v);
    }
    if (offset >= 0x10 && offset < 0x28) {
      const int reg = (offset - 0x10) / 4;
      if (!bar_[reg]) {
        // Absorbed: still reads 0.
      } else if (size != 4) {
        expect_bar_[reg].reset();  // a partial write: merged, not modelled
      } else if (IsHigh(reg) ? value == 0xffffffffu
                             : (value | 0xfu) == 0xffffffffu) {
        expect_bar_[reg] = BarSizeMask(reg);
      } else {
        const uint64_t mask = ~(bar_[reg]->size - 1);
        expect_bar_[reg] =
            IsHigh(reg) ? value & static_cast<uint32_t>(mask >> 32)
                        : BarValue(reg, value & static_cast<uint32_t>(mask));
      }
    }
    if (vf_->flrs() > flrs_before) {
      // The reset clears the emulated command bits and the sizing latches.
      emulated_command_ = 0;
      for (int reg = 0; reg < 6; ++reg) {
        if (bar_[reg]) expect_bar_[reg].reset();
      }
    }
  }

  void ReadTable(int offset, int size) {
    absl::StatusOr<uint32_t> r = v_->ReadMsixTable(offset, size);
    if (vectors_ == 0) {
      FUZZ_CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition,
                 r.status().ToString());
      return;
    }
    const bool valid =
        size == 4 && offset % 4 == 0 && offset + 4 <= 16 * vectors_;
    FUZZ_CHECK(r.ok() == valid, "ReadMsixTable(", offset, ", ", size,
               "): ", r.status().ToString());
    if (r.ok()) ++reads_;
  }

  void WriteTable(int offset, int size, uint32_t value) {
    const int failures_before = vf_->failures();
    absl::StatusOr<WriteResult> r = v_->WriteMsixTable(offset, size, value);
    if (vectors_ == 0) {
      FUZZ_CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition,
                 r.status().ToString());
      return;
    }
    const bool valid =
        size == 4 && offset % 4 == 0 && offset + 4 <= 16 * vectors_;
    if (!valid) {
      FUZZ_CHECK(r.status().code() == absl::StatusCode::kInvalidArgument,
                 "WriteMsixTable(", offset, ", ", size,
                 "): ", r.status().ToString());
      return;
    }
    FUZZ_CHECK(r.ok() || vf_->failures() > failures_before, "WriteMsixTable(",
               offset, ", ", size,
               ") failed without a real VF failure: ", r.status().ToString());
    if (r.ok()) ++writes_;
  }

  // The real VF's MSI-X table against the borrower's shadow table.
  void CheckMsix() {
    for (int vector = 0; vector < vectors_; ++vector) {
      uint32_t dw[4];
      for (int i = 0; i < 4; ++i) {
        absl::StatusOr<uint32_t> r = v_->ReadMsixTable(16 * vector + 4 * i, 4);
        FUZZ_CHECK(r.ok(), r.status().ToString());
        ++reads_;
        dw[i] = *r;
      }
      const uint64_t address = uint64_t{dw[1]} << 32 | dw[0];
      const bool masked = dw[3] & 1;
      const MsixEntry& real = vf_->table()[vector];
      absl::StatusOr<uint64_t> fabric = Translate(address);
      if (masked || !fabric.ok()) {
        FUZZ_CHECK(real.masked,
                   absl::StrFormat("vector %d: shadow %s at 0x%x, but the "
                                   "real VF's entry is unmasked at 0x%x",
                                   vector, masked ? "masked" : "unmasked",
                                   address, real.address));
      } else {
        FUZZ_CHECK(
            (real == MsixEntry{*fabric, dw[2], false}),
            absl::StrFormat("vector %d: shadow 0x%x/0x%x unmasked, "
                            "real 0x%x/0x%x %s",
                            vector, address, dw[2], real.address, real.data,
                            real.masked ? "masked" : "unmasked"));
      }
    }
  }

  // `last`: after the last operation. Only FakeVf's write changes its
  // bytes, and it checks each write, so the full comparison runs once.
  void CheckAfterOp(bool msix, bool last = false) {
    if (last) vf_->CheckProtected();
    if (msix && Modelled()) CheckMsix();
    for (const VirtualBar& b : v_->bars()) {
      FUZZ_CHECK((b.borrower_base & (b.size - 1)) == 0 &&
                     (b.is64 || b.borrower_base <= 0xffffffffu),
                 absl::StrFormat("bar%d base 0x%x, size 0x%x", b.index,
                                 b.borrower_base, b.size));
    }
    const agent::vf::ConfigCounters c = v_->counters();
    FUZZ_CHECK(c.reads == reads_, "counted reads ", c.reads, ", made ", reads_);
    FUZZ_CHECK(
        c.writes_forwarded + c.writes_emulated + c.writes_dropped == writes_,
        "counted writes ",
        c.writes_forwarded + c.writes_emulated + c.writes_dropped, ", made ",
        writes_);
    FUZZ_CHECK(c.flr_requests == static_cast<uint64_t>(vf_->flrs()),
               "FLR requests ", c.flr_requests, ", on_flr calls ", vf_->flrs());
  }

  const Layout layout_;
  FakeVf* const vf_;
  ConfigVirtualizer* const v_;
  int vectors_ = 0;
  std::array<std::optional<VirtualBar>, 6> bar_;
  // What each BAR register reads, when known.
  std::array<std::optional<uint32_t>, 6> expect_bar_;
  uint16_t emulated_command_ = 0;
  uint8_t interrupt_line_ = 0;
  uint64_t reads_ = 0;   // successful Read and ReadMsixTable calls
  uint64_t writes_ = 0;  // successful Write and WriteMsixTable calls
};

}  // namespace
}  // namespace fabric::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fabric::fuzz;  // NOLINT(build/namespaces): entry point
  ByteReader in(data, size);
  Layout layout = BuildLayout(in);
  const std::vector<Writable> writable = WritableRegisters(layout.snapshot);
  absl::StatusOr<std::vector<discovery::Capability>> caps =
      discovery::ListCapabilities(layout.snapshot);
  int vectors = 0;
  if (caps.ok()) {
    for (const discovery::Capability& c : *caps) {
      if (c.id == 0x11) {
        vectors = (layout.snapshot[c.offset + 2] |
                   (layout.snapshot[c.offset + 3] & 0x07) << 8) +
                  1;
      }
    }
  }
  FakeVf vf(layout.snapshot, writable, vectors);
  ConfigVirtualizerOptions options;
  options.vendor_id = kPfVendor;
  options.device_id = kVfDevice;
  options.translate_msi_address = Translate;
  options.on_flr = [&vf] { vf.Flr(); };
  absl::StatusOr<std::unique_ptr<ConfigVirtualizer>> v =
      ConfigVirtualizer::Create(layout.snapshot, layout.bars, vf.Access(),
                                options);
  if (!v.ok()) {
    FUZZ_CHECK(v.status().code() == absl::StatusCode::kInvalidArgument ||
                   v.status().code() == absl::StatusCode::kDataLoss,
               v.status().ToString());
    return 0;
  }
  FUZZ_CHECK((*v)->msix_vectors() == vectors, "msi-x vectors ",
             (*v)->msix_vectors(), ", the snapshot says ", vectors);
  Harness h(std::move(layout), &vf, v->get());
  h.Run(in);
  return 0;
}
