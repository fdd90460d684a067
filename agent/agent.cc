#include "agent/agent.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/grpc_status.h"
#include "common/units.h"

namespace fabric::agent {
namespace {

constexpr auto kRpcDeadline = std::chrono::seconds(5);
constexpr size_t kRecentRepairs = 8;
// Scratchpads 0 and 1 hold the fingerprint of the state this bridge was
// last programmed to (low, high 32 bits), so that a restarted agent can tell
// drift (hardware differs from a state it was given) from news (a state it
// was never given).
constexpr int kFingerprintSpadLow = 0;
constexpr int kFingerprintSpadHigh = 1;

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + kRpcDeadline;
}

hw::SlotKind SlotKindOf(v1::SlotKind k) {
  return k == v1::LUT ? hw::SlotKind::kLut : hw::SlotKind::kWindow;
}

std::string SlotName(hw::SlotKind kind, int slot) {
  return absl::StrCat(kind == hw::SlotKind::kLut ? "lut slot " : "window ",
                      slot);
}

// Windows compare by what the hardware holds; the tag is bookkeeping that
// some hardware (ntb_tool) cannot store.
bool SameWindow(const hw::Window& a, const hw::Window& b) {
  return a.kind == b.kind && a.slot == b.slot && a.local_base == b.local_base &&
         a.size == b.size && a.xlat == b.xlat;
}

bool SameMemory(const hw::HostMemory& a, const hw::HostMemory& b) {
  return a.base == b.base && a.size == b.size && a.window_base == b.window_base;
}

bool SameMapEntry(const hw::MapEntry& a, const hw::MapEntry& b) {
  return a.kind == b.kind && a.base == b.base && a.size == b.size &&
         a.port == b.port && a.local_base == b.local_base;
}

bool SamePort(const hw::Port& a, const hw::Port& b) {
  return a.number == b.number && a.peer_bridge == b.peer_bridge &&
         a.peer_port == b.peer_port && a.up == b.up;
}

// 0 when the hardware has no scratchpads for it.
uint64_t RecordedFingerprint(const hw::BridgeState& s) {
  if (s.scratchpads.size() <= kFingerprintSpadHigh) return 0;
  return (static_cast<uint64_t>(s.scratchpads[kFingerprintSpadHigh]) << 32) |
         s.scratchpads[kFingerprintSpadLow];
}

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

// FNV-1a, folded over the values the hardware holds.
class Fnv {
 public:
  void Add(uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h_ ^= (v >> (8 * i)) & 0xff;
      h_ *= 0x100000001b3ull;
    }
  }
  void Add(const std::string& s) {
    Add(s.size());
    for (unsigned char c : s) {
      h_ ^= c;
      h_ *= 0x100000001b3ull;
    }
  }
  uint64_t value() const { return h_ == 0 ? 1 : h_; }  // 0 means "none"

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

}  // namespace

std::string ControlAddress(const AgentOptions& options, int bound_port) {
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

hw::BridgeState DesiredState(const v1::DesiredConfig& config) {
  hw::BridgeState s;
  s.memory.base = config.export_base();
  s.memory.size = config.export_size();
  s.memory.mmio_base = config.mmio_base();
  s.memory.mmio_size = config.mmio_size();
  s.memory.window_base = config.window_base();
  for (const auto& e : config.address_map().entries()) {
    hw::MapEntry m;
    m.kind = e.kind() == v1::MapEntry::CLAIM ? hw::MapEntry::Kind::kClaim
                                             : hw::MapEntry::Kind::kForward;
    m.base = e.base();
    m.size = e.size();
    m.port = e.port();
    m.local_base = e.local_base();
    s.map.push_back(m);
  }
  for (const auto& w : config.address_map().windows()) {
    hw::Window h;
    h.kind = SlotKindOf(w.slot_kind());
    h.slot = w.slot();
    h.local_base = w.local_base();
    h.size = w.size();
    h.xlat = w.translated_addr();
    h.tag = std::string(absl::StripPrefix(w.allocation(), "allocations/"));
    s.windows.push_back(h);
  }
  for (const auto& i : config.address_map().inbound()) {
    s.inbound.push_back(
        {i.local_base(), i.size(),
         std::string(absl::StripPrefix(i.allocation(), "allocations/"))});
  }
  for (const auto& p : config.ports()) {
    s.ports.push_back(
        {p.number(),
         std::string(absl::StripPrefix(p.peer_bridge(), "bridges/")),
         p.peer_port(), p.up()});
  }
  std::sort(s.map.begin(), s.map.end(),
            [](const auto& a, const auto& b) { return a.base < b.base; });
  std::sort(s.windows.begin(), s.windows.end(),
            [](const auto& a, const auto& b) {
              return std::tie(a.kind, a.slot) < std::tie(b.kind, b.slot);
            });
  std::sort(
      s.inbound.begin(), s.inbound.end(),
      [](const auto& a, const auto& b) { return a.local_base < b.local_base; });
  std::sort(s.ports.begin(), s.ports.end(),
            [](const auto& a, const auto& b) { return a.number < b.number; });
  return s;
}

uint64_t Fingerprint(const hw::BridgeState& s) {
  Fnv f;
  f.Add(s.memory.base);
  f.Add(s.memory.size);
  f.Add(s.memory.window_base);
  f.Add(s.map.size());
  for (const auto& m : s.map) {
    f.Add(static_cast<uint64_t>(m.kind));
    f.Add(m.base);
    f.Add(m.size);
    f.Add(static_cast<uint64_t>(m.port));
    f.Add(m.local_base);
  }
  f.Add(s.windows.size());
  for (const auto& w : s.windows) {
    f.Add(static_cast<uint64_t>(w.kind));
    f.Add(static_cast<uint64_t>(w.slot));
    f.Add(w.local_base);
    f.Add(w.size);
    f.Add(w.xlat);
  }
  f.Add(s.inbound.size());
  for (const auto& i : s.inbound) {
    f.Add(i.local_base);
    f.Add(i.size);
  }
  f.Add(s.ports.size());
  for (const auto& p : s.ports) {
    f.Add(static_cast<uint64_t>(p.number));
    f.Add(p.peer_bridge);
    f.Add(static_cast<uint64_t>(p.peer_port));
    f.Add(static_cast<uint64_t>(p.up));
  }
  return f.value();
}

std::vector<std::string> DiffEntries(const hw::BridgeState& have,
                                     const hw::BridgeState& want) {
  std::vector<std::string> out;
  if (!SameMemory(have.memory, want.memory)) out.push_back("host memory");
  for (size_t i = 0; i < std::max(have.map.size(), want.map.size()); ++i) {
    if (i >= have.map.size() || i >= want.map.size() ||
        !SameMapEntry(have.map[i], want.map[i])) {
      out.push_back(absl::StrCat("map entry ", i));
    }
  }
  std::map<std::pair<hw::SlotKind, int>, const hw::Window*> have_w, want_w;
  for (const auto& w : have.windows) have_w[{w.kind, w.slot}] = &w;
  for (const auto& w : want.windows) want_w[{w.kind, w.slot}] = &w;
  std::set<std::pair<hw::SlotKind, int>> slots;
  for (const auto& [k, w] : have_w) slots.insert(k);
  for (const auto& [k, w] : want_w) slots.insert(k);
  for (const auto& k : slots) {
    auto h = have_w.find(k);
    auto w = want_w.find(k);
    if (h == have_w.end() || w == want_w.end() ||
        !SameWindow(*h->second, *w->second)) {
      out.push_back(SlotName(k.first, k.second));
    }
  }
  std::set<std::pair<uint64_t, uint64_t>> have_i, want_i;
  for (const auto& i : have.inbound) have_i.insert({i.local_base, i.size});
  for (const auto& i : want.inbound) want_i.insert({i.local_base, i.size});
  for (const auto& i : want_i) {
    if (!have_i.count(i))
      out.push_back(absl::StrCat("inbound ", FormatAddr(i.first)));
  }
  for (const auto& i : have_i) {
    if (!want_i.count(i))
      out.push_back(absl::StrCat("inbound ", FormatAddr(i.first)));
  }
  for (const auto& p : want.ports) {
    auto it =
        std::find_if(have.ports.begin(), have.ports.end(),
                     [&](const hw::Port& h) { return h.number == p.number; });
    if (it == have.ports.end() || !SamePort(*it, p)) {
      out.push_back(absl::StrCat("port ", p.number));
    }
  }
  return out;
}

// NodeAgentService: the host's data path, for the manager's proofs by bytes.
class Agent::ControlService final : public v1::NodeAgentService::Service {
 public:
  template <typename T>
  static grpc::Status Reply(absl::StatusOr<T> r, T* out) {
    if (!r.ok()) return ToGrpcStatus(r.status());
    *out = *std::move(r);
    return grpc::Status::OK;
  }

  explicit ControlService(Agent* agent) : agent_(agent) {}

  grpc::Status HostWrite(grpc::ServerContext*, const v1::HostWriteRequest* req,
                         v1::AccessResult* out) override {
    absl::MutexLock l(&agent_->hw_mu_);
    auto r = agent_->hardware_->HostWrite(
        req->addr(), absl::MakeConstSpan(
                         reinterpret_cast<const uint8_t*>(req->data().data()),
                         req->data().size()));
    if (!r.ok()) return ToGrpcStatus(r.status());
    out->set_landed(r->landed);
    out->set_node(r->node);
    out->set_addr(r->addr);
    for (const auto& h : r->hops) out->add_hops(h);
    out->set_fault_bridge(r->fault_bridge);
    out->set_fault_addr(r->fault_addr);
    out->set_reason(r->reason);
    return grpc::Status::OK;
  }

  grpc::Status HostRead(grpc::ServerContext*, const v1::HostReadRequest* req,
                        v1::HostReadResponse* out) override {
    constexpr uint32_t kMaxRead = 16 << 20;
    if (req->length() > kMaxRead) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("length: ", req->length(),
                                       " is over the limit of ", kMaxRead));
    }
    std::string data(req->length(), '\0');
    absl::MutexLock l(&agent_->hw_mu_);
    absl::Status s = agent_->hardware_->HostRead(
        req->addr(),
        absl::MakeSpan(reinterpret_cast<uint8_t*>(data.data()), data.size()));
    if (!s.ok()) return ToGrpcStatus(s);
    out->set_data(std::move(data));
    return grpc::Status::OK;
  }

  grpc::Status VfAccess(grpc::ServerContext*, const v1::VfAccessRequest* req,
                        v1::VfAccessResponse* out) override {
    return Reply(agent_->vf_->VfAccess(*req), out);
  }
  grpc::Status AccessShadow(grpc::ServerContext*,
                            const v1::AccessShadowRequest* req,
                            v1::AccessShadowResponse* out) override {
    return Reply(agent_->vf_->AccessShadow(*req), out);
  }
  grpc::Status ShadowInterrupt(grpc::ServerContext*,
                               const v1::ShadowInterruptRequest* req,
                               v1::ShadowInterruptResponse* out) override {
    return Reply(agent_->vf_->ShadowInterrupt(*req), out);
  }
  grpc::Status SetVmState(grpc::ServerContext*,
                          const v1::SetVmStateRequest* req,
                          v1::SetVmStateResponse* out) override {
    return Reply(agent_->vf_->SetVmState(*req), out);
  }

 private:
  Agent* const agent_;  // not owned
};

Agent::Agent(AgentOptions options, hw::BridgeHardware* hardware,
             v1::NodeInventory inventory, LocalFunctions* functions)
    : options_(std::move(options)),
      hardware_(hardware),
      inventory_(std::move(inventory)) {
  vf_ = std::make_unique<VfLending>(
      options_.node, functions,
      [this](uint64_t addr, absl::Span<uint8_t> out) {
        absl::MutexLock l(&hw_mu_);
        return hardware_->HostRead(addr, out);
      },
      [this] { report_requested_ = true; });
}

Agent::~Agent() { Stop(); }

absl::Status Agent::Start() {
  control_ = std::make_unique<ControlService>(this);
  grpc::ServerBuilder builder;
  // A port in use is refused, never shared (gRPC sets SO_REUSEPORT by
  // default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(),
                           &control_port_);
  builder.RegisterService(control_.get());
  control_server_ = builder.BuildAndStart();
  if (control_server_ == nullptr || control_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("--listen: cannot listen on ", options_.listen));
  }
  connection_thread_ = std::thread([this] { ConnectionLoop(); });
  reconcile_thread_ = std::thread([this] { ReconcileLoop(); });
  return absl::OkStatus();
}

void Agent::Stop() {
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
    if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
  }
  stop_.Notify();
  if (connection_thread_.joinable()) connection_thread_.join();
  if (reconcile_thread_.joinable()) reconcile_thread_.join();
  if (control_server_ != nullptr) {
    control_server_->Shutdown(std::chrono::system_clock::now() +
                              std::chrono::seconds(1));
  }
}

AgentStats Agent::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

absl::Status Agent::Apply(const v1::DesiredConfig& config) {
  absl::MutexLock hw(&hw_mu_);
  desired_ = std::make_unique<v1::DesiredConfig>(config);
  attempts_ = 0;
  retry_backoff_ = options_.apply_retry_initial;
  return AttemptLocked(Attempt::kNew);
}

void Agent::CheckDrift() {
  absl::MutexLock hw(&hw_mu_);
  if (desired_ == nullptr) return;
  (void)AttemptLocked(landed_ ? Attempt::kDriftCheck : Attempt::kRetry);
}

void Agent::ReconcileLoop() {
  // Wakes often enough for the shortest retry; the work is a clock check.
  const absl::Duration tick =
      std::min({options_.drift_check_interval, options_.apply_retry_initial,
                absl::Milliseconds(20)});
  while (!stop_.WaitForNotificationWithTimeout(tick)) {
    absl::MutexLock hw(&hw_mu_);
    // A fenced agent leaves the hardware to the agent that replaced it.
    if (desired_ == nullptr || fenced_) continue;
    const absl::Time now = absl::Now();
    if (landed_ && now >= next_drift_check_) {
      (void)AttemptLocked(Attempt::kDriftCheck);
    } else if (!landed_ && now >= next_retry_) {
      (void)AttemptLocked(Attempt::kRetry);
    }
  }
}

absl::Status Agent::AttemptLocked(Attempt attempt) {
  const v1::DesiredConfig& config = *desired_;
  const int64_t generation = config.generation();
  const hw::BridgeState want = DesiredState(config);
  std::vector<v1::ApplyError> errors;
  const bool wrote = ApplyLocked(want, generation, attempt, &errors);
  const absl::Time now = absl::Now();
  const bool was_landed = landed_;
  landed_ = errors.empty();
  // The stream loop reports after a new configuration; the reconciler's
  // news (a repair, a refusal, a retry that landed) goes out with the next
  // heartbeat slice instead of waiting a whole interval.
  if (attempt != Attempt::kNew && (wrote || !landed_ || !was_landed)) {
    report_requested_ = true;
  }
  next_drift_check_ = now + options_.drift_check_interval;
  absl::Duration retry_in = absl::ZeroDuration();
  if (landed_) {
    // The stream loop records a new configuration's fingerprint itself,
    // after reporting, to keep it off the path to READY.
    if (attempt != Attempt::kNew) RecordFingerprintLocked(Fingerprint(want));
    if (attempts_ > 0) {
      std::cerr << "fabric-agent " << options_.node << ": generation "
                << generation << " landed after " << attempts_
                << " refused attempts" << std::endl;
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
    std::cerr << "fabric-agent " << options_.node << ": generation "
              << generation << ": " << errors.size()
              << " entries refused (first: " << errors[0].entry() << ": "
              << errors[0].message() << "); attempt " << attempts_
              << ", next in " << absl::FormatDuration(retry_in) << std::endl;
  }
  // Entries refused for single allocations do not hold back the rest of the
  // generation: the manager keeps just the allocations the errors name
  // PENDING. An entry every allocation needs (map entries, ports, host
  // memory) holds back the whole generation.
  const bool only_allocations_failed =
      std::all_of(errors.begin(), errors.end(), [](const v1::ApplyError& e) {
        return !e.allocation().empty();
      });
  absl::MutexLock l(&mu_);
  stats_.desired_generation = generation;
  if (attempt == Attempt::kRetry) ++stats_.apply_retries;
  if (landed_ || only_allocations_failed) {
    if (stats_.applied_generation != generation) ++stats_.applies;
    stats_.applied_generation = generation;
  }
  stats_.errors = errors;
  stats_.next_retry = next_retry_;
  if (landed_) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      errors.size(), " entries were refused; first: ", errors[0].entry(), ": ",
      errors[0].message(), "; retrying in ", absl::FormatDuration(retry_in)));
}

bool Agent::ApplyLocked(const hw::BridgeState& want, int64_t generation,
                        Attempt attempt, std::vector<v1::ApplyError>* errors) {
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
  auto fail = [&](const std::string& entry, const absl::Status& s,
                  const std::string& allocation = "") {
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
    if (!SameMemory(have.memory, want.memory)) {
      if (auto s = hardware_->SetHostMemory(want.memory); !s.ok())
        fail("host memory", s);
    }
    if (auto s = hardware_->SetMapEntries(want.map); !s.ok())
      fail("map entries", s);
    for (const auto& w : have.windows) {
      bool wanted = std::any_of(want.windows.begin(), want.windows.end(),
                                [&](const hw::Window& x) {
                                  return x.kind == w.kind && x.slot == w.slot;
                                });
      if (!wanted) {
        if (auto s = hardware_->ClearWindow(w.kind, w.slot); !s.ok())
          fail(SlotName(w.kind, w.slot), s, w.tag);
      }
    }
    for (const auto& w : want.windows) {
      if (auto s = hardware_->SetWindow(w); !s.ok())
        fail(SlotName(w.kind, w.slot), s, w.tag);
    }
    if (auto s = hardware_->SetInbound(want.inbound); !s.ok())
      fail("inbound", s);
    for (const auto& p : want.ports) {
      if (auto s = hardware_->SetPort(p); !s.ok())
        fail(absl::StrCat("port ", p.number), s);
    }
    if (errors->empty()) fail("bridge", applied);
  }
  if (!unreadable.ok()) {
    // Rebuilt once it reads back, entries it refused aside (they are
    // reported as refusals); until then the reason comes first.
    if (absl::Status rebuilt = hardware_->Read().status(); !rebuilt.ok()) {
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

void Agent::RecordRepair(int64_t repairs, std::string what) {
  absl::MutexLock l(&mu_);
  stats_.repairs += repairs;
  stats_.recent_repairs.push_back(std::move(what));
  if (stats_.recent_repairs.size() > kRecentRepairs) {
    stats_.recent_repairs.erase(stats_.recent_repairs.begin());
  }
  std::cerr << "fabric-agent " << options_.node
            << ": repaired drift: " << stats_.recent_repairs.back()
            << std::endl;
}

v1::ReportStatusRequest Agent::StatusReport() const {
  v1::ReportStatusRequest r;
  {
    absl::MutexLock l(&mu_);
    r.set_node(options_.node);
    r.set_session(session_);
    r.set_sequence(++report_sequence_);
    r.set_applied_generation(stats_.applied_generation);
    const absl::Duration retry_in =
        std::max(stats_.next_retry - absl::Now(), absl::ZeroDuration());
    for (const auto& e : stats_.errors) {
      v1::ApplyError* out = r.add_errors();
      *out = e;
      // The hardware's messages may quote what it holds.
      out->set_entry(ValidUtf8(e.entry()));
      out->set_message(ValidUtf8(e.message()));
      out->set_allocation(ValidUtf8(e.allocation()));
      if (stats_.next_retry != absl::InfiniteFuture()) {
        const int64_t ns = absl::ToInt64Nanoseconds(retry_in);
        out->mutable_retry_in()->set_seconds(ns / 1'000'000'000);
        out->mutable_retry_in()->set_nanos(
            static_cast<int32_t>(ns % 1'000'000'000));
      }
    }
    r.set_repairs(stats_.repairs);
    for (const auto& s : stats_.recent_repairs) {
      r.add_recent_repairs(ValidUtf8(s));
    }
  }
  vf_->FillStatus(&r);
  return r;
}

void Agent::RecordFingerprintLocked(uint64_t fingerprint) {
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

void Agent::HeartbeatLoop(v1::AgentService::Stub* stub, absl::Duration interval,
                          absl::Notification* done) {
  // Reports every `interval`, and soon after report_requested_ is set.
  const absl::Duration slice = std::min(interval, absl::Milliseconds(20));
  absl::Time next = absl::Now() + interval;
  bool failing = false;  // the last report failed (logged once)
  while (!done->WaitForNotificationWithTimeout(slice)) {
    if (absl::Now() < next && !report_requested_.exchange(false)) continue;
    next = absl::Now() + interval;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::ReportStatusResponse resp;
    grpc::Status s = stub->ReportStatus(&ctx, StatusReport(), &resp);
    if (s.error_code() == grpc::StatusCode::ABORTED) {
      Fence(s);
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

bool Agent::Session(v1::AgentService::Stub* stub) {
  v1::RegisterNodeRequest reg;
  reg.set_node(options_.node);
  *reg.mutable_inventory() = inventory_;
  reg.set_backend(options_.backend);
  reg.set_agent_version("0.1.0");
  reg.set_control_address(ControlAddress(options_, control_port_));
  v1::RegisterNodeResponse registered;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    // While the channel is reconnecting, wait for it (up to the deadline)
    // instead of failing at once: the agent registers as soon as the
    // manager is back. Stop() cancels the wait.
    ctx.set_wait_for_ready(true);
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
    if (!s.ok()) {
      if (!stopping) {
        const bool unreachable =
            s.error_code() == grpc::StatusCode::UNAVAILABLE ||
            s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
        std::cerr << "fabric-agent " << options_.node << ": "
                  << (unreachable ? "cannot reach the manager at "
                                  : "register with ")
                  << options_.manager_address
                  << (unreachable ? " (will keep trying): " : " failed: ")
                  << s.error_message() << std::endl;
      }
      return false;
    }
  }
  std::cerr << "fabric-agent " << options_.node << ": registered with "
            << options_.manager_address << " (session "
            << registered.session() << ")" << std::endl;
  absl::Duration interval = absl::Seconds(1);
  if (registered.has_heartbeat_interval()) {
    interval = absl::Seconds(registered.heartbeat_interval().seconds()) +
               absl::Nanoseconds(registered.heartbeat_interval().nanos());
  }
  grpc::ClientContext ctx;
  {
    absl::MutexLock l(&mu_);
    if (stopping_ || stats_.fenced) return true;
    ++stats_.sessions;
    session_ = registered.session();
    stream_ctx_ = &ctx;
  }
  absl::Notification heartbeat_done;
  std::thread heartbeat([&] {
    HeartbeatLoop(stub, std::max(interval, absl::Milliseconds(10)),
                  &heartbeat_done);
  });
  v1::StreamConfigRequest sreq;
  sreq.set_node(options_.node);
  sreq.set_session(registered.session());
  auto reader = stub->StreamConfig(&ctx, sreq);
  // The stream is read on a thread of its own that keeps only the newest
  // configuration: under a storm of changes the agent applies the latest
  // one instead of working through every stale generation buffered in the
  // stream.
  struct Latest {
    absl::Mutex mu;
    std::optional<v1::DesiredConfig> config ABSL_GUARDED_BY(mu);
    bool ended ABSL_GUARDED_BY(mu) = false;
    bool Ready() const ABSL_SHARED_LOCKS_REQUIRED(mu) {
      return config.has_value() || ended;
    }
  } latest;
  std::thread stream_reader([&] {
    v1::DesiredConfig next;
    while (reader->Read(&next)) {
      bool replaced;
      {
        absl::MutexLock l(&latest.mu);
        replaced = latest.config.has_value();
        latest.config = std::move(next);
      }
      next = v1::DesiredConfig();
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
    v1::DesiredConfig config;
    {
      absl::MutexLock l(&latest.mu);
      latest.mu.Await(absl::Condition(&latest, &Latest::Ready));
      if (!latest.config.has_value()) break;  // the stream ended
      config = std::move(*latest.config);
      latest.config.reset();
    }
    if (config.fabric() != fabric) {
      if (config.fabric().empty()) {
        std::cerr << "fabric-agent " << options_.node
                  << ": the node is in no fabric"
                  << (fabric.has_value() ? absl::StrCat(" (it left ", *fabric, ")")
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
    const bool applied = Apply(config).ok();
    vf_->SetAssignments({config.vf_assignments().begin(),
                         config.vf_assignments().end()});
    // Report at once, so allocations turn READY without waiting for the
    // next heartbeat.
    grpc::ClientContext rctx;
    rctx.set_deadline(Deadline());
    v1::ReportStatusResponse resp;
    grpc::Status reported = stub->ReportStatus(&rctx, StatusReport(), &resp);
    if (reported.error_code() == grpc::StatusCode::ABORTED) Fence(reported);
    if (applied) {
      absl::MutexLock hw(&hw_mu_);
      RecordFingerprintLocked(Fingerprint(DesiredState(config)));
    }
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
  heartbeat_done.Notify();
  heartbeat.join();
  if (!stopping) {
    std::cerr << "fabric-agent " << options_.node
              << ": config stream ended: " << end.error_message()
              << "; reconnecting" << std::endl;
  }
  return true;
}

void Agent::Fence(const grpc::Status& why) {
  absl::MutexLock l(&mu_);
  if (stats_.fenced) return;
  stats_.fenced = true;
  stats_.fence_reason = why.error_message();
  fenced_ = true;
  if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
}

void Agent::ConnectionLoop() {
  // gRPC's own reconnect backoff (1 s growing to 120 s by default) would
  // decide how soon after a manager restart the agent is back; it follows
  // the agent's backoff instead, capped at 1 s (a refused TCP connect to the
  // manager is cheap).
  grpc::ChannelArguments args;
  const int initial_ms = static_cast<int>(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.initial_backoff)));
  const int max_ms = static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(options_.max_backoff), 1000));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, std::max(initial_ms, max_ms));
  // Credentials are a seam: mTLS replaces these with the node's cert.
  auto channel = grpc::CreateCustomChannel(
      options_.manager_address, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::AgentService::NewStub(channel);
  absl::BitGen gen;
  absl::Duration backoff = options_.initial_backoff;
  while (!stop_.HasBeenNotified()) {
    if (Session(stub.get())) backoff = options_.initial_backoff;
    if (stop_.HasBeenNotified()) break;
    if (fenced_) {
      const AgentStats st = stats();
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
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace fabric::agent
