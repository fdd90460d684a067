#include "server/store/batch_limits.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::store {
namespace {

using ::testing::HasSubstr;

TEST(BatchLimitsTest, NoLimitsFitsAnything) {
  WriteBatch b;
  for (int i = 0; i < 1000; ++i) b.Put("t", std::to_string(i), "v");
  EXPECT_TRUE(CheckFits(b, StoreLimits{}).ok());
  auto chunks = SplitToFit(std::move(b), StoreLimits{});
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 1u);
  EXPECT_EQ((*chunks)[0].mutations().size(), 1000u);
}

TEST(BatchLimitsTest, FitsInAgreesWithStoreLimitsFits) {
  StoreLimits limits{.max_ops = 3, .max_bytes = 20, .per_op_overhead_bytes = 2};
  WriteBatch b;
  b.Put("t", "k", "12345");  // 7 bytes + 2 overhead
  EXPECT_EQ(FitsIn(limits, 1, 7), limits.Fits(b));
  b.Put("t", "k", "12345");  // 18
  EXPECT_EQ(FitsIn(limits, 2, 14), limits.Fits(b));
  b.Delete("t", "k");  // 18 + 2 + 2 = 22 > 20
  EXPECT_FALSE(limits.Fits(b));
  EXPECT_EQ(FitsIn(limits, 3, 16), limits.Fits(b));
}

TEST(BatchLimitsTest, CheckFitsNamesTheOpsLimit) {
  WriteBatch b;
  for (int i = 0; i < 300; ++i) b.Delete("t", std::to_string(i));
  absl::Status s = CheckFits(b, StoreLimits{.max_ops = 127});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "the change needs 300 store operations; the store takes at most "
            "127 per transaction (etcd --max-txn-ops)");
}

TEST(BatchLimitsTest, CheckFitsNamesTheBytesLimit) {
  WriteBatch b;
  b.Put("t", "k", std::string(100, 'x'));
  absl::Status s = CheckFits(b, StoreLimits{.max_bytes = 50});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("102 bytes"));
  EXPECT_THAT(s.message(), HasSubstr("--max-request-bytes"));
}

TEST(BatchLimitsTest, SplitKeepsOrderAndEveryChunkFits) {
  StoreLimits limits{.max_ops = 4};
  WriteBatch b;
  for (int i = 0; i < 10; ++i) {
    if (i % 3 == 0) {
      b.Delete("t", std::to_string(i));
    } else {
      b.Put("t", std::to_string(i), "v");
    }
  }
  auto chunks = SplitToFit(std::move(b), limits);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 3u);
  int next = 0;
  for (const WriteBatch& c : *chunks) {
    EXPECT_TRUE(limits.Fits(c));
    for (const Mutation& m : c.mutations()) {
      EXPECT_EQ(m.key, std::to_string(next));
      EXPECT_EQ(m.value.has_value(), next % 3 != 0);
      ++next;
    }
  }
  EXPECT_EQ(next, 10);
}

TEST(BatchLimitsTest, SplitRefusesAMutationThatAloneDoesNotFit) {
  WriteBatch b;
  b.Put("t", "a", "v");
  b.Put("t", "b", std::string(100, 'x'));
  auto chunks = SplitToFit(std::move(b), StoreLimits{.max_bytes = 50});
  EXPECT_EQ(chunks.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BatchLimitsTest, SplitOfEmptyIsNothing) {
  auto chunks = SplitToFit(WriteBatch(), StoreLimits{.max_ops = 1});
  ASSERT_TRUE(chunks.ok());
  EXPECT_TRUE(chunks->empty());
}

}  // namespace
}  // namespace fabric::store
