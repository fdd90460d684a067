#include "client/args.h"

#include <cstdint>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace fabric::client {
namespace {

constexpr char kUsagePayload[] = "type.fabricctl/usage";
constexpr char kHintPayload[] = "type.fabricctl/hint";

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

}  // namespace fabric::client
