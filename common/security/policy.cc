#include "common/security/policy.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace fabric::security {
namespace internal_policy {
// In the file CMake generates from deploy/policy/policy.textproto.
absl::string_view DefaultPolicyText();
}  // namespace internal_policy

namespace {

constexpr absl::string_view kAuthenticated = "authenticated";

// Keeps the first syntax error, with its line (1-based) and column.
class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (!error_.empty()) return;
    error_ =
        absl::StrCat("line ", line + 1, " column ", column + 1, ": ", message);
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

// "*", a prefix "/...*" or a full method "/package.Service/Method".
absl::Status ValidateMethod(absl::string_view role, absl::string_view method) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "role \"", role, "\": allow.method \"", method, "\": ", why));
  };
  if (method == "*") return absl::OkStatus();
  if (!absl::StartsWith(method, "/")) {
    return bad("must start with '/' (\"/package.Service/Method\") or be \"*\"");
  }
  size_t star = method.find('*');
  if (star != absl::string_view::npos) {
    if (star != method.size() - 1) {
      return bad("'*' may only end a pattern");
    }
    return absl::OkStatus();
  }
  absl::string_view rest = method.substr(1);
  size_t slash = rest.find('/');
  if (slash == absl::string_view::npos || slash == 0 ||
      slash == rest.size() - 1 ||
      rest.find('/', slash + 1) != absl::string_view::npos) {
    return bad(
        "is neither a full method \"/package.Service/Method\" nor a "
        "pattern ending in '*'");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Policy> Policy::Parse(absl::string_view text) {
  internal::PolicyFile file;
  google::protobuf::TextFormat::Parser parser;
  FirstError errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &file)) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy: ", errors.error().empty() ? "does not parse"
                                                        : errors.error()));
  }
  Policy policy;
  for (int i = 0; i < file.role_size(); ++i) {
    const internal::Role& role = file.role(i);
    if (role.name().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: role[", i, "].name is empty"));
    }
    if (policy.roles_.count(role.name()) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: role \"", role.name(), "\" is defined twice"));
    }
    std::vector<CompiledRule>& rules = policy.roles_[role.name()];
    for (const internal::Rule& rule : role.allow()) {
      if (absl::Status s = ValidateMethod(role.name(), rule.method());
          !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy: ", s.message()));
      }
      CompiledRule compiled;
      compiled.prefix = absl::EndsWith(rule.method(), "*");
      compiled.pattern = compiled.prefix
                             ? rule.method().substr(0, rule.method().size() - 1)
                             : rule.method();
      compiled.scope = rule.scope();
      rules.push_back(std::move(compiled));
    }
    const bool own = std::any_of(rules.begin(), rules.end(), [](const auto& r) {
      return r.scope == internal::OWN;
    });
    const bool self_node = std::any_of(
        rules.begin(), rules.end(),
        [](const auto& r) { return r.scope == internal::SELF_NODE; });
    if (own && self_node) {
      return absl::InvalidArgumentError(absl::StrCat(
          "policy: role \"", role.name(),
          "\" mixes OWN and SELF_NODE rules; a role has one scope"));
    }
    policy.role_scopes_[role.name()] =
        own ? internal::OWN : (self_node ? internal::SELF_NODE : internal::ANY);
  }
  for (int i = 0; i < file.binding_size(); ++i) {
    const internal::Binding& binding = file.binding(i);
    absl::StatusOr<Identity> who = ParseIdentity(binding.identity());
    if (!who.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "policy: binding[", i, "].identity: ", who.status().message()));
    }
    if (policy.roles_.count(binding.role()) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: binding[", i, "] of ", binding.identity(),
                       ": role \"", binding.role(), "\" is not defined"));
    }
    if (who->kind != PrincipalKind::kUser) {
      // A node is always "node", a manager always "manager".
      if (binding.role() != PrincipalKindName(who->kind)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "policy: binding[", i, "] of ", binding.identity(), ": a ",
            PrincipalKindName(who->kind), "'s role is always \"",
            PrincipalKindName(who->kind), "\""));
      }
      continue;
    }
    if (binding.role() == "node" || binding.role() == "manager") {
      return absl::InvalidArgumentError(absl::StrCat(
          "policy: binding[", i, "] of ", binding.identity(),
          ": a user may not hold the role \"", binding.role(), "\""));
    }
    if (!policy.bindings_.emplace(who->ToString(), binding.role()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "policy: binding[", i, "]: ", binding.identity(), " is bound twice"));
    }
  }
  return policy;
}

absl::StatusOr<Policy> Policy::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    if (text.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(
          absl::StrCat("policy file ", path, ": no such file"));
    }
    return absl::Status(
        text.status().code(),
        absl::StrCat("policy file ", path, ": ", text.status().message()));
  }
  absl::StatusOr<Policy> policy = Parse(*text);
  if (!policy.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", policy.status().message()));
  }
  return policy;
}

absl::string_view Policy::DefaultPolicyText() {
  return internal_policy::DefaultPolicyText();
}

Policy Policy::Default() {
  absl::StatusOr<Policy> policy = Parse(DefaultPolicyText());
  if (!policy.ok()) {
    // policy_test parses the same text: this cannot happen in a tested build.
    std::fprintf(stderr, "the compiled-in default policy is invalid: %s\n",
                 policy.status().ToString().c_str());
    std::abort();
  }
  return *std::move(policy);
}

std::string Policy::RoleOf(const Identity& who) const {
  // A node is always "node", a manager always "manager".
  if (who.kind != PrincipalKind::kUser) {
    return std::string(PrincipalKindName(who.kind));
  }
  auto bound = bindings_.find(who.ToString());
  if (bound != bindings_.end()) return bound->second;
  // A user may never hold "node" or "manager"; a role the policy does not
  // define is no role.
  if (who.cert_role == "node" || who.cert_role == "manager" ||
      who.cert_role == kAuthenticated || roles_.count(who.cert_role) == 0) {
    return "";
  }
  return who.cert_role;
}

Scope Policy::RoleScope(const std::string& role) const {
  auto it = role_scopes_.find(role);
  return it == role_scopes_.end() ? internal::ANY : it->second;
}

const Policy::CompiledRule* Policy::Match(absl::string_view role,
                                          absl::string_view method) const {
  for (absl::string_view r : {role, kAuthenticated}) {
    auto rules = roles_.find(r);
    if (rules == roles_.end()) continue;
    for (const CompiledRule& rule : rules->second) {
      if (rule.prefix ? absl::StartsWith(method, rule.pattern)
                      : method == rule.pattern) {
        return &rule;
      }
    }
  }
  return nullptr;
}

bool Policy::Allows(absl::string_view role, absl::string_view method) const {
  return !role.empty() && Match(role, method) != nullptr;
}

Decision Policy::Check(const Identity& who, absl::string_view method) const {
  Decision decision;
  decision.role = RoleOf(who);
  if (decision.role.empty()) {
    decision.reason = absl::StrCat(
        who.ToString(),
        " has no role (no binding in the policy, and no role the policy "
        "defines in its certificate's OU) and may not call ",
        method);
    return decision;
  }
  if (const CompiledRule* rule = Match(decision.role, method)) {
    decision.allowed = true;
    decision.scope = rule->scope;
    return decision;
  }
  decision.reason = absl::StrCat(who.ToString(), " (role ", decision.role,
                                 ") may not call ", method);
  return decision;
}

}  // namespace fabric::security
