// CDI spec files (Container Device Interface, spec 0.6.0) for the devices the
// plugin hands to pods: one file per device, in the CDI directory the
// container runtime reads (--cdi-dir, /var/run/cdi by default).
//
//   <cdi-dir>/pciefabric.dev-<class>-<device id>.json
//   {"cdiVersion": "0.6.0", "kind": "pciefabric.dev/<class>",
//    "devices": [{"name": "<device id>",
//                 "annotations": {"pciefabric.dev/claim": "attachments/7",
//                                 "pciefabric.dev/epoch": "12"},
//                 "containerEdits": {"env": ["K=V", ...]}}]}
//
// The class is "vf" or "memory"; the fully-qualified device name the
// kubelet passes on is "pciefabric.dev/<class>=<device id>". A VF's edits
// are env only: the shadow device the borrower's agent builds has no device
// node on the host to give (its config space is served by the agent), so
// there is no deviceNodes entry. The annotations name the fabric claim
// behind the device, which lets a restarted plugin map its claims back to
// device ids (device_plugin/claimer_impl.h).
//
// Not thread-safe per file: the Claimer serializes writes of one device.
#ifndef FABRIC_DEVICE_PLUGIN_CDI_SPEC_H_
#define FABRIC_DEVICE_PLUGIN_CDI_SPEC_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric::device_plugin {

inline constexpr absl::string_view kCdiVersion = "0.6.0";
inline constexpr absl::string_view kVfClass = "vf";
inline constexpr absl::string_view kMemoryClass = "memory";
// The device annotations the plugin writes.
inline constexpr absl::string_view kClaimAnnotation = "pciefabric.dev/claim";
inline constexpr absl::string_view kEpochAnnotation = "pciefabric.dev/epoch";

// One device's spec.
struct CdiDevice {
  std::string device_class;  // kVfClass or kMemoryClass
  std::string device_id;     // the offer id
  // The fabric claim: "attachments/..." or "allocations/...".
  std::string claim;
  int64_t epoch = 0;
  // containerEdits.env, in order.
  std::vector<std::pair<std::string, std::string>> env;
};

// "pciefabric.dev/<class>".
std::string CdiKind(absl::string_view device_class);
// "pciefabric.dev/<class>=<device id>".
std::string CdiDeviceName(absl::string_view device_class,
                          absl::string_view device_id);
// "<dir>/pciefabric.dev-<class>-<device id>.json".
std::string CdiSpecPath(absl::string_view dir, absl::string_view device_class,
                        absl::string_view device_id);

// The spec's JSON text (see the file comment).
std::string CdiSpecJson(const CdiDevice& device);
// Parses a spec this unit wrote. INVALID_ARGUMENT naming `path` when it is
// not JSON or lacks a field of ours.
absl::StatusOr<CdiDevice> ParseCdiSpec(absl::string_view path,
                                       absl::string_view json);

// Writes `device`'s spec atomically: a temporary file in `dir`, fsync,
// rename over the spec's path, fsync of `dir`. A reader sees the old file or
// the whole new one, never part of one. Creates `dir` if absent. Errors name
// the path (from errno: NOT_FOUND, PERMISSION_DENIED, INTERNAL).
absl::Status WriteCdiSpec(absl::string_view dir, const CdiDevice& device);
// Removes the spec of (class, id); OK when there is none.
absl::Status RemoveCdiSpec(absl::string_view dir,
                           absl::string_view device_class,
                           absl::string_view device_id);

// The specs of ours in `dir` (files named "pciefabric.dev-*.json"), parsed;
// a file that does not parse is returned with only its class and id (from
// its name) and `claim` empty. An absent `dir` has none.
absl::StatusOr<std::vector<CdiDevice>> ListCdiSpecs(absl::string_view dir);

}  // namespace fabric::device_plugin

#endif  // FABRIC_DEVICE_PLUGIN_CDI_SPEC_H_
