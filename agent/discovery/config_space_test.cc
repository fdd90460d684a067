#include "agent/discovery/config_space.h"

#include <vector>

#include "agent/discovery/pci_address.h"
#include "agent/discovery/test_configs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::discovery {
namespace {

using testing::ConfigBuilder;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<uint16_t> Ids(const std::vector<Capability>& caps) {
  std::vector<uint16_t> ids;
  for (const Capability& c : caps) ids.push_back(c.id);
  return ids;
}
std::vector<uint16_t> Offsets(const std::vector<Capability>& caps) {
  std::vector<uint16_t> offs;
  for (const Capability& c : caps) offs.push_back(c.offset);
  return offs;
}

TEST(PciAddressTest, ParsesBothFormsAndRoundTrips) {
  absl::StatusOr<PciAddress> a = ParsePciAddress("3b:02.1");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->ToString(), "0000:3b:02.1");
  absl::StatusOr<PciAddress> b = ParsePciAddress("10000:ae:1f.7");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->domain, 0x10000u);
  EXPECT_EQ(b->RoutingId(), 0xaeff);
  EXPECT_EQ(PciAddress::FromRoutingId(0x10000, 0xaeff), *b);
}

TEST(PciAddressTest, RejectsBadAddresses) {
  EXPECT_THAT(ParsePciAddress("00:20.0").status().message(),
              HasSubstr("device 0x20 out of range"));
  EXPECT_FALSE(ParsePciAddress("00:1f.8").ok());
  EXPECT_FALSE(ParsePciAddress("xx:00.0").ok());
  EXPECT_FALSE(ParsePciAddress("0000:00:00").ok());
  EXPECT_FALSE(ParsePciAddress("").ok());
}

TEST(ConfigSpaceTest, ParsesHeader) {
  const std::vector<uint8_t> pf = testing::SriovPfConfig();
  absl::StatusOr<ConfigHeader> h = ParseHeader(pf);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->vendor_id, 0x8086);
  EXPECT_EQ(h->device_id, 0x1572);
  EXPECT_EQ(h->class_code, 0x020000u);
  EXPECT_EQ(h->revision, 0x02);
  EXPECT_EQ(h->header_type, 0);
  EXPECT_TRUE(h->multifunction);
}

TEST(ConfigSpaceTest, RejectsOddSizes) {
  std::vector<uint8_t> odd(100, 0);
  absl::StatusOr<ConfigHeader> h = ParseHeader(odd);
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(h.status().message(),
              HasSubstr("config space is 100 bytes; expected 64, 256 or 4096"));
}

TEST(ConfigSpaceTest, DecodesSixtyFourBitBars) {
  absl::StatusOr<std::vector<Bar>> bars = ParseBars(testing::IntelNtbConfig());
  ASSERT_TRUE(bars.ok()) << bars.status();
  ASSERT_EQ(bars->size(), 3u);  // BAR0, BAR2, BAR4, each 64-bit
  EXPECT_EQ((*bars)[0].index, 0);
  EXPECT_TRUE((*bars)[0].is_64bit);
  EXPECT_FALSE((*bars)[0].prefetchable);
  EXPECT_EQ((*bars)[0].address, 0xc6f00000u);
  EXPECT_EQ((*bars)[1].index, 2);
  EXPECT_TRUE((*bars)[1].prefetchable);
  EXPECT_EQ((*bars)[1].raw, 0x00003a000000000cu);
  EXPECT_EQ((*bars)[1].address, 0x3a0000000000u);
  EXPECT_EQ((*bars)[2].index, 4);
  EXPECT_EQ((*bars)[2].address, 0x3b0000000000u);
}

TEST(ConfigSpaceTest, DecodesIoAndThirtyTwoBitBars) {
  absl::StatusOr<std::vector<Bar>> bars =
      DecodeBars(std::vector<uint32_t>{0xf7000000, 0x0000e001, 0, 0, 0, 0});
  ASSERT_TRUE(bars.ok()) << bars.status();
  ASSERT_EQ(bars->size(), 6u);
  EXPECT_FALSE((*bars)[0].is_64bit);
  EXPECT_EQ((*bars)[0].address, 0xf7000000u);
  EXPECT_TRUE((*bars)[1].io);
  EXPECT_EQ((*bars)[1].address, 0xe000u);
}

TEST(ConfigSpaceTest, SixtyFourBitBarWithoutUpperHalfIsDataLoss) {
  absl::StatusOr<std::vector<Bar>> bars =
      DecodeBars(std::vector<uint32_t>{0, 0, 0, 0, 0, 0x0000000c});
  EXPECT_EQ(bars.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bars.status().message(), HasSubstr("BAR5"));
}

TEST(ConfigSpaceTest, ListsStandardCapabilities) {
  absl::StatusOr<std::vector<Capability>> caps =
      ListCapabilities(testing::SriovPfConfig());
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_THAT(Ids(*caps), ElementsAre(0x01, 0x11, 0x10));
  EXPECT_THAT(Offsets(*caps), ElementsAre(0x40, 0x70, 0xa0));
}

TEST(ConfigSpaceTest, NoCapabilityListWhenStatusBitClear) {
  absl::StatusOr<std::vector<Capability>> caps =
      ListCapabilities(testing::UnknownDeviceConfig());
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_TRUE(caps->empty());
}

TEST(ConfigSpaceTest, LoopingCapabilityListIsDataLoss) {
  absl::StatusOr<std::vector<Capability>> caps =
      ListCapabilities(testing::LoopingCapsConfig());
  EXPECT_EQ(caps.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(caps.status().message(),
              HasSubstr("capability list loops at 0x40"));
}

TEST(ConfigSpaceTest, SelfLoopIsDataLoss) {
  std::vector<uint8_t> c = ConfigBuilder(256)
                               .Set16(0x06, 0x10)
                               .Set8(0x34, 0x48)
                               .Cap(0x48, 0x05, 0x48)
                               .Build();
  EXPECT_THAT(ListCapabilities(c).status().message(),
              HasSubstr("capability list loops at 0x48"));
}

TEST(ConfigSpaceTest, CapabilityPointerIntoHeaderIsDataLoss) {
  std::vector<uint8_t> c = ConfigBuilder(256)
                               .Set16(0x06, 0x10)
                               .Set8(0x34, 0x40)
                               .Cap(0x40, 0x01, 0x20)
                               .Build();
  absl::StatusOr<std::vector<Capability>> caps = ListCapabilities(c);
  EXPECT_EQ(caps.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(caps.status().message(),
              HasSubstr("capability pointer at 0x41 points to 0x20 (below "
                        "0x40)"));
}

TEST(ConfigSpaceTest, HeaderOnlySpaceCannotHoldCapabilities) {
  std::vector<uint8_t> pf = testing::SriovPfConfig();
  pf.resize(64);
  absl::StatusOr<std::vector<Capability>> caps = ListCapabilities(pf);
  EXPECT_EQ(caps.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(caps.status().message(), HasSubstr("config space is 64 bytes"));
  // The header is still readable.
  EXPECT_TRUE(ParseHeader(pf).ok());
}

TEST(ConfigSpaceTest, ListsExtendedCapabilities) {
  absl::StatusOr<std::vector<Capability>> caps =
      ListExtendedCapabilities(testing::SriovPfConfig());
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_THAT(Ids(*caps), ElementsAre(0x0001, 0x000e, 0x0010));
  EXPECT_THAT(Offsets(*caps), ElementsAre(0x100, 0x150, 0x160));
  EXPECT_EQ((*caps)[0].version, 2);
}

TEST(ConfigSpaceTest, ExtendedCapabilitiesNeedFullSpace) {
  std::vector<uint8_t> pf = testing::SriovPfConfig();
  pf.resize(256);
  absl::StatusOr<std::vector<Capability>> caps = ListExtendedCapabilities(pf);
  EXPECT_EQ(caps.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(caps.status().message(),
              HasSubstr("config space is 256 bytes; extended capabilities "
                        "need 4096"));
  pf.resize(64);
  EXPECT_THAT(ListExtendedCapabilities(pf).status().message(),
              HasSubstr("config space is 64 bytes; extended capabilities need "
                        "4096"));
}

TEST(ConfigSpaceTest, EmptyExtendedSpaceHasNoCapabilities) {
  std::vector<uint8_t> c(4096, 0);
  absl::StatusOr<std::vector<Capability>> caps = ListExtendedCapabilities(c);
  ASSERT_TRUE(caps.ok());
  EXPECT_TRUE(caps->empty());
  std::vector<uint8_t> ones(4096, 0xff);
  ASSERT_TRUE(ListExtendedCapabilities(ones).ok());
  EXPECT_TRUE(ListExtendedCapabilities(ones)->empty());
}

TEST(ConfigSpaceTest, ExtendedPointerBelow0x100IsDataLoss) {
  std::vector<uint8_t> c =
      ConfigBuilder(4096).ExtCap(0x100, 1, 1, 0x0a4).Build();
  absl::StatusOr<std::vector<Capability>> caps = ListExtendedCapabilities(c);
  EXPECT_EQ(caps.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(caps.status().message(),
              HasSubstr("extended capability at 0x100 points to 0x0a4 (below "
                        "0x100)"));
}

TEST(ConfigSpaceTest, MisalignedExtendedPointerIsDataLoss) {
  std::vector<uint8_t> c =
      ConfigBuilder(4096).ExtCap(0x100, 1, 1, 0x142).Build();
  EXPECT_THAT(ListExtendedCapabilities(c).status().message(),
              HasSubstr("points to 0x142 (not dword-aligned)"));
}

TEST(ConfigSpaceTest, LoopingExtendedListIsDataLoss) {
  std::vector<uint8_t> c = ConfigBuilder(4096)
                               .ExtCap(0x100, 1, 1, 0x140)
                               .ExtCap(0x140, 3, 1, 0x100)
                               .Build();
  absl::StatusOr<std::vector<Capability>> caps = ListExtendedCapabilities(c);
  EXPECT_EQ(caps.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(caps.status().message(),
              HasSubstr("extended capability list loops at 0x100"));
}

TEST(ConfigSpaceTest, DecodesSriovCapability) {
  absl::StatusOr<std::optional<SriovCapability>> s =
      FindSriov(testing::SriovPfConfig(2));
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->has_value());
  const SriovCapability& c = **s;
  EXPECT_EQ(c.offset, 0x160);
  EXPECT_EQ(c.initial_vfs, 8);
  EXPECT_EQ(c.total_vfs, 8);
  EXPECT_EQ(c.num_vfs, 2);
  EXPECT_EQ(c.first_vf_offset, 0x10);
  EXPECT_EQ(c.vf_stride, 1);
  EXPECT_EQ(c.vf_device_id, 0x154c);
  EXPECT_TRUE(c.vf_enable());
  EXPECT_TRUE(c.ari_capable_hierarchy());
  EXPECT_EQ(c.supported_page_sizes, 0x553u);
  EXPECT_THAT(c.vf_bar_raw, ElementsAre(0xd200000cu, 0x000038ffu, 0u,
                                        0xd220000cu, 0x000038ffu, 0u));
  absl::StatusOr<std::vector<Bar>> vf_bars = DecodeBars(c.vf_bar_raw);
  ASSERT_TRUE(vf_bars.ok());
  ASSERT_EQ(vf_bars->size(), 4u);  // BAR0 (64-bit), BAR2, BAR3 (64), BAR5
  EXPECT_EQ((*vf_bars)[0].address, 0x38ffd2000000u);
  EXPECT_EQ((*vf_bars)[2].index, 3);
}

TEST(ConfigSpaceTest, NoSriovCapability) {
  std::vector<uint8_t> c = ConfigBuilder(4096).ExtCap(0x100, 1, 2, 0).Build();
  absl::StatusOr<std::optional<SriovCapability>> s = FindSriov(c);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->has_value());
}

TEST(ConfigSpaceTest, SriovNumVfsAboveTotalIsDataLoss) {
  std::vector<uint8_t> pf = testing::SriovPfConfig();
  pf[0x160 + 0x10] = 9;
  absl::StatusOr<std::optional<SriovCapability>> s = FindSriov(pf);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.status().message(),
              HasSubstr("SR-IOV capability at 0x160: NumVFs 9 exceeds "
                        "TotalVFs 8"));
}

TEST(ConfigSpaceTest, SriovCapabilityPastEndIsDataLoss) {
  std::vector<uint8_t> c = ConfigBuilder(4096)
                               .ExtCap(0x100, 1, 2, 0xfe0)
                               .ExtCap(0xfe0, 0x10, 1, 0)
                               .Build();
  EXPECT_EQ(FindSriov(c).status().code(), absl::StatusCode::kDataLoss);
}

TEST(ConfigSpaceTest, DerivesVfAddresses) {
  const PciAddress pf = *ParsePciAddress("0000:3b:00.0");
  absl::StatusOr<std::vector<PciAddress>> vfs = VfAddresses(pf, 0x10, 1, 3);
  ASSERT_TRUE(vfs.ok()) << vfs.status();
  std::vector<std::string> text;
  for (const PciAddress& a : *vfs) text.push_back(a.ToString());
  EXPECT_THAT(text,
              ElementsAre("0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2"));
}

TEST(ConfigSpaceTest, DerivedVfsCrossDevicesAndBuses) {
  // PF 0000:3b:00.1, offset 0x7f, stride 2: VF0 at routing ID 0x3b80.
  const PciAddress pf = *ParsePciAddress("0000:3b:00.1");
  absl::StatusOr<std::vector<PciAddress>> vfs = VfAddresses(pf, 0x7f, 2, 2);
  ASSERT_TRUE(vfs.ok()) << vfs.status();
  EXPECT_EQ((*vfs)[0].ToString(), "0000:3b:10.0");
  EXPECT_EQ((*vfs)[1].ToString(), "0000:3b:10.2");
  // 0x3bff + 1 lands on the next bus.
  const PciAddress last = *ParsePciAddress("0000:3b:1f.7");
  EXPECT_EQ(VfAddresses(last, 1, 1, 1)->front().ToString(), "0000:3c:00.0");
}

TEST(ConfigSpaceTest, VfAddressErrors) {
  const PciAddress pf = *ParsePciAddress("0000:ff:00.0");
  EXPECT_EQ(VfAddresses(pf, 0x100, 1, 1).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(VfAddresses(pf, 0, 1, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VfAddresses(pf, 1, 0, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(VfAddresses(pf, 0, 0, 0).ok());
}

}  // namespace
}  // namespace fabric::agent::discovery
