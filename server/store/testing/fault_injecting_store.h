// A Store wrapper that makes writes fail on command, for tests of callers.
//
// Like leveldb's EnvWrapper with faults: it forwards to a real Store, except
// that Apply can be told to fail with a chosen status. Reads and stats always
// pass through, so a test can check that a failed write changed nothing.
//
//   SqliteOptions options;
//   options.path = ":memory:";
//   FaultInjectingStore store(*OpenSqliteStore(options));  // owns it
//   store.FailWrites(absl::UnavailableError("disk full (injected)"));
//   EXPECT_EQ(manager.Allocate(...).code(), absl::StatusCode::kUnavailable);
//   store.Heal();
//
// Test-only (target fabric_store_testing): no production binary links it.
// Thread-safe.
#ifndef FABRIC_SERVER_STORE_TESTING_FAULT_INJECTING_STORE_H_
#define FABRIC_SERVER_STORE_TESTING_FAULT_INJECTING_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

namespace fabric::store {

class FaultInjectingStore : public Store {
 public:
  // Wraps `base`, which is not owned and must outlive this object.
  explicit FaultInjectingStore(Store* base);
  // Wraps and owns `base`.
  explicit FaultInjectingStore(std::unique_ptr<Store> base);

  // From now on every Apply (even of an empty batch) fails with `status`
  // without reaching the wrapped store. An OK `status` is the same as Heal().
  void FailWrites(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);

  // Lets the next `successes` non-failing Apply calls through, then behaves
  // as FailWrites(status). For "the Nth write fails" scenarios. Negative
  // `successes` counts as 0; an OK `status` is the same as Heal().
  void FailWritesAfter(int successes, absl::Status status)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Stops injecting failures; Apply forwards again.
  void Heal() ABSL_LOCKS_EXCLUDED(mu_);

  // From now on limits() returns `limits` (nullopt: the wrapped store's
  // again), and Apply refuses a batch that does not fit them with
  // INVALID_ARGUMENT naming the limit, writing nothing, as an etcd store
  // does; a refusal is not counted in injected_failures().
  void SetLimits(std::optional<StoreLimits> limits) ABSL_LOCKS_EXCLUDED(mu_);

  // Number of Apply calls failed by injection so far.
  uint64_t injected_failures() const ABSL_LOCKS_EXCLUDED(mu_);

  // Store. Apply forwards unless a failure is armed or the batch does not
  // fit limits(); the rest always forward. stats() are the wrapped store's;
  // limits() the wrapped store's unless SetLimits gave others.
  absl::Status Apply(const WriteBatch& batch) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::string> Get(absl::string_view table,
                                  absl::string_view key) override;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      absl::string_view table) override;
  StoreStats stats() const override;
  StoreLimits limits() const override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const std::unique_ptr<Store> owned_;  // May be null.
  Store* const base_;                   // owned_ or borrowed; never null.

  mutable absl::Mutex mu_;
  // Failure to inject once `successes_left_` reaches 0; OK = none armed.
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  int successes_left_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t injected_failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<StoreLimits> limits_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_TESTING_FAULT_INJECTING_STORE_H_
