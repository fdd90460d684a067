// A gMock SriovFunctions for tests of code that drives a host's SR-IOV
// functions (the VF lender). Test-only; header-only (target
// fabric_hw_sriov_mock).
//
//   MockSriovFunctions fns;
//   EXPECT_CALL(fns, ConfigWrite(_, 0x04, 2, _)).Times(0);
//
// WriteMsixEntry is mocked too; DelegateWriteMsixEntryToDefault() makes it
// run the base class's version (ConfigSpace, then one BarWrite), so
// expectations can be put on those calls.
#ifndef FABRIC_AGENT_HW_TESTING_MOCK_SRIOV_FUNCTIONS_H_
#define FABRIC_AGENT_HW_TESTING_MOCK_SRIOV_FUNCTIONS_H_

#include <cstdint>
#include <vector>

#include "agent/hw/sriov_functions.h"
#include "gmock/gmock.h"

namespace fabric::agent::hw {

class MockSriovFunctions : public SriovFunctions {
 public:
  MOCK_METHOD(absl::StatusOr<v1::NodeInventory>, Inventory, (), (override));
  MOCK_METHOD(absl::StatusOr<uint32_t>, ConfigRead,
              (const discovery::PciAddress& bdf, uint16_t offset, int size),
              (override));
  MOCK_METHOD(absl::Status, ConfigWrite,
              (const discovery::PciAddress& bdf, uint16_t offset, int size,
               uint32_t value),
              (override));
  MOCK_METHOD(absl::StatusOr<std::vector<uint8_t>>, ConfigSpace,
              (const discovery::PciAddress& bdf), (override));
  MOCK_METHOD(absl::Status, BarRead,
              (const discovery::PciAddress& bdf, int bar, uint64_t offset,
               absl::Span<uint8_t> out),
              (override));
  MOCK_METHOD(absl::Status, BarWrite,
              (const discovery::PciAddress& bdf, int bar, uint64_t offset,
               absl::Span<const uint8_t> data),
              (override));
  MOCK_METHOD(absl::Status, WriteMsixEntry,
              (const discovery::PciAddress& bdf, int vector,
               const vf::MsixEntry& entry),
              (override));
  MOCK_METHOD(absl::StatusOr<int>, NumVfs, (const discovery::PciAddress& pf),
              (override));
  MOCK_METHOD(absl::Status, SetNumVfs,
              (const discovery::PciAddress& pf, int n), (override));
  MOCK_METHOD(absl::Status, ResetFunction, (const discovery::PciAddress& bdf),
              (override));
  MOCK_METHOD(absl::StatusOr<AccessResult>, Dma,
              (const discovery::PciAddress& bdf, uint64_t io_addr,
               absl::Span<const uint8_t> data),
              (override));
  MOCK_METHOD(absl::StatusOr<MsixResult>, RaiseMsix,
              (const discovery::PciAddress& bdf, int vector), (override));
  MOCK_METHOD(absl::StatusOr<FunctionHealth>, Health,
              (const discovery::PciAddress& bdf), (override));

  // Makes WriteMsixEntry run SriovFunctions::WriteMsixEntry.
  void DelegateWriteMsixEntryToDefault() {
    ON_CALL(*this, WriteMsixEntry)
        .WillByDefault([this](const discovery::PciAddress& bdf, int vector,
                              const vf::MsixEntry& entry) {
          return SriovFunctions::WriteMsixEntry(bdf, vector, entry);
        });
  }
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_TESTING_MOCK_SRIOV_FUNCTIONS_H_
