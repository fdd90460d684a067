// Quoting user input in error messages.
#ifndef FABRIC_COMMON_EXCERPT_H_
#define FABRIC_COMMON_EXCERPT_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fabric {

// `value` as an error message may quote it: whole when at most 64
// characters, else its first 48 and its length, so that the rule the user
// broke is what they see (a message echoing 10,000 characters overflows
// gRPC's metadata limit and the user sees only that).
inline std::string Excerpt(absl::string_view value) {
  constexpr size_t kShown = 48;
  if (value.size() <= kShown + 16) return std::string(value);
  return absl::StrCat(value.substr(0, kShown), "... (", value.size(),
                      " characters)");
}

}  // namespace fabric

#endif  // FABRIC_COMMON_EXCERPT_H_
