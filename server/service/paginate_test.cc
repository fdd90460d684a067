#include "server/service/paginate.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace fabric::service {
namespace {

TEST(PaginateTest, WalksEveryKeyOnceInPages) {
  std::vector<std::string> keys = {"a", "b", "c", "d", "e"};
  std::vector<std::string> seen;
  std::string token;
  do {
    auto p = Paginate(keys, 2, token);
    ASSERT_TRUE(p.ok()) << p.status();
    for (size_t i = p->begin; i < p->end; ++i) seen.push_back(keys[i]);
    token = p->next_token;
  } while (!token.empty());
  EXPECT_EQ(seen, keys);
}

TEST(PaginateTest, ZeroMeansDefaultAndLargeIsCut) {
  std::vector<std::string> keys(kMaxPageSize + 5);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = std::to_string(1000000 + i);
  auto p = Paginate(keys, 0, "");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->end, static_cast<size_t>(kDefaultPageSize));
  p = Paginate(keys, kMaxPageSize * 10, "");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->end, static_cast<size_t>(kMaxPageSize));
  EXPECT_FALSE(p->next_token.empty());
}

TEST(PaginateTest, NegativeSizeNamesTheField) {
  auto p = Paginate({"a"}, -1, "");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("page_size"), std::string::npos);
}

TEST(PaginateTest, TokenResumesAfterItsKeyEvenIfItWasDeleted) {
  auto p = Paginate({"a", "c", "d"}, 10, EncodePageToken("b"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->begin, 1u);
  EXPECT_EQ(p->end, 3u);
  EXPECT_TRUE(p->next_token.empty());
}

TEST(PaginateTest, ForgedOrTruncatedTokensAreRefused) {
  const std::string good = EncodePageToken("fabric-7");
  EXPECT_EQ(*DecodePageToken(good), "fabric-7");
  for (const std::string& bad :
       {std::string("nonsense"), good.substr(0, good.size() - 2),
        std::string("cDEAAAAAa2V5")}) {
    auto k = DecodePageToken(bad);
    EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(k.status().message().find("page_token"), std::string::npos);
  }
}

}  // namespace
}  // namespace fabric::service

namespace fabric::service {
namespace {

// A List request and response as ForEachPage takes them.
struct FakeRequest {
  int page_size = 0;
  std::string page_token;
  void set_page_size(int n) { page_size = n; }
  void set_page_token(std::string t) { page_token = std::move(t); }
};
struct FakeResponse {
  int page = 0;
  std::string token;
  const std::string& next_page_token() const { return token; }
};

TEST(ForEachPageTest, HandsOnEveryPageThenReturnsTheFirstError) {
  // Pages 1, 2, 3 and then the end.
  auto list = [](int fail_at) {
    return [fail_at](const FakeRequest& req) -> absl::StatusOr<FakeResponse> {
      EXPECT_EQ(req.page_size, kMaxPageSize);
      const int page = req.page_token.empty() ? 1 : std::stoi(req.page_token);
      if (page == fail_at) return absl::UnavailableError("page failed");
      return FakeResponse{page, page < 3 ? std::to_string(page + 1) : ""};
    };
  };
  std::vector<int> seen;
  auto each = [&](const FakeResponse& r) { seen.push_back(r.page); };
  EXPECT_TRUE(ForEachPage(FakeRequest(), list(0), each).ok());
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
  seen.clear();
  absl::Status s = ForEachPage(FakeRequest(), list(3), each);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));  // the caller must not stop here
}

}  // namespace
}  // namespace fabric::service
