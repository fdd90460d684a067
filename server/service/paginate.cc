#include "server/service/paginate.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/excerpt.h"
#include "common/status_macros.h"

namespace fabric::service {
namespace {

uint32_t TokenChecksum(absl::string_view key) {
  uint32_t h = 2166136261u;
  for (char c : key) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

}  // namespace

std::string EncodePageToken(absl::string_view last_key) {
  const uint32_t sum = TokenChecksum(last_key);
  std::string raw = "p1";
  for (int i = 0; i < 4; ++i) raw.push_back(static_cast<char>(sum >> (8 * i)));
  raw.append(last_key.data(), last_key.size());
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token) {
  std::string raw;
  if (absl::WebSafeBase64Unescape(token, &raw) && raw.size() >= 6 &&
      absl::StartsWith(raw, "p1")) {
    uint32_t sum = 0;
    for (int i = 0; i < 4; ++i) {
      sum |= static_cast<uint32_t>(static_cast<unsigned char>(raw[2 + i]))
             << (8 * i);
    }
    std::string key = raw.substr(6);
    if (sum == TokenChecksum(key)) return key;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "page_token: \"", Excerpt(token),
      "\" is not a token returned by this server; pass next_page_token "
      "from the previous page unchanged, or none for the first page"));
}

absl::StatusOr<Pager> Pager::Start(int page_size, absl::string_view token) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be >= 0, got ", page_size));
  }
  if (page_size == 0) page_size = kDefaultPageSize;
  page_size = std::min(page_size, kMaxPageSize);
  std::optional<std::string> after;
  if (!token.empty()) {
    ASSIGN_OR_RETURN(after, DecodePageToken(token));
  }
  return Pager(static_cast<size_t>(page_size), std::move(after));
}

bool Pager::Offer(absl::string_view key) {
  if (taken_ < size_) {
    ++taken_;
    last_key_.assign(key.data(), key.size());
    return true;
  }
  if (next_token_.empty()) next_token_ = EncodePageToken(last_key_);
  return false;
}

absl::StatusOr<Page> Paginate(const std::vector<std::string>& keys,
                              int page_size, absl::string_view token) {
  ASSIGN_OR_RETURN(Pager pager, Pager::Start(page_size, token));
  Page p;
  if (pager.after()) {
    p.begin =
        std::upper_bound(keys.begin(), keys.end(), *pager.after()) - keys.begin();
  }
  p.end = p.begin;
  while (p.end < keys.size() && pager.Offer(keys[p.end])) ++p.end;
  p.next_token = std::move(pager).next_token();
  return p;
}

}  // namespace fabric::service
