#include "client/commands.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"

namespace fabric::client {
namespace {

constexpr char kUsagePayload[] = "type.fabricctl/usage";
constexpr char kHintPayload[] = "type.fabricctl/hint";

// Defaults documented in fabric.proto.
constexpr char kDefaultProfile[] = "sim";
constexpr uint64_t kDefaultExportSize = uint64_t{1} << 30;
constexpr uint64_t kDefaultExportBase = 0x1'0000'0000;
constexpr uint64_t kDefaultWindowBase = 0x200'0000'0000;

// Prefixes the message with what was being done; keeps code and payloads.
absl::Status Annotate(const absl::Status& status, absl::string_view what) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(what, ": ", status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

// Strips an optional "{collection}/" prefix.
std::string Id(absl::string_view collection, absl::string_view name) {
  absl::string_view n = name;
  absl::ConsumePrefix(&n, absl::StrCat(collection, "/"));
  return std::string(n);
}

std::string FabricFilter(const std::string& fabric) {
  return fabric.empty() ? "" : Qualify("fabrics", fabric);
}

// "bridges/x/addressMap" from "x", "bridges/x" or the full name.
std::string MapName(absl::string_view name) {
  if (absl::EndsWith(name, "/addressMap")) return std::string(name);
  return absl::StrCat(Qualify("bridges", name), "/addressMap");
}

// Fills in the defaults fabric.proto documents, so that a spec written by a
// user compares equal to the one the server stores.
v1::FabricSpec Canonical(v1::FabricSpec spec) {
  if (spec.default_profile().empty()) spec.set_default_profile(kDefaultProfile);
  if (spec.default_export_size() == 0) {
    spec.set_default_export_size(kDefaultExportSize);
  }
  for (v1::NodeSpec& n : *spec.mutable_nodes()) {
    if (n.profile().empty()) n.set_profile(spec.default_profile());
    if (n.export_size() == 0) n.set_export_size(spec.default_export_size());
    if (n.export_base() == 0) n.set_export_base(kDefaultExportBase);
    if (n.window_base() == 0) n.set_window_base(kDefaultWindowBase);
  }
  return spec;
}

// Finds the position the protobuf JSON parser points at. Its syntax errors
// read "<what>\n<up to 40 bytes of input around the error>\n<spaces>^",
// where the caret counts bytes from the start of that context (which may
// itself span lines). Locating the context in the input gives "line L,
// column C"; returns "" when the message has no such context.
std::string ErrorPosition(absl::string_view json, absl::string_view message) {
  std::vector<absl::string_view> lines = absl::StrSplit(message, '\n');
  if (lines.size() < 3) return "";
  size_t caret = lines.back().find('^');
  if (caret == absl::string_view::npos) return "";
  std::string context = absl::StrJoin(lines.begin() + 1, lines.end() - 1, "\n");
  size_t at = json.find(context);
  if (context.empty() || at == absl::string_view::npos) return "";
  size_t offset = std::min(at + caret, json.size());
  absl::string_view before = json.substr(0, offset);
  size_t line = 1 + std::count(before.begin(), before.end(), '\n');
  size_t last_newline = before.rfind('\n');
  size_t column = last_newline == absl::string_view::npos
                      ? offset + 1
                      : offset - last_newline;
  return absl::StrCat("line ", line, ", column ", column);
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

constexpr char kVfListHint[] =
    "'fabricctl get vfs' lists the VFs the agents report";
constexpr char kAttachmentListHint[] =
    "'fabricctl get attachments' lists the attachments";

// Hints for the errors of an operation on attachment `name` that the server
// relays to the agents: not READY yet, not there, an agent out of reach.
absl::Status AttachmentOpHint(absl::Status status, const std::string& name) {
  if (status.ok() || !StatusHint(status).empty()) return status;
  const std::string id(absl::StripPrefix(name, "attachments/"));
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      if (name.empty()) return status;
      return WithHint(std::move(status), kAttachmentListHint);
    case absl::StatusCode::kFailedPrecondition:
      if (!name.empty() && absl::StrContains(status.message(), "not READY")) {
        return WithHint(std::move(status),
                        absl::StrCat("'fabricctl describe attachment ", id,
                                     "' says what it waits for"));
      }
      return status;
    case absl::StatusCode::kUnavailable:
      if (absl::StrContains(status.message(), "agent")) {
        return WithHint(std::move(status),
                        "'fabricctl get nodes' shows whether the agents are "
                        "READY");
      }
      return status;
    default:
      return status;
  }
}

// A register value in hex, two digits per byte: 0x0006 for 2 bytes.
std::string HexValue(uint32_t value, uint32_t size) {
  return absl::StrFormat("0x%0*x", static_cast<int>(size * 2), value);
}

std::string Count(int64_t n, absl::string_view one, absl::string_view many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

}  // namespace

// ---------------------------------------------------------------------------
// Errors

absl::Status UsageError(absl::string_view message) {
  absl::Status s = absl::InvalidArgumentError(message);
  s.SetPayload(kUsagePayload, absl::Cord("1"));
  return s;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

absl::Status WithHint(absl::Status status, absl::string_view hint) {
  if (!status.ok()) status.SetPayload(kHintPayload, absl::Cord(hint));
  return status;
}

std::string StatusHint(const absl::Status& status) {
  auto hint = status.GetPayload(kHintPayload);
  return hint.has_value() ? std::string(*hint) : "";
}

// ---------------------------------------------------------------------------
// Argument helpers

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view text,
                                                 absl::string_view flag) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  absl::Duration d;
  double seconds = 0;
  if (absl::SimpleAtod(t, &seconds) && !absl::StrContains(t, "inf") &&
      !absl::StrContains(t, "nan")) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(t, &d)) {
    return UsageError(
        absl::StrCat(flag, ": \"", text,
                     "\" is not a duration; use e.g. 30s, 5m, 1h or 1h30m"));
  }
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return UsageError(absl::StrCat(flag, ": \"", text,
                                   "\" must be a positive, finite duration"));
  }
  return d;
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& labels) {
  std::map<std::string, std::string> out;
  for (const std::string& l : labels) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(l, absl::MaxSplits('=', 1));
    if (!absl::StrContains(l, '=') || kv.first.empty()) {
      return UsageError(absl::StrCat("--label: \"", l, "\" is not key=value"));
    }
    out[kv.first] = kv.second;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseNameList(
    const std::vector<std::string>& values, absl::string_view flag) {
  std::vector<std::string> names;
  for (const std::string& v : values) {
    for (absl::string_view n : absl::StrSplit(v, ',')) {
      names.emplace_back(absl::StripAsciiWhitespace(n));
    }
  }
  if (names.empty() || (names.size() == 1 && names[0].empty())) {
    return UsageError(absl::StrCat(
        flag, ": the list is empty; give comma-separated names, e.g. ", flag,
        " n1,n2,n3"));
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) {
      return UsageError(absl::StrCat(flag, ": name ", i + 1,
                                     " is empty (two commas in a row, or one "
                                     "at an end?)"));
    }
  }
  return names;
}

absl::StatusOr<v1::FabricSpec> ParseFabricSpec(absl::string_view json,
                                               absl::string_view source) {
  if (absl::StripAsciiWhitespace(json).empty()) {
    return UsageError(absl::StrCat(source,
                                   ": file is empty; expected a "
                                   "FabricSpec in protobuf JSON"));
  }
  v1::FabricSpec spec;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &spec, options);
  if (!status.ok()) {
    std::string message(status.message().data(), status.message().size());
    std::string where = ErrorPosition(json, message);
    // Keep the parser's first line; the context lines are replaced by the
    // position.
    std::string first = message.substr(0, message.find('\n'));
    return UsageError(
        absl::StrCat(source, where.empty() ? "" : absl::StrCat(": ", where),
                     ": ", "not a valid FabricSpec: ", first));
  }
  if (spec.name().empty()) {
    return UsageError(absl::StrCat(source, ": the spec has no \"name\""));
  }
  return spec;
}

absl::StatusOr<v1::FabricSpec> ReadFabricSpecFile(const std::string& path) {
  const std::string what = absl::StrCat("-f ", path, ": ");
  std::error_code ec;
  // Opening a directory succeeds and reading it fails; say so up front.
  if (std::filesystem::is_directory(path, ec)) {
    return UsageError(
        absl::StrCat(what, "is a directory; expected a FabricSpec JSON file"));
  }
  absl::StatusOr<std::string> json = ReadFileToString(path);
  switch (json.status().code()) {
    case absl::StatusCode::kOk:
      return ParseFabricSpec(*json, path);
    case absl::StatusCode::kNotFound:
      return UsageError(absl::StrCat(what, "no such file"));
    case absl::StatusCode::kPermissionDenied:
      return UsageError(absl::StrCat(what, "permission denied"));
    default:
      return UsageError(
          absl::StrCat(what, "cannot read it (", json.status().message(), ")"));
  }
}

v1::FabricSpec RingSpec(const std::string& name,
                        const std::vector<std::string>& nodes,
                        const std::string& profile, uint64_t export_size) {
  v1::FabricSpec spec;
  spec.set_name(name);
  spec.set_topology(v1::RING);
  spec.set_default_profile(profile);
  spec.set_default_export_size(export_size);
  for (const std::string& n : nodes) spec.add_nodes()->set_name(n);
  return spec;
}

v1::FabricSpec StarSpec(const std::string& name, const std::string& hub,
                        const std::vector<std::string>& nodes,
                        const std::string& profile, uint64_t export_size) {
  v1::FabricSpec spec;
  spec.set_name(name);
  spec.set_topology(v1::STAR);
  spec.set_hub(hub);
  spec.set_default_profile(profile);
  spec.set_default_export_size(export_size);
  spec.add_nodes()->set_name(hub);
  for (const std::string& n : nodes) {
    if (n != hub) spec.add_nodes()->set_name(n);
  }
  return spec;
}

bool SameFabricSpec(const v1::FabricSpec& a, const v1::FabricSpec& b) {
  return google::protobuf::util::MessageDifferencer::Equals(Canonical(a),
                                                            Canonical(b));
}

std::string NewRequestId() {
  absl::BitGen gen;
  return absl::StrFormat("fabricctl-%016x%016x", absl::Uniform<uint64_t>(gen),
                         absl::Uniform<uint64_t>(gen));
}

std::string Qualify(absl::string_view collection, absl::string_view name) {
  if (absl::StartsWith(name, absl::StrCat(collection, "/"))) {
    return std::string(name);
  }
  return absl::StrCat(collection, "/", name);
}

absl::StatusOr<uint64_t> ParseNumberFlag(absl::string_view text,
                                         absl::string_view flag, uint64_t max) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  const bool hex =
      absl::ConsumePrefix(&t, "0x") || absl::ConsumePrefix(&t, "0X");
  bool digits = !t.empty();
  for (char c : t) {
    digits &= hex ? absl::ascii_isxdigit(static_cast<unsigned char>(c))
                  : absl::ascii_isdigit(static_cast<unsigned char>(c));
  }
  uint64_t value = 0;
  if (!digits ||
      !(hex ? absl::SimpleHexAtoi(t, &value) : absl::SimpleAtoi(t, &value))) {
    return UsageError(absl::StrCat(
        flag, ": \"", text,
        "\" is not a number; use decimal (16) or hexadecimal (0x10)"));
  }
  if (value > max) {
    return UsageError(absl::StrCat(flag, ": ", text, " is over the limit of ",
                                   max, absl::StrFormat(" (0x%x)", max)));
  }
  return value;
}

absl::StatusOr<v1::Attachment::InterruptPolicy> ParseInterruptPolicy(
    absl::string_view text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "direct") return v1::Attachment::DIRECT;
  if (t == "hypervisor") return v1::Attachment::HYPERVISOR;
  if (t == "auto") return v1::Attachment::AUTO;
  return UsageError(absl::StrCat("--interrupts: unknown policy \"", text,
                                 "\"; use direct, hypervisor or auto"));
}

absl::Status CheckShadowAccess(const ShadowAccessOptions& a) {
  constexpr uint32_t kConfigSpaceSize = 4096;
  if (a.size != 1 && a.size != 2 && a.size != 4) {
    return UsageError(
        absl::StrCat("--size: ", a.size, " bytes; use 1, 2 or 4"));
  }
  if (a.msix_table && a.size != 4) {
    return UsageError(absl::StrCat(
        "--size: the MSI-X table takes dwords only; use --size 4 (the "
        "default), not ",
        a.size));
  }
  if (!a.msix_table && a.offset >= kConfigSpaceSize) {
    return UsageError(absl::StrFormat(
        "OFFSET: 0x%x is outside the 4 KiB config space (0x000-0xfff)",
        a.offset));
  }
  if (a.offset % a.size != 0) {
    return UsageError(absl::StrFormat(
        "OFFSET: 0x%x is not aligned to the %d-byte access size", a.offset,
        a.size));
  }
  if (a.write && a.size < 4 && a.value >> (8 * a.size) != 0) {
    return UsageError(absl::StrFormat("VALUE: 0x%x does not fit in %d byte%s",
                                      a.value, a.size, a.size == 1 ? "" : "s"));
  }
  return absl::OkStatus();
}

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
  };
  std::string t = absl::AsciiStrToLower(text);
  for (const auto& [name, kind] : kKinds) {
    if (t == name || t == Plural(name)) return kind;
  }
  return UsageError(
      absl::StrCat("unknown resource type \"", text,
                   "\"; use fabrics, nodes, bridges, links, maps, allocations, "
                   "profiles, vfs or attachments"));
}

absl::Status CheckNodeFilter(ResourceKind kind, absl::string_view node) {
  if (node.empty() || kind == ResourceKind::kAllocation ||
      kind == ResourceKind::kVf || kind == ResourceKind::kAttachment) {
    return absl::OkStatus();
  }
  return UsageError(
      "--node: only allocations, vfs and attachments are listed by node");
}

// ---------------------------------------------------------------------------
// Commands

Commands::Commands(FabricClient* client, std::ostream* out,
                   const Options& options)
    : client_(client), out_(out), options_(options) {}

void Commands::Report(const google::protobuf::Message& message,
                      const std::string& line) {
  if (options_.format == OutputFormat::kJson) {
    *out_ << ToJson(message) << "\n";
  } else {
    *out_ << line << "\n";
  }
}

absl::Status Commands::CreateFabric(const v1::FabricSpec& spec) {
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

absl::Status Commands::Apply(const std::string& path) {
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
  differ.Compare(Canonical(existing->spec()), Canonical(spec));
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

absl::Status Commands::Get(ResourceKind kind, const std::string& name,
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
  auto all = [&](auto result, absl::string_view what,
                 auto print) -> absl::Status {
    RETURN_IF_ERROR(Annotate(result.status(), absl::StrCat("list ", what)));
    print(*result, fmt, *out_);
    return absl::OkStatus();
  };

  switch (kind) {
    case ResourceKind::kFabric:
      if (!name.empty()) {
        std::string n = Qualify("fabrics", name);
        return one(client_->GetFabric(n), n, PrintFabrics);
      }
      return all(client_->ListFabrics(), "fabrics", PrintFabrics);
    case ResourceKind::kNode:
      if (!name.empty()) {
        std::string n = Qualify("nodes", name);
        return one(client_->GetNode(n), n, PrintNodes);
      }
      return all(client_->ListNodes(filter), "nodes", PrintNodes);
    case ResourceKind::kBridge:
      if (!name.empty()) {
        std::string n = Qualify("bridges", name);
        return one(client_->GetBridge(n), n, PrintBridges);
      }
      return all(client_->ListBridges(filter), "bridges", PrintBridges);
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
      return all(client_->ListLinks(filter), "links", PrintLinks);
    case ResourceKind::kAllocation:
      if (!name.empty()) {
        std::string n = Qualify("allocations", name);
        return one(client_->GetAllocation(n), n, PrintAllocations);
      } else {
        v1::ListAllocationsRequest req;
        req.set_fabric(filter);
        req.set_node(NodeFilter(node));
        return all(client_->ListAllocations(req), "allocations",
                   PrintAllocations);
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
      return all(client_->ListAddressMaps(filter), "address maps",
                 PrintAddressMaps);
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
        return all(client_->ListVirtualFunctions(req), "vfs",
                   PrintVirtualFunctions);
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
        return all(client_->ListAttachments(req), "attachments",
                   PrintAttachments);
      }
  }
  return absl::InternalError("unhandled resource kind");
}

absl::Status Commands::Describe(ResourceKind kind, const std::string& name) {
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
      // Their `get` view is already complete.
      return Get(kind, name, "");
  }
  return absl::InternalError("unhandled resource kind");
}

absl::Status Commands::Alloc(const AllocOptions& opts) {
  v1::CreateAllocationRequest req;
  v1::Allocation* a = req.mutable_allocation();
  a->set_borrower(opts.borrower);
  a->set_target(opts.target);
  a->set_size(opts.size);
  a->set_owner(opts.owner);
  for (const auto& [k, v] : opts.labels) (*a->mutable_labels())[k] = v;
  if (opts.ttl.has_value()) {
    int64_t secs = absl::ToInt64Seconds(*opts.ttl);
    a->mutable_ttl()->set_seconds(secs);
    a->mutable_ttl()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(*opts.ttl - absl::Seconds(secs))));
  }
  req.set_request_id(opts.request_id.empty() ? NewRequestId()
                                             : opts.request_id);
  std::string what = absl::StrCat("alloc ", FormatSize(opts.size), " of ",
                                  Id("nodes", opts.target), " for ",
                                  Id("nodes", opts.borrower));
  absl::StatusOr<v1::Allocation> alloc = client_->CreateAllocation(req);
  RETURN_IF_ERROR(Annotate(alloc.status(), what));
  if (!opts.request_id.empty()) {
    // A request id the manager has seen is answered with the allocation as
    // it was created, even when it has been released since: ask whether it
    // still exists. (A random id is never a replay of an older request.)
    absl::StatusOr<v1::Allocation> now = client_->GetAllocation(alloc->name());
    if (now.status().code() == absl::StatusCode::kNotFound) {
      return WithHint(
          absl::FailedPreconditionError(absl::StrCat(
              what, ": request id \"", opts.request_id,
              "\" was used before: allocation ", alloc->name(),
              " was created by this request id and has since been released")),
          "a new --request-id (or none) makes a new allocation");
    }
    // Otherwise its current state, when known, rather than the replayed one.
    if (now.ok()) alloc = std::move(now);
  }
  const bool json = options_.format == OutputFormat::kJson;
  if (!json) *out_ << AllocationSummary(*alloc) << "\n";
  if (!opts.wait || alloc->state() == v1::Allocation::READY) {
    if (json) *out_ << ToJson(*alloc) << "\n";
    return absl::OkStatus();
  }

  const absl::Time deadline = absl::Now() + opts.wait_timeout;
  const std::string name = alloc->name();
  const std::string id = Id("allocations", name);
  while (alloc->state() != v1::Allocation::READY) {
    if (alloc->state() == v1::Allocation::RELEASED) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " was released while waiting for it to become READY",
          alloc->state_reason().empty()
              ? ""
              : absl::StrCat(": ", alloc->state_reason())));
    }
    absl::Time now = absl::Now();
    if (now >= deadline) {
      std::vector<std::string> path;
      for (const std::string& p : alloc->path()) path.push_back(ShortName(p));
      return WithHint(
          absl::DeadlineExceededError(absl::StrCat(
              name, " exists but is not READY after ",
              absl::FormatDuration(opts.wait_timeout), ": state ",
              v1::Allocation::State_Name(alloc->state()),
              alloc->state_reason().empty()
                  ? ""
                  : absl::StrCat(" (", alloc->state_reason(), ")"),
              "; the agents on its path",
              path.empty() ? ""
                           : absl::StrCat(" (", absl::StrJoin(path, ", "), ")"),
              " have not applied generation ", alloc->required_generation())),
          absl::StrCat("the allocation is kept; check the agents with "
                       "'fabricctl get nodes', or free it with "
                       "'fabricctl release ",
                       id, "'"));
    }
    absl::StatusOr<v1::Allocation> polled =
        client_->AwaitAllocation(name, deadline, options_.poll_interval);
    RETURN_IF_ERROR(Annotate(polled.status(), absl::StrCat("wait for ", name)));
    alloc = std::move(polled);
  }
  if (json) {
    *out_ << ToJson(*alloc) << "\n";
  } else {
    *out_ << name << " is READY\n";
  }
  return absl::OkStatus();
}

absl::Status Commands::Release(const std::string& id,
                               const std::string& request_id) {
  v1::DeleteAllocationRequest req;
  req.set_name(Qualify("allocations", id));
  req.set_request_id(request_id.empty() ? NewRequestId() : request_id);
  absl::StatusOr<v1::Allocation> alloc = client_->DeleteAllocation(req);
  RETURN_IF_ERROR(
      Annotate(alloc.status(), absl::StrCat("release ", req.name())));
  Report(*alloc, absl::StrCat(req.name(), " released"));
  return absl::OkStatus();
}

absl::Status Commands::Verify(const std::string& id, bool all) {
  std::vector<std::string> names;
  int skipped = 0;
  if (all) {
    ASSIGN_OR_RETURN(std::vector<v1::Allocation> allocs,
                     client_->ListAllocations(v1::ListAllocationsRequest()));
    for (const v1::Allocation& a : allocs) {
      if (a.state() == v1::Allocation::READY) {
        names.push_back(a.name());
      } else {
        ++skipped;
      }
    }
  } else {
    names.push_back(Qualify("allocations", id));
  }
  int failed = 0;
  std::vector<v1::VerifyResult> results;
  for (const std::string& name : names) {
    v1::VerifyAllocationRequest req;
    req.set_name(name);
    absl::StatusOr<v1::VerifyResult> r = client_->VerifyAllocation(req);
    if (!r.ok() && all && !IsServerUnreachable(r.status())) {
      // One allocation's error (an agent that does not answer, released
      // meanwhile) is its result; the others are still verified.
      v1::VerifyResult failure;
      failure.set_allocation(name);
      failure.set_ok(false);
      failure.set_summary(std::string(r.status().message()));
      r = std::move(failure);
    }
    RETURN_IF_ERROR(Annotate(r.status(), absl::StrCat("verify ", name)));
    failed += r->ok() ? 0 : 1;
    if (options_.format == OutputFormat::kJson) {
      results.push_back(*r);
    } else {
      PrintVerify(*r, *out_);
    }
  }
  if (options_.format == OutputFormat::kJson) {
    *out_ << "[";
    for (size_t i = 0; i < results.size(); ++i) {
      std::string json;
      google::protobuf::util::JsonPrintOptions o;
      o.always_print_primitive_fields = true;
      (void)google::protobuf::util::MessageToJsonString(results[i], &json, o);
      *out_ << (i ? ",\n" : "") << json;
    }
    *out_ << "]\n";
  } else if (all) {
    *out_ << names.size() - failed << " of " << names.size()
          << " READY allocation(s) verified";
    if (skipped > 0) *out_ << "; " << skipped << " not READY, skipped";
    *out_ << "\n";
  }
  if (failed > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(failed, " allocation(s) failed verification"));
  }
  return absl::OkStatus();
}

absl::Status Commands::SetLink(const std::string& a, const std::string& b,
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

absl::Status Commands::DeleteFabric(const std::string& name, bool force) {
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

absl::Status Commands::Attach(const AttachOptions& opts) {
  v1::CreateAttachmentRequest req;
  v1::Attachment* a = req.mutable_attachment();
  a->set_vf(opts.vf);
  a->set_borrower(opts.borrower);
  a->set_vm(opts.vm);
  a->set_interrupts(opts.interrupts);
  a->set_dma_size(opts.dma_size);
  a->set_owner(opts.owner);
  req.set_request_id(opts.request_id.empty() ? NewRequestId()
                                             : opts.request_id);
  const std::string what =
      absl::StrCat("attach VF ", opts.vf, " to ", Id("nodes", opts.borrower));
  absl::StatusOr<v1::Attachment> att = client_->CreateAttachment(req);
  if (!att.ok()) {
    absl::Status s = Annotate(att.status(), what);
    if (s.code() == absl::StatusCode::kNotFound) {
      return WithHint(
          s, absl::StrCat(kVfListHint, "; 'fabricctl get nodes' the nodes"));
    }
    if (s.code() == absl::StatusCode::kFailedPrecondition &&
        absl::StrContains(s.message(), "already lent")) {
      return WithHint(s, "'fabricctl get attachments' shows who holds it");
    }
    return AttachmentOpHint(s, "");
  }
  const bool json = options_.format == OutputFormat::kJson;
  if (!json) *out_ << AttachmentSummary(*att) << "\n";
  if (!opts.wait || att->state() == v1::Attachment::READY) {
    if (json) *out_ << ToJson(*att) << "\n";
    return absl::OkStatus();
  }

  const absl::Time deadline = absl::Now() + opts.wait_timeout;
  const std::string name = att->name();
  const std::string id = Id("attachments", name);
  while (att->state() != v1::Attachment::READY) {
    if (att->state() == v1::Attachment::DETACHED) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " was detached while waiting for it to become READY"));
    }
    if (absl::Now() >= deadline) {
      return WithHint(
          absl::DeadlineExceededError(
              absl::StrCat(name, " exists but is not READY after ",
                           absl::FormatDuration(opts.wait_timeout), ": state ",
                           v1::Attachment::State_Name(att->state()),
                           att->state_reason().empty()
                               ? ""
                               : absl::StrCat(" (", att->state_reason(), ")"))),
          absl::StrCat("the attachment is kept; 'fabricctl describe "
                       "attachment ",
                       id, "' shows it, 'fabricctl vf detach ", id,
                       "' frees the VF"));
    }
    absl::StatusOr<v1::Attachment> polled =
        client_->AwaitAttachment(name, deadline, options_.poll_interval);
    RETURN_IF_ERROR(Annotate(polled.status(), absl::StrCat("wait for ", name)));
    att = std::move(polled);
  }
  if (json) {
    *out_ << ToJson(*att) << "\n";
  } else {
    *out_ << name << " is READY\n";
  }
  return absl::OkStatus();
}

absl::Status Commands::Detach(const std::string& id,
                              const std::string& request_id) {
  v1::DeleteAttachmentRequest req;
  req.set_name(Qualify("attachments", id));
  req.set_request_id(request_id.empty() ? NewRequestId() : request_id);
  absl::StatusOr<v1::Attachment> att = client_->DeleteAttachment(req);
  RETURN_IF_ERROR(AttachmentOpHint(
      Annotate(att.status(), absl::StrCat("detach ", req.name())), req.name()));
  Report(*att, absl::StrCat("attachment/", Id("attachments", req.name()),
                            " detached"));
  return absl::OkStatus();
}

absl::Status Commands::ShadowConfig(const ShadowAccessOptions& access) {
  RETURN_IF_ERROR(CheckShadowAccess(access));
  v1::AccessShadowRequest req;
  req.set_attachment(Qualify("attachments", access.attachment));
  req.set_space(access.msix_table ? v1::AccessShadowRequest::MSIX_TABLE
                                  : v1::AccessShadowRequest::CONFIG);
  req.set_op(access.write ? v1::AccessShadowRequest::WRITE
                          : v1::AccessShadowRequest::READ);
  req.set_offset(access.offset);
  req.set_size(access.size);
  if (access.write) req.set_value(access.value);
  const std::string where = absl::StrFormat(
      "%s 0x%03x (%s)", access.msix_table ? "msix-table" : "config",
      access.offset, Count(access.size, "byte", "bytes"));
  absl::StatusOr<v1::AccessShadowResponse> resp = client_->AccessShadow(req);
  RETURN_IF_ERROR(AttachmentOpHint(
      Annotate(resp.status(), absl::StrCat(access.write ? "write " : "read ",
                                           where, " of ", req.attachment())),
      req.attachment()));
  if (!access.write) {
    Report(*resp,
           absl::StrCat(where, " = ", HexValue(resp->value(), access.size)));
    return absl::OkStatus();
  }
  Report(*resp,
         absl::StrCat(
             where, " <- ", HexValue(access.value, access.size), ": ",
             ShadowWriteOutcome(resp->outcome()),
             resp->reason().empty() ? "" : absl::StrCat(": ", resp->reason())));
  return absl::OkStatus();
}

absl::Status Commands::ShadowSetup(const std::string& id) {
  v1::AccessShadowRequest req;
  req.set_attachment(Qualify("attachments", id));
  req.set_space(v1::AccessShadowRequest::CONFIG);
  req.set_op(v1::AccessShadowRequest::DRIVER_SETUP);
  absl::StatusOr<v1::AccessShadowResponse> resp = client_->AccessShadow(req);
  RETURN_IF_ERROR(AttachmentOpHint(
      Annotate(resp.status(),
               absl::StrCat("set up the shadow device of ", req.attachment())),
      req.attachment()));
  Report(*resp,
         absl::StrCat("shadow device of attachment/",
                      Id("attachments", req.attachment()), " set up: ",
                      Count(resp->value(), "MSI-X vector", "MSI-X vectors"),
                      " at its doorbell"));
  return absl::OkStatus();
}

absl::Status Commands::VerifyAttachment(const std::string& id,
                                        uint32_t probe_size) {
  v1::VerifyAttachmentRequest req;
  req.set_name(Qualify("attachments", id));
  req.set_probe_size(probe_size);
  absl::StatusOr<v1::VerifyResult> r = client_->VerifyAttachment(req);
  RETURN_IF_ERROR(AttachmentOpHint(
      Annotate(r.status(), absl::StrCat("verify ", req.name())), req.name()));
  if (r->allocation().empty()) r->set_allocation(req.name());
  if (options_.format == OutputFormat::kJson) {
    *out_ << ToJson(*r) << "\n";
  } else {
    PrintVerify(*r, *out_);
  }
  if (!r->ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(req.name(), " failed verification"));
  }
  return absl::OkStatus();
}

absl::Status Commands::RaiseInterrupt(const std::string& id, int vector,
                                      int count) {
  v1::RaiseVfInterruptRequest req;
  req.set_attachment(Qualify("attachments", id));
  req.set_vector(vector);
  req.set_count(count);
  absl::StatusOr<v1::RaiseVfInterruptResponse> r =
      client_->RaiseVfInterrupt(req);
  RETURN_IF_ERROR(AttachmentOpHint(
      Annotate(r.status(), absl::StrCat("raise MSI-X vector ", vector, " of ",
                                        req.attachment())),
      req.attachment()));
  if (options_.format == OutputFormat::kJson) {
    *out_ << ToJson(*r) << "\n";
    return absl::OkStatus();
  }
  *out_ << "raised " << (count == 0 ? 1 : count) << ": "
        << r->delivered_direct() << " direct, " << r->delivered_via_hypervisor()
        << " via hypervisor, " << r->dropped() << " dropped, "
        << r->pending_in_vf() << " pending in VF\n"
        << CountersSummary(r->counters()) << "\n";
  return absl::OkStatus();
}

absl::Status Commands::SetVmState(const std::string& node,
                                  const std::string& vm, bool running,
                                  int core) {
  hypervisor::v1::SetVmStateRequest req;
  req.set_node(Qualify("nodes", node));
  req.set_vm(vm);
  req.set_running(running);
  if (running) req.set_core(core);
  const std::string n = Id("nodes", node);
  absl::StatusOr<hypervisor::v1::SetVmStateResponse> r =
      client_->SetVmState(req);
  absl::Status status =
      Annotate(r.status(),
               absl::StrCat(running ? "start" : "stop", " vm ", vm, " on ", n));
  if (status.code() == absl::StatusCode::kNotFound ||
      (status.code() == absl::StatusCode::kFailedPrecondition &&
       absl::StrContains(status.message(), "agent"))) {
    return WithHint(status,
                    "'fabricctl get nodes' lists the nodes and their "
                    "agents");
  }
  RETURN_IF_ERROR(AttachmentOpHint(status, ""));
  Report(*r, running ? absl::StrCat("vm ", vm, " on ", n, " running on core ",
                                    core, " (injected ",
                                    Count(r->injected(), "queued interrupt",
                                          "queued interrupts"),
                                    ")")
                     : absl::StrCat("vm ", vm, " on ", n, " stopped"));
  return absl::OkStatus();
}

}  // namespace fabric::client
