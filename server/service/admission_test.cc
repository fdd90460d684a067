#include "server/service/admission.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;

TEST(AdmissionControlTest, RefusesOverTheLimitNamingItAndFreesOnRelease) {
  AdmissionControl admission(2);
  EXPECT_TRUE(admission.Acquire("CreateAllocation").ok());
  EXPECT_TRUE(admission.Acquire("CreateAllocation").ok());
  absl::Status s = admission.Acquire("DeleteAllocation");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("DeleteAllocation"));
  EXPECT_THAT(s.message(), HasSubstr("2 mutations are in flight"));
  EXPECT_THAT(s.message(), HasSubstr("--max-inflight"));
  EXPECT_EQ(admission.inflight(), 2);
  admission.Release();
  EXPECT_TRUE(admission.Acquire("CreateAllocation").ok());
  EXPECT_EQ(admission.admitted(), 3u);
  EXPECT_EQ(admission.rejected(), 1u);
}

TEST(AdmissionControlTest, ZeroLimitAdmitsEverything) {
  AdmissionControl admission(0);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(admission.Acquire("CreateAllocation").ok());
  }
  EXPECT_EQ(admission.inflight(), 10000);
}

TEST(AdmissionControlTest, NeverAdmitsMoreThanTheLimitConcurrently) {
  constexpr int kLimit = 8;
  AdmissionControl admission(kLimit);
  std::atomic<int> inside{0}, most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (!admission.Acquire("x").ok()) continue;
        const int now = ++inside;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        --inside;
        admission.Release();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), kLimit);
  EXPECT_EQ(admission.inflight(), 0);
}

TEST(AdmissionControlTest, ReleasingSlotReleasesBeforeTheCallback) {
  AdmissionControl admission(1);
  ASSERT_TRUE(admission.Acquire("x").ok());
  int in_flight_seen = -1;
  auto done = ReleasingSlot<int>(
      &admission, [&](absl::StatusOr<int>) {
        in_flight_seen = admission.inflight();
      });
  done(7);
  EXPECT_EQ(in_flight_seen, 0);
  // Without admission the callback is passed through.
  bool called = false;
  ReleasingSlot<int>(nullptr, [&](absl::StatusOr<int>) { called = true; })(1);
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace fabric::service
