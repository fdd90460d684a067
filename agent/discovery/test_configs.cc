#include "agent/discovery/test_configs.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fabric::agent::discovery::testing {

ConfigBuilder& ConfigBuilder::Set8(size_t off, uint8_t v) {
  bytes_.at(off) = v;
  return *this;
}
ConfigBuilder& ConfigBuilder::Set16(size_t off, uint16_t v) {
  Set8(off, v & 0xff);
  return Set8(off + 1, v >> 8);
}
ConfigBuilder& ConfigBuilder::Set32(size_t off, uint32_t v) {
  Set16(off, v & 0xffff);
  return Set16(off + 2, v >> 16);
}
ConfigBuilder& ConfigBuilder::Cap(size_t off, uint8_t id, uint8_t next) {
  Set8(off, id);
  return Set8(off + 1, next);
}
ConfigBuilder& ConfigBuilder::ExtCap(size_t off, uint16_t id, uint8_t version,
                                     uint16_t next) {
  return Set32(off,
               uint32_t{id} | uint32_t{version} << 16 | uint32_t{next} << 20);
}

namespace {

ConfigBuilder Type0(size_t size, uint16_t vendor, uint16_t device,
                    uint32_t class_code) {
  ConfigBuilder b(size);
  b.Set16(0x00, vendor).Set16(0x02, device).Set16(0x04, 0x0406);
  b.Set32(0x08, class_code << 8 | 0x02);  // revision 2
  b.Set8(0x0e, 0x00);
  return b;
}

}  // namespace

std::vector<uint8_t> SriovPfConfig(uint16_t num_vfs) {
  ConfigBuilder b = Type0(4096, 0x8086, 0x1572, 0x020000);
  b.Set8(0x0e, 0x80);  // multi-function
  b.Set16(0x06, 0x0010);
  b.Set32(0x10, 0xd000000c).Set32(0x14, 0x000038ff);  // BAR0 64-bit pref
  b.Set32(0x1c, 0xd180000c).Set32(0x20, 0x000038ff);  // BAR3 64-bit pref
  b.Set16(0x2c, 0x8086).Set16(0x2e, 0x0000);
  b.Set8(0x34, 0x40);
  b.Cap(0x40, 0x01, 0x70);  // power management
  b.Cap(0x70, 0x11, 0xa0);  // MSI-X
  b.Set16(0x72, 0x0080);    // 129 vectors
  b.Cap(0xa0, 0x10, 0x00);  // PCI Express, endpoint
  b.Set16(0xa2, 0x0002);
  b.ExtCap(0x100, 0x0001, 2, 0x150);  // AER
  b.ExtCap(0x150, 0x000e, 1, 0x160);  // ARI
  b.ExtCap(0x160, 0x0010, 1, 0x000);  // SR-IOV
  const size_t s = 0x160;
  b.Set32(s + 0x04, 0x00000000);
  b.Set16(s + 0x08, num_vfs > 0 ? 0x0019 : 0x0010);  // VF Enable, MSE, ARI
  b.Set16(s + 0x0c, 8).Set16(s + 0x0e, 8).Set16(s + 0x10, num_vfs);
  b.Set16(s + 0x14, 0x10).Set16(s + 0x16, 1);
  b.Set16(s + 0x1a, 0x154c);
  b.Set32(s + 0x1c, 0x00000553).Set32(s + 0x20, 0x00000001);
  b.Set32(s + 0x24, 0xd200000c).Set32(s + 0x28, 0x000038ff);  // VF BAR0
  b.Set32(s + 0x30, 0xd220000c).Set32(s + 0x34, 0x000038ff);  // VF BAR3
  return b.Build();
}

std::vector<uint8_t> SriovVfConfig() {
  ConfigBuilder b = Type0(256, 0xffff, 0xffff, 0x020000);
  b.Set16(0x04, 0x0000);
  b.Set16(0x06, 0x0010);
  b.Set16(0x2c, 0x8086).Set16(0x2e, 0x0000);
  b.Set8(0x34, 0x70);
  b.Cap(0x70, 0x11, 0xa0);
  b.Set16(0x72, 0x0004);
  b.Cap(0xa0, 0x10, 0x00);
  b.Set16(0xa2, 0x0002);
  return b.Build();
}

std::vector<uint8_t> IntelNtbConfig() {
  ConfigBuilder b = Type0(256, 0x8086, 0x201c, 0x068000);
  b.Set16(0x06, 0x0010);
  b.Set32(0x10, 0xc6f00004).Set32(0x14, 0x00000000);  // BAR0 64-bit
  b.Set32(0x18, 0x0000000c).Set32(0x1c, 0x00003a00);  // BAR2 64-bit pref
  b.Set32(0x20, 0x0000000c).Set32(0x24, 0x00003b00);  // BAR4 64-bit pref
  b.Set8(0x34, 0x60);
  b.Cap(0x60, 0x11, 0x90);  // MSI-X
  b.Cap(0x90, 0x10, 0xe0);  // PCI Express
  b.Cap(0xe0, 0x01, 0x00);  // power management
  return b.Build();
}

std::vector<uint8_t> UnknownDeviceConfig(size_t size) {
  ConfigBuilder b = Type0(size, 0xfeed, 0xbeef, 0xff0000);
  b.Set32(0x10, 0xf7000000);  // BAR0 32-bit
  return b.Build();
}

std::vector<uint8_t> LoopingCapsConfig() {
  ConfigBuilder b = Type0(256, 0x1af4, 0x1000, 0x020000);
  b.Set16(0x06, 0x0010);
  b.Set8(0x34, 0x40);
  b.Cap(0x40, 0x01, 0x50);
  b.Cap(0x50, 0x05, 0x40);
  return b.Build();
}

std::string ToLspci(const std::string& address, const std::string& description,
                    const std::vector<uint8_t>& config) {
  std::string out = absl::StrCat(address, " ", description, "\n");
  for (size_t off = 0; off < config.size(); off += 16) {
    absl::StrAppend(&out, absl::StrFormat("%02x:", off));
    for (size_t i = 0; i < 16 && off + i < config.size(); ++i) {
      absl::StrAppend(&out, absl::StrFormat(" %02x", config[off + i]));
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace fabric::agent::discovery::testing
