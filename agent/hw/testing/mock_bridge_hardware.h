// A gMock BridgeHardware for tests of code that drives the hardware (the
// agent's reconcile loop). Test-only; header-only (target fabric_hw_mock).
//
//   MockBridgeHardware hw;
//   EXPECT_CALL(hw, SetWindow(_)).WillOnce(Return(absl::OkStatus()));
//
// limits() returns limits_, which a test may set directly. ApplyState is
// mocked too; DelegateApplyStateToDefault() makes it run the base class's
// Set*/Clear* sequence instead, so expectations can be put on those calls.
#ifndef FABRIC_AGENT_HW_TESTING_MOCK_BRIDGE_HARDWARE_H_
#define FABRIC_AGENT_HW_TESTING_MOCK_BRIDGE_HARDWARE_H_

#include <string>
#include <vector>

#include "agent/hw/bridge_hardware.h"
#include "gmock/gmock.h"

namespace fabric::agent::hw {

class MockBridgeHardware : public BridgeHardware {
 public:
  const HardwareLimits& limits() const override { return limits_; }

  MOCK_METHOD(absl::StatusOr<BridgeState>, Read, (), (override));
  MOCK_METHOD(absl::Status, SetHostMemory, (const HostMemory& memory),
              (override));
  MOCK_METHOD(absl::Status, SetMapEntries,
              (const std::vector<MapEntry>& entries), (override));
  MOCK_METHOD(absl::Status, SetWindow, (const Window& window), (override));
  MOCK_METHOD(absl::Status, ClearWindow, (SlotKind kind, int slot), (override));
  MOCK_METHOD(absl::Status, SetInbound, (const std::vector<Inbound>& inbound),
              (override));
  MOCK_METHOD(absl::Status, SetPort, (const Port& port), (override));
  MOCK_METHOD(absl::Status, ApplyState, (const BridgeState& desired),
              (override));
  MOCK_METHOD(absl::Status, RingPeerDoorbell,
              (const std::string& peer_bridge, uint64_t bits), (override));
  MOCK_METHOD(absl::Status, WriteScratchpad, (int index, uint32_t value),
              (override));
  MOCK_METHOD(absl::StatusOr<AccessResult>, HostWrite,
              (uint64_t addr, absl::Span<const uint8_t> data), (override));
  MOCK_METHOD(absl::Status, HostRead, (uint64_t addr, absl::Span<uint8_t> out),
              (override));

  // Makes ApplyState run BridgeHardware::ApplyState (the Set* sequence).
  void DelegateApplyStateToDefault() {
    ON_CALL(*this, ApplyState).WillByDefault([this](const BridgeState& s) {
      return BridgeHardware::ApplyState(s);
    });
  }

  HardwareLimits limits_;
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_TESTING_MOCK_BRIDGE_HARDWARE_H_
