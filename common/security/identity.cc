#include "common/security/identity.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fabric::security {
namespace {

constexpr absl::string_view kSpiffeScheme = "spiffe://";

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

absl::StatusOr<PrincipalKind> ParseKind(absl::string_view kind) {
  if (kind == "node") return PrincipalKind::kNode;
  if (kind == "manager") return PrincipalKind::kManager;
  if (kind == "user") return PrincipalKind::kUser;
  return absl::InvalidArgumentError(
      absl::StrCat("kind \"", kind, "\" is not node, manager or user"));
}

// Parses "KIND/NAME"; errors are prefixed by the caller.
absl::StatusOr<Identity> ParseKindAndName(absl::string_view text) {
  size_t slash = text.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError("expected KIND/NAME");
  }
  absl::StatusOr<PrincipalKind> kind = ParseKind(text.substr(0, slash));
  if (!kind.ok()) return kind.status();
  absl::string_view name = text.substr(slash + 1);
  if (absl::Status s = ValidatePrincipalName("name", name); !s.ok()) return s;
  Identity id;
  id.kind = *kind;
  id.name = std::string(name);
  return id;
}

}  // namespace

absl::string_view PrincipalKindName(PrincipalKind kind) {
  switch (kind) {
    case PrincipalKind::kNode:
      return "node";
    case PrincipalKind::kManager:
      return "manager";
    case PrincipalKind::kUser:
      return "user";
  }
  return "user";
}

std::string Identity::ToString() const {
  return absl::StrCat(PrincipalKindName(kind), "/", name);
}

std::string Identity::SpiffeId() const {
  return absl::StrCat(kSpiffeScheme, kTrustDomain, "/", ToString());
}

absl::Status ValidatePrincipalName(absl::string_view field,
                                   absl::string_view name) {
  if (name.empty() || name.size() > 63) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", name, "\" must be 1-63 characters long"));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": \"", name, "\" may hold only [a-z0-9._-]"));
    }
  }
  if (name[0] == '.' || name[0] == '_' || name[0] == '-') {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", name, "\" must start with a letter or digit"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Identity> ParseSpiffeId(absl::string_view uri) {
  auto bad = [uri](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity URI \"", uri, "\": ", why));
  };
  if (!absl::StartsWith(uri, kSpiffeScheme)) {
    return bad("the scheme is not spiffe://");
  }
  absl::string_view rest = uri.substr(kSpiffeScheme.size());
  size_t slash = rest.find('/');
  absl::string_view domain = rest.substr(0, slash);
  if (domain != kTrustDomain) {
    return bad(absl::StrCat("the trust domain \"", domain, "\" is not ",
                            kTrustDomain));
  }
  if (slash == absl::string_view::npos) return bad("no KIND/NAME path");
  absl::StatusOr<Identity> id = ParseKindAndName(rest.substr(slash + 1));
  if (!id.ok()) return bad(id.status().message());
  return id;
}

absl::StatusOr<Identity> ParseIdentity(absl::string_view text) {
  absl::StatusOr<Identity> id = ParseKindAndName(text);
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity \"", text, "\": ", id.status().message()));
  }
  return id;
}

}  // namespace fabric::security
