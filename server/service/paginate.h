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

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/status/status.h"
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

// Builds one page from items offered in ascending key order, starting
// after the key the token names (after()): so a page costs what it walks,
// not the size of the list. The caller walks its ordered source from
// after() and offers each item it keeps:
//
//   ASSIGN_OR_RETURN(Pager pager, Pager::Start(page_size, token));
//   for (auto it = pager.after() ? m.upper_bound(*pager.after()) : m.begin();
//        it != m.end(); ++it) {
//     if (!keep(*it)) continue;
//     if (!pager.Offer(it->first)) break;
//     ... add *it to the page ...
//   }
//   out.set_next_page_token(std::move(pager).next_token());
//
// The pages and tokens are those Paginate gives for the same keys.
class Pager {
 public:
  // INVALID_ARGUMENT naming page_size when it is negative, or page_token
  // (DecodePageToken). page_size 0 means kDefaultPageSize; larger ones are
  // cut to kMaxPageSize.
  static absl::StatusOr<Pager> Start(int page_size, absl::string_view token);

  // The key the page starts after; nullopt for the first page.
  const std::optional<std::string>& after() const { return after_; }
  // Offers the next kept item, whose key is greater than the last one's:
  // true when it belongs on the page; false when the page is full (then
  // there is a next page, and the walk stops).
  bool Offer(absl::string_view key);
  // The token of the next page; empty when the page is the last.
  std::string next_token() && { return std::move(next_token_); }

 private:
  Pager(size_t size, std::optional<std::string> after)
      : size_(size), after_(std::move(after)) {}

  size_t size_;
  std::optional<std::string> after_;
  size_t taken_ = 0;
  std::string last_key_;
  std::string next_token_;
};

// The page of `keys` (sorted ascending) after `token` (empty: the first).
// INVALID_ARGUMENT naming page_size when it is negative, or page_token
// (DecodePageToken).
absl::StatusOr<Page> Paginate(const std::vector<std::string>& keys,
                              int page_size, absl::string_view token);

// One page of the union of `sources` sorted lists (e.g. one per fabric):
// list k holds sizes[k] items whose keys key(k, j) ascend with j, and no
// key is in two lists. Calls add(k, j) for each item of the page, in key
// order, and returns the next page's token (empty on the last page). Costs
// O(lists · log n + page · lists). Errors as Pager::Start.
template <typename KeyFn, typename AddFn>
absl::StatusOr<std::string> PageMerged(const std::vector<size_t>& sizes,
                                       int page_size, absl::string_view token,
                                       KeyFn key, AddFn add) {
  absl::StatusOr<Pager> pager = Pager::Start(page_size, token);
  if (!pager.ok()) return pager.status();
  // Each list's next item.
  std::vector<size_t> next(sizes.size(), 0);
  if (pager->after()) {
    const std::string& after = *pager->after();
    for (size_t k = 0; k < sizes.size(); ++k) {
      size_t lo = 0, hi = sizes[k];  // first j with key(k, j) > after
      while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (absl::string_view(key(k, mid)) <= after) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      next[k] = lo;
    }
  }
  while (true) {
    size_t best = sizes.size();
    for (size_t k = 0; k < sizes.size(); ++k) {
      if (next[k] < sizes[k] &&
          (best == sizes.size() || absl::string_view(key(k, next[k])) <
                                       absl::string_view(key(best, next[best])))) {
        best = k;
      }
    }
    if (best == sizes.size() || !pager->Offer(key(best, next[best]))) break;
    add(best, next[best]);
    ++next[best];
  }
  return std::move(*pager).next_token();
}

// Calls `each` with every page `list` returns for `req` (a List request),
// kMaxPageSize at a time, until the last page; returns the first error of
// `list` (the pages before it were handed on: the caller must not take
// them for the whole list).
template <typename Request, typename ListFn, typename EachFn>
ABSL_MUST_USE_RESULT absl::Status ForEachPage(Request req, ListFn list,
                                              EachFn each) {
  req.set_page_size(kMaxPageSize);
  for (;;) {
    auto page = list(req);
    if (!page.ok()) return page.status();
    each(*page);
    if (page->next_page_token().empty()) return absl::OkStatus();
    req.set_page_token(page->next_page_token());
  }
}

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_PAGINATE_H_
