#include "agent/discovery/pci_ids.h"

#include "absl/strings/str_format.h"
#include "agent/discovery/config_space.h"

namespace fabric::agent::discovery {
namespace {

constexpr uint16_t kAnyDevice = 0xffff;
constexpr uint16_t kAnyClass = 0;

struct NtbEntry {
  uint16_t vendor;
  uint16_t device;     // kAnyDevice: any device of the vendor
  uint16_t class_req;  // base/sub class the entry needs, or kAnyClass
  const char* description;
};

// Sources, per block:
//  - Intel: drivers/ntb/hw/intel/ntb_hw_intel.h and the intel_ntb_pci_tbl of
//    ntb_hw_gen1.c (B2B/PS/SS functions; Jasper Forest .. Broadwell "gen1",
//    Skylake "gen3", Ice Lake/Sapphire Rapids "gen4", Granite Rapids
//    "gen5"). 0x0c4e (Atom BWD) is from older kernels' ntb_hw_intel.
//  - AMD/Hygon: amd_ntb_pci_tbl in drivers/ntb/hw/amd/ntb_hw_amd.c.
//  - IDT: drivers/ntb/hw/idt/ntb_hw_idt.h; the driver matches these IDs only
//    with class "bridge, other" (0x0680), since the switch ports share them.
//  - Microchip (Microsemi/PMC) Switchtec: drivers/pci/switch/switchtec.c
//    binds its management endpoint to any 11f8 device of class 0x0580 or
//    0x0680; drivers/ntb/hw/mscc/ntb_hw_switchtec.c only uses the ones of
//    class 0x0680 as NTB. So: vendor 11f8, class 0x0680.
//  - Broadcom/PLX: no in-tree Linux NTB driver; the NT port IDs are from the
//    pci.ids database (PEX 87xx/97xx "NTx Port Link/Virtual Interface").
constexpr NtbEntry kNtbTable[] = {
    {0x8086, 0x3725, kAnyClass, "Intel Xeon NTB B2B (Jasper Forest)"},
    {0x8086, 0x3726, kAnyClass, "Intel Xeon NTB PS (Jasper Forest)"},
    {0x8086, 0x3727, kAnyClass, "Intel Xeon NTB SS (Jasper Forest)"},
    {0x8086, 0x3c0d, kAnyClass, "Intel Xeon NTB B2B (Sandy Bridge)"},
    {0x8086, 0x3c0e, kAnyClass, "Intel Xeon NTB PS (Sandy Bridge)"},
    {0x8086, 0x3c0f, kAnyClass, "Intel Xeon NTB SS (Sandy Bridge)"},
    {0x8086, 0x0e0d, kAnyClass, "Intel Xeon NTB B2B (Ivy Bridge)"},
    {0x8086, 0x0e0e, kAnyClass, "Intel Xeon NTB PS (Ivy Bridge)"},
    {0x8086, 0x0e0f, kAnyClass, "Intel Xeon NTB SS (Ivy Bridge)"},
    {0x8086, 0x2f0d, kAnyClass, "Intel Xeon NTB B2B (Haswell)"},
    {0x8086, 0x2f0e, kAnyClass, "Intel Xeon NTB PS (Haswell)"},
    {0x8086, 0x2f0f, kAnyClass, "Intel Xeon NTB SS (Haswell)"},
    {0x8086, 0x6f0d, kAnyClass, "Intel Xeon NTB B2B (Broadwell)"},
    {0x8086, 0x6f0e, kAnyClass, "Intel Xeon NTB PS (Broadwell)"},
    {0x8086, 0x6f0f, kAnyClass, "Intel Xeon NTB SS (Broadwell)"},
    {0x8086, 0x0c4e, kAnyClass, "Intel Atom NTB B2B (Bay Trail/BWD)"},
    {0x8086, 0x201c, kAnyClass, "Intel Xeon NTB (Skylake)"},
    {0x8086, 0x347e, kAnyClass, "Intel Xeon NTB (Ice Lake/Sapphire Rapids)"},
    {0x8086, 0x0db4, kAnyClass, "Intel Xeon NTB (Granite Rapids)"},

    {0x1022, 0x145b, kAnyClass, "AMD NTB (Zen)"},
    {0x1022, 0x148b, kAnyClass, "AMD NTB (Zen 2)"},
    {0x1022, 0x14c0, kAnyClass, "AMD NTB"},
    {0x1022, 0x14c3, kAnyClass, "AMD NTB"},
    {0x1022, 0x155a, kAnyClass, "AMD NTB"},
    {0x1d94, 0x145b, kAnyClass, "Hygon NTB"},

    {0x111d, 0x8091, kClassBridgeOther, "IDT 89HPES24NT6AG2 NT function"},
    {0x111d, 0x808f, kClassBridgeOther, "IDT 89HPES32NT8AG2 NT function"},
    {0x111d, 0x8088, kClassBridgeOther, "IDT 89HPES32NT8BG2 NT function"},
    {0x111d, 0x8092, kClassBridgeOther, "IDT 89HPES12NT12G2 NT function"},
    {0x111d, 0x8090, kClassBridgeOther, "IDT 89HPES16NT16G2 NT function"},
    {0x111d, 0x808e, kClassBridgeOther, "IDT 89HPES24NT24G2 NT function"},
    {0x111d, 0x808c, kClassBridgeOther, "IDT 89HPES32NT24AG2 NT function"},
    {0x111d, 0x808a, kClassBridgeOther, "IDT 89HPES32NT24BG2 NT function"},

    {0x11f8, kAnyDevice, kClassBridgeOther, "Microchip Switchtec NTB"},

    {0x10b5, 0x87a0, kAnyClass, "Broadcom/PLX PEX NT0 port (link side)"},
    {0x10b5, 0x87a1, kAnyClass, "Broadcom/PLX PEX NT1 port (link side)"},
    {0x10b5, 0x87b0, kAnyClass, "Broadcom/PLX PEX NT0 port (virtual side)"},
    {0x10b5, 0x87b1, kAnyClass, "Broadcom/PLX PEX NT1 port (virtual side)"},
};

}  // namespace

NtbMatch LookupNtb(uint16_t vendor_id, uint16_t device_id,
                   uint32_t class_code) {
  const uint16_t base_sub = static_cast<uint16_t>(class_code >> 8);
  NtbMatch m;
  for (const NtbEntry& e : kNtbTable) {
    if (e.vendor != vendor_id) continue;
    if (e.device != kAnyDevice && e.device != device_id) continue;
    if (e.class_req != kAnyClass && e.class_req != base_sub) continue;
    m.confidence = NtbMatch::Confidence::kKnown;
    m.description = e.description;
    return m;
  }
  if (base_sub == kClassBridgeOther) {
    m.confidence = NtbMatch::Confidence::kClassOnly;
    m.description = absl::StrFormat("possible NTB (class %04x, %04x:%04x)",
                                    base_sub, vendor_id, device_id);
  }
  return m;
}

}  // namespace fabric::agent::discovery
