#include "client/fabric_spec.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/args.h"
#include "common/file_util.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"

namespace fabric::client {
namespace {

// Defaults documented in fabric.proto.
constexpr char kDefaultProfile[] = "sim";
constexpr uint64_t kDefaultExportSize = uint64_t{1} << 30;
constexpr uint64_t kDefaultExportBase = 0x1'0000'0000;
constexpr uint64_t kDefaultWindowBase = 0x200'0000'0000;

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

}  // namespace

v1::FabricSpec CanonicalFabricSpec(v1::FabricSpec spec) {
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
  return google::protobuf::util::MessageDifferencer::Equals(CanonicalFabricSpec(a),
                                                            CanonicalFabricSpec(b));
}

}  // namespace fabric::client
