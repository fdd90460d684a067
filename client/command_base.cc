#include "client/command_base.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace fabric::client {

void CommandBase::Report(const google::protobuf::Message& message,
                         const std::string& line) {
  if (options_.format == OutputFormat::kJson) {
    *out_ << ToJson(message) << "\n";
  } else {
    *out_ << line << "\n";
  }
}

absl::Status Annotate(const absl::Status& status, absl::string_view what) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(what, ": ", status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

std::string Id(absl::string_view collection, absl::string_view name) {
  absl::string_view n = name;
  absl::ConsumePrefix(&n, absl::StrCat(collection, "/"));
  return std::string(n);
}

}  // namespace fabric::client
