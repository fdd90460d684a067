// The SR-IOV device model: config spaces that discovery's parser accepts,
// sysfs-like VF enabling, hardware register semantics, MSI-X, and DMA and
// interrupts through a programmed 2-node simulated ring.
#include "agent/hw/sim/sriov_device.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/discovery/config_space.h"
#include "agent/hw/profile_limits.h"
#include "agent/hw/sim/sim_bridge.h"
#include "agent/hw/sim/sim_world.h"
#include "agent/hw/testing/core_state.h"
#include "agent/hw/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/fabric_state.h"
#include "server/core/test_util.h"

namespace fabric::agent::hw {
namespace {

using ::fabric::agent::hw::testing::StateFor;

using discovery::PciAddress;
using ::fabric::agent::hw::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1ull << 20;

PciAddress Addr(const std::string& s) { return *discovery::ParsePciAddress(s); }

constexpr char kHardware[] = R"json({
  "bridgeProfile": "sim",
  "pfs": [
    {"address": "0000:3b:00.0", "vendorId": 32902, "deviceId": 5490,
     "vfDeviceId": 5452, "totalVfs": 8, "numVfs": 8,
     "vfOffset": 16, "vfStride": 1,
     "barSizes": ["33554432", "0", "0", "32768"],
     "vfBarSizes": ["65536", "0", "0", "16384"],
     "msixVectors": 4, "msixBar": 3}
  ]
})json";

core::FabricSpec SmallRing() {
  core::FabricSpec spec = core::testing::RingSpec(2);
  spec.default_export_size = 64 * kMiB;
  return spec;
}

// Lender n0 holds the device; n0 has a 64 KiB window onto n1's memory
// (grant g1), and both bridges are programmed.
class SriovDeviceTest : public ::testing::Test {
 protected:
  SriovDeviceTest() : fs_(*core::Topology::Build(SmallRing())) {
    for (const core::NodeInfo& n : fs_.topology().nodes()) {
      bridges_.push_back(
          *SimBridge::Open(dir_.path(), n.name, LimitsFromProfile(*n.profile)));
    }
    absl::StatusOr<core::Grant> g = fs_.PlanGrant(0, 1, 64 * 1024);
    EXPECT_TRUE(g.ok()) << g.status();
    g->id = "g1";
    EXPECT_TRUE(fs_.AddGrant(*g).ok());
    grant_ = *g;
    for (int i = 0; i < 2; ++i) {
      absl::Status s = bridges_[i]->ApplyState(StateFor(fs_, i));
      EXPECT_TRUE(s.ok()) << s;
    }
    hw_ = *ParseSimHardware(kHardware);
    Reopen();
  }

  void Reopen() {
    absl::StatusOr<std::unique_ptr<SimSriovHost>> h =
        SimSriovHost::Open(dir_.path(), "n0", hw_);
    ASSERT_TRUE(h.ok()) << h.status();
    host_ = *std::move(h);
  }

  uint32_t Cfg(const std::string& bdf, uint16_t off, int size = 4) {
    absl::StatusOr<uint32_t> v = host_->ConfigRead(Addr(bdf), off, size);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : 0xdeadbeef;
  }
  void SetCfg(const std::string& bdf, uint16_t off, int size, uint32_t v) {
    absl::Status s = host_->ConfigWrite(Addr(bdf), off, size, v);
    EXPECT_TRUE(s.ok()) << s;
  }
  std::vector<uint8_t> Space(const std::string& bdf) {
    absl::StatusOr<std::vector<uint8_t>> c = host_->ConfigSpace(Addr(bdf));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : std::vector<uint8_t>();
  }
  std::vector<PciAddress> Vfs() {
    std::vector<PciAddress> out;
    absl::StatusOr<std::vector<SimFunction>> fs = host_->Functions();
    EXPECT_TRUE(fs.ok()) << fs.status();
    for (const SimFunction& f : *fs) {
      if (f.is_vf) out.push_back(f.address);
    }
    return out;
  }
  // Programs MSI-X table entry `v` of `bdf` (BAR3): address, data, mask.
  void Program(const std::string& bdf, int v, uint64_t addr, uint32_t data,
               bool masked) {
    std::vector<uint8_t> e(16);
    for (int i = 0; i < 8; ++i) e[i] = static_cast<uint8_t>(addr >> (8 * i));
    for (int i = 0; i < 4; ++i)
      e[8 + i] = static_cast<uint8_t>(data >> (8 * i));
    e[12] = masked ? 1 : 0;
    absl::Status s = host_->MmioWrite(Addr(bdf), 3, 16ull * v, e);
    ASSERT_TRUE(s.ok()) << s;
  }
  uint8_t Pba(const std::string& bdf) {
    std::vector<uint8_t> b(1);
    EXPECT_TRUE(
        host_->MmioRead(Addr(bdf), 3, MsixPbaOffset(4), absl::MakeSpan(b))
            .ok());
    return b[0];
  }
  // Memory of `node` at `addr`, as a little-endian dword.
  uint32_t Mem32(const std::string& node, uint64_t addr) {
    std::vector<uint8_t> b(4);
    EXPECT_TRUE(
        SimWorld::ReadMemory(dir_.path(), node, addr, absl::MakeSpan(b)).ok());
    return b[0] | b[1] << 8 | b[2] << 16 | uint32_t{b[3]} << 24;
  }
  // Bus master on, MSI-X enabled, unmasked function.
  void EnableMsix(const std::string& bdf) {
    SetCfg(bdf, 0x04, 2, 0x0004 | (bdf == "3b:00.0" ? 0x0002 : 0));
    SetCfg(bdf, kSimMsixCapOffset + 2, 2, 0x8000);
  }

  TempDir dir_;
  core::FabricState fs_;
  std::vector<std::unique_ptr<SimBridge>> bridges_;
  core::Grant grant_;
  SimHardware hw_;
  std::unique_ptr<SimSriovHost> host_;
};

TEST_F(SriovDeviceTest, ConfigSpacesParseWithDiscovery) {
  const PciAddress pf = Addr("3b:00.0");
  const std::vector<uint8_t> c = Space("3b:00.0");
  ASSERT_EQ(c.size(), 4096u);
  absl::StatusOr<discovery::ConfigHeader> h = discovery::ParseHeader(c);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->vendor_id, 0x8086);
  EXPECT_EQ(h->device_id, 0x1572);
  EXPECT_EQ(h->class_code, 0x020000u);
  EXPECT_EQ(h->header_type, 0);

  absl::StatusOr<std::vector<discovery::Capability>> caps =
      discovery::ListCapabilities(c);
  ASSERT_TRUE(caps.ok()) << caps.status();
  ASSERT_EQ(caps->size(), 2u);
  EXPECT_EQ((*caps)[0].id, 0x10);
  EXPECT_EQ((*caps)[0].offset, kSimPcieCapOffset);
  EXPECT_EQ((*caps)[1].id, 0x11);
  EXPECT_EQ((*caps)[1].offset, kSimMsixCapOffset);
  absl::StatusOr<std::vector<discovery::Capability>> ext =
      discovery::ListExtendedCapabilities(c);
  ASSERT_TRUE(ext.ok()) << ext.status();
  ASSERT_EQ(ext->size(), 1u);
  EXPECT_EQ((*ext)[0].id, discovery::kExtCapIdSriov);
  EXPECT_EQ((*ext)[0].offset, 0x100);
  EXPECT_EQ((*ext)[0].version, 1);

  absl::StatusOr<std::optional<discovery::SriovCapability>> s =
      discovery::FindSriov(c);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->has_value());
  const discovery::SriovCapability& sr = **s;
  EXPECT_EQ(sr.total_vfs, 8);
  EXPECT_EQ(sr.initial_vfs, 8);
  EXPECT_EQ(sr.num_vfs, 8);
  EXPECT_TRUE(sr.vf_enable());
  EXPECT_EQ(sr.first_vf_offset, 16);
  EXPECT_EQ(sr.vf_stride, 1);
  EXPECT_EQ(sr.vf_device_id, 0x154c);
  EXPECT_EQ(sr.system_page_size, 1u);

  // Discovery derives the same VFs the model enabled.
  absl::StatusOr<std::vector<PciAddress>> derived =
      discovery::VfAddresses(pf, sr.first_vf_offset, sr.vf_stride, sr.num_vfs);
  ASSERT_TRUE(derived.ok()) << derived.status();
  EXPECT_EQ(*derived, Vfs());
  EXPECT_EQ(Vfs().front(), Addr("3b:02.0"));

  // BARs: 64-bit, at what BarAddress says; VF BARs from the SR-IOV cap.
  absl::StatusOr<std::vector<discovery::Bar>> bars = discovery::ParseBars(c);
  ASSERT_TRUE(bars.ok()) << bars.status();
  ASSERT_EQ(bars->size(), 4u);  // BAR0 (64), BAR2, BAR3 (64), BAR5
  EXPECT_TRUE((*bars)[0].is_64bit);
  EXPECT_TRUE((*bars)[0].prefetchable);
  EXPECT_EQ((*bars)[0].address, *host_->BarAddress(pf, 0));
  EXPECT_EQ((*bars)[0].address, kDefaultMmioBase);
  EXPECT_EQ((*bars)[2].index, 3);
  EXPECT_EQ((*bars)[2].address, *host_->BarAddress(pf, 3));
  absl::StatusOr<std::vector<discovery::Bar>> vf_bars =
      discovery::DecodeBars(sr.vf_bar_raw);
  ASSERT_TRUE(vf_bars.ok());
  const uint64_t vf_bar0 = (*vf_bars)[0].address;
  EXPECT_NE(vf_bar0, 0u);
  EXPECT_EQ(*host_->BarAddress(Addr("3b:02.3"), 0), vf_bar0 + 3 * 65536);

  // A VF: vendor/device read 0xffff, the same capabilities, no SR-IOV.
  const std::vector<uint8_t> v = Space("3b:02.3");
  absl::StatusOr<discovery::ConfigHeader> vh = discovery::ParseHeader(v);
  ASSERT_TRUE(vh.ok());
  EXPECT_EQ(vh->vendor_id, 0xffff);
  EXPECT_EQ(vh->device_id, 0xffff);
  EXPECT_EQ(vh->class_code, 0x020000u);
  EXPECT_THAT(*discovery::ListCapabilities(v),
              ElementsAre(::testing::Field(&discovery::Capability::id, 0x10),
                          ::testing::Field(&discovery::Capability::id, 0x11)));
  EXPECT_TRUE(discovery::ListExtendedCapabilities(v)->empty());
  EXPECT_FALSE(discovery::FindSriov(v)->has_value());
  absl::StatusOr<std::vector<discovery::Bar>> v_bars = discovery::ParseBars(v);
  ASSERT_TRUE(v_bars.ok());
  for (const discovery::Bar& b : *v_bars) {
    EXPECT_EQ(b.raw, 0u) << "VF BAR" << b.index;
  }
  // MSI-X: 4 vectors, table in BAR3 at 0, PBA after it.
  EXPECT_EQ(Cfg("3b:02.3", kSimMsixCapOffset + 2, 2), 3u);
  EXPECT_EQ(Cfg("3b:02.3", kSimMsixCapOffset + 4), 3u);
  EXPECT_EQ(Cfg("3b:02.3", kSimMsixCapOffset + 8), 64u | 3u);
}

TEST_F(SriovDeviceTest, NumVfsFollowsSysfsRules) {
  const PciAddress pf = Addr("3b:00.0");
  EXPECT_EQ(*host_->NumVfs(pf), 8);
  EXPECT_TRUE(host_->SetNumVfs(pf, 8).ok());  // Same count: no-op.
  absl::Status s = host_->SetNumVfs(pf, 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("set 0 before"));
  EXPECT_EQ(host_->SetNumVfs(pf, 9).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(host_->SetNumVfs(Addr("3b:02.0"), 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(host_->SetNumVfs(Addr("5e:00.0"), 0).code(),
            absl::StatusCode::kNotFound);

  ASSERT_TRUE(host_->SetNumVfs(pf, 0).ok());
  EXPECT_TRUE(Vfs().empty());
  EXPECT_EQ(host_->ConfigRead(Addr("3b:02.0"), 0, 4).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(discovery::FindSriov(Space("3b:00.0"))->value().vf_enable());

  ASSERT_TRUE(host_->SetNumVfs(pf, 3).ok());
  EXPECT_THAT(Vfs(),
              ElementsAre(Addr("3b:02.0"), Addr("3b:02.1"), Addr("3b:02.2")));
  EXPECT_EQ(discovery::FindSriov(Space("3b:00.0"))->value().num_vfs, 3);

  // Through config space: NumVFs ignores writes while VF Enable is set.
  SetCfg("3b:00.0", 0x110, 2, 5);
  EXPECT_EQ(Cfg("3b:00.0", 0x110, 2), 3u);
  SetCfg("3b:00.0", 0x108, 2, 0);  // VF Enable off: VFs gone.
  EXPECT_TRUE(Vfs().empty());
  SetCfg("3b:00.0", 0x110, 2, 9);  // > TotalVFs: ignored.
  EXPECT_EQ(Cfg("3b:00.0", 0x110, 2), 3u);
  SetCfg("3b:00.0", 0x110, 2, 2);
  SetCfg("3b:00.0", 0x108, 2, 0x9);  // VF Enable + VF MSE.
  EXPECT_THAT(Vfs(), ElementsAre(Addr("3b:02.0"), Addr("3b:02.1")));
  EXPECT_EQ(*host_->NumVfs(pf), 2);
}

TEST_F(SriovDeviceTest, BarSizingReadsBackTheSizeMask) {
  const uint32_t bar0 = Cfg("3b:00.0", 0x10);
  const uint32_t bar0_hi = Cfg("3b:00.0", 0x14);
  SetCfg("3b:00.0", 0x10, 4, 0xffffffff);
  SetCfg("3b:00.0", 0x14, 4, 0xffffffff);
  EXPECT_EQ(Cfg("3b:00.0", 0x10), 0xfe00000cu);  // 32 MiB, 64-bit, pref.
  EXPECT_EQ(Cfg("3b:00.0", 0x14), 0xffffffffu);
  SetCfg("3b:00.0", 0x1c, 4, 0xffffffff);
  EXPECT_EQ(Cfg("3b:00.0", 0x1c), 0xffff800cu);  // 32 KiB
  SetCfg("3b:00.0", 0x18, 4, 0xffffffff);        // Not implemented.
  EXPECT_EQ(Cfg("3b:00.0", 0x18), 0u);
  // VF BAR0 in the SR-IOV capability: the per-VF size, 64 KiB.
  SetCfg("3b:00.0", 0x124, 4, 0xffffffff);
  EXPECT_EQ(Cfg("3b:00.0", 0x124), 0xffff000cu);
  // A VF's own BARs are read-only zero.
  SetCfg("3b:02.0", 0x10, 4, 0xffffffff);
  EXPECT_EQ(Cfg("3b:02.0", 0x10), 0u);
  // Restoring moves the BAR back; a new address is where it decodes.
  SetCfg("3b:00.0", 0x10, 4, bar0);
  SetCfg("3b:00.0", 0x14, 4, bar0_hi);
  EXPECT_EQ(*host_->BarAddress(Addr("3b:00.0"), 0), kDefaultMmioBase);
  SetCfg("3b:00.0", 0x10, 4, 0x12345678);
  EXPECT_EQ(*host_->BarAddress(Addr("3b:00.0"), 0),
            (uint64_t{bar0_hi} << 32) | 0x12000000);
  EXPECT_EQ(host_->BarAddress(Addr("3b:00.0"), 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(*host_->BarSize(Addr("3b:02.0"), 3), 16384u);
}

TEST_F(SriovDeviceTest, ReadOnlyRegistersIgnoreWrites) {
  SetCfg("3b:00.0", 0x00, 4, 0x12345678);  // Vendor/device.
  EXPECT_EQ(Cfg("3b:00.0", 0x00), 0x15728086u);
  SetCfg("3b:02.1", 0x00, 4, 0);  // A VF's 0xffff stays.
  EXPECT_EQ(Cfg("3b:02.1", 0x00), 0xffffffffu);
  SetCfg("3b:00.0", 0x08, 4, 0);  // Class / revision.
  EXPECT_EQ(Cfg("3b:00.0", 0x08), 0x02000001u);
  SetCfg("3b:00.0", 0x10c, 4, 0xffffffff);  // InitialVFs / TotalVFs.
  EXPECT_EQ(Cfg("3b:00.0", 0x10c), 0x00080008u);
  SetCfg("3b:00.0", 0x114, 4, 0);  // Offset / stride.
  EXPECT_EQ(Cfg("3b:00.0", 0x114), 0x00010010u);
  SetCfg("3b:00.0", kSimMsixCapOffset, 4, 0);  // Table size stays 3.
  EXPECT_EQ(Cfg("3b:00.0", kSimMsixCapOffset), 0x00030011u);
  SetCfg("3b:00.0", kSimMsixCapOffset + 2, 2, 0xffff);
  EXPECT_EQ(Cfg("3b:00.0", kSimMsixCapOffset + 2, 2), 0xc003u);
  // Command: only the implemented bits stick.
  SetCfg("3b:00.0", 0x04, 2, 0xffff);
  EXPECT_EQ(Cfg("3b:00.0", 0x04, 2), 0x0546u);
  SetCfg("3b:02.0", 0x04, 2, 0xffff);
  EXPECT_EQ(Cfg("3b:02.0", 0x04, 2), 0x0144u);  // No memory enable on a VF.
  EXPECT_EQ(Cfg("3b:00.0", 0x06, 2), 0x0010u);
  // Bad accesses.
  EXPECT_EQ(host_->ConfigRead(Addr("3b:00.0"), 0x02, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(host_->ConfigRead(Addr("3b:00.0"), 0x1000, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(host_->ConfigWrite(Addr("3b:00.0"), 0, 3, 0).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SriovDeviceTest, MmioNeedsDecodeAndStaysInTheBar) {
  std::vector<uint8_t> b(8);
  ASSERT_TRUE(host_
                  ->MmioWrite(Addr("3b:00.0"), 0, 0x100,
                              std::vector<uint8_t>{1, 2, 3, 4})
                  .ok());
  ASSERT_TRUE(
      host_->MmioRead(Addr("3b:00.0"), 0, 0x100, absl::MakeSpan(b)).ok());
  EXPECT_THAT(b, ElementsAre(1, 2, 3, 4, 0, 0, 0, 0));
  EXPECT_EQ(
      host_->MmioRead(Addr("3b:00.0"), 0, 32 * kMiB - 4, absl::MakeSpan(b))
          .code(),
      absl::StatusCode::kOutOfRange);
  EXPECT_EQ(host_->MmioRead(Addr("3b:00.0"), 1, 0, absl::MakeSpan(b)).code(),
            absl::StatusCode::kNotFound);
  SetCfg("3b:00.0", 0x04, 2, 0);  // Memory decode off.
  absl::Status s = host_->MmioRead(Addr("3b:00.0"), 0, 0, absl::MakeSpan(b));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("memory space disabled"));
  // VFs decode by the PF's VF MSE.
  EXPECT_TRUE(host_->MmioRead(Addr("3b:02.0"), 0, 0, absl::MakeSpan(b)).ok());
  SetCfg("3b:00.0", 0x108, 2, 0x1);  // VF Enable only.
  EXPECT_EQ(host_->MmioRead(Addr("3b:02.0"), 0, 0, absl::MakeSpan(b)).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SriovDeviceTest, WritesByAddressReachTheBarThatDecodesThem) {
  // Another process's view: the devices opened from their files.
  SimDevicesMmio devices(dir_.path());
  absl::StatusOr<uint64_t> bar0 = host_->BarAddress(Addr("3b:02.1"), 0);
  ASSERT_TRUE(bar0.ok()) << bar0.status();
  absl::StatusOr<uint64_t> size = host_->BarSize(Addr("3b:02.1"), 0);
  ASSERT_TRUE(size.ok());
  const std::vector<uint8_t> data = {9, 8, 7, 6};
  ASSERT_TRUE(devices.Write("n0", *bar0 + 0x10, data).ok());
  std::vector<uint8_t> got(4);
  ASSERT_TRUE(
      host_->MmioRead(Addr("3b:02.1"), 0, 0x10, absl::MakeSpan(got)).ok());
  EXPECT_EQ(got, data);
  // The neighbouring VF's BAR0 starts where this one ends; untouched.
  ASSERT_TRUE(
      host_->MmioRead(Addr("3b:02.2"), 0, 0x10, absl::MakeSpan(got)).ok());
  EXPECT_THAT(got, ElementsAre(0, 0, 0, 0));
  // Past the BAR's end, nowhere, another node without devices.
  EXPECT_EQ(devices.Write("n0", *bar0 + *size - 2, data).code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(devices.Write("n0", 0x10, data).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(devices.Write("n1", *bar0, data).code(),
            absl::StatusCode::kNotFound);
  // VF memory decode off (the PF's VF MSE): refused.
  SetCfg("3b:00.0", 0x108, 2, 0x1);
  EXPECT_EQ(devices.Write("n0", *bar0, data).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SriovDeviceTest, MsixMaskingPendingAndUnmask) {
  const std::string vf = "3b:02.1";
  const uint64_t local = fs_.topology().node(0).export_base + 0x1000;
  // Out of reset every vector is masked.
  std::vector<uint8_t> vc(4);
  ASSERT_TRUE(host_->MmioRead(Addr(vf), 3, 12, absl::MakeSpan(vc)).ok());
  EXPECT_EQ(vc[0], 1);
  // MSI-X disabled, then bus mastering off: refused.
  absl::StatusOr<MsixResult> r = host_->RaiseMsix(Addr(vf), 0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("MSI-X disabled"));
  SetCfg(vf, kSimMsixCapOffset + 2, 2, 0x8000);
  r = host_->RaiseMsix(Addr(vf), 0);
  EXPECT_THAT(r.status().message(), HasSubstr("bus mastering disabled"));
  EnableMsix(vf);
  EXPECT_EQ(host_->RaiseMsix(Addr(vf), 4).status().code(),
            absl::StatusCode::kOutOfRange);

  // Programmed and unmasked: delivered at once.
  Program(vf, 1, local, 0x11111111, false);
  std::vector<uint8_t> e(16);
  ASSERT_TRUE(host_->MmioRead(Addr(vf), 3, 16, absl::MakeSpan(e)).ok());
  EXPECT_EQ(e[8], 0x11);
  r = host_->RaiseMsix(Addr(vf), 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->outcome, MsixResult::Outcome::kDelivered);
  EXPECT_TRUE(r->access.landed);
  EXPECT_EQ(r->access.node, "n0");
  EXPECT_EQ(Mem32("n0", local), 0x11111111u);

  // Masked: pending, nothing written; Unmask delivers.
  Program(vf, 2, local + 4, 0x22222222, true);
  r = host_->RaiseMsix(Addr(vf), 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome, MsixResult::Outcome::kPending);
  EXPECT_EQ(Pba(vf), 0x4);
  EXPECT_EQ(Mem32("n0", local + 4), 0u);
  // The PBA is read-only.
  ASSERT_TRUE(
      host_->MmioWrite(Addr(vf), 3, MsixPbaOffset(4), std::vector<uint8_t>{0})
          .ok());
  EXPECT_EQ(Pba(vf), 0x4);
  r = host_->Unmask(Addr(vf), 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome, MsixResult::Outcome::kDelivered);
  EXPECT_EQ(r->message.addr, local + 4);
  EXPECT_EQ(r->message.data, 0x22222222u);
  EXPECT_EQ(Pba(vf), 0);
  EXPECT_EQ(Mem32("n0", local + 4), 0x22222222u);
  r = host_->Unmask(Addr(vf), 2);
  EXPECT_EQ(r->outcome, MsixResult::Outcome::kNothingPending);

  // Function mask: pending; clearing it in config space delivers.
  SetCfg(vf, kSimMsixCapOffset + 2, 2, 0xc000);
  Program(vf, 3, local + 8, 0x33333333, false);
  r = host_->RaiseMsix(Addr(vf), 3);
  EXPECT_EQ(r->outcome, MsixResult::Outcome::kPending);
  EXPECT_EQ(Pba(vf), 0x8);
  SetCfg(vf, kSimMsixCapOffset + 2, 2, 0x8000);
  EXPECT_EQ(Pba(vf), 0);
  EXPECT_EQ(Mem32("n0", local + 8), 0x33333333u);

  // Unmasking through the table (an MMIO write) delivers too.
  Program(vf, 0, local + 12, 0x44444444, true);
  EXPECT_EQ(host_->RaiseMsix(Addr(vf), 0)->outcome,
            MsixResult::Outcome::kPending);
  Program(vf, 0, local + 12, 0x44444444, false);
  EXPECT_EQ(Pba(vf), 0);
  EXPECT_EQ(Mem32("n0", local + 12), 0x44444444u);
}

TEST_F(SriovDeviceTest, DmaNeedsBusMaster) {
  absl::StatusOr<AccessResult> r =
      host_->Dma(Addr("3b:02.0"), grant_.borrower_addr, {1, 2, 3, 4});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("bus mastering disabled"));
  EXPECT_EQ(Mem32("n1", grant_.target_addr), 0u);
}

TEST_F(SriovDeviceTest, DmaThroughTheWindowLandsOnTheBorrower) {
  SetCfg("3b:02.5", 0x04, 2, 0x0004);
  const std::vector<uint8_t> data = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4};
  absl::StatusOr<AccessResult> r =
      host_->Dma(Addr("3b:02.5"), grant_.borrower_addr + 0x40, data);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->landed) << r->fault_bridge << ": " << r->reason;
  EXPECT_EQ(r->node, "n1");
  EXPECT_EQ(r->addr, grant_.target_addr + 0x40);
  EXPECT_THAT(r->hops, ElementsAre("n0", "n1"));
  std::vector<uint8_t> got(data.size());
  ASSERT_TRUE(SimWorld::ReadMemory(dir_.path(), "n1", grant_.target_addr + 0x40,
                                   absl::MakeSpan(got))
                  .ok());
  EXPECT_EQ(got, data);
  // Past the window's end: a fault, nothing written.
  r = host_->Dma(Addr("3b:02.5"), grant_.borrower_addr + 64 * 1024 - 4, data);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->landed);
  EXPECT_EQ(r->reason, "crosses window end");
  // Neither in a window nor in memory.
  r = host_->Dma(Addr("3b:02.5"), 0x10, data);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->landed);
  EXPECT_EQ(r->reason, "not host memory");
}

TEST_F(SriovDeviceTest, MsixLandsAtTheProgrammedAddressOnTheBorrower) {
  const std::string vf = "3b:02.7";
  EnableMsix(vf);
  Program(vf, 0, grant_.borrower_addr + 0x800, 0xfee1dead, false);
  absl::StatusOr<MsixResult> r = host_->RaiseMsix(Addr(vf), 0);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->outcome, MsixResult::Outcome::kDelivered);
  EXPECT_EQ(r->message.addr, grant_.borrower_addr + 0x800);
  EXPECT_EQ(r->message.data, 0xfee1deadu);
  EXPECT_TRUE(r->access.landed) << r->access.reason;
  EXPECT_EQ(r->access.node, "n1");
  EXPECT_EQ(r->access.addr, grant_.target_addr + 0x800);
  EXPECT_EQ(Mem32("n1", grant_.target_addr + 0x800), 0xfee1deadu);
}

// Images reads the devices' state once; it must show exactly what the
// accessors, one call each, show: config spaces (a failed function's all
// ones), BAR sizes and addresses (a VF's from its PF's VF BAR), in order.
TEST_F(SriovDeviceTest, ImagesAgreeWithTheAccessors) {
  ASSERT_TRUE(host_->SetFunctionFailed(Addr("3b:02.2"), true).ok());
  absl::StatusOr<std::vector<SimFunctionImage>> images = host_->Images();
  ASSERT_TRUE(images.ok()) << images.status();
  absl::StatusOr<std::vector<SimFunction>> functions = host_->Functions();
  ASSERT_TRUE(functions.ok()) << functions.status();
  ASSERT_EQ(images->size(), functions->size());
  int vfs_with_bars = 0;
  for (size_t i = 0; i < images->size(); ++i) {
    const SimFunctionImage& image = (*images)[i];
    const PciAddress& a = (*functions)[i].address;
    SCOPED_TRACE(a.ToString());
    EXPECT_EQ(image.function.address, a);
    EXPECT_EQ(image.function.is_vf, (*functions)[i].is_vf);
    EXPECT_EQ(image.function.vf_index, (*functions)[i].vf_index);
    EXPECT_EQ(image.config, *host_->ConfigSpace(a));
    for (int bar = 0; bar < 6; ++bar) {
      absl::StatusOr<uint64_t> size = host_->BarSize(a, bar);
      EXPECT_EQ(image.bar_sizes[bar], size.ok() ? *size : 0) << bar;
      EXPECT_EQ(image.bar_addresses[bar],
                size.ok() ? *host_->BarAddress(a, bar) : 0)
          << bar;
      if (image.function.is_vf && size.ok() && image.bar_addresses[bar] != 0) {
        ++vfs_with_bars;
      }
    }
  }
  EXPECT_GT(vfs_with_bars, 0);  // the VF BARs' addresses were compared
  EXPECT_EQ((*images)[0].config.size(), 4096u);
}

TEST_F(SriovDeviceTest, HealthFollowsFailuresAndLink) {
  const PciAddress pf = Addr("3b:00.0");
  const PciAddress vf = Addr("3b:02.2");
  FunctionHealth h = *host_->Health(vf);
  EXPECT_TRUE(h.config_readable);
  EXPECT_TRUE(h.vendor_ok);
  EXPECT_TRUE(h.pf_link_up);
  EXPECT_TRUE(host_->Health(pf)->vendor_ok);

  ASSERT_TRUE(host_->SetFunctionFailed(vf, true).ok());
  EXPECT_EQ(Cfg("3b:02.2", 0x08), 0xffffffffu);
  EXPECT_EQ(Cfg("3b:02.2", 0x04, 2), 0xffffu);
  h = *host_->Health(vf);
  EXPECT_FALSE(h.config_readable);
  EXPECT_FALSE(h.vendor_ok);
  EXPECT_TRUE(h.pf_link_up);
  EXPECT_EQ(host_->Dma(vf, grant_.borrower_addr, {1}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(host_->Health(Addr("3b:02.3"))->vendor_ok);  // Others fine.
  ASSERT_TRUE(host_->SetFunctionFailed(vf, false).ok());
  EXPECT_TRUE(host_->Health(vf)->vendor_ok);

  // A failed PF takes its VFs' vendor check along.
  ASSERT_TRUE(host_->SetFunctionFailed(pf, true).ok());
  EXPECT_FALSE(host_->Health(pf)->vendor_ok);
  EXPECT_TRUE(host_->Health(vf)->config_readable);
  EXPECT_FALSE(host_->Health(vf)->vendor_ok);
  ASSERT_TRUE(host_->SetFunctionFailed(pf, false).ok());

  ASSERT_TRUE(host_->SetPfLinkUp(pf, false).ok());
  h = *host_->Health(vf);
  EXPECT_FALSE(h.pf_link_up);
  EXPECT_FALSE(h.config_readable);
  EXPECT_FALSE(h.vendor_ok);
  EXPECT_EQ(Cfg("3b:00.0", 0x00), 0xffffffffu);
  EXPECT_EQ(host_->SetNumVfs(pf, 0).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(host_->SetPfLinkUp(vf, true).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(host_->SetPfLinkUp(pf, true).ok());
  EXPECT_TRUE(host_->Health(vf)->vendor_ok);

  // A VF that is not enabled answers, unhealthy; a stranger is NOT_FOUND.
  ASSERT_TRUE(host_->SetNumVfs(pf, 0).ok());
  h = *host_->Health(vf);
  EXPECT_FALSE(h.config_readable);
  EXPECT_FALSE(h.vendor_ok);
  EXPECT_TRUE(h.pf_link_up);
  EXPECT_EQ(host_->Health(Addr("5e:00.0")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SriovDeviceTest, StateSurvivesReopen) {
  const PciAddress pf = Addr("3b:00.0");
  ASSERT_TRUE(host_->SetNumVfs(pf, 0).ok());
  ASSERT_TRUE(host_->SetNumVfs(pf, 4).ok());
  SetCfg("3b:02.3", 0x04, 2, 0x0004);
  Program("3b:02.3", 1, 0xabcdef00, 0x12345678, false);
  ASSERT_TRUE(host_->SetFunctionFailed(Addr("3b:02.2"), true).ok());
  host_.reset();
  Reopen();
  EXPECT_EQ(*host_->NumVfs(pf), 4);
  EXPECT_EQ(Vfs().size(), 4u);
  EXPECT_EQ(Cfg("3b:02.3", 0x04, 2), 0x0004u);
  std::vector<uint8_t> e(16);
  ASSERT_TRUE(host_->MmioRead(Addr("3b:02.3"), 3, 16, absl::MakeSpan(e)).ok());
  EXPECT_EQ(e[0], 0x00);
  EXPECT_EQ(e[1], 0xef);
  EXPECT_EQ(e[8], 0x78);
  EXPECT_FALSE(host_->Health(Addr("3b:02.2"))->config_readable);
  // Two objects on one directory see each other's changes.
  absl::StatusOr<std::unique_ptr<SimSriovHost>> other =
      SimSriovHost::Open(dir_.path(), "n0", hw_);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->SetNumVfs(pf, 0).ok());
  EXPECT_TRUE(Vfs().empty());
  // Different hardware is refused, not silently reset.
  SimHardware changed = hw_;
  changed.pfs[0].total_vfs = 4;
  changed.pfs[0].num_vfs = 4;
  absl::StatusOr<std::unique_ptr<SimSriovHost>> bad =
      SimSriovHost::Open(dir_.path(), "n0", changed);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(bad.status().message(), HasSubstr("different hardware"));
}

TEST(SriovDeviceOpenTest, EmptyHostAndBadNode) {
  TempDir dir;
  SimHardware hw;
  hw.bridge_profile = "sim";
  absl::StatusOr<std::unique_ptr<SimSriovHost>> h =
      SimSriovHost::Open(dir.path(), "n0", hw);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE((*h)->Functions()->empty());
  EXPECT_EQ(SimSriovHost::Open(dir.path(), "a/b", hw).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fabric::agent::hw
