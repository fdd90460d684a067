#include "client/get_commands.h"

#include <algorithm>
#include <utility>

#include "client/args.h"
#include "client/list_writer.h"
#include "google/protobuf/repeated_ptr_field.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::client {
namespace {

std::string FabricFilter(const std::string& fabric) {
  return fabric.empty() ? "" : Qualify("fabrics", fabric);
}

// "bridges/x/addressMap" from "x", "bridges/x" or the full name.
std::string MapName(absl::string_view name) {
  if (absl::EndsWith(name, "/addressMap")) return std::string(name);
  return absl::StrCat(Qualify("bridges", name), "/addressMap");
}

std::string Plural(absl::string_view kind) { return absl::StrCat(kind, "s"); }

std::string NodeFilter(const std::string& node) {
  return node.empty() ? "" : Qualify("nodes", node);
}

// Attaches `hint` to a NOT_FOUND status that has none yet.
absl::Status HintIfNotFound(absl::Status status, absl::string_view hint) {
  if (status.code() == absl::StatusCode::kNotFound &&
      StatusHint(status).empty()) {
    return WithHint(std::move(status), hint);
  }
  return status;
}

}  // namespace


absl::StatusOr<ResourceKind> ParseResourceKind(absl::string_view text) {
  static const std::pair<const char*, ResourceKind> kKinds[] = {
      {"fabric", ResourceKind::kFabric},
      {"node", ResourceKind::kNode},
      {"bridge", ResourceKind::kBridge},
      {"link", ResourceKind::kLink},
      {"map", ResourceKind::kMap},
      {"addressmap", ResourceKind::kMap},
      {"allocation", ResourceKind::kAllocation},
      {"alloc", ResourceKind::kAllocation},
      {"profile", ResourceKind::kProfile},
      {"vf", ResourceKind::kVf},
      {"virtualfunction", ResourceKind::kVf},
      {"attachment", ResourceKind::kAttachment},
      {"att", ResourceKind::kAttachment},
      {"manager", ResourceKind::kManager},
  };
  std::string t = absl::AsciiStrToLower(text);
  for (const auto& [name, kind] : kKinds) {
    if (t == name || t == Plural(name)) return kind;
  }
  return UsageError(
      absl::StrCat("unknown resource type \"", text,
                   "\"; use fabrics, nodes, bridges, links, maps, allocations, "
                   "profiles, vfs, attachments or managers"));
}

absl::Status CheckNodeFilter(ResourceKind kind, absl::string_view node) {
  if (node.empty() || kind == ResourceKind::kAllocation ||
      kind == ResourceKind::kVf || kind == ResourceKind::kAttachment) {
    return absl::OkStatus();
  }
  return UsageError(
      "--node: only allocations, vfs and attachments are listed by node");
}

template <typename M, typename PagesFn>
absl::Status GetCommands::PrintTablePages(absl::string_view what,
                                          PagesFn pages) {
  return PrintPages<M>(what, TableHeaders<M>(), std::move(pages),
                       [](ListWriter& writer, const M& item) {
                         writer.Add(item, TableRow(item));
                       });
}

absl::Status GetCommands::Get(ResourceKind kind, const std::string& name,
                           const std::string& fabric, const std::string& node) {
  RETURN_IF_ERROR(CheckNodeFilter(kind, node));
  const OutputFormat fmt = options_.format;
  const std::string filter = FabricFilter(fabric);
  auto one = [&](auto result, absl::string_view what,
                 auto print) -> absl::Status {
    RETURN_IF_ERROR(Annotate(result.status(), absl::StrCat("get ", what)));
    if (fmt == OutputFormat::kJson) {
      *out_ << ToJson(*result) << "\n";
    } else {
      print({*result}, fmt, *out_);
    }
    return absl::OkStatus();
  };

  switch (kind) {
    case ResourceKind::kFabric:
      if (!name.empty()) {
        std::string n = Qualify("fabrics", name);
        return one(client_->GetFabric(n), n, PrintFabrics);
      }
      return PrintTablePages<v1::Fabric>(
          "fabrics", [&](FabricClient::PageFn<v1::Fabric> on_page) {
            return client_->ListFabricPages(on_page);
          });
    case ResourceKind::kNode:
      if (!name.empty()) {
        std::string n = Qualify("nodes", name);
        return one(client_->GetNode(n), n, PrintNodes);
      }
      return PrintTablePages<v1::Node>(
          "nodes", [&](FabricClient::PageFn<v1::Node> on_page) {
            return client_->ListNodePages(filter, on_page);
          });
    case ResourceKind::kBridge:
      if (!name.empty()) {
        std::string n = Qualify("bridges", name);
        return one(client_->GetBridge(n), n, PrintBridges);
      }
      return PrintTablePages<v1::Bridge>(
          "bridges", [&](FabricClient::PageFn<v1::Bridge> on_page) {
            return client_->ListBridgePages(filter, on_page);
          });
    case ResourceKind::kLink:
      if (!name.empty()) {
        std::string n = Qualify("links", name);
        absl::StatusOr<v1::Link> link = client_->GetLink(n);
        // Links are named in declared order; accept either order.
        std::vector<std::string> ends =
            absl::StrSplit(Id("links", name), absl::MaxSplits("--", 1));
        if (link.status().code() == absl::StatusCode::kNotFound &&
            ends.size() == 2) {
          absl::StatusOr<v1::Link> reversed =
              client_->GetLink(absl::StrCat("links/", ends[1], "--", ends[0]));
          if (reversed.ok()) link = std::move(reversed);
        }
        return one(std::move(link), n, PrintLinks);
      }
      return PrintTablePages<v1::Link>(
          "links", [&](FabricClient::PageFn<v1::Link> on_page) {
            return client_->ListLinkPages(filter, on_page);
          });
    case ResourceKind::kAllocation:
      if (!name.empty()) {
        std::string n = Qualify("allocations", name);
        return one(client_->GetAllocation(n), n, PrintAllocations);
      } else {
        v1::ListAllocationsRequest req;
        req.set_fabric(filter);
        req.set_node(NodeFilter(node));
        return PrintTablePages<v1::Allocation>(
            "allocations", [&](FabricClient::PageFn<v1::Allocation> on_page) {
              return client_->ListAllocationPages(req, on_page);
            });
      }
    case ResourceKind::kProfile: {
      absl::StatusOr<std::vector<v1::HardwareProfile>> profiles =
          client_->ListProfiles();
      RETURN_IF_ERROR(Annotate(profiles.status(), "list profiles"));
      if (name.empty()) {
        PrintProfiles(*profiles, fmt, *out_);
        return absl::OkStatus();
      }
      std::string id = Id("profiles", name);
      for (const v1::HardwareProfile& p : *profiles) {
        if (p.name() == id) {
          if (fmt == OutputFormat::kJson) {
            *out_ << ToJson(p) << "\n";
          } else {
            PrintProfiles({p}, fmt, *out_);
          }
          return absl::OkStatus();
        }
      }
      std::vector<std::string> names;
      for (const v1::HardwareProfile& p : *profiles) names.push_back(p.name());
      return absl::NotFoundError(absl::StrCat(
          "get profile ", id,
          ": no such profile; known: ", absl::StrJoin(names, ", ")));
    }
    case ResourceKind::kManager: {
      absl::StatusOr<std::vector<v1::Manager>> managers =
          client_->ListManagers();
      RETURN_IF_ERROR(Annotate(managers.status(), "list managers"));
      if (name.empty()) {
        PrintManagers(*managers, fmt, *out_);
        return absl::OkStatus();
      }
      std::vector<std::string> known;
      for (const v1::Manager& m : *managers) {
        if (m.address() == name) {
          return one(absl::StatusOr<v1::Manager>(m), name, PrintManagers);
        }
        known.push_back(m.address());
      }
      return absl::NotFoundError(absl::StrCat("get manager ", name,
                                              ": no such manager; known: ",
                                              absl::StrJoin(known, ", ")));
    }
    case ResourceKind::kMap:
      if (!name.empty()) {
        std::string n = MapName(name);
        absl::StatusOr<v1::AddressMap> map = client_->GetAddressMap(n);
        RETURN_IF_ERROR(Annotate(map.status(), absl::StrCat("get ", n)));
        if (fmt == OutputFormat::kJson) {
          *out_ << ToJson(*map) << "\n";
        } else {
          PrintAddressMap(*map, *out_);
        }
        return absl::OkStatus();
      }
      return PrintPages<v1::AddressMap>(
          "address maps", {},
          [&](FabricClient::PageFn<v1::AddressMap> on_page) {
            return client_->ListAddressMapPages(filter, on_page);
          },
          [](ListWriter& writer, const v1::AddressMap& map) {
            writer.AddBlock(
                map, [&map](std::ostream& o) { PrintAddressMap(map, o); });
          });
    case ResourceKind::kVf:
      if (!name.empty()) {
        // The server accepts both name forms; passed on as given.
        return HintIfNotFound(
            one(client_->GetVirtualFunction(name), absl::StrCat("vf ", name),
                PrintVirtualFunctions),
            kVfListHint);
      } else {
        v1::ListVirtualFunctionsRequest req;
        req.set_fabric(filter);
        req.set_node(NodeFilter(node));
        return PrintTablePages<v1::VirtualFunction>(
            "vfs", [&](FabricClient::PageFn<v1::VirtualFunction> on_page) {
              return client_->ListVirtualFunctionPages(req, on_page);
            });
      }
    case ResourceKind::kAttachment:
      if (!name.empty()) {
        std::string n = Qualify("attachments", name);
        return HintIfNotFound(
            one(client_->GetAttachment(n), n, PrintAttachments),
            kAttachmentListHint);
      } else {
        v1::ListAttachmentsRequest req;
        req.set_fabric(filter);
        req.set_node(NodeFilter(node));
        return PrintTablePages<v1::Attachment>(
            "attachments", [&](FabricClient::PageFn<v1::Attachment> on_page) {
              return client_->ListAttachmentPages(req, on_page);
            });
      }
  }
  return absl::InternalError("unhandled resource kind");
}

absl::Status GetCommands::Describe(ResourceKind kind, const std::string& name) {
  const bool json = options_.format == OutputFormat::kJson;
  auto show = [&](auto result, const std::string& n,
                  auto describe) -> absl::Status {
    RETURN_IF_ERROR(Annotate(result.status(), absl::StrCat("describe ", n)));
    if (json) {
      *out_ << ToJson(*result) << "\n";
    } else {
      describe(*result, *out_);
    }
    return absl::OkStatus();
  };
  switch (kind) {
    case ResourceKind::kFabric: {
      std::string n = Qualify("fabrics", name);
      return show(client_->GetFabric(n), n, DescribeFabric);
    }
    case ResourceKind::kNode: {
      std::string n = Qualify("nodes", name);
      return show(client_->GetNode(n), n, DescribeNode);
    }
    case ResourceKind::kBridge: {
      std::string n = Qualify("bridges", name);
      return show(client_->GetBridge(n), n, DescribeBridge);
    }
    case ResourceKind::kAllocation: {
      std::string n = Qualify("allocations", name);
      return show(client_->GetAllocation(n), n, DescribeAllocation);
    }
    case ResourceKind::kVf:
      return HintIfNotFound(
          show(client_->GetVirtualFunction(name), absl::StrCat("vf ", name),
               DescribeVirtualFunction),
          kVfListHint);
    case ResourceKind::kAttachment: {
      std::string n = Qualify("attachments", name);
      return HintIfNotFound(
          show(client_->GetAttachment(n), n, DescribeAttachment),
          kAttachmentListHint);
    }
    case ResourceKind::kLink:
    case ResourceKind::kMap:
    case ResourceKind::kProfile:
    case ResourceKind::kManager:
      // Their `get` view is already complete.
      return Get(kind, name, "");
  }
  return absl::InternalError("unhandled resource kind");
}

}  // namespace fabric::client
