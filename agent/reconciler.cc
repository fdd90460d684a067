#include "agent/reconciler.h"

#include <algorithm>
#include <iostream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/bridge_state.h"

namespace fabric::agent {
namespace {

constexpr size_t kRecentRepairs = 8;

// How often the thread reads a clock other than the real one (which only
// moves forward at its own pace) while it waits for the next attempt.
constexpr absl::Duration kOtherClockRecheck = absl::Milliseconds(20);

}  // namespace

Reconciler::Reconciler(std::string node, ReconcilerOptions options,
                       hw::BridgeHardware* hardware, Clock* clock,
                       std::function<void()> on_news, AgentMetrics* metrics)
    : node_(std::move(node)),
      options_(std::move(options)),
      hardware_(hardware),
      clock_(clock),
      on_news_(std::move(on_news)),
      metrics_(metrics) {}

Reconciler::~Reconciler() { Stop(); }

void Reconciler::Start() {
  thread_ = std::thread([this] {
    absl::MutexLock hw(&hw_mu_);
    while (!stopping_) {
      const absl::Time due = NextDueLocked();
      const absl::Time now = clock_->Now();
      if (now >= due) {
        RunDueLocked();
        continue;
      }
      // Sleeps until the next attempt is due, or until the schedule changes
      // (Apply, a test's RunDue, Stop: each releases hw_mu_, which makes the
      // condition be looked at again). Another clock (a test's ManualClock)
      // can jump at any moment, so it is read again every
      // kOtherClockRecheck.
      absl::Duration wait = due - now;
      if (clock_ != Clock::Real()) wait = std::min(wait, kOtherClockRecheck);
      auto changed = [this, due]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hw_mu_) {
        return stopping_ || NextDueLocked() != due;
      };
      hw_mu_.AwaitWithTimeout(absl::Condition(&changed), wait);
    }
  });
}

void Reconciler::Stop() {
  {
    absl::MutexLock hw(&hw_mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status Reconciler::Apply(const agentproto::v1::DesiredConfig& config) {
  absl::MutexLock hw(&hw_mu_);
  if (landed_ && landed_state_.has_value() &&
      *landed_state_ == DesiredState(config)) {
    // Nothing new for this bridge: no read-back, no write, and the drift
    // check stays when it was due (a stream of such generations must not
    // put it off).
    desired_ = std::make_unique<agentproto::v1::DesiredConfig>(config);
    absl::MutexLock l(&mu_);
    stats_.desired_generation = config.generation();
    if (stats_.applied_generation != config.generation()) ++stats_.applies;
    stats_.applied_generation = config.generation();
    if (metrics_ != nullptr) {
      metrics_->SetAppliedGeneration(config.generation());
    }
    return absl::OkStatus();
  }
  desired_ = std::make_unique<agentproto::v1::DesiredConfig>(config);
  attempts_ = 0;
  retry_backoff_ = options_.apply_retry_initial;
  return AttemptLocked(Attempt::kNew);
}

void Reconciler::RunDue() {
  absl::MutexLock hw(&hw_mu_);
  RunDueLocked();
}

absl::Time Reconciler::NextDueLocked() const {
  // A fenced agent leaves the hardware to the agent that replaced it.
  if (desired_ == nullptr || fenced_) return absl::InfiniteFuture();
  return landed_ ? next_drift_check_ : next_retry_;
}

void Reconciler::RunDueLocked() {
  if (clock_->Now() < NextDueLocked()) return;
  (void)AttemptLocked(landed_ ? Attempt::kDriftCheck : Attempt::kRetry);
}

void Reconciler::RecordFingerprint(
    const agentproto::v1::DesiredConfig& config) {
  absl::MutexLock hw(&hw_mu_);
  RecordFingerprintLocked(Fingerprint(DesiredState(config)));
}

absl::StatusOr<hw::AccessResult> Reconciler::HostWrite(
    uint64_t addr, absl::Span<const uint8_t> data) {
  absl::MutexLock hw(&hw_mu_);
  return hardware_->HostWrite(addr, data);
}

absl::Status Reconciler::HostRead(uint64_t addr, absl::Span<uint8_t> out) {
  absl::MutexLock hw(&hw_mu_);
  return hardware_->HostRead(addr, out);
}

ReconcileStats Reconciler::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

absl::Status Reconciler::AttemptLocked(Attempt attempt) {
  const agentproto::v1::DesiredConfig& config = *desired_;
  const int64_t generation = config.generation();
  const hw::BridgeState want = DesiredState(config);
  std::vector<v1::ApplyError> errors;
  const absl::Time started =
      metrics_ != nullptr ? metrics_->clock()->Now() : absl::InfinitePast();
  const bool wrote = ApplyLocked(want, generation, attempt, &errors);
  if (metrics_ != nullptr && attempt != Attempt::kDriftCheck) {
    metrics_->ApplyDone(metrics_->clock()->Now() - started);
  }
  const absl::Time now = clock_->Now();
  const bool was_landed = landed_;
  landed_ = errors.empty();
  if (landed_) {
    landed_state_ = want;
  } else {
    landed_state_.reset();
  }
  // The stream loop reports after a new configuration; the reconciler's
  // news (a repair, a refusal, a retry that landed) goes out with the next
  // heartbeat slice instead of waiting a whole interval.
  if (attempt != Attempt::kNew && (wrote || !landed_ || !was_landed)) {
    on_news_();
  }
  next_drift_check_ = now + options_.drift_check_interval;
  absl::Duration retry_in = absl::ZeroDuration();
  if (landed_) {
    // The stream loop records a new configuration's fingerprint itself,
    // after reporting, to keep it off the path to READY.
    if (attempt != Attempt::kNew) RecordFingerprintLocked(Fingerprint(want));
    if (attempts_ > 0) {
      std::cerr << "fabric-agent " << node_ << ": generation " << generation
                << " landed after " << attempts_ << " refused attempts"
                << std::endl;
    }
    attempts_ = 0;
    retry_backoff_ = options_.apply_retry_initial;
    next_retry_ = absl::InfiniteFuture();
  } else {
    ++attempts_;
    retry_in = retry_backoff_;
    next_retry_ = now + retry_backoff_;
    retry_backoff_ = std::min(retry_backoff_ * 2, options_.apply_retry_max);
    for (v1::ApplyError& e : errors) e.set_attempts(attempts_);
    std::cerr << "fabric-agent " << node_ << ": generation " << generation
              << ": " << errors.size()
              << " entries refused (first: " << errors[0].entry() << ": "
              << errors[0].message() << "); attempt " << attempts_
              << ", next in " << absl::FormatDuration(retry_in) << std::endl;
  }
  // Entries refused for single allocations do not hold back the rest of the
  // generation: the manager keeps just the allocations the errors name
  // PENDING. An entry every allocation needs (map entries, ports, host
  // memory) holds back the whole generation.
  const bool only_allocations_failed = std::all_of(
      errors.begin(), errors.end(),
      [](const v1::ApplyError& e) { return !e.allocation().empty(); });
  absl::MutexLock l(&mu_);
  stats_.desired_generation = generation;
  if (attempt == Attempt::kRetry) ++stats_.apply_retries;
  if (landed_ || only_allocations_failed) {
    if (stats_.applied_generation != generation) ++stats_.applies;
    stats_.applied_generation = generation;
    if (metrics_ != nullptr) metrics_->SetAppliedGeneration(generation);
  }
  stats_.errors = errors;
  stats_.next_retry = next_retry_;
  stats_.next_drift_check = next_drift_check_;
  if (landed_) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      errors.size(), " entries were refused; first: ", errors[0].entry(), ": ",
      errors[0].message(), "; retrying in ", absl::FormatDuration(retry_in)));
}

bool Reconciler::ApplyLocked(const hw::BridgeState& want, int64_t generation,
                             Attempt attempt,
                             std::vector<v1::ApplyError>* errors) {
  auto refusal = [](const std::string& entry, const absl::Status& s,
                    const std::string& allocation = "") {
    v1::ApplyError e;
    e.set_entry(entry);
    e.set_message(std::string(s.message()));
    // Tags are allocation ids, or attachments/{id}/{role} for the windows
    // of a VF attachment.
    if (!allocation.empty()) {
      e.set_allocation(absl::StrContains(allocation, '/')
                           ? allocation
                           : absl::StrCat("allocations/", allocation));
    }
    return e;
  };
  auto fail = [&](RefusalKind kind, const std::string& entry,
                  const absl::Status& s, const std::string& allocation = "") {
    if (metrics_ != nullptr) metrics_->Refused(kind);
    errors->push_back(refusal(entry, s, allocation));
  };
  // A state the hardware cannot read back (lost, garbage) is drift like any
  // other: the bridge holds something it was not given. It is rebuilt from
  // `want` as if from a reset bridge (nothing programmed), whatever the
  // attempt, rather than waited out.
  absl::StatusOr<hw::BridgeState> read = hardware_->Read();
  const absl::Status unreadable = read.status();
  const hw::BridgeState have = read.ok() ? *std::move(read) : hw::BridgeState();
  const std::vector<std::string> diff = DiffEntries(have, want);
  const uint64_t recorded = RecordedFingerprint(have);
  recorded_fingerprint_ = recorded;
  if (diff.empty() && unreadable.ok()) return false;
  absl::Status applied = hardware_->ApplyState(want);
  if (!applied.ok()) {
    // Find every entry the hardware refuses, applying the rest, so that
    // one bad entry does not hold back the others.
    if (!SameHostMemory(have.memory, want.memory)) {
      if (auto s = hardware_->SetHostMemory(want.memory); !s.ok())
        fail(RefusalKind::kHostMemory, "host memory", s);
    }
    if (auto s = hardware_->SetMapEntries(want.map); !s.ok())
      fail(RefusalKind::kMapEntry, "map entries", s);
    for (const auto& w : have.windows) {
      bool wanted = std::any_of(want.windows.begin(), want.windows.end(),
                                [&](const hw::Window& x) {
                                  return x.kind == w.kind && x.slot == w.slot;
                                });
      if (!wanted) {
        if (auto s = hardware_->ClearWindow(w.kind, w.slot); !s.ok())
          fail(RefusalKind::kWindow, SlotEntryName(w.kind, w.slot), s, w.tag);
      }
    }
    for (const auto& w : want.windows) {
      if (auto s = hardware_->SetWindow(w); !s.ok())
        fail(RefusalKind::kWindow, SlotEntryName(w.kind, w.slot), s, w.tag);
    }
    if (auto s = hardware_->SetInbound(want.inbound); !s.ok())
      fail(RefusalKind::kInbound, "inbound", s);
    for (const auto& p : want.ports) {
      if (auto s = hardware_->SetPort(p); !s.ok())
        fail(RefusalKind::kPort, absl::StrCat("port ", p.number), s);
    }
    if (errors->empty()) fail(RefusalKind::kBridge, "bridge", applied);
  }
  if (!unreadable.ok()) {
    // Rebuilt once it reads back, entries it refused aside (they are
    // reported as refusals); until then the reason comes first.
    if (absl::Status rebuilt = hardware_->Read().status(); !rebuilt.ok()) {
      if (metrics_ != nullptr) metrics_->Refused(RefusalKind::kHardware);
      errors->insert(errors->begin(), refusal("hardware", rebuilt));
      return true;
    }
    RecordRepair(1,
                 absl::StrCat("bridge state unreadable (", unreadable.message(),
                              "); rebuilt from generation ", generation));
    return true;
  }
  // Drift: the hardware had held this very state, and something else
  // changed it. A retry after a refusal puts in what never landed: no
  // repair.
  const bool drift =
      attempt == Attempt::kDriftCheck ||
      (attempt == Attempt::kNew && recorded == Fingerprint(want));
  if (errors->empty() && drift) {
    RecordRepair(static_cast<int64_t>(diff.size()),
                 absl::StrCat("generation ", generation, ": restored ",
                              absl::StrJoin(diff, ", ")));
  }
  return true;
}

void Reconciler::RecordRepair(int64_t repairs, std::string what) {
  if (metrics_ != nullptr) metrics_->DriftRepaired(repairs);
  absl::MutexLock l(&mu_);
  stats_.repairs += repairs;
  stats_.recent_repairs.push_back(std::move(what));
  if (stats_.recent_repairs.size() > kRecentRepairs) {
    stats_.recent_repairs.erase(stats_.recent_repairs.begin());
  }
  std::cerr << "fabric-agent " << node_
            << ": repaired drift: " << stats_.recent_repairs.back()
            << std::endl;
}

void Reconciler::RecordFingerprintLocked(uint64_t fingerprint) {
  if (recorded_fingerprint_ == fingerprint ||
      hardware_->limits().scratchpads <= kFingerprintSpadHigh) {
    return;
  }
  // Bookkeeping only: a failure costs drift detection after a restart.
  if (hardware_
          ->WriteScratchpad(kFingerprintSpadLow,
                            static_cast<uint32_t>(fingerprint))
          .ok() &&
      hardware_
          ->WriteScratchpad(kFingerprintSpadHigh,
                            static_cast<uint32_t>(fingerprint >> 32))
          .ok()) {
    recorded_fingerprint_ = fingerprint;
  }
}

}  // namespace fabric::agent
