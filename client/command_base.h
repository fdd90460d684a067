// What every fabricctl command unit shares: the client, the output stream,
// the options, and the helpers that shape their messages.
//
// Not thread-safe (writes to one stream); use one command object per thread.
#ifndef FABRIC_CLIENT_COMMAND_BASE_H_
#define FABRIC_CLIENT_COMMAND_BASE_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/args.h"
#include "client/fabric_client.h"
#include "client/output.h"
#include "google/protobuf/message.h"

namespace fabric::client {

struct CommandOptions {
  OutputFormat format = OutputFormat::kTable;
  // How often `alloc --wait` polls the allocation.
  absl::Duration poll_interval = absl::Milliseconds(250);
  // `get KIND` lists at most this many (0: all of them).
  int64_t limit = 0;
};

// The base of the command units (FabricCommands, GetCommands, ...).
class CommandBase {
 public:
  // `client` and `out` are not owned and must outlive this object.
  CommandBase(FabricClient* client, std::ostream* out,
              const CommandOptions& options)
      : client_(client), out_(out), options_(options) {}

 protected:
  // Prints `message` as JSON in kJson mode, otherwise `line`.
  void Report(const google::protobuf::Message& message,
              const std::string& line);

  FabricClient* const client_;
  std::ostream* const out_;
  const CommandOptions options_;
};

// Prefixes the message with what was being done; keeps code and payloads.
absl::Status Annotate(const absl::Status& status, absl::string_view what);

// Strips an optional "{collection}/" prefix.
std::string Id(absl::string_view collection, absl::string_view name);

inline constexpr char kVfListHint[] =
    "'fabricctl get vfs' lists the VFs the agents report";
inline constexpr char kAttachmentListHint[] =
    "'fabricctl get attachments' lists the attachments";

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_COMMAND_BASE_H_
