// Test-only: hand-built configuration spaces of realistic functions, shared
// by the discovery tests. Not part of fabric_discovery.
#ifndef FABRIC_AGENT_DISCOVERY_TEST_CONFIGS_H_
#define FABRIC_AGENT_DISCOVERY_TEST_CONFIGS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fabric::agent::discovery::testing {

// Little-endian writes into a config space buffer.
class ConfigBuilder {
 public:
  explicit ConfigBuilder(size_t size) : bytes_(size, 0) {}
  ConfigBuilder& Set8(size_t off, uint8_t v);
  ConfigBuilder& Set16(size_t off, uint16_t v);
  ConfigBuilder& Set32(size_t off, uint32_t v);
  // Writes a standard capability header {id, next} at `off`.
  ConfigBuilder& Cap(size_t off, uint8_t id, uint8_t next);
  // Writes an extended capability header at `off`.
  ConfigBuilder& ExtCap(size_t off, uint16_t id, uint8_t version,
                        uint16_t next);
  std::vector<uint8_t> Build() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Intel X710-style SR-IOV PF 8086:1572, 4096 bytes: PM (0x40) -> MSI-X
// (0x70) -> PCIe (0xa0); AER (0x100) -> ARI (0x150) -> SR-IOV (0x160):
// InitialVFs 8, TotalVFs 8, NumVFs `num_vfs`, First VF Offset 0x10, Stride 1,
// VF Device ID 0x154c, VF BAR0 and VF BAR3 64-bit prefetchable.
// BAR0 and BAR3 are 64-bit prefetchable.
std::vector<uint8_t> SriovPfConfig(uint16_t num_vfs = 2);

// A VF of that PF as config space reads it: vendor/device 0xffff, class
// 020000, MSI-X (0x70) -> PCIe (0xa0), 256 bytes.
std::vector<uint8_t> SriovVfConfig();

// Intel Skylake NTB 8086:201c, class 068000, 256 bytes: BAR0 64-bit,
// BAR2 and BAR4 64-bit prefetchable; MSI-X (0x60) -> PCIe (0x90) -> PM (0xe0).
std::vector<uint8_t> IntelNtbConfig();

// Unknown vendor/device feed:beef, class ff0000, no capabilities.
std::vector<uint8_t> UnknownDeviceConfig(size_t size = 64);

// Capability list 0x40 -> 0x50 -> 0x40, 256 bytes.
std::vector<uint8_t> LoopingCapsConfig();

// `lspci -x`-style text for one device (header line + data lines).
std::string ToLspci(const std::string& address, const std::string& description,
                    const std::vector<uint8_t>& config);

}  // namespace fabric::agent::discovery::testing

#endif  // FABRIC_AGENT_DISCOVERY_TEST_CONFIGS_H_
