// Paging of list responses: opaque, checksummed page tokens over a sorted
// list of keys.
//
// A token names the last key of the previous page, so a page is stable
// under inserts and deletes elsewhere in the list. Tokens are web-safe
// base64 of "p1", a 32-bit FNV-1a checksum of the key and the key; the
// checksum makes a token this server did not write (a typo, a truncated
// copy) an error rather than a silently empty or shifted page.
//
// Pure functions; thread-compatible.
#ifndef FABRIC_SERVER_SERVICE_PAGINATE_H_
#define FABRIC_SERVER_SERVICE_PAGINATE_H_

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric::service {

// page_size 0 means this; larger ones are cut to kMaxPageSize.
inline constexpr int kDefaultPageSize = 100;
inline constexpr int kMaxPageSize = 1000;

// The items [begin, end) of the keys form the page; next_token is empty on
// the last page.
struct Page {
  size_t begin = 0;
  size_t end = 0;
  std::string next_token;
};

// The token that resumes after `last_key`.
std::string EncodePageToken(absl::string_view last_key);
// The key a token resumes after; INVALID_ARGUMENT naming page_token for
// anything EncodePageToken did not write.
absl::StatusOr<std::string> DecodePageToken(absl::string_view token);

// The page of `keys` (sorted ascending) after `token` (empty: the first).
// INVALID_ARGUMENT naming page_size when it is negative, or page_token
// (DecodePageToken).
absl::StatusOr<Page> Paginate(const std::vector<std::string>& keys,
                              int page_size, absl::string_view token);

// Every (fabric id, index) pair over `count(f)` items of the fabrics (a map
// from id to a pointer-like entry) that pass the optional `only` filter,
// keyed by `key(f, i)` and sorted by key.
template <typename Fabrics, typename CountFn, typename KeyFn>
std::vector<std::pair<std::string, std::pair<std::string, int>>> Collect(
    const Fabrics& fabrics, absl::string_view only, CountFn count, KeyFn key) {
  std::vector<std::pair<std::string, std::pair<std::string, int>>> out;
  for (const auto& [id, f] : fabrics) {
    if (!only.empty() && id != only) continue;
    for (int i = 0; i < count(*f); ++i) out.push_back({key(*f, i), {id, i}});
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_PAGINATE_H_
