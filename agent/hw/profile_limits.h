// The hardware limits a shipped profile (common/profiles.h) stands for,
// for building simulated bridges and for the Linux backend's defaults.
#ifndef FABRIC_AGENT_HW_PROFILE_LIMITS_H_
#define FABRIC_AGENT_HW_PROFILE_LIMITS_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/hw/bridge_hardware.h"
#include "common/profiles.h"

namespace fabric::agent::hw {

HardwareLimits LimitsFromProfile(const core::HardwareProfile& profile);

// INVALID_ARGUMENT naming `field` and the known profiles when unknown.
absl::StatusOr<HardwareLimits> LimitsForProfile(absl::string_view field,
                                                absl::string_view name);

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_PROFILE_LIMITS_H_
