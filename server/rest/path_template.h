// PathTemplate: the path of a google.api.http rule (google/api/http.proto),
// compiled once and matched against request paths.
//
//   Template = "/" Segments [ ":" Verb ] ;
//   Segments = Segment { "/" Segment } ;
//   Segment  = "*" | "**" | LITERAL | Variable ;
//   Variable = "{" FieldPath [ "=" Segments ] "}" ;
//   FieldPath = IDENT { "." IDENT } ;
//
// "*" matches one path segment, "**" any number (only last). A variable
// without "=" is "{f=*}". A variable binds the request field it names to
// the segments it matched, joined by "/":
//
//   auto t = PathTemplate::Parse("/v1/{name=links/*}:setState");
//   t->Match("/v1/links/n1--n2:setState")  // {{"name", "links/n1--n2"}}
//   t->Match("/v1/links/n1--n2")           // nullopt: the verb is missing
//
// Immutable after Parse; thread-safe.
#ifndef FABRIC_SERVER_REST_PATH_TEMPLATE_H_
#define FABRIC_SERVER_REST_PATH_TEMPLATE_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric::rest {

// The request fields a match binds, in template order: (field path, value).
using Bindings = std::vector<std::pair<std::string, std::string>>;

class PathTemplate {
 public:
  // INVALID_ARGUMENT naming the template and what is wrong: no leading
  // "/", an empty segment, an unclosed or nested variable, a bad field
  // path, a variable bound twice, or "**" anywhere but last.
  static absl::StatusOr<PathTemplate> Parse(absl::string_view text);
  // The empty template, which matches nothing.
  PathTemplate() = default;

  // The bindings when `path` (decoded, without the query) matches; nullopt
  // otherwise. A variable never matches an empty segment.
  std::optional<Bindings> Match(absl::string_view path) const;

  const std::string& text() const { return text_; }
  const std::string& verb() const { return verb_; }
  // The field paths the template binds.
  std::vector<std::string> Fields() const;

 private:
  struct Segment {
    enum Kind { kLiteral, kStar, kDoubleStar } kind = kLiteral;
    std::string literal;
  };
  struct Variable {
    std::string field;
    size_t begin = 0;  // segments_[begin, end)
    size_t end = 0;
  };

  std::string text_;
  std::vector<Segment> segments_;
  std::vector<Variable> variables_;
  std::string verb_;
};

}  // namespace fabric::rest

#endif  // FABRIC_SERVER_REST_PATH_TEMPLATE_H_
