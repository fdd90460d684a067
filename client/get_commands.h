// fabricctl get and describe. `get KIND` streams: it asks for pages of
// FabricClient::Options::page_size (the server's largest by default) and
// prints each as it arrives (ListWriter), so the client holds one page,
// never the whole list, however many there are.
//
// Not thread-safe (writes to one stream).
#ifndef FABRIC_CLIENT_GET_COMMANDS_H_
#define FABRIC_CLIENT_GET_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/command_base.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::client {

enum class ResourceKind {
  kFabric,
  kNode,
  kBridge,
  kLink,
  kMap,
  kAllocation,
  kProfile,
  kVf,
  kAttachment,
  kManager
};

// Accepts plural and singular names ("nodes", "node"), "addressmaps" for
// maps, "virtualfunctions" for vfs, "att" for attachments and "managers"
// (the manager processes, not a fabric resource). Usage error
// listing the valid kinds otherwise.
absl::StatusOr<ResourceKind> ParseResourceKind(absl::string_view text);

// OK when `node` is empty or `kind` is listed by node (allocations, vfs,
// attachments); a usage error naming --node otherwise.
absl::Status CheckNodeFilter(ResourceKind kind, absl::string_view node);

class GetCommands : public CommandBase {
 public:
  using CommandBase::CommandBase;

  // get KIND [NAME]: one resource, or all of them, page by page, each page
  // printed as it arrives (CommandOptions::limit, when set, stops the list
  // after that many). `fabric` optionally filters lists by fabric id, `node`
  // (CheckNodeFilter) lists of allocations (the node borrows or lends), VFs
  // (the node's) and attachments (lent by or to the node). A list whose
  // first page fails prints nothing and returns the error as "list KIND:
  // ..."; one whose page N fails later keeps what it printed (a JSON array is
  // left open) and returns the error as "list KIND: page N failed after M
  // were printed: ..." with a hint that the output is incomplete.
  absl::Status Get(ResourceKind kind, const std::string& name,
                   const std::string& fabric, const std::string& node = "");

  // `get managers [ADDRESS]`: every manager, with its role, store and lease
  // (NOT_FOUND naming the known addresses when ADDRESS is not one).
  //
  // describe KIND NAME (fabric, node, bridge, allocation, link, vf,
  // attachment).
  absl::Status Describe(ResourceKind kind, const std::string& name);

 private:
  // PrintPages of a kind shown as table rows (TableHeaders, TableRow).
  template <typename M, typename PagesFn>
  absl::Status PrintTablePages(absl::string_view what, PagesFn pages);
};

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_GET_COMMANDS_H_
