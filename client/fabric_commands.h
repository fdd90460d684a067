// fabricctl's fabric commands: create ring|star, apply -f, link up|down and
// delete fabric. Messages say what was being done and what the server
// answered, with a hint where one helps (see commands.h).
//
// Not thread-safe (writes to one stream).
#ifndef FABRIC_CLIENT_FABRIC_COMMANDS_H_
#define FABRIC_CLIENT_FABRIC_COMMANDS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/command_base.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::client {

class FabricCommands : public CommandBase {
 public:
  using CommandBase::CommandBase;

  // create ring / create star: CreateFabric; prints "fabric/x created".
  // ALREADY_EXISTS hints at the fabric that has the name or, when none has
  // it, at the fabric that holds one of the spec's nodes.
  absl::Status CreateFabric(const v1::FabricSpec& spec);

  // apply -f: creates the fabric in `path`. When it exists with the same
  // spec (SameFabricSpec), prints "fabric/x unchanged" and succeeds; with a
  // different spec, FAILED_PRECONDITION (changing a live fabric is not
  // supported yet). When a node of the spec belongs to another fabric,
  // ALREADY_EXISTS with CreateFabric's hint.
  absl::Status Apply(const std::string& path);

  // link up|down A B: SetLinkState on links/A--B, or links/B--A when the
  // first is NOT_FOUND.
  absl::Status SetLink(const std::string& a, const std::string& b, bool up);

  // delete fabric NAME [--force].
  absl::Status DeleteFabric(const std::string& name, bool force);

};

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_FABRIC_COMMANDS_H_
