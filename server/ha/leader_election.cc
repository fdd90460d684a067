#include "server/ha/leader_election.h"

#include <algorithm>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace fabric::ha {
namespace {

using store::Fence;

constexpr absl::Duration kMinBackoff = absl::Milliseconds(50);
constexpr absl::Duration kMaxBackoff = absl::Seconds(1);

absl::Status EtcdError(absl::string_view what, const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("etcd ", what, ": ", s.error_message()));
}

// Logs `s` unless the previous failure of the same loop had the same code,
// so a long outage logs once per kind of failure, not once per retry.
void LogFailure(const absl::Status& s, absl::StatusCode* last) {
  if (s.code() == *last) return;
  *last = s.code();
  std::fprintf(stderr, "leader_election: %s (retrying)\n",
               s.ToString().c_str());
}

std::optional<LeaderInfo> InfoOf(const mvccpb::KeyValue& kv) {
  if (kv.key().empty()) return std::nullopt;
  return LeaderInfo{kv.value(), kv.key(), kv.create_revision(), kv.lease()};
}

// The election on etcd. Three threads: keep-alive (one short
// LeaseKeepAlive stream per round, with a deadline, so a member that hangs
// cannot hold a round past the TTL), campaign (grants leases, Campaign,
// waits while leading) and observe (the Observe stream).
//
// Lock order: cb_mu_ before mu_. Every transition of leadership and every
// callback happens under cb_mu_, so callbacks are serialised and on_elected
// / on_lost alternate.
class EtcdLeaderElection final : public LeaderElection {
 public:
  EtcdLeaderElection(const ElectionOptions& options, Callbacks callbacks,
                     std::shared_ptr<grpc::Channel> channel)
      : options_(options),
        callbacks_(std::move(callbacks)),
        name_(absl::StrCat(options.prefix, "/leader")),
        lease_stub_(etcdserverpb::Lease::NewStub(channel)),
        kv_stub_(etcdserverpb::KV::NewStub(channel)),
        election_stub_(v3electionpb::Election::NewStub(channel)) {}

  ~EtcdLeaderElection() override {
    {
      absl::MutexLock l(&mu_);
      stopping_ = true;
      CancelCallsLocked();
    }
    for (std::thread& t : threads_) t.join();
    std::optional<v3electionpb::LeaderKey> key;
    int64_t lease = 0;
    {
      absl::MutexLock l(&mu_);
      key = std::move(leader_key_);
      leader_key_.reset();
      lease = lease_;
    }
    if (key.has_value()) ResignKey(*key).IgnoreError();
    if (lease != 0) RevokeLease(lease).IgnoreError();
  }

  // Grants the first lease; Start's error when etcd does not answer.
  absl::Status Init() {
    absl::StatusOr<std::pair<int64_t, absl::Duration>> granted = GrantLease();
    if (!granted.ok()) return granted.status();
    absl::MutexLock l(&mu_);
    lease_ = granted->first;
    ttl_ = granted->second;
    last_ack_ = absl::Now();
    return absl::OkStatus();
  }

  void StartThreads() {
    threads_.emplace_back([this] { KeepAliveLoop(); });
    threads_.emplace_back([this] { CampaignLoop(); });
    threads_.emplace_back([this] { ObserveLoop(); });
  }

  bool is_leader() const override {
    absl::MutexLock l(&mu_);
    return leader_key_.has_value();
  }

  std::optional<Fence> fence() const override {
    absl::MutexLock l(&mu_);
    if (!leader_key_.has_value()) return std::nullopt;
    return Fence{leader_key_->key(), leader_key_->rev()};
  }

  std::optional<LeaderInfo> leader() const override {
    absl::MutexLock l(&mu_);
    return leader_;
  }

  int64_t lease() const override {
    absl::MutexLock l(&mu_);
    return lease_;
  }

  absl::Status Resign() override {
    {
      absl::MutexLock l(&mu_);
      resigned_ = true;
      if (campaign_ctx_ != nullptr) campaign_ctx_->TryCancel();
    }
    absl::MutexLock cb(&cb_mu_);
    std::optional<v3electionpb::LeaderKey> key;
    {
      absl::MutexLock l(&mu_);
      key = std::move(leader_key_);
      leader_key_.reset();
    }
    if (!key.has_value()) return absl::OkStatus();
    absl::Status s = ResignKey(*key);
    if (callbacks_.on_lost) callbacks_.on_lost();
    return s;
  }

  void SetKeepAlivePausedForTesting(bool paused) override {
    absl::MutexLock l(&mu_);
    paused_ = paused;
  }

 private:
  void CancelCallsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (grpc::ClientContext* c : {campaign_ctx_, observe_ctx_, keepalive_ctx_}) {
      if (c != nullptr) c->TryCancel();
    }
  }

  // Sets *slot to `ctx` for the call about to start, unless stopping.
  bool Register(grpc::ClientContext** slot, grpc::ClientContext* ctx) {
    absl::MutexLock l(&mu_);
    if (stopping_) return false;
    *slot = ctx;
    return true;
  }
  void Unregister(grpc::ClientContext** slot) {
    absl::MutexLock l(&mu_);
    *slot = nullptr;
  }

  // Waits `d` or until the destructor starts; false when stopping.
  bool Sleep(absl::Duration d) {
    absl::MutexLock l(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
    return !stopping_;
  }

  // --- etcd calls ---------------------------------------------------------

  absl::StatusOr<std::pair<int64_t, absl::Duration>> GrantLease() {
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(std::max<int64_t>(1, absl::ToInt64Seconds(options_.ttl)));
    etcdserverpb::LeaseGrantResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(store::EtcdDeadline(options_.client));
    grpc::Status s = lease_stub_->LeaseGrant(&ctx, req, &resp);
    if (!s.ok()) return EtcdError("LeaseGrant", s);
    if (!resp.error().empty() || resp.id() == 0) {
      return absl::UnavailableError(
          absl::StrCat("etcd LeaseGrant: ", resp.error()));
    }
    // etcd may raise the TTL to its minimum (1.5 election timeouts).
    return std::make_pair(resp.id(), absl::Seconds(resp.ttl()));
  }

  absl::Status RevokeLease(int64_t lease) {
    etcdserverpb::LeaseRevokeRequest req;
    req.set_id(lease);
    etcdserverpb::LeaseRevokeResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(store::EtcdDeadline(options_.client));
    grpc::Status s = lease_stub_->LeaseRevoke(&ctx, req, &resp);
    return s.ok() ? absl::OkStatus() : EtcdError("LeaseRevoke", s);
  }

  absl::Status ResignKey(const v3electionpb::LeaderKey& key) {
    v3electionpb::ResignRequest req;
    *req.mutable_leader() = key;
    v3electionpb::ResignResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(store::EtcdDeadline(options_.client));
    grpc::Status s = election_stub_->Resign(&ctx, req, &resp);
    return s.ok() ? absl::OkStatus() : EtcdError("Resign", s);
  }

  // One keep-alive round; the TTL etcd answered (0: the lease is gone).
  absl::StatusOr<int64_t> KeepAliveOnce(int64_t lease, absl::Duration ttl) {
    grpc::ClientContext ctx;
    // A third of the TTL: a round stuck on a member that lost its etcd
    // leader gives way to another round (on another member, if the channel
    // moved) while the lease still lives.
    ctx.set_deadline(absl::ToChronoTime(
        absl::Now() + std::min(options_.client.rpc_timeout, ttl / 3)));
    if (!Register(&keepalive_ctx_, &ctx)) {
      return absl::CancelledError("stopping");
    }
    auto stream = lease_stub_->LeaseKeepAlive(&ctx);
    etcdserverpb::LeaseKeepAliveRequest req;
    req.set_id(lease);
    etcdserverpb::LeaseKeepAliveResponse resp;
    const bool answered = stream->Write(req) && stream->Read(&resp);
    stream->WritesDone();
    grpc::Status s = stream->Finish();
    Unregister(&keepalive_ctx_);
    if (answered) return resp.ttl();
    if (s.ok()) return absl::UnavailableError("etcd LeaseKeepAlive: no answer");
    return EtcdError("LeaseKeepAlive", s);
  }

  // --- transitions ----------------------------------------------------------

  // The lease `lease` is (or may be) gone: stop leading on it and let the
  // campaign thread grant a new one.
  void LeaseLost(int64_t lease, absl::string_view why) {
    absl::MutexLock cb(&cb_mu_);
    bool was_leader = false;
    {
      absl::MutexLock l(&mu_);
      if (lease_ != lease || lease_lost_) return;
      lease_lost_ = true;
      if (campaign_ctx_ != nullptr) campaign_ctx_->TryCancel();
      was_leader = leader_key_.has_value();
      leader_key_.reset();
      unreachable_ = false;
    }
    std::fprintf(stderr, "leader_election: lease %llx lost: %s\n",
                 static_cast<unsigned long long>(lease),
                 std::string(why).c_str());
    if (was_leader && callbacks_.on_lost) callbacks_.on_lost();
  }

  // Campaign returned `key`: lead on it unless the lease was lost or the
  // election stopped meanwhile. False when not taken.
  bool BecomeLeader(const v3electionpb::LeaderKey& key) {
    absl::MutexLock cb(&cb_mu_);
    {
      absl::MutexLock l(&mu_);
      if (stopping_ || resigned_ || lease_lost_ || lease_ != key.lease() ||
          leader_key_.has_value()) {
        return false;
      }
      leader_key_ = key;
      unreachable_ = false;
    }
    if (callbacks_.on_elected) {
      callbacks_.on_elected(Fence{key.key(), key.rev()});
    }
    return true;
  }

  // Leading on `lease`, no keep-alive was acknowledged for a TTL, and
  // on_unreachable is set: keep the key, say so once. False when not
  // leading on `lease` (the caller deposes as before).
  bool Unreachable(int64_t lease, const absl::Status& cause) {
    absl::MutexLock cb(&cb_mu_);
    {
      absl::MutexLock l(&mu_);
      if (lease_ != lease || lease_lost_ || !leader_key_.has_value()) {
        return false;
      }
      if (unreachable_) return true;
      unreachable_ = true;
    }
    std::fprintf(stderr,
                 "leader_election: lease %llx unconfirmed for a TTL (%s); "
                 "still holding the election key, renewing\n",
                 static_cast<unsigned long long>(lease),
                 cause.ToString().c_str());
    callbacks_.on_unreachable(cause);
    return true;
  }

  // A keep-alive of `lease` was answered with the lease alive after
  // Unreachable: the key must still be ours (etcd may have lost it in
  // between, e.g. revoked); on_reachable if so, deposed if not.
  void Reachable(int64_t lease) {
    std::optional<v3electionpb::LeaderKey> key;
    absl::Duration ttl;
    {
      absl::MutexLock l(&mu_);
      if (!unreachable_ || lease_ != lease) return;
      key = leader_key_;
      ttl = ttl_;
    }
    if (!key.has_value()) return;
    // Within a keep-alive round's time, so the next round is not late.
    absl::Status held = CheckKey(*key, ttl / 3);
    if (absl::IsNotFound(held)) {
      LeaseLost(lease, "the election key is gone after etcd came back");
      return;
    }
    if (!held.ok()) return;  // still unreachable: the next round retries
    absl::MutexLock cb(&cb_mu_);
    {
      absl::MutexLock l(&mu_);
      if (!unreachable_ || lease_ != lease || !leader_key_.has_value() ||
          leader_key_->rev() != key->rev()) {
        return;
      }
      unreachable_ = false;
    }
    std::fprintf(stderr,
                 "leader_election: etcd answers again; lease %llx and the "
                 "election key are still ours\n",
                 static_cast<unsigned long long>(lease));
    if (callbacks_.on_reachable) callbacks_.on_reachable();
  }

  void Observed(std::optional<LeaderInfo> info) {
    absl::MutexLock cb(&cb_mu_);
    bool lost = false;
    {
      absl::MutexLock l(&mu_);
      if (leader_.has_value() == info.has_value() &&
          (!info.has_value() || (leader_->key == info->key &&
                                 leader_->create_revision ==
                                     info->create_revision &&
                                 leader_->address == info->address))) {
        return;
      }
      leader_ = info;
      // A newer key leads: ours is gone (an older one cannot lead after us).
      if (leader_key_.has_value() && info.has_value() &&
          info->key != leader_key_->key() &&
          info->create_revision > leader_key_->rev()) {
        lost = true;
        leader_key_.reset();
        unreachable_ = false;
        lease_lost_ = true;  // grant a fresh lease; revoking the old one
                             // deletes our key if it is still there
        if (campaign_ctx_ != nullptr) campaign_ctx_->TryCancel();
      }
    }
    if (lost) {
      std::fprintf(stderr, "leader_election: deposed: %s leads\n",
                   info->key.c_str());
      if (callbacks_.on_lost) callbacks_.on_lost();
    }
    if (callbacks_.on_leader) callbacks_.on_leader(info);
  }

  // --- loops ----------------------------------------------------------------

  void KeepAliveLoop() {
    absl::StatusCode last_error = absl::StatusCode::kOk;
    absl::Time next = absl::Now();
    // After a failed round, the next one waits `retry` at least (a lease
    // whose last ack is old would otherwise be retried in a busy loop while
    // etcd is unreachable).
    absl::Time not_before = absl::InfinitePast();
    for (;;) {
      int64_t lease;
      absl::Duration ttl;
      absl::Time last_ack;
      bool skip;
      {
        absl::MutexLock l(&mu_);
        next = std::max(std::min(next, last_ack_ + ttl_ / 3), not_before);
        mu_.AwaitWithDeadline(absl::Condition(&stopping_), next);
        if (stopping_) return;
        lease = lease_;
        ttl = ttl_;
        last_ack = last_ack_;
        skip = lease_lost_ || paused_;
      }
      const absl::Duration retry = std::min(ttl / 6, absl::Milliseconds(250));
      const absl::Time sent = absl::Now();
      if (skip) {
        if (sent - last_ack >= ttl) LeaseLost(lease, "no keep-alive sent");
        next = sent + retry;
        not_before = next;
        continue;
      }
      absl::StatusOr<int64_t> answered = KeepAliveOnce(lease, ttl);
      if (answered.ok() && *answered > 0) {
        last_error = absl::StatusCode::kOk;
        {
          absl::MutexLock l(&mu_);
          if (lease_ == lease) {
            // etcd renewed after `sent`: the lease lives at least until
            // sent + TTL.
            last_ack_ = sent;
            ttl_ = absl::Seconds(*answered);
          }
          next = sent + ttl_ / 3;
        }
        not_before = absl::InfinitePast();
        Reachable(lease);
        continue;
      }
      if (answered.ok()) {
        LeaseLost(lease, "keep-alive answered TTL 0 (expired)");
      } else if (absl::Now() - last_ack >= ttl) {
        if (!callbacks_.on_unreachable ||
            !Unreachable(lease, answered.status())) {
          LeaseLost(lease,
                    absl::StrCat("no keep-alive acknowledged within the TTL: ",
                                 answered.status().ToString()));
        }
      } else if (!answered.status().ok() &&
                 answered.status().code() != absl::StatusCode::kCancelled) {
        LogFailure(answered.status(), &last_error);
      }
      next = absl::Now() + retry;
      not_before = next;
    }
  }

  // Grants a fresh lease after a loss (revoking the old one, which deletes
  // its key if still there). False when stopping.
  bool RenewLease(absl::Duration* backoff, absl::StatusCode* last_error) {
    int64_t old;
    {
      absl::MutexLock l(&mu_);
      old = lease_;
    }
    RevokeLease(old).IgnoreError();
    for (;;) {
      absl::StatusOr<std::pair<int64_t, absl::Duration>> granted =
          GrantLease();
      if (granted.ok()) {
        absl::MutexLock l(&mu_);
        lease_ = granted->first;
        ttl_ = granted->second;
        last_ack_ = absl::Now();
        lease_lost_ = false;
        *backoff = kMinBackoff;
        return !stopping_;
      }
      LogFailure(granted.status(), last_error);
      if (!Sleep(*backoff)) return false;
      *backoff = std::min(*backoff * 2, kMaxBackoff);
    }
  }

  // The key Campaign returned still exists at its revision on our lease
  // (Campaign can return after the lease expired while it waited).
  // Within `timeout` (default: the client's rpc timeout).
  absl::Status CheckKey(const v3electionpb::LeaderKey& key,
                        std::optional<absl::Duration> timeout = std::nullopt) {
    etcdserverpb::RangeRequest req;
    req.set_key(key.key());
    etcdserverpb::RangeResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(
        absl::Now() + timeout.value_or(options_.client.rpc_timeout)));
    grpc::Status s = kv_stub_->Range(&ctx, req, &resp);
    if (!s.ok()) return EtcdError("Range", s);
    if (resp.kvs_size() != 1 || resp.kvs(0).create_revision() != key.rev() ||
        resp.kvs(0).lease() != key.lease()) {
      return absl::NotFoundError("the election key is gone");
    }
    return absl::OkStatus();
  }

  void CampaignLoop() {
    absl::Duration backoff = kMinBackoff;
    absl::StatusCode last_error = absl::StatusCode::kOk;
    for (;;) {
      int64_t lease;
      bool renew;
      {
        absl::MutexLock l(&mu_);
        if (stopping_ || resigned_) return;
        lease = lease_;
        renew = lease_lost_;
      }
      if (renew) {
        if (!RenewLease(&backoff, &last_error)) return;
        continue;
      }
      v3electionpb::CampaignRequest req;
      req.set_name(name_);
      req.set_lease(lease);
      req.set_value(options_.address);
      v3electionpb::CampaignResponse resp;
      grpc::ClientContext ctx;
      if (!Register(&campaign_ctx_, &ctx)) return;
      grpc::Status s = election_stub_->Campaign(&ctx, req, &resp);
      Unregister(&campaign_ctx_);
      absl::Status st =
          s.ok() ? CheckKey(resp.leader()) : EtcdError("Campaign", s);
      bool resigned;
      {
        absl::MutexLock l(&mu_);
        if (stopping_) return;  // the destructor revokes the lease
        if (lease_lost_ || lease_ != lease) continue;  // renew at once
        // Won on a key that is gone, or the lease is unknown: start afresh.
        if (!st.ok() && (s.ok() || st.code() == absl::StatusCode::kNotFound)) {
          lease_lost_ = true;
        }
        resigned = resigned_;
      }
      if (resigned) {
        if (s.ok()) ResignKey(resp.leader()).IgnoreError();
        return;
      }
      if (!st.ok()) {
        LogFailure(st, &last_error);
        if (!Sleep(backoff)) return;
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
      backoff = kMinBackoff;
      last_error = absl::StatusCode::kOk;
      if (!BecomeLeader(resp.leader())) {
        bool resign;
        {
          absl::MutexLock l(&mu_);
          resign = resigned_ && !stopping_;
        }
        if (resign) ResignKey(resp.leader()).IgnoreError();
        continue;
      }
      // Lead until the lease is lost, a newer key is observed, Resign() or
      // the destructor.
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(
          +[](EtcdLeaderElection* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
            return e->stopping_ || !e->leader_key_.has_value();
          },
          this));
    }
  }

  void ObserveLoop() {
    absl::Duration backoff = kMinBackoff;
    absl::StatusCode last_error = absl::StatusCode::kOk;
    v3electionpb::LeaderRequest req;
    req.set_name(name_);
    for (;;) {
      grpc::ClientContext ctx;
      if (!Register(&observe_ctx_, &ctx)) return;
      auto reader = election_stub_->Observe(&ctx, req);
      v3electionpb::LeaderResponse resp;
      while (reader->Read(&resp)) {
        backoff = kMinBackoff;
        last_error = absl::StatusCode::kOk;
        Observed(InfoOf(resp.kv()));
      }
      grpc::Status s = reader->Finish();
      Unregister(&observe_ctx_);
      {
        absl::MutexLock l(&mu_);
        if (stopping_) return;
      }
      LogFailure(EtcdError("Observe", s), &last_error);
      // Who leads now, in case the stream missed a change.
      grpc::ClientContext lctx;
      lctx.set_deadline(store::EtcdDeadline(options_.client));
      if (!Register(&observe_ctx_, &lctx)) return;
      grpc::Status ls = election_stub_->Leader(&lctx, req, &resp);
      Unregister(&observe_ctx_);
      if (ls.ok()) {
        Observed(InfoOf(resp.kv()));
      } else if (ls.error_code() == grpc::StatusCode::NOT_FOUND) {
        Observed(std::nullopt);  // "election: no leader"
      }
      if (!Sleep(backoff)) return;
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }

  const ElectionOptions options_;
  const Callbacks callbacks_;
  const std::string name_;
  const std::unique_ptr<etcdserverpb::Lease::Stub> lease_stub_;
  const std::unique_ptr<etcdserverpb::KV::Stub> kv_stub_;
  const std::unique_ptr<v3electionpb::Election::Stub> election_stub_;
  std::vector<std::thread> threads_;  // set before any thread runs

  absl::Mutex cb_mu_;  // serialises transitions and callbacks
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(cb_mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool resigned_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration ttl_ ABSL_GUARDED_BY(mu_);
  // When the last acknowledged keep-alive (or the grant) was sent: etcd
  // keeps the lease at least until last_ack_ + ttl_.
  absl::Time last_ack_ ABSL_GUARDED_BY(mu_);
  // lease_ expired or may have: the campaign thread grants a new one.
  bool lease_lost_ ABSL_GUARDED_BY(mu_) = false;
  // Leading, but no keep-alive was acknowledged for a TTL (on_unreachable
  // ran); cleared by on_reachable or on losing the key.
  bool unreachable_ ABSL_GUARDED_BY(mu_) = false;
  // Set while leading.
  std::optional<v3electionpb::LeaderKey> leader_key_ ABSL_GUARDED_BY(mu_);
  std::optional<LeaderInfo> leader_ ABSL_GUARDED_BY(mu_);
  // The blocking call of each thread, for TryCancel; null between calls.
  grpc::ClientContext* campaign_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::ClientContext* observe_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::ClientContext* keepalive_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LeaderElection>> LeaderElection::Start(
    const ElectionOptions& options, Callbacks callbacks) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("election: address is empty");
  }
  if (options.ttl < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("election: ttl is ", absl::FormatDuration(options.ttl),
                     ", the minimum is 1s"));
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      store::DialEtcd(options.client);
  if (!channel.ok()) return channel.status();
  auto election = std::make_unique<EtcdLeaderElection>(
      options, std::move(callbacks), *std::move(channel));
  if (absl::Status s = election->Init(); !s.ok()) {
    return absl::UnavailableError(s.message());
  }
  election->StartThreads();
  return election;
}

}  // namespace fabric::ha
