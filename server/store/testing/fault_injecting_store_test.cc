#include "server/store/testing/fault_injecting_store.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"
#include "server/store/store.h"

namespace fabric::store {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

std::unique_ptr<Store> OpenMemory() {
  SqliteOptions options;
  options.path = ":memory:";
  auto store = OpenSqliteStore(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

WriteBatch TwoPuts(const std::string& a, const std::string& b) {
  WriteBatch batch;
  batch.Put("t", a, "v" + a);
  batch.Put("t", b, "v" + b);
  return batch;
}

TEST(FaultInjectingStoreTest, ForwardsWhenHealthy) {
  auto base = OpenMemory();
  ASSERT_NE(base, nullptr);
  FaultInjectingStore store(base.get());
  ASSERT_TRUE(store.Apply(TwoPuts("a", "b")).ok());
  EXPECT_EQ(*store.Get("t", "a"), "va");
  EXPECT_THAT(*store.Scan("t"), ElementsAre(Pair("a", "va"), Pair("b", "vb")));
  EXPECT_EQ(store.stats().batches, 1u);
  EXPECT_EQ(store.injected_failures(), 0u);
}

TEST(FaultInjectingStoreTest, FailedApplyChangesNothingAndReadsPassThrough) {
  auto base = OpenMemory();
  ASSERT_NE(base, nullptr);
  FaultInjectingStore store(base.get());
  ASSERT_TRUE(store.Apply(TwoPuts("a", "b")).ok());

  store.FailWrites(absl::UnavailableError("disk full (injected)"));
  WriteBatch batch;
  batch.Put("t", "a", "changed");
  batch.Delete("t", "b");
  batch.Put("t", "c", "new");
  const absl::Status status = store.Apply(batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "disk full (injected)");
  EXPECT_EQ(store.injected_failures(), 1u);

  EXPECT_THAT(*store.Scan("t"), ElementsAre(Pair("a", "va"), Pair("b", "vb")));
  EXPECT_EQ(*store.Get("t", "a"), "va");
  EXPECT_EQ(store.stats().batches, 1u);

  store.Heal();
  ASSERT_TRUE(store.Apply(batch).ok());
  EXPECT_THAT(*store.Scan("t"),
              ElementsAre(Pair("a", "changed"), Pair("c", "new")));
}

TEST(FaultInjectingStoreTest, FailWritesAfterLetsSomeThrough) {
  FaultInjectingStore store(OpenMemory());  // Owns the wrapped store.
  store.FailWritesAfter(2, absl::UnavailableError("injected"));
  EXPECT_TRUE(store.Apply(TwoPuts("a", "b")).ok());
  EXPECT_TRUE(store.Apply(TwoPuts("c", "d")).ok());
  EXPECT_EQ(store.Apply(TwoPuts("e", "f")).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Apply(TwoPuts("g", "h")).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.injected_failures(), 2u);
  EXPECT_EQ(store.Scan("t")->size(), 4u);

  store.FailWrites(absl::OkStatus());  // Same as Heal().
  EXPECT_TRUE(store.Apply(TwoPuts("e", "f")).ok());
  EXPECT_EQ(store.Scan("t")->size(), 6u);
}

TEST(FaultInjectingStoreTest, LimitsForwardOrAreGivenAndEnforced) {
  auto base = OpenMemory();
  ASSERT_NE(base, nullptr);
  FaultInjectingStore store(base.get());
  EXPECT_EQ(store.limits().max_ops, base->limits().max_ops);

  store.SetLimits(StoreLimits{.max_ops = 1});
  EXPECT_EQ(store.limits().max_ops, 1u);
  const absl::Status status = store.Apply(TwoPuts("a", "b"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), ::testing::HasSubstr("at most 1"));
  EXPECT_TRUE(store.Scan("t")->empty());
  EXPECT_EQ(store.injected_failures(), 0u);
  WriteBatch one;
  one.Put("t", "a", "va");
  EXPECT_TRUE(store.Apply(one).ok());

  store.SetLimits(std::nullopt);
  EXPECT_EQ(store.limits().max_ops, 0u);
  EXPECT_TRUE(store.Apply(TwoPuts("a", "b")).ok());
}

}  // namespace
}  // namespace fabric::store
