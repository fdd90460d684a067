#include "client/fabric_commands.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/fabric_spec.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "google/protobuf/util/message_differencer.h"

namespace fabric::client {
namespace {

// Hints at what to inspect when CreateFabric was refused with
// ALREADY_EXISTS. A fabric named `spec`'s name exists: that fabric. It
// does not: one of `spec`'s nodes belongs to another fabric, which GetNode
// names (rather than parsing the manager's message).
absl::Status HintFabricExists(FabricClient& client, absl::Status status,
                              const v1::FabricSpec& spec) {
  if (client.GetFabric(Qualify("fabrics", spec.name())).ok()) {
    return WithHint(std::move(status),
                    absl::StrCat("'fabricctl describe fabric ", spec.name(),
                                 "' shows it; 'fabricctl delete fabric ",
                                 spec.name(), "' removes it"));
  }
  for (const v1::NodeSpec& n : spec.nodes()) {
    absl::StatusOr<v1::Node> node = client.GetNode(Qualify("nodes", n.name()));
    if (node.ok()) {
      const std::string fabric = Id("fabrics", node->fabric());
      return WithHint(
          std::move(status),
          absl::StrCat("node ", n.name(), " belongs to fabric ", fabric,
                       ": 'fabricctl describe fabric ", fabric,
                       "' shows it; node names are unique across fabrics"));
    }
    if (node.status().code() != absl::StatusCode::kNotFound) break;
  }
  return WithHint(std::move(status),
                  "'fabricctl get nodes' shows the fabric of every node");
}

}  // namespace


absl::Status FabricCommands::CreateFabric(const v1::FabricSpec& spec) {
  v1::CreateFabricRequest req;
  *req.mutable_spec() = spec;
  req.set_request_id(NewRequestId());
  std::string what = absl::StrCat("create fabric/", spec.name());
  absl::StatusOr<v1::Fabric> fabric = client_->CreateFabric(req);
  if (fabric.status().code() == absl::StatusCode::kAlreadyExists) {
    return HintFabricExists(*client_, Annotate(fabric.status(), what), spec);
  }
  RETURN_IF_ERROR(Annotate(fabric.status(), what));
  Report(*fabric,
         absl::StrCat("fabric/", spec.name(), " created (",
                      fabric->node_count(), " nodes, ", fabric->link_count(),
                      " links, generation ", fabric->generation(), ")"));
  return absl::OkStatus();
}

absl::Status FabricCommands::Apply(const std::string& path) {
  ASSIGN_OR_RETURN(v1::FabricSpec spec, ReadFabricSpecFile(path));
  v1::CreateFabricRequest req;
  *req.mutable_spec() = spec;
  req.set_request_id(NewRequestId());
  std::string what =
      absl::StrCat("apply ", path, " (fabric/", spec.name(), ")");
  absl::StatusOr<v1::Fabric> created = client_->CreateFabric(req);
  if (created.ok()) {
    Report(*created, absl::StrCat("fabric/", spec.name(), " created"));
    return absl::OkStatus();
  }
  if (created.status().code() != absl::StatusCode::kAlreadyExists) {
    return Annotate(created.status(), what);
  }
  absl::StatusOr<v1::Fabric> existing =
      client_->GetFabric(Qualify("fabrics", spec.name()));
  if (existing.status().code() == absl::StatusCode::kNotFound) {
    // Not this fabric that exists: one of its nodes is in another.
    return HintFabricExists(*client_, Annotate(created.status(), what), spec);
  }
  RETURN_IF_ERROR(Annotate(existing.status(), what));
  if (SameFabricSpec(spec, existing->spec())) {
    Report(*existing, absl::StrCat("fabric/", spec.name(), " unchanged"));
    return absl::OkStatus();
  }
  std::string diff;
  google::protobuf::util::MessageDifferencer differ;
  differ.ReportDifferencesToString(&diff);
  differ.Compare(CanonicalFabricSpec(existing->spec()), CanonicalFabricSpec(spec));
  while (!diff.empty() && diff.back() == '\n') diff.pop_back();
  return WithHint(
      absl::FailedPreconditionError(absl::StrCat(
          what,
          ": the fabric exists with a different spec, and changing a live "
          "fabric is not supported yet; differences (live -> file):\n  ",
          absl::StrJoin(absl::StrSplit(diff, '\n'), "\n  "))),
      absl::StrCat("'fabricctl delete fabric ", spec.name(),
                   "' (with --force if it has allocations), then apply again"));
}

absl::Status FabricCommands::SetLink(const std::string& a, const std::string& b,
                               bool up) {
  const std::string an = Id("bridges", Id("nodes", a));
  const std::string bn = Id("bridges", Id("nodes", b));
  v1::SetLinkStateRequest req;
  req.set_name(absl::StrCat("links/", an, "--", bn));
  req.set_up(up);
  req.set_request_id(NewRequestId());
  const std::string what =
      absl::StrCat("link ", up ? "up " : "down ", an, " ", bn);
  absl::StatusOr<v1::Link> link = client_->SetLinkState(req);
  if (link.status().code() == absl::StatusCode::kNotFound) {
    // The server names a link by its declared order.
    req.set_name(absl::StrCat("links/", bn, "--", an));
    absl::StatusOr<v1::Link> reversed = client_->SetLinkState(req);
    if (reversed.status().code() != absl::StatusCode::kNotFound) {
      link = std::move(reversed);
    } else {
      return WithHint(Annotate(absl::NotFoundError(absl::StrCat(
                                   "no link between ", an, " and ", bn, " (",
                                   link.status().message(), ")")),
                               what),
                      "'fabricctl get links' lists the links");
    }
  }
  RETURN_IF_ERROR(Annotate(link.status(), what));
  Report(*link, absl::StrCat("link/", ShortName(link->name()), " ",
                             link->up() ? "up" : "down", " (",
                             ShortName(link->a_bridge()), ":", link->a_port(),
                             " <-> ", ShortName(link->b_bridge()), ":",
                             link->b_port(), "); address maps recomputed",
                             up ? "; routes through it are restored"
                                : "; allocations across it are rerouted, or "
                                  "DEGRADED where no path is left"));
  return absl::OkStatus();
}

absl::Status FabricCommands::DeleteFabric(const std::string& name, bool force) {
  v1::DeleteFabricRequest req;
  req.set_name(Qualify("fabrics", name));
  req.set_force(force);
  req.set_request_id(NewRequestId());
  absl::StatusOr<v1::Fabric> fabric = client_->DeleteFabric(req);
  absl::Status status =
      Annotate(fabric.status(), absl::StrCat("delete ", req.name()));
  if (status.code() == absl::StatusCode::kFailedPrecondition && !force) {
    return WithHint(status, "--force releases its allocations first");
  }
  RETURN_IF_ERROR(status);
  Report(*fabric, absl::StrCat("fabric/", Id("fabrics", name), " deleted"));
  return absl::OkStatus();
}

}  // namespace fabric::client
