// Config-space rules for a lent SR-IOV virtual function, as the borrower's
// shadow ("fake") device presents it (docs/prior-art.md: "configuration-space
// requests to the fake device are redirected to the real VF"). The redirect
// is not a blind pass-through: like a hypervisor assigning a device to a
// guest (Linux vfio-pci's config virtualization, QEMU's vfio-pci, Xen's
// pciback), some registers are emulated, some forwarded bit by bit and some
// protected, so that the borrower can drive the VF but can never reprogram
// the fabric addresses, the PF's link or any other function.
//
//   ConfigVirtualizerOptions opts;
//   opts.vendor_id = pf_vendor;             // a VF's own ID registers read
//   0xffff opts.device_id = sriov.vf_device_id; opts.translate_msi_address =
//   [&](uint64_t a) { return map.ToFabric(a); }; ASSIGN_OR_RETURN(auto v,
//   ConfigVirtualizer::Create(snapshot, bars,
//                                                      std::move(real), opts));
//   ASSIGN_OR_RETURN(uint32_t id, v->Read(0x00, 4));
//   ASSIGN_OR_RETURN(WriteResult r, v->Write(0x04, 2, 0x0006));
//
// Rules, register by register (offsets in the type 0 header, or relative to
// the capability):
//
//  * Vendor ID (0x00) and Device ID (0x02): virtual. They read the PF's
//    vendor and the VF Device ID given in the options, because an SR-IOV VF's
//    own registers read 0xffff (SR-IOV spec; Linux reads the VF device ID
//    from the PF's SR-IOV capability for the same reason). Writes dropped:
//    "vendor id is read-only", "device id is read-only".
//  * Revision (0x08), Class code (0x09-0x0b), Header type (0x0e), Subsystem
//    vendor/ID (0x2c/0x2e), Capabilities pointer (0x34), Interrupt pin
//    (0x3d): read from the real VF; writes dropped, "<name> is read-only".
//  * Command (0x04): Memory Space Enable (bit 1) and Bus Master Enable
//    (bit 2) are forwarded and read back from the real VF. Every other
//    writable bit (I/O Space Enable, SERR#, parity, ...) is emulated: kept in
//    the shadow and never sent. INTx Disable (bit 10) always reads 1 and is
//    set in every full-register write sent to the VF (VFs have no INTx;
//    vfio-pci virtualizes this bit too). The non-forwarded bits sent with a
//    forwarded write are the real VF's own, from the snapshot.
//  * Status (0x06): read from the real VF; writes forwarded with only the
//    RW1C bits (0xf900) kept, so a borrower can clear the errors it sees.
//  * BAR0-5 (0x10-0x24): fully virtual, as vfio-pci and pciback do. A read
//    returns the borrower's base | type bits (64-bit, prefetchable). Writing
//    all ones latches the size mask ~(size-1) (with the type bits in the low
//    dword; the upper dword of a 64-bit BAR likewise), which reads back until
//    the register is written again, as a hardware BAR would. Any other write
//    sets the borrower base, aligned down to the BAR size. Nothing is ever
//    forwarded: the real VF keeps its own (fabric) addresses; the caller
//    reads bars() to map the borrower's window onto them. BARs without a
//    VirtualBar read 0 (unimplemented); writes are emulated (absorbed).
//  * Expansion ROM BAR (0x30): reads 0 (no ROM is offered); writes emulated
//    (absorbed).
//  * Interrupt Line (0x3c): emulated (a scratch register for the borrower's
//    OS; vfio-pci virtualizes it as well).
//  * MSI-X capability: Message Control's MSI-X Enable (bit 15) and Function
//    Mask (bit 14) are forwarded; the table size is read-only (a write that
//    only touches its low byte is dropped). Table offset/BIR and PBA
//    offset/BIR are read-only: "msi-x table offset/bir is read-only", "msi-x
//    pba offset/bir is read-only". The capability header is read-only.
//  * PCI Express capability: Device Control is forwarded except Initiate
//    Function Level Reset (bit 15), which is emulated as a VF reset request:
//    counted in flr_requests, reported through options.on_flr, and it resets
//    the shadow's emulated state (command bits, BAR sizing latches, MSI-X
//    table, all vectors masked) but not the borrower's BAR bases; when the
//    real VF refuses the rest of the Device Control write, no reset is
//    requested at all. Link
//    Control and Link Status writes are dropped: "a VF cannot change the
//    PF's link". Everything else in the capability is read-only: "pcie
//    capability offset 0x0a4 is read-only".
//  * Everything else (other header bytes such as cache line size and BIST,
//    other capabilities, the extended space): reads pass through; writes are
//    dropped as protected, the reason naming the region and the first byte
//    offset of the write: "config offset 0x00c is protected", "capability
//    0x01 offset 0x044 is protected", "extended capability 0x0001 offset
//    0x104 is protected". A capability's region runs from it to the next
//    capability in the same space (the last one to the end of its space).
//    Nothing is forwarded by default: a register the
//    borrower may change has to be allowed here explicitly.
//  * The virtualizer is bound to one VF; nothing in this API takes a bus,
//    device or function number, so a borrower cannot reach another function.
//
// A write that touches several registers (a dword write at 0x04 covers
// Command and Status) is applied register by register. Its WriteResult is
// kForwarded if any part was forwarded, else kEmulated if any part was
// emulated, else kDropped; `reason` joins the reasons of the parts that were
// not forwarded, with "; ". counters() counts each write once by that
// outcome, while dropped_by_reason counts every dropped part, so it can sum
// to more than writes_dropped.
//
// MSI-X table (in BAR memory, not config space): the caller traps the
// borrower's accesses to the table region (BAR msix_table_bir() at
// msix_table_offset(), msix_vectors() entries of 16 bytes: message address
// low, high, data, vector control) and passes them to ReadMsixTable() and
// WriteMsixTable() with offsets relative to the table start, as QEMU does
// with its emulated MSI-X table. The borrower's values are kept in a shadow
// table and read back unchanged. Whenever a vector is unmasked, or changed
// while unmasked, the virtualizer translates the borrower's message address
// with options.translate_msi_address (given once, at creation) and programs
// the real VF's entry through RealAccess::write_msix_entry with the fabric
// address and the borrower's data; masking a vector programs the real entry
// masked. A vector whose address has no translation is left masked on the
// real VF and the write is reported as dropped ("msi-x message address has
// no fabric translation").
//
// Thread-safe. RealAccess, translate_msi_address are called with the
// internal lock held and must not call back into the virtualizer; on_flr is
// called after the lock is released.
#ifndef FABRIC_AGENT_VF_CONFIG_VIRTUALIZER_H_
#define FABRIC_AGENT_VF_CONFIG_VIRTUALIZER_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "agent/vf/msix_layout.h"

namespace fabric::agent::vf {

// One memory BAR of the VF as the borrower sees it. VFs have no I/O BARs.
struct VirtualBar {
  int index = 0;      // 0-5; a 64-bit BAR also takes index + 1
  uint64_t size = 0;  // power of two, at least 16
  bool is64 = false;
  bool prefetchable = false;
  uint64_t borrower_base = 0;  // address the borrower assigned; size-aligned
};

// How to reach the real VF: the lender's agent in production, a fake in
// tests. Offsets are config-space offsets of that one VF.
struct RealAccess {
  std::function<absl::StatusOr<uint32_t>(int offset, int size)> read;
  std::function<absl::Status(int offset, int size, uint32_t value)> write;
  // Programs entry `vector` of the real VF's MSI-X table (in its BAR, which
  // config space cannot reach). Required when the VF has MSI-X.
  std::function<absl::Status(int vector, const MsixEntry& entry)>
      write_msix_entry;
};

struct ConfigVirtualizerOptions {
  uint16_t vendor_id = 0;  // the PF's vendor ID; not 0 or 0xffff
  uint16_t device_id = 0;  // the VF Device ID from the PF's SR-IOV capability
  // Maps a message address the borrower programs into the fabric address
  // that reaches the borrower's shadow device (its interrupt doorbell).
  // Required when the VF has MSI-X. An error leaves the vector masked.
  std::function<absl::StatusOr<uint64_t>(uint64_t borrower_address)>
      translate_msi_address;
  // Called (outside the lock) once per Initiate Function Level Reset the
  // borrower writes; the owner resets the real VF. Optional.
  std::function<void()> on_flr;
};

// The rule name of accesses to the MSI-X table (ReadMsixTable,
// WriteMsixTable), beside ConfigVirtualizer::RuleAt's.
inline constexpr char kMsixTableRule[] = "msix_table";

enum class WriteOutcome { kForwarded, kEmulated, kDropped };

struct WriteResult {
  WriteOutcome outcome = WriteOutcome::kDropped;
  // Empty when everything was forwarded; otherwise why parts were emulated
  // or dropped, e.g. "vendor id is read-only".
  std::string reason;
};

struct ConfigCounters {
  uint64_t reads = 0;
  uint64_t writes_forwarded = 0;
  uint64_t writes_emulated = 0;
  uint64_t writes_dropped = 0;
  std::map<std::string, uint64_t> dropped_by_reason;
  uint64_t flr_requests = 0;
  uint64_t msix_entries_programmed = 0;  // calls to write_msix_entry
};

class ConfigVirtualizer {
 public:
  // `real_config` is a snapshot of the VF's config space (256 or 4096 bytes)
  // from which the layout is learnt (capabilities; the BAR sizes come in
  // `bars` because sizing needs writes). Nothing is written to the VF here.
  // INVALID_ARGUMENT for: a snapshot of another size or header type, missing
  // read/write functions, bad options, a BAR with a bad index, size or
  // alignment, overlapping BARs, an MSI-X table outside its BAR, MSI-X
  // without write_msix_entry/translate_msi_address. DATA_LOSS (from
  // discovery) for a malformed capability list.
  static absl::StatusOr<std::unique_ptr<ConfigVirtualizer>> Create(
      absl::Span<const uint8_t> real_config, std::vector<VirtualBar> bars,
      RealAccess real, ConfigVirtualizerOptions options);

  ConfigVirtualizer(const ConfigVirtualizer&) = delete;
  ConfigVirtualizer& operator=(const ConfigVirtualizer&) = delete;

  // A borrower config read. `size` is 1, 2 or 4, `offset` naturally aligned
  // and below 4096, else INVALID_ARGUMENT naming both. The real VF is read
  // (with the same offset and size) only when some byte comes from it; its
  // errors are returned as they are.
  absl::StatusOr<uint32_t> Read(int offset, int size) ABSL_LOCKS_EXCLUDED(mu_);

  // A borrower config write; only the low `size` bytes of `value` count.
  // Same argument checks as Read. Errors from RealAccess are returned as
  // they are; parts of the write before the failing one have taken effect
  // (a reset among them is still reported through on_flr).
  absl::StatusOr<WriteResult> Write(int offset, int size, uint32_t value)
      ABSL_LOCKS_EXCLUDED(mu_);

  // MSI-X table accesses, `offset` relative to the table start, dword only
  // (a QWORD access is two calls, low dword first). INVALID_ARGUMENT for
  // another size, a misaligned offset or one past the table;
  // FAILED_PRECONDITION when the VF has no MSI-X.
  absl::StatusOr<uint32_t> ReadMsixTable(int offset, int size)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<WriteResult> WriteMsixTable(int offset, int size,
                                             uint32_t value)
      ABSL_LOCKS_EXCLUDED(mu_);

  // 0 when the VF has no MSI-X capability.
  int msix_vectors() const { return msix_vectors_; }
  int msix_table_bir() const { return msix_table_bir_; }
  uint32_t msix_table_offset() const { return msix_table_offset_; }

  // The name of the rule (above) that governs config offset `offset`, for
  // metrics: "vendor_id", "device_id", "read_only", "command", "status",
  // "bar", "rom", "interrupt_line", "msix_control", "device_control",
  // "link", "read_only_region" (the rest of the MSI-X and PCI Express
  // capabilities), "protected" (everything else), or "invalid" for an
  // offset outside 0-4095. An access spanning registers is named by its
  // first byte. The layout is fixed at Create, so this takes no lock.
  absl::string_view RuleAt(int offset) const;
  // Every name RuleAt returns, then kMsixTableRule (a bounded label set).
  static const std::vector<std::string>& RuleNames();

  // The BARs with the bases the borrower has programmed so far.
  std::vector<VirtualBar> bars() const ABSL_LOCKS_EXCLUDED(mu_);
  ConfigCounters counters() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  enum class FieldKind {
    kVendorId,
    kDeviceId,
    kReadOnly,
    kCommand,
    kStatus,
    kBar,
    kRom,
    kInterruptLine,
    kMsixControl,
    kDeviceControl,
    kLink,
    kReadOnlyRegion,
    kProtectedRegion,
  };
  struct Field {
    int offset = 0;
    int size = 0;
    FieldKind kind = FieldKind::kReadOnly;
    int bar_register = 0;  // kBar: 0-5
    std::string name;      // for reasons
  };
  struct Part {
    WriteOutcome outcome;
    std::string reason;
  };
  struct BarState {
    VirtualBar bar;
    bool sizing_low = false;
    bool sizing_high = false;
  };

  ConfigVirtualizer(RealAccess real, ConfigVirtualizerOptions options,
                    uint16_t snapshot_command);
  void AddField(Field field);
  uint32_t VirtualFieldValue(const Field& f) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t BarRegisterValue(int reg) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies bytes [offset, offset + size) of one field (or of an unclaimed
  // run when `field` < 0); `value` holds just those bytes.
  absl::StatusOr<Part> WritePart(int field, int offset, int size,
                                 uint32_t value, bool* flr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Part> WriteBar(const Field& f, int offset, int size,
                                uint32_t value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pushes the shadow entry of `vector` (translated) to the real VF.
  absl::StatusOr<Part> ProgramMsixVector(int vector)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResetEmulatedState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  WriteResult Record(const std::vector<Part>& parts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RealAccess real_;
  const ConfigVirtualizerOptions options_;
  const uint16_t snapshot_command_;
  // Layout, fixed after Create.
  std::vector<Field> fields_;
  std::array<int16_t, 4096> field_at_;   // index into fields_, -1 = none
  std::array<uint8_t, 4096> real_mask_;  // bits of each byte read from the VF
  std::array<int, 6> bar_of_register_;   // index into bars_, -1 = none
  std::array<bool, 6> register_is_high_{};
  int msix_vectors_ = 0;
  int msix_table_bir_ = 0;
  uint32_t msix_table_offset_ = 0;

  mutable absl::Mutex mu_;
  std::vector<BarState> bars_ ABSL_GUARDED_BY(mu_);
  uint16_t emulated_command_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t interrupt_line_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<MsixEntry> msix_shadow_ ABSL_GUARDED_BY(mu_);
  // What the real VF's table holds as far as we programmed it.
  std::vector<MsixEntry> msix_real_ ABSL_GUARDED_BY(mu_);
  ConfigCounters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::agent::vf

#endif  // FABRIC_AGENT_VF_CONFIG_VIRTUALIZER_H_
