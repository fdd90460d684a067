// What a node's desired configuration asks of its bridge, as bytes and as
// a digest. The manager and the agent compute them alike, so that an agent
// can attest to what its node holds (RegisterNodeRequest and
// ReportStatusRequest's held_config_digest) and the manager can tell,
// without a round of applies, that the node already holds what the
// current generation wants (after the agent reconnects, or after a
// manager takeover).
//
// Pure functions; thread-compatible.
#ifndef FABRIC_COMMON_CONFIG_DIGEST_H_
#define FABRIC_COMMON_CONFIG_DIGEST_H_

#include <string>

#include "absl/strings/string_view.h"
#include "fabric/agentproto/v1/agent_service.pb.h"

namespace fabric {

// `config` serialized without its generation numbers (its own and its
// address map's): two generations that ask the same of the node serialize
// equally (DesiredConfig has no map fields, so serialization is
// deterministic for one schema). Leaves `config` as it was.
std::string ConfigContent(agentproto::v1::DesiredConfig* config);

// The SHA-256 of ConfigContent (32 bytes). Builds of different schemas may
// disagree on equal configurations; a mismatch only costs a round of
// applies, never a false match.
std::string ConfigDigest(const agentproto::v1::DesiredConfig& config);
// The SHA-256 of `content` (a ConfigContent).
std::string ContentDigest(absl::string_view content);

}  // namespace fabric

#endif  // FABRIC_COMMON_CONFIG_DIGEST_H_
