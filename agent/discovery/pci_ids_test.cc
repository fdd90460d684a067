#include "agent/discovery/pci_ids.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::discovery {
namespace {

using Confidence = NtbMatch::Confidence;

TEST(PciIdsTest, KnownIntelNtb) {
  NtbMatch m = LookupNtb(0x8086, 0x201c, 0x068000);
  EXPECT_EQ(m.confidence, Confidence::kKnown);
  EXPECT_EQ(m.description, "Intel Xeon NTB (Skylake)");
  EXPECT_TRUE(LookupNtb(0x8086, 0x0e0d, 0x068000).is_ntb());
  EXPECT_TRUE(LookupNtb(0x8086, 0x347e, 0x068000).is_ntb());
  EXPECT_EQ(LookupNtb(0x8086, 0x6f0d, 0x068000).description,
            "Intel Xeon NTB B2B (Broadwell)");
}

TEST(PciIdsTest, KnownAmdNtb) {
  EXPECT_EQ(LookupNtb(0x1022, 0x145b, 0x068000).confidence, Confidence::kKnown);
  EXPECT_THAT(LookupNtb(0x1022, 0x148b, 0x068000).description,
              ::testing::StartsWith("AMD NTB"));
}

TEST(PciIdsTest, IdtNeedsBridgeOtherClass) {
  EXPECT_EQ(LookupNtb(0x111d, 0x8091, 0x068000).confidence, Confidence::kKnown);
  // The same ID on a switch port (PCI-to-PCI bridge) is not an NTB.
  EXPECT_EQ(LookupNtb(0x111d, 0x8091, 0x060400).confidence, Confidence::kNone);
}

TEST(PciIdsTest, SwitchtecNtbIsTheBridgeOtherEndpoint) {
  NtbMatch ntb = LookupNtb(0x11f8, 0x8531, 0x068000);
  EXPECT_EQ(ntb.confidence, Confidence::kKnown);
  EXPECT_EQ(ntb.description, "Microchip Switchtec NTB");
  // The management-only endpoint (class 0580) is not an NTB.
  EXPECT_FALSE(LookupNtb(0x11f8, 0x8531, 0x058000).is_ntb());
}

TEST(PciIdsTest, PlxNtPorts) {
  EXPECT_TRUE(LookupNtb(0x10b5, 0x87b0, 0x068000).is_ntb());
  EXPECT_FALSE(LookupNtb(0x10b5, 0x8796, 0x060400).is_ntb());
}

TEST(PciIdsTest, BridgeOtherClassIsPossibleNtb) {
  NtbMatch m = LookupNtb(0x1234, 0x5678, 0x068000);
  EXPECT_EQ(m.confidence, Confidence::kClassOnly);
  EXPECT_EQ(m.description, "possible NTB (class 0680, 1234:5678)");
}

TEST(PciIdsTest, OrdinaryDeviceIsUnknown) {
  NtbMatch m = LookupNtb(0x8086, 0x1572, 0x020000);
  EXPECT_FALSE(m.is_ntb());
  EXPECT_EQ(m.description, "unknown");
}

}  // namespace
}  // namespace fabric::agent::discovery
