#include "server/ha/store_gate.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace fabric::ha {
namespace {

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

class StaleReadsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit StaleReadsInterceptor(const StoreGate* gate) : gate_(gate) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      if (std::optional<std::string> note = gate_->StaleNote()) {
        m->GetSendInitialMetadata()->emplace(kStaleMetadata, *note);
      }
    }
    m->Proceed();
  }

 private:
  const StoreGate* const gate_;
};

}  // namespace

StoreGate::StoreGate(store::Store* inner, StoreGateOptions options,
                     std::function<void(const absl::Status&)> on_step_down)
    : inner_(inner),
      options_(options),
      on_step_down_(std::move(on_step_down)) {
  probe_ = std::thread([this] { ProbeLoop(); });
}

StoreGate::~StoreGate() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  probe_.join();
}

void StoreGate::DegradeLocked(const absl::Status& cause) {
  if (!DegradedLocked()) {
    since_ = options_.clock->Now();
    cause_ = cause;
    std::cerr << "fabric-manager: etcd has no quorum or is unreachable ("
              << cause.message()
              << "); refusing mutations, serving reads of the state as of "
              << Rfc3339(since_) << std::endl;
  }
}

absl::Status StoreGate::Apply(const store::WriteBatch& batch) {
  {
    absl::MutexLock l(&mu_);
    if (DegradedLocked()) {
      return absl::UnavailableError(absl::StrCat(
          "etcd has no quorum or is unreachable (", cause_.message(),
          "); mutations are refused, reads serve the state as of ",
          Rfc3339(since_)));
    }
  }
  absl::Status written = inner_->Apply(batch);
  if (absl::IsUnavailable(written)) {
    absl::MutexLock l(&mu_);
    DegradeLocked(written);
    outcome_unknown_ = true;
  }
  return written;
}

absl::StatusOr<std::string> StoreGate::Get(absl::string_view table,
                                           absl::string_view key) {
  return inner_->Get(table, key);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
StoreGate::Scan(absl::string_view table) {
  return inner_->Scan(table);
}

store::StoreStats StoreGate::stats() const { return inner_->stats(); }

store::StoreLimits StoreGate::limits() const { return inner_->limits(); }

void StoreGate::LeaseUnconfirmed(const absl::Status& cause) {
  absl::MutexLock l(&mu_);
  DegradeLocked(cause);
  lease_unconfirmed_ = true;
}

void StoreGate::LeaseConfirmed() {
  absl::MutexLock l(&mu_);
  lease_unconfirmed_ = false;
  if (!DegradedLocked()) {
    std::cerr << "fabric-manager: etcd answers again and the lease held; "
                 "serving mutations again"
              << std::endl;
  }
}

bool StoreGate::degraded() const {
  absl::MutexLock l(&mu_);
  return DegradedLocked();
}

std::optional<std::string> StoreGate::StaleNote() const {
  absl::MutexLock l(&mu_);
  if (!DegradedLocked()) return std::nullopt;
  return absl::StrCat("etcd unreachable since ", Rfc3339(since_));
}

void StoreGate::ProbeLoop() {
  for (;;) {
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(
          +[](StoreGate* g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g->mu_) {
            return g->stopping_ || (g->outcome_unknown_ && !g->stepped_down_);
          },
          this));
      if (stopping_) return;
      mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                           options_.probe_interval);
      if (stopping_) return;
    }
    absl::StatusOr<std::string> answer = inner_->Get(kProbeTable, "probe");
    if (!answer.ok() && !absl::IsNotFound(answer.status())) continue;
    absl::Status why;
    {
      absl::MutexLock l(&mu_);
      stepped_down_ = true;
      why = absl::AbortedError(absl::StrCat(
          "etcd answers again, but a write failed while it did not (",
          cause_.message(),
          ") and etcd may have committed it since: this manager's memory "
          "may lack it; stepping down, to reload the state as a standby"));
    }
    std::cerr << "fabric-manager: " << why.message() << std::endl;
    on_step_down_(why);
  }
}

grpc::experimental::Interceptor*
StaleReadsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* /*info*/) {
  return new StaleReadsInterceptor(gate_);
}

}  // namespace fabric::ha
