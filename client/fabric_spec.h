// Fabric specs for fabricctl: read from a file (apply -f), built from flags
// (create ring|star), and compared with the defaults filled in.
//
// Thread-safe (no state).
#ifndef FABRIC_CLIENT_FABRIC_SPEC_H_
#define FABRIC_CLIENT_FABRIC_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::client {

namespace v1 = ::fabric::v1;

// Parses a FabricSpec in protobuf JSON (unknown fields are errors). Errors
// are INVALID_ARGUMENT usage errors naming `source` and, when the parser
// reports a position, its line and column.
absl::StatusOr<v1::FabricSpec> ParseFabricSpec(absl::string_view json,
                                               absl::string_view source);
// Reads `path` (the value of apply's -f) and parses it as above. A path
// that cannot be read is a usage error naming -f, the path and why:
// "-f X: no such file", "-f X: is a directory", "-f X: permission denied".
absl::StatusOr<v1::FabricSpec> ReadFabricSpecFile(const std::string& path);

// A RING fabric spec over `nodes` in ring order. `profile` and
// `export_size` (0 = server default) become the fabric's defaults.
v1::FabricSpec RingSpec(const std::string& name,
                        const std::vector<std::string>& nodes,
                        const std::string& profile, uint64_t export_size);
// A STAR fabric spec: `hub` first, then `nodes` (a repeated hub is dropped).
v1::FabricSpec StarSpec(const std::string& name, const std::string& hub,
                        const std::vector<std::string>& nodes,
                        const std::string& profile, uint64_t export_size);

// True when the specs describe the same fabric once the defaults documented
// in fabric.proto are filled in on both sides (empty profile = the fabric's
// default_profile = "sim", export_size 0 = default_export_size = 1 GiB,
// export_base 0 = 0x1_0000_0000, window_base 0 = 0x200_0000_0000).
bool SameFabricSpec(const v1::FabricSpec& a, const v1::FabricSpec& b);

// `spec` with the defaults fabric.proto documents filled in (see
// SameFabricSpec), so that a spec a user wrote compares equal to the one the
// server stores.
v1::FabricSpec CanonicalFabricSpec(v1::FabricSpec spec);

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_FABRIC_SPEC_H_
