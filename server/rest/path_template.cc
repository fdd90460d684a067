#include "server/rest/path_template.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace fabric::rest {
namespace {

bool IsIdent(absl::string_view s) {
  if (s.empty() || !(absl::ascii_isalpha(s[0]) || s[0] == '_')) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

bool IsFieldPath(absl::string_view s) {
  for (absl::string_view part : absl::StrSplit(s, '.')) {
    if (!IsIdent(part)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<PathTemplate> PathTemplate::Parse(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("path template \"", text, "\": ", why));
  };
  if (text.empty() || text[0] != '/') return bad("must start with \"/\"");
  PathTemplate t;
  t.text_ = std::string(text);
  absl::string_view rest = text.substr(1);
  // The verb: after the last ':' that is outside any variable.
  int depth = 0;
  size_t verb_colon = absl::string_view::npos;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '{') {
      if (++depth > 1) return bad("variables cannot nest");
    } else if (rest[i] == '}') {
      if (--depth < 0) return bad("\"}\" without \"{\"");
    } else if (rest[i] == ':' && depth == 0) {
      verb_colon = i;
    }
  }
  if (depth != 0) return bad("a variable is not closed");
  if (verb_colon != absl::string_view::npos) {
    t.verb_ = std::string(rest.substr(verb_colon + 1));
    if (t.verb_.empty() || t.verb_.find('/') != std::string::npos) {
      return bad("the verb after \":\" must be one non-empty segment");
    }
    rest = rest.substr(0, verb_colon);
  }

  // Segments, with variables expanded in place.
  size_t i = 0;
  auto add_segment = [&](absl::string_view seg) -> absl::Status {
    if (seg.empty()) return bad("empty segment");
    Segment s;
    if (seg == "*") {
      s.kind = Segment::kStar;
    } else if (seg == "**") {
      s.kind = Segment::kDoubleStar;
    } else if (seg.find_first_of("{}*=") != absl::string_view::npos) {
      return bad(absl::StrCat("bad segment \"", seg, "\""));
    } else {
      s.literal = std::string(seg);
    }
    t.segments_.push_back(std::move(s));
    return absl::OkStatus();
  };
  while (i <= rest.size()) {
    if (i < rest.size() && rest[i] == '{') {
      const size_t close = rest.find('}', i);
      absl::string_view inner = rest.substr(i + 1, close - i - 1);
      const size_t eq = inner.find('=');
      Variable v;
      v.field = std::string(inner.substr(0, eq));
      if (!IsFieldPath(v.field)) {
        return bad(absl::StrCat("bad field path \"", v.field, "\""));
      }
      for (const Variable& other : t.variables_) {
        if (other.field == v.field) {
          return bad(absl::StrCat("\"", v.field, "\" is bound twice"));
        }
      }
      v.begin = t.segments_.size();
      absl::string_view pattern =
          eq == absl::string_view::npos ? "*" : inner.substr(eq + 1);
      for (absl::string_view seg : absl::StrSplit(pattern, '/')) {
        if (absl::Status s = add_segment(seg); !s.ok()) return s;
      }
      v.end = t.segments_.size();
      t.variables_.push_back(std::move(v));
      i = close + 1;
      if (i < rest.size() && rest[i] != '/') {
        return bad("a variable must end its segment");
      }
      ++i;  // the '/' (or past the end)
      continue;
    }
    size_t slash = rest.find('/', i);
    if (slash == absl::string_view::npos) slash = rest.size();
    if (absl::Status s = add_segment(rest.substr(i, slash - i)); !s.ok()) {
      return s;
    }
    i = slash + 1;
  }
  for (size_t k = 0; k + 1 < t.segments_.size(); ++k) {
    if (t.segments_[k].kind == Segment::kDoubleStar) {
      return bad("\"**\" may only be the last segment");
    }
  }
  return t;
}

std::optional<Bindings> PathTemplate::Match(absl::string_view path) const {
  if (path.empty() || path[0] != '/') return std::nullopt;
  path.remove_prefix(1);
  if (!verb_.empty()) {
    const std::string suffix = absl::StrCat(":", verb_);
    if (!absl::EndsWith(path, suffix)) return std::nullopt;
    path.remove_suffix(suffix.size());
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
  const bool tail = !segments_.empty() &&
                    segments_.back().kind == Segment::kDoubleStar;
  if (tail ? parts.size() < segments_.size()
           : parts.size() != segments_.size()) {
    return std::nullopt;
  }
  for (size_t k = 0; k < segments_.size(); ++k) {
    const Segment& s = segments_[k];
    if (s.kind == Segment::kLiteral && parts[k] != s.literal) {
      return std::nullopt;
    }
    if (s.kind != Segment::kLiteral && parts[k].empty()) return std::nullopt;
  }
  Bindings out;
  for (const Variable& v : variables_) {
    const bool last = v.end == segments_.size() && tail;
    const size_t end = last ? parts.size() : v.end;
    std::vector<absl::string_view> bound(parts.begin() + v.begin,
                                         parts.begin() + end);
    out.emplace_back(v.field, absl::StrJoin(bound, "/"));
  }
  return out;
}

std::vector<std::string> PathTemplate::Fields() const {
  std::vector<std::string> out;
  for (const Variable& v : variables_) out.push_back(v.field);
  return out;
}

}  // namespace fabric::rest
