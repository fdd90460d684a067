#include "server/store/testing/fault_injecting_store.h"

#include "server/store/batch_limits.h"

namespace fabric::store {

FaultInjectingStore::FaultInjectingStore(Store* base) : base_(base) {}

FaultInjectingStore::FaultInjectingStore(std::unique_ptr<Store> base)
    : owned_(std::move(base)), base_(owned_.get()) {}

void FaultInjectingStore::FailWrites(absl::Status status) {
  FailWritesAfter(0, std::move(status));
}

void FaultInjectingStore::FailWritesAfter(int successes, absl::Status status) {
  absl::MutexLock lock(&mu_);
  failure_ = std::move(status);
  successes_left_ = failure_.ok() || successes < 0 ? 0 : successes;
}

void FaultInjectingStore::Heal() {
  absl::MutexLock lock(&mu_);
  failure_ = absl::OkStatus();
  successes_left_ = 0;
}

void FaultInjectingStore::SetLimits(std::optional<StoreLimits> limits) {
  absl::MutexLock lock(&mu_);
  limits_ = limits;
}

StoreLimits FaultInjectingStore::limits() const {
  {
    absl::MutexLock lock(&mu_);
    if (limits_.has_value()) return *limits_;
  }
  return base_->limits();
}

uint64_t FaultInjectingStore::injected_failures() const {
  absl::MutexLock lock(&mu_);
  return injected_failures_;
}

absl::Status FaultInjectingStore::Apply(const WriteBatch& batch) {
  {
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) {
      if (successes_left_ == 0) {
        ++injected_failures_;
        return failure_;
      }
      --successes_left_;
    }
    if (limits_.has_value()) {
      if (absl::Status fits = CheckFits(batch, *limits_); !fits.ok()) {
        return fits;
      }
    }
  }
  return base_->Apply(batch);
}

absl::StatusOr<std::string> FaultInjectingStore::Get(absl::string_view table,
                                                     absl::string_view key) {
  return base_->Get(table, key);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
FaultInjectingStore::Scan(absl::string_view table) {
  return base_->Scan(table);
}

StoreStats FaultInjectingStore::stats() const { return base_->stats(); }

}  // namespace fabric::store
