#include "agent/hw/sim/sim_config_space.h"

#include "absl/strings/str_format.h"

namespace fabric::agent::hw::sim_config {
namespace {

constexpr uint32_t kBarFlags64Pref = 0xc;  // 64-bit (0b10 << 1), prefetchable
using vf::kMsixEnable;
using vf::kMsixFunctionMask;

// Register value and write mask of a 64-bit memory BAR at `off`.
void PutBar(Config& cfg, Config& mask, size_t off, uint64_t base,
            uint64_t size) {
  if (size == 0) return;
  Put(cfg, off, 4, static_cast<uint32_t>(base & 0xfffffff0u) | kBarFlags64Pref);
  Put(cfg, off + 4, 4, static_cast<uint32_t>(base >> 32));
  const uint64_t keep = ~(size - 1);
  Put(mask, off, 4, static_cast<uint32_t>(keep) & 0xfffffff0u);
  Put(mask, off + 4, 4, static_cast<uint32_t>(keep >> 32));
}

}  // namespace

uint32_t Get(const Config& c, size_t off, int size) {
  uint32_t v = 0;
  for (int i = 0; i < size; ++i) v |= uint32_t{c[off + i]} << (8 * i);
  return v;
}
void Put(Config& c, size_t off, int size, uint32_t v) {
  for (int i = 0; i < size; ++i)
    c[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t BarValue(const Config& cfg, size_t off) {
  return (uint64_t{Get(cfg, off + 4, 4)} << 32) |
         (Get(cfg, off, 4) & 0xfffffff0u);
}

// Builds the power-on config space of a PF (vf == false; `layout` places
// its BARs) or of a VF, together with its write mask.
void Build(const SimPf& pf, bool vf, bool multifunction,
           const PfBarLayout& layout, Config& cfg, Config& mask) {
  cfg.fill(0);
  mask.fill(0);
  // Type 0 header.
  Put(cfg, 0x00, 2, vf ? 0xffff : pf.vendor_id);
  Put(cfg, 0x02, 2, vf ? 0xffff : pf.device_id);
  Put(cfg, kCommand, 2, vf ? 0 : kCmdMemory);
  // PF: memory, bus master, parity, SERR, INTx disable. VF: memory decode
  // follows the PF's VF MSE and VFs have no INTx.
  Put(mask, kCommand, 2, vf ? 0x0144 : 0x0546);
  Put(cfg, 0x06, 2, 0x0010);                     // capability list
  Put(cfg, 0x08, 4, pf.class_code << 8 | 0x01);  // revision 1
  if (!vf) Put(mask, 0x0c, 1, 0xff);             // cache line size
  Put(cfg, 0x0e, 1, multifunction ? 0x80 : 0x00);
  for (int i = 0; i < kBarCount && !vf; ++i) {
    PutBar(cfg, mask, kBar0 + 4 * i, layout.bar_base[i], pf.bar_sizes[i]);
  }
  Put(cfg, 0x2c, 2, pf.vendor_id);
  Put(cfg, 0x2e, 2, vf ? pf.vf_device_id : pf.device_id);
  Put(cfg, 0x34, 1, kSimPcieCapOffset);
  if (!vf) {
    Put(cfg, 0x3c, 1, 0xff);  // interrupt line: unassigned
    Put(mask, 0x3c, 1, 0xff);
    Put(cfg, 0x3d, 1, 0x01);  // INTA
  }

  // PCI Express capability, version 2, endpoint.
  const size_t e = kSimPcieCapOffset;
  Put(cfg, e + 0x00, 1, 0x10);
  Put(cfg, e + 0x01, 1, kSimMsixCapOffset);
  Put(cfg, e + 0x02, 2, 0x0002);
  Put(cfg, e + 0x04, 4, 0x00008001);  // 256-byte MPS, role-based errors
  if (!vf) {  // VFs: Device Control, Link Control and Link Status RsvdP/Z.
    Put(cfg, e + 0x08, 2, 0x2810);  // 512-byte MRRS, no snoop, relaxed
    Put(mask, e + 0x08, 2, 0x7fff);
    Put(mask, e + 0x10, 2, 0x00c3);  // ASPM, common clock, extended synch
    Put(cfg, e + 0x12, 2, 0x0083);   // 8 GT/s, x8
  }
  Put(cfg, e + 0x0c, 4, 0x00000083);  // max 8 GT/s, x8
  Put(cfg, e + 0x2c, 4, 0x0000000e);  // 2.5, 5 and 8 GT/s

  // MSI-X capability.
  const size_t m = kSimMsixCapOffset;
  Put(cfg, m + 0x00, 1, vf::kMsixCapId);
  Put(cfg, m + 0x01, 1, 0x00);
  Put(cfg, m + vf::kMsixControl, 2,
      (pf.msix_vectors - 1) & vf::kMsixTableSizeMask);
  Put(mask, m + vf::kMsixControl, 2, kMsixEnable | kMsixFunctionMask);
  Put(cfg, m + vf::kMsixTableReg, 4, static_cast<uint32_t>(pf.msix_bar));
  Put(cfg, m + vf::kMsixPbaReg, 4,
      static_cast<uint32_t>(MsixPbaOffset(pf.msix_vectors)) |
          static_cast<uint32_t>(pf.msix_bar));
  if (vf) return;

  // SR-IOV extended capability, version 1, last in the list.
  const size_t s = kSimSriovCapOffset;
  Put(cfg, s + 0x00, 4, 0x00010010);
  Put(mask, s + 0x08, 2, kVfEnable | kVfMse | 0x10);  // + ARI Capable Hier.
  Put(cfg, s + 0x0c, 2, pf.initial_vfs);
  Put(cfg, s + 0x0e, 2, pf.total_vfs);
  Put(mask, s + 0x10, 2, 0xffff);  // NumVFs (with the rules in ConfigWrite)
  Put(cfg, s + 0x12, 1, pf.address.function);  // Function Dependency Link
  Put(cfg, s + 0x14, 2, pf.vf_offset);
  Put(cfg, s + 0x16, 2, pf.vf_stride);
  Put(cfg, s + 0x1a, 2, pf.vf_device_id);
  Put(cfg, s + 0x1c, 4, 0x00000001);  // Supported Page Sizes: 4 KiB
  Put(cfg, s + 0x20, 4, 0x00000001);  // System Page Size: 4 KiB
  for (int i = 0; i < kBarCount; ++i) {
    PutBar(cfg, mask, kSriovVfBar0 + 4 * i, layout.vf_bar_base[i],
           pf.vf_bar_sizes[i]);
  }
}

Config MaskOf(const SimPf& pf, bool vf) {
  Config cfg;
  Config mask;
  Build(pf, vf, false, PfBarLayout{}, cfg, mask);
  return mask;
}

absl::Status CheckAccess(uint16_t offset, int size) {
  if ((size != 1 && size != 2 && size != 4) || offset % size != 0 ||
      offset + size > 4096) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config access of %d bytes at 0x%03x: size must be 1, 2 or 4, "
        "aligned, below 0x1000",
        size, offset));
  }
  return absl::OkStatus();
}

}  // namespace fabric::agent::hw::sim_config
