#include "agent/manager_session.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/config_digest.h"
#include "common/latency_trace.h"

namespace fabric::agent {
namespace {

constexpr auto kRpcDeadline = std::chrono::seconds(5);
// The longest reconnect backoff with several managers (see ConnectionLoop).
constexpr absl::Duration kFailoverBackoff = absl::Milliseconds(250);

// The length of the valid UTF-8 sequence `text` starts with, or 0: no
// overlong forms, UTF-16 surrogates or code points past U+10FFFF.
// REQUIRES: !text.empty().
size_t Utf8SequenceLength(absl::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(0);
  if (lead < 0x80) return 1;
  size_t length;
  uint8_t low = 0x80, high = 0xbf;  // the range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;   // overlong
    if (lead == 0xed) high = 0x9f;  // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;   // overlong
    if (lead == 0xf4) high = 0x8f;  // past U+10FFFF
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
  }
  return length;
}

}  // namespace

std::string ControlAddress(const ManagerSessionOptions& options,
                           int bound_port) {
  if (!options.advertise.empty()) return options.advertise;
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    return absl::StrCat(":", bound_port);  // the manager fills in the host
  }
  return absl::StrCat(host, ":", bound_port);
}

std::string ValidUtf8(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    size_t n = Utf8SequenceLength(text);
    if (n == 0) {
      n = 1;
      absl::StrAppend(
          &out, "\\x",
          absl::Hex(static_cast<uint8_t>(text[0]), absl::kZeroPad2));
    } else {
      out.append(text.data(), n);
    }
    text.remove_prefix(n);
  }
  return out;
}

ManagerSession::ManagerSession(ManagerSessionOptions options,
                               v1::NodeInventory inventory,
                               Reconciler* reconciler, VfLending* vf,
                               const Clock* clock, GrantGuard* grants,
                               AgentMetrics* metrics)
    : options_(std::move(options)),
      inventory_(std::move(inventory)),
      reconciler_(reconciler),
      vf_(vf),
      clock_(clock),
      grants_(grants),
      metrics_(metrics),
      instance_([] {
        absl::BitGen gen;
        uint64_t id = 0;
        while (id == 0) id = absl::Uniform<uint64_t>(gen);
        return id;
      }()) {}

ManagerSession::~ManagerSession() { Stop(); }

std::chrono::system_clock::time_point ManagerSession::Deadline() const {
  return several_managers_
             ? absl::ToChronoTime(absl::Now() + options_.attempt_timeout)
             : std::chrono::system_clock::now() + kRpcDeadline;
}

void ManagerSession::Start(int control_port) {
  control_port_ = control_port;
  absl::StatusOr<std::vector<std::string>> targets =
      ParseManagerList("--manager", options_.manager_address);
  several_managers_ = targets.ok() && targets->size() > 1;
  thread_ = std::thread([this] { ConnectionLoop(); });
}

void ManagerSession::Stop() {
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
    if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
  }
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

SessionStats ManagerSession::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

agentproto::v1::ReportStatusRequest ManagerSession::StatusReport() const {
  agentproto::v1::ReportStatusRequest r;
  {
    absl::MutexLock l(&mu_);
    r.set_node(options_.node);
    r.set_session(session_);
    r.set_sequence(++report_sequence_);
  }
  {
    const ReconcileStats stats = reconciler_->stats();
    r.set_applied_generation(stats.applied_generation);
    const absl::Duration retry_in =
        std::max(stats.next_retry - clock_->Now(), absl::ZeroDuration());
    for (const auto& e : stats.errors) {
      v1::ApplyError* out = r.add_errors();
      *out = e;
      // The hardware's messages may quote what it holds.
      out->set_entry(ValidUtf8(e.entry()));
      out->set_message(ValidUtf8(e.message()));
      out->set_allocation(ValidUtf8(e.allocation()));
      if (stats.next_retry != absl::InfiniteFuture()) {
        const int64_t ns = absl::ToInt64Nanoseconds(retry_in);
        out->mutable_retry_in()->set_seconds(ns / 1'000'000'000);
        out->mutable_retry_in()->set_nanos(
            static_cast<int32_t>(ns % 1'000'000'000));
      }
    }
    r.set_repairs(stats.repairs);
    for (const auto& s : stats.recent_repairs) {
      r.add_recent_repairs(ValidUtf8(s));
    }
    r.set_held_config_digest(HeldDigest(stats));
  }
  vf_->FillStatus(&r);
  return r;
}

std::string ManagerSession::HeldDigest(const ReconcileStats& stats) const {
  absl::MutexLock l(&mu_);
  if (held_generation_ == 0 || stats.applied_generation != held_generation_ ||
      !stats.errors.empty()) {
    return "";
  }
  return held_digest_;
}

bool ManagerSession::LateButLeading(const grpc::Status& status,
                                    const LeaderChannel::Endpoint& slow,
                                    LeaderChannel* leader,
                                    absl::string_view call,
                                    absl::string_view then, bool log) {
  if (!several_managers_ ||
      status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
    return false;
  }
  const bool leads = leader->OthersNameAsLeader(
      slow, [&](const LeaderChannel::Endpoint& other,
                grpc::ClientContext& ctx) {
        ctx.set_deadline(absl::ToChronoTime(absl::Now() +
                                            options_.attempt_timeout));
        agentproto::v1::ReportStatusRequest probe;
        probe.set_node(options_.node);  // no session: changes nothing
        agentproto::v1::ReportStatusResponse resp;
        return agentproto::v1::AgentService::NewStub(other.channel)
            ->ReportStatus(&ctx, probe, &resp);
      });
  if (leads && log) {
    std::cerr << "fabric-agent " << options_.node << ": the manager at "
              << slow.target << " did not answer " << call << " within "
              << absl::FormatDuration(options_.attempt_timeout)
              << ", but the other managers still name it the leader; " << then
              << std::endl;
  }
  return leads;
}

void ManagerSession::HeartbeatLoop(agentproto::v1::AgentService::Stub* stub,
                                   const LeaderChannel::Endpoint& endpoint,
                                   LeaderChannel* leader,
                                   std::atomic<bool>* unanswered) {
  bool failing = false;  // the last report failed (logged once)
  bool late = false;     // the last report was late (logged once)
  while (reports_.Wait()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    agentproto::v1::ReportStatusResponse resp;
    grpc::Status s = stub->ReportStatus(&ctx, StatusReport(), &resp);
    LatencyTrace::Record("agent.heartbeat_reported", options_.node, 0);
    if (s.error_code() == grpc::StatusCode::ABORTED) {
      Fence(s);
      return;
    }
    if (LateButLeading(s, endpoint, leader, "a status report",
                       "keeping the session", /*log=*/!late)) {
      // Late, not gone: leaving would cost a registration (and the
      // manager's work for it) on a manager that is already behind.
      late = true;
      continue;
    }
    late = false;
    if (several_managers_ &&
        s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      // The leader answers nothing (paused, or its host is gone), while its
      // config stream may stay open for as long as the transport does: end
      // the session, so that the agent registers with whoever leads now. A
      // report only states what the node has, so a lost one is harmless.
      std::cerr << "fabric-agent " << options_.node
                << ": the manager did not answer a status report within "
                << absl::FormatDuration(options_.attempt_timeout)
                << "; trying the next manager" << std::endl;
      *unanswered = true;
      absl::MutexLock l(&mu_);
      if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
      return;
    }
    if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
        s.error_code() == grpc::StatusCode::NOT_FOUND) {
      // The manager does not know this agent (it restarted): register again.
      absl::MutexLock l(&mu_);
      if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
      return;
    }
    if (s.ok() == failing) {
      failing = !s.ok();
      std::cerr << "fabric-agent " << options_.node
                << (failing ? ": status report failed (will keep reporting): "
                            : ": status reports reach the manager again")
                << s.error_message() << std::endl;
    }
  }
}

bool ManagerSession::Session(agentproto::v1::AgentService::Stub* stub,
                             const LeaderChannel::Endpoint& endpoint,
                             LeaderChannel* leader) {
  agentproto::v1::RegisterNodeRequest reg;
  reg.set_node(options_.node);
  *reg.mutable_inventory() = inventory_;
  reg.set_backend(options_.backend);
  reg.set_agent_version("0.1.0");
  reg.set_control_address(ControlAddress(options_, control_port_));
  // Ordered, so that a late copy of an attempt given up on is refused.
  reg.set_instance(instance_);
  reg.set_attempt(++registration_attempts_);
  {
    // What the node holds, so that a manager that wants the same of it
    // (after a reconnect or a takeover) keeps its leases READY.
    reg.set_held_config_digest(HeldDigest(reconciler_->stats()));
    agentproto::v1::ReportStatusRequest vf_status;
    vf_->FillStatus(&vf_status);
    *reg.mutable_shadows() = std::move(*vf_status.mutable_shadows());
    *reg.mutable_vf_health() = std::move(*vf_status.mutable_vf_health());
  }
  agentproto::v1::RegisterNodeResponse registered;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    // While the channel is reconnecting, wait for it (up to the deadline)
    // instead of failing at once: the agent registers as soon as the
    // manager is back. Stop() cancels the wait. With several managers, the
    // next one is tried instead.
    ctx.set_wait_for_ready(leader->targets().size() == 1);
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return false;
      stream_ctx_ = &ctx;
    }
    grpc::Status s = stub->RegisterNode(&ctx, reg, &registered);
    bool stopping;
    {
      absl::MutexLock l(&mu_);
      stream_ctx_ = nullptr;
      stopping = stopping_;
    }
    if (!stopping && LateButLeading(s, endpoint, leader, "the registration",
                                    "registering with it again",
                                    /*log=*/true)) {
      // Slow, not gone: register with it again (after the backoff) rather
      // than with a standby that would only send the agent back.
      return false;
    }
    if (!s.ok()) {
      const LeaderChannel::Endpoint next = leader->Observe(endpoint, s, ctx);
      if (!stopping && IsStandbyAnswer(s)) {
        std::cerr << "fabric-agent " << options_.node << ": " << endpoint.target
                  << ": " << s.error_message() << "; next: " << next.target
                  << std::endl;
      } else if (!stopping) {
        const bool unreachable =
            s.error_code() == grpc::StatusCode::UNAVAILABLE ||
            s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
        std::cerr << "fabric-agent " << options_.node << ": "
                  << (unreachable ? "cannot reach the manager at "
                                  : "register with ")
                  << endpoint.target
                  << (unreachable ? " (will keep trying): " : " failed: ")
                  << s.error_message() << std::endl;
      }
      return false;
    }
  }
  std::cerr << "fabric-agent " << options_.node << ": registered with "
            << endpoint.target << " (session " << registered.session()
            << ")" << std::endl;
  absl::Duration interval = absl::Seconds(1);
  if (registered.has_heartbeat_interval()) {
    interval = absl::Seconds(registered.heartbeat_interval().seconds()) +
               absl::Nanoseconds(registered.heartbeat_interval().nanos());
  }
  grpc::ClientContext ctx;
  {
    absl::MutexLock l(&mu_);
    if (stopping_ || stats_.fenced) return true;
    if (++stats_.sessions > 1 && metrics_ != nullptr) metrics_->Reconnected();
    session_ = registered.session();
    stream_ctx_ = &ctx;
  }
  reports_.Start(std::max(interval, absl::Milliseconds(10)));
  std::atomic<bool> unanswered{false};
  std::thread heartbeat(
      [&] { HeartbeatLoop(stub, endpoint, leader, &unanswered); });
  agentproto::v1::StreamConfigRequest sreq;
  sreq.set_node(options_.node);
  sreq.set_session(registered.session());
  auto reader = stub->StreamConfig(&ctx, sreq);
  // The stream is read on a thread of its own that keeps only the newest
  // configuration: under a storm of changes the agent applies the latest
  // one instead of working through every stale generation buffered in the
  // stream.
  struct Latest {
    absl::Mutex mu;
    std::optional<agentproto::v1::DesiredConfig> config ABSL_GUARDED_BY(mu);
    bool ended ABSL_GUARDED_BY(mu) = false;
    bool Ready() const ABSL_SHARED_LOCKS_REQUIRED(mu) {
      return config.has_value() || ended;
    }
  } latest;
  std::thread stream_reader([&] {
    agentproto::v1::DesiredConfig next;
    while (reader->Read(&next)) {
      LatencyTrace::Record("agent.config_in", options_.node, next.generation());
      bool replaced;
      {
        absl::MutexLock l(&latest.mu);
        replaced = latest.config.has_value();
        latest.config = std::move(next);
      }
      next = agentproto::v1::DesiredConfig();
      if (replaced) {
        absl::MutexLock l(&mu_);
        ++stats_.superseded;
      }
    }
    absl::MutexLock l(&latest.mu);
    latest.ended = true;
  });
  // The fabric of the last configuration (none before the first).
  std::optional<std::string> fabric;
  while (true) {
    agentproto::v1::DesiredConfig config;
    {
      absl::MutexLock l(&latest.mu);
      latest.mu.Await(absl::Condition(&latest, &Latest::Ready));
      if (!latest.config.has_value()) break;  // the stream ended
      config = std::move(*latest.config);
      latest.config.reset();
    }
    LatencyTrace::Record("agent.apply_start", options_.node,
                         config.generation());
    if (config.fabric() != fabric) {
      if (config.fabric().empty()) {
        std::cerr << "fabric-agent " << options_.node
                  << ": the node is in no fabric"
                  << (fabric.has_value()
                          ? absl::StrCat(" (it left ", *fabric, ")")
                          : "")
                  << ": its bridge is cleared and kept empty until a fabric "
                     "names it"
                  << std::endl;
      } else {
        std::cerr << "fabric-agent " << options_.node << ": the node is in "
                  << config.fabric() << std::endl;
      }
      fabric = config.fabric();
    }
    if (grants_ != nullptr) grants_->Update(config);
    const bool applied = reconciler_->Apply(config).ok();
    vf_->SetAssignments(
        {config.vf_assignments().begin(), config.vf_assignments().end()},
        config.generation());
    {
      // Before the report, which attests to it.
      std::string digest = applied ? ConfigDigest(config) : "";
      absl::MutexLock l(&mu_);
      held_generation_ = applied ? config.generation() : 0;
      held_digest_ = std::move(digest);
    }
    LatencyTrace::Record("agent.applied", options_.node, config.generation());
    // Report at once, so allocations turn READY without waiting for the
    // next heartbeat.
    grpc::ClientContext rctx;
    rctx.set_deadline(Deadline());
    agentproto::v1::ReportStatusResponse resp;
    grpc::Status reported = stub->ReportStatus(&rctx, StatusReport(), &resp);
    LatencyTrace::Record("agent.reported", options_.node, config.generation());
    if (reported.error_code() == grpc::StatusCode::ABORTED) Fence(reported);
    if (applied) reconciler_->RecordFingerprint(config);
  }
  stream_reader.join();
  grpc::Status end = reader->Finish();
  if (end.error_code() == grpc::StatusCode::ABORTED) Fence(end);
  bool stopping;
  {
    absl::MutexLock l(&mu_);
    stream_ctx_ = nullptr;
    stopping = stopping_;
  }
  reports_.Stop();
  heartbeat.join();
  if (!stopping) {
    std::cerr << "fabric-agent " << options_.node
              << ": config stream ended: " << end.error_message()
              << "; reconnecting" << std::endl;
    // Where to register next: the stream's end says it as a call's would
    // (a manager gone or unanswering is left for the next address), so the
    // agent does not first knock again on a killed leader's door.
    leader->Observe(endpoint,
                    unanswered ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                              "status report unanswered")
                               : end,
                    ctx);
  }
  return true;
}

void ManagerSession::Fence(const grpc::Status& why) {
  absl::MutexLock l(&mu_);
  if (stats_.fenced) return;
  stats_.fenced = true;
  stats_.fence_reason = why.error_message();
  fenced_ = true;
  reconciler_->Fence();
  if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
}

void ManagerSession::ConnectionLoop() {
  // gRPC's own reconnect backoff (1 s growing to 120 s by default) would
  // decide how soon after a manager restart the agent is back; it follows
  // the agent's backoff instead, capped at 1 s (a refused TCP connect to the
  // manager is cheap).
  grpc::ChannelArguments args;
  const int initial_ms = static_cast<int>(std::max<int64_t>(
      1, absl::ToInt64Milliseconds(options_.initial_backoff)));
  const int max_ms = static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(options_.max_backoff),
      absl::ToInt64Milliseconds(several_managers_ ? kFailoverBackoff
                                                  : absl::Seconds(1))));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, std::max(initial_ms, max_ms));
  std::shared_ptr<grpc::ChannelCredentials> creds = security::ChannelCredentials(
      options_.tls, security::PeerRequirement::AnyManager());
  absl::StatusOr<std::vector<std::string>> targets =
      ParseManagerList("--manager", options_.manager_address);
  LeaderChannel leader(
      targets.ok() ? *targets
                   : std::vector<std::string>{options_.manager_address},
      [&](const std::string& target) {
        return grpc::CreateCustomChannel(target, creds, args);
      });
  // One stub per manager, made on first use.
  std::map<std::string, std::unique_ptr<agentproto::v1::AgentService::Stub>>
      stubs;
  absl::BitGen gen;
  absl::Duration backoff = options_.initial_backoff;
  while (!stop_.HasBeenNotified()) {
    const LeaderChannel::Endpoint endpoint = leader.Current();
    std::unique_ptr<agentproto::v1::AgentService::Stub>& stub =
        stubs[endpoint.target];
    if (stub == nullptr) {
      stub = agentproto::v1::AgentService::NewStub(endpoint.channel);
    }
    if (Session(stub.get(), endpoint, &leader)) {
      backoff = options_.initial_backoff;
    }
    if (stop_.HasBeenNotified()) break;
    if (fenced_) {
      const SessionStats st = stats();
      std::cerr << "fabric-agent " << options_.node
                << ": fenced: " << st.fence_reason
                << "; this agent stops (it no longer registers or touches "
                   "the hardware)"
                << std::endl;
      if (options_.on_fenced) options_.on_fenced(st.fence_reason);
      break;
    }
    // Full jitter: anywhere in [backoff/2, backoff].
    const absl::Duration wait =
        backoff / 2 + absl::Uniform(gen, 0.0, 0.5) * backoff;
    stop_.WaitForNotificationWithTimeout(wait);
    // With several managers, a failover is under way (the standbys answer
    // at once, and cheaply): the agent keeps asking often, so that it
    // registers with the new leader, and its grants turn READY there,
    // within kFailoverBackoff of the takeover.
    backoff = std::min({backoff * 2, options_.max_backoff,
                        several_managers_ ? kFailoverBackoff
                                          : absl::InfiniteDuration()});
  }
}

}  // namespace fabric::agent
