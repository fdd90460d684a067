// What every fabricctl command unit shares: the client, the output stream,
// the options, and the helpers that shape their messages.
//
// Not thread-safe (writes to one stream); use one command object per thread.
#ifndef FABRIC_CLIENT_COMMAND_BASE_H_
#define FABRIC_CLIENT_COMMAND_BASE_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/args.h"
#include "client/fabric_client.h"
#include "client/list_writer.h"
#include "client/output.h"
#include "google/protobuf/message.h"
#include "google/protobuf/repeated_ptr_field.h"

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

  // Lists with `pages`, a FabricClient::*Pages call given the page
  // callback, handing each item to add(writer, item) and ending each page
  // as it arrives; at most options_.limit items (0: all). A list whose
  // first page fails prints nothing and returns the error as "list WHAT:
  // ..."; one whose page N fails later keeps what it printed (a JSON array
  // is left open) and returns "list WHAT: page N failed after M were
  // printed: ..." with a hint that the output is incomplete.
  template <typename M, typename PagesFn, typename AddFn>
  absl::Status PrintPages(absl::string_view what,
                          std::vector<std::string> headers, PagesFn pages,
                          AddFn add);

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

template <typename M, typename PagesFn, typename AddFn>
absl::Status CommandBase::PrintPages(absl::string_view what,
                                     std::vector<std::string> headers,
                                     PagesFn pages, AddFn add) {
  ListWriter writer(options_.format, std::move(headers), out_);
  const int64_t limit = options_.limit;
  int64_t pages_done = 0;
  absl::Status status =
      pages([&](const google::protobuf::RepeatedPtrField<M>& page) {
        ++pages_done;
        for (const M& item : page) {
          if (limit > 0 && writer.count() >= limit) break;
          add(writer, item);
        }
        writer.EndPage();
        return limit <= 0 || writer.count() < limit;
      });
  if (status.ok()) {
    writer.Finish();
    return absl::OkStatus();
  }
  if (pages_done == 0) return Annotate(status, absl::StrCat("list ", what));
  return WithHint(
      Annotate(status, absl::StrCat("list ", what, ": page ", pages_done + 1,
                                    " failed after ", writer.count(),
                                    " were printed")),
      absl::StrCat("the ", what,
                   " printed are only the first ones; run the command again "
                   "for the whole list"));
}

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_COMMAND_BASE_H_
