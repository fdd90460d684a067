#include "agent/hw/testing/mock_bridge_hardware.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw {
namespace {

using ::testing::_;
using ::testing::Return;

TEST(MockBridgeHardwareTest, DefaultApplyStateProgramsOnlyWhatDiffers) {
  MockBridgeHardware hw;
  hw.DelegateApplyStateToDefault();
  BridgeState now;
  now.windows.push_back({SlotKind::kWindow, 0, 0x1000, 0x1000, 0x2000, "a"});
  now.windows.push_back({SlotKind::kLut, 3, 0x9000, 0x1000, 0x4000, "b"});
  BridgeState want = now;
  want.windows.pop_back();
  want.windows.push_back({SlotKind::kWindow, 1, 0x3000, 0x1000, 0x8000, "c"});
  want.ports.push_back({1, "peer", 2, true});

  EXPECT_CALL(hw, Read()).WillOnce(Return(now));
  EXPECT_CALL(hw, ClearWindow(SlotKind::kLut, 3))
      .WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(hw, SetWindow(want.windows[1]))
      .WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(hw, SetPort(want.ports[0])).WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(hw, SetHostMemory(_)).Times(0);
  EXPECT_CALL(hw, SetMapEntries(_)).Times(0);
  EXPECT_CALL(hw, SetInbound(_)).Times(0);
  EXPECT_TRUE(hw.ApplyState(want).ok());
}

TEST(MockBridgeHardwareTest, DefaultApplyStateStopsAtFirstError) {
  MockBridgeHardware hw;
  hw.DelegateApplyStateToDefault();
  BridgeState want;
  want.map.push_back({MapEntry::Kind::kForward, 0x1000, 0x1000, 1, 0});
  want.inbound.push_back({0x1000, 0x1000, "g"});
  EXPECT_CALL(hw, Read()).WillOnce(Return(BridgeState{}));
  EXPECT_CALL(hw, SetMapEntries(_))
      .WillOnce(Return(absl::UnimplementedError("no chip")));
  EXPECT_CALL(hw, SetInbound(_)).Times(0);
  EXPECT_EQ(hw.ApplyState(want).code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace fabric::agent::hw
