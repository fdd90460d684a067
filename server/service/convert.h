// Conversions between the core model (server/core) and API messages.
#ifndef FABRIC_SERVER_SERVICE_CONVERT_H_
#define FABRIC_SERVER_SERVICE_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/profiles.h"
#include "fabric/v1/resources.pb.h"
#include "server/core/fabric_state.h"
#include "server/core/topology.h"

namespace fabric::service {

// INVALID_ARGUMENT when the topology is unspecified.
absl::StatusOr<core::FabricSpec> SpecFromProto(const v1::FabricSpec& spec);

v1::HardwareProfile ProfileToProto(const core::HardwareProfile& p);
v1::SlotKind SlotKindToProto(core::SlotKind k);
core::SlotKind SlotKindFromProto(v1::SlotKind k);

// "n3" or "n3..n7": the nodes whose apertures [base, base+size) covers.
std::string CoveredNodes(const core::Topology& topo, uint64_t base,
                         uint64_t size);

// Resource names.
inline std::string FabricName(absl::string_view id) {
  return absl::StrCat("fabrics/", id);
}
inline std::string NodeName(absl::string_view id) {
  return absl::StrCat("nodes/", id);
}
inline std::string BridgeName(absl::string_view id) {
  return absl::StrCat("bridges/", id);
}
inline std::string LinkName(absl::string_view id) {
  return absl::StrCat("links/", id);
}
inline std::string AllocationName(absl::string_view id) {
  return absl::StrCat("allocations/", id);
}

// The longest id a name may carry: longer than any id the manager mints
// or a fabric spec accepts, and short enough to echo in errors.
inline constexpr size_t kMaxNameLength = 253;

// Accepts "{collection}/{id}" or a bare "{id}" and returns the id.
// INVALID_ARGUMENT naming `field` when empty, longer than kMaxNameLength,
// or of another collection.
absl::StatusOr<std::string> ParseName(absl::string_view field,
                                      absl::string_view name,
                                      absl::string_view collection);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_CONVERT_H_
