#include "server/service/manager.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <tuple>

#include "absl/random/distributions.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/excerpt.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "fabric/internal/records.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/time_util.h"
#include "server/core/invariants.h"
#include "server/service/convert.h"

namespace fabric::service {

using google::protobuf::util::TimeUtil;

namespace {

constexpr char kTableMeta[] = "meta";
constexpr char kTableFabrics[] = "fabrics";
constexpr char kTableLinks[] = "links";
constexpr char kTableAllocations[] = "allocations";
constexpr char kTableRequests[] = "requests";
constexpr char kTableAttachments[] = "attachments";

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
constexpr size_t kMaxRequestIdLength = 128;
// Old request ids a new one may forget in its own batch; more than one, so
// that a backlog (a failed delete, a lowered cap) is caught up with.
constexpr size_t kForgetPerRequest = 16;
// Old request ids one sweep may forget.
constexpr size_t kForgetPerSweep = 4096;
constexpr size_t kMaxOwnerLength = 128;
constexpr int kMaxLabels = 64;
constexpr size_t kMaxLabelKeyLength = 63;
constexpr size_t kMaxLabelValueLength = 256;
constexpr absl::Duration kMaxTtl = absl::Hours(24 * 365);
// Functions in one inventory: every function of a PCI domain.
constexpr int kMaxInventoryFunctions = 256 * 32 * 8;

// A PCI address as discovery writes it, DDDD:BB:DD.F in hex (function 0-7).
// VF resource names are built from it by turning ':' into '-', which only
// reads back for addresses of this form.
bool IsPciAddress(absl::string_view a) {
  if (a.size() != 12 || a[4] != ':' || a[7] != ':' || a[10] != '.') {
    return false;
  }
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(a[i]))) return false;
  }
  const int device = std::stoi(std::string(a.substr(8, 2)), nullptr, 16);
  return device < 32 && a[11] >= '0' && a[11] <= '7';
}

// An agent's inventory, before anything of it is taken in. `field` names it
// in the request, e.g. "inventory".
absl::Status ValidateInventory(const v1::NodeInventory& inv,
                               absl::string_view field) {
  if (inv.functions_size() > kMaxInventoryFunctions) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".functions: ", inv.functions_size(),
        " functions is over the limit of ", kMaxInventoryFunctions));
  }
  for (int i = 0; i < inv.functions_size(); ++i) {
    const v1::PciFunction& f = inv.functions(i);
    if (!IsPciAddress(f.address())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".functions[", i, "].address: \"",
          absl::CHexEscape(f.address().substr(0, 64)),
          "\" is not a PCI address of the form DDDD:BB:DD.F (hex)"));
    }
    if (!f.pf_address().empty() && !IsPciAddress(f.pf_address())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".functions[", i, "].pf_address: \"",
          absl::CHexEscape(f.pf_address().substr(0, 64)),
          "\" is not a PCI address of the form DDDD:BB:DD.F (hex)"));
    }
  }
  return absl::OkStatus();
}

google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

absl::Time FromProtoTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(t));
}

// Deterministic bytes of `request` without its request_id, so that a retry
// can be told from a different request that reuses the id.
std::string Fingerprint(const google::protobuf::Message& request) {
  std::unique_ptr<google::protobuf::Message> copy(request.New());
  copy->CopyFrom(request);
  const auto* field = copy->GetDescriptor()->FindFieldByName("request_id");
  if (field != nullptr) copy->GetReflection()->ClearField(copy.get(), field);
  std::string out;
  {
    google::protobuf::io::StringOutputStream sos(&out);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    copy->SerializeToCodedStream(&cos);
  }
  return out;
}

struct Page {
  size_t begin = 0;
  size_t end = 0;
  std::string next_token;
};

// Page tokens: web-safe base64 of "p1", a 32-bit FNV-1a checksum of the
// key (little-endian) and the last key of the previous page. The checksum
// makes a token that this server did not write (a typo, a truncated copy)
// an error rather than a silently empty or shifted page.
uint32_t TokenChecksum(absl::string_view key) {
  uint32_t h = 2166136261u;
  for (char c : key) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

std::string EncodePageToken(absl::string_view last_key) {
  const uint32_t sum = TokenChecksum(last_key);
  std::string raw = "p1";
  for (int i = 0; i < 4; ++i) raw.push_back(static_cast<char>(sum >> (8 * i)));
  raw.append(last_key.data(), last_key.size());
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token) {
  std::string raw;
  if (absl::WebSafeBase64Unescape(token, &raw) && raw.size() >= 6 &&
      absl::StartsWith(raw, "p1")) {
    uint32_t sum = 0;
    for (int i = 0; i < 4; ++i) {
      sum |= static_cast<uint32_t>(static_cast<unsigned char>(raw[2 + i]))
             << (8 * i);
    }
    std::string key = raw.substr(6);
    if (sum == TokenChecksum(key)) return key;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "page_token: \"", Excerpt(token),
      "\" is not a token returned by this server; pass next_page_token "
      "from the previous page unchanged, or none for the first page"));
}

// Pagination over `keys`, sorted ascending. The token names the last key of
// the previous page (EncodePageToken).
absl::StatusOr<Page> Paginate(const std::vector<std::string>& keys,
                              int page_size, absl::string_view token) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be >= 0, got ", page_size));
  }
  if (page_size == 0) page_size = kDefaultPageSize;
  page_size = std::min(page_size, kMaxPageSize);
  Page p;
  if (!token.empty()) {
    ASSIGN_OR_RETURN(const std::string after, DecodePageToken(token));
    p.begin = std::upper_bound(keys.begin(), keys.end(), after) - keys.begin();
  }
  p.end = std::min(keys.size(), p.begin + static_cast<size_t>(page_size));
  if (p.end < keys.size() && p.end > p.begin) {
    p.next_token = EncodePageToken(keys[p.end - 1]);
  }
  return p;
}

// Adapts a callback of a message type to one of its serialized bytes.
template <typename T>
std::function<void(absl::StatusOr<std::string>)> ParseInto(
    std::function<void(absl::StatusOr<T>)> done) {
  return [done = std::move(done)](absl::StatusOr<std::string> bytes) {
    if (!bytes.ok()) {
      done(bytes.status());
      return;
    }
    T out;
    out.ParseFromString(*bytes);
    done(std::move(out));
  };
}

// Runs an asynchronous call and waits for its callback.
template <typename T, typename Start>
absl::StatusOr<T> AwaitResult(Start start) {
  absl::Notification finished;
  absl::StatusOr<T> result;
  start([&](absl::StatusOr<T> r) {
    result = std::move(r);
    finished.Notify();
  });
  finished.WaitForNotification();
  return result;
}


}  // namespace

struct FabricManager::FabricEntry {
  v1::Fabric record;  // name, spec, create_time: what is stored
  core::FabricState state;
  bool deleting = false;
  explicit FabricEntry(core::FabricState s) : state(std::move(s)) {}
  const std::string& id() const { return record.spec().name(); }
};

struct FabricManager::AllocationEntry {
  v1::Allocation record;  // what is stored; state fields unset
  std::string fabric;     // fabric id
  bool committed = false;
  bool releasing = false;
  int64_t required_generation = 0;
  v1::Allocation::State last_state = v1::Allocation::PENDING;
  std::string id() const {
    return std::string(absl::StripPrefix(record.name(), "allocations/"));
  }
};

struct FabricManager::AgentEntry {
  v1::Node::AgentState state = v1::Node::UNREGISTERED;
  std::string control_address;
  int64_t repairs = 0;
  std::vector<std::string> recent_repairs;
  absl::Time last_heartbeat = absl::InfinitePast();
  // The current session (RegisterNode); older ones are fenced.
  int64_t session = 0;
  // Config streams of the current session open now (ConfigStreamOpened).
  int open_streams = 0;
  // The latest takeover of a live session (v1::Node::agent_takeover).
  std::string takeover;
  // The newest ReportStatusRequest.sequence of the current session.
  int64_t report_sequence = 0;
  int64_t applied_generation = 0;
  v1::NodeInventory inventory;
  std::string backend;
  std::vector<v1::ApplyError> errors;
  // Lender: health of the VFs it lends, by address.
  std::map<std::string, v1::VfHealthReport> vf_health;
  // Borrower: its shadow devices, by attachment name.
  std::map<std::string, v1::ShadowStatus> shadows;
};

struct FabricManager::AttachmentEntry {
  v1::Attachment record;  // what is stored; state and counters unset
  std::string fabric;
  bool committed = false;
  bool releasing = false;
  int64_t required_generation = 0;
  v1::Attachment::State last_state = v1::Attachment::PENDING;
  std::string id() const {
    return std::string(absl::StripPrefix(record.name(), "attachments/"));
  }
};

struct FabricManager::PendingRequest {
  std::string method;
  std::string fingerprint;
  absl::Time time;
  uint64_t seq = 0;        // its RequestSlot in request_order_
  bool done = false;       // guarded by the manager's mu_
  bool abandoned = false;  // the write failed; the id may be used again
  std::string response;
  // Retries that arrived while the first attempt was in flight.
  std::vector<std::function<void(absl::StatusOr<std::string>)>> waiters;
};

absl::Status ValidateManagerOptions(const ManagerOptions& options) {
  if (options.max_request_ids < 1 ||
      options.max_request_ids > kMaxRequestIdsLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_request_ids: must be between 1 and ", kMaxRequestIdsLimit,
        ", got ", options.max_request_ids));
  }
  for (const auto& [name, d] :
       {std::pair<const char*, absl::Duration>{"heartbeat_timeout",
                                               options.heartbeat_timeout},
        {"heartbeat_interval", options.heartbeat_interval},
        {"request_retention", options.request_retention}}) {
    if (d <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": must be positive, got ", absl::FormatDuration(d)));
    }
  }
  if (options.heartbeat_timeout < 2 * options.heartbeat_interval) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heartbeat_timeout: must be at least twice heartbeat_interval (",
        absl::FormatDuration(options.heartbeat_interval),
        ") so that one late heartbeat does not make a live node NOT_READY; "
        "got ",
        absl::FormatDuration(options.heartbeat_timeout)));
  }
  return absl::OkStatus();
}

FabricManager::FabricManager(store::Store* store, Clock* clock,
                             ManagerOptions options)
    : store_(store), clock_(clock), options_(options) {}

FabricManager::~FabricManager() { Shutdown(); }

absl::StatusOr<std::unique_ptr<FabricManager>> FabricManager::Open(
    store::Store* store, Clock* clock, ManagerOptions options) {
  RETURN_IF_ERROR(ValidateManagerOptions(options));
  std::unique_ptr<FabricManager> m(new FabricManager(store, clock, options));
  RETURN_IF_ERROR(m->Load());
  if (options.sweep_interval > absl::ZeroDuration()) {
    FabricManager* raw = m.get();
    m->sweeper_ = std::thread([raw] { raw->SweeperLoop(); });
  }
  return m;
}

absl::Status FabricManager::Load() {
  // A new epoch, durable before anything is served, keeps generations
  // increasing across restarts.
  internal::MetaRecord meta;
  auto meta_bytes = store_->Get(kTableMeta, "meta");
  if (meta_bytes.ok()) {
    if (!meta.ParseFromString(*meta_bytes)) {
      return absl::DataLossError("store: meta record is unreadable");
    }
  } else if (!absl::IsNotFound(meta_bytes.status())) {
    return meta_bytes.status();
  }
  meta.set_epoch(meta.epoch() + 1);
  store::WriteBatch batch;
  batch.Put(kTableMeta, "meta", meta.SerializeAsString());

  // Request ids: the newest max_request_ids are remembered; the rows of the
  // older ones (a lowered cap) and unreadable ones are deleted in the same
  // batch as the new epoch, so that memory and store agree.
  struct LoadedRequest {
    absl::Time time;
    std::string key;
    std::shared_ptr<PendingRequest> pending;
  };
  std::vector<LoadedRequest> loaded_requests;
  {
    ASSIGN_OR_RETURN(auto rows, store_->Scan(kTableRequests));
    loaded_requests.reserve(rows.size());
    for (auto& [key, value] : rows) {
      internal::RequestRecord rec;
      if (!rec.ParseFromString(value)) {  // only costs idempotency
        batch.Delete(kTableRequests, key);
        continue;
      }
      auto p = std::make_shared<PendingRequest>();
      p->method = rec.method();
      p->fingerprint = rec.fingerprint();
      p->response = rec.response();
      p->time = absl::FromUnixMicros(rec.create_unix_micros());
      p->done = true;
      loaded_requests.push_back({p->time, std::move(key), std::move(p)});
    }
  }
  // Oldest first; the order of ids recorded in the same microsecond is not
  // kept, so it is made deterministic.
  std::sort(loaded_requests.begin(), loaded_requests.end(),
            [](const LoadedRequest& a, const LoadedRequest& b) {
              return std::tie(a.time, a.key) < std::tie(b.time, b.key);
            });
  const size_t keep_requests =
      std::min(loaded_requests.size(),
               static_cast<size_t>(options_.max_request_ids));
  const size_t drop_requests = loaded_requests.size() - keep_requests;
  for (size_t i = 0; i < drop_requests; ++i) {
    batch.Delete(kTableRequests, loaded_requests[i].key);
  }
  RETURN_IF_ERROR(store_->Apply(batch));

  absl::MutexLock l(&mu_);
  generation_ = meta.epoch() << 32;
  ASSIGN_OR_RETURN(auto fabrics, store_->Scan(kTableFabrics));
  for (const auto& [key, value] : fabrics) {
    v1::Fabric record;
    if (!record.ParseFromString(value)) {
      return absl::DataLossError(
          absl::StrCat("store: fabric record \"", key, "\" is unreadable"));
    }
    ASSIGN_OR_RETURN(core::FabricSpec spec, SpecFromProto(record.spec()));
    auto topo = core::Topology::Build(spec);
    if (!topo.ok()) {
      return absl::DataLossError(
          absl::StrCat("store: fabric \"", key,
                       "\" no longer validates: ", topo.status().message()));
    }
    auto entry =
        std::make_unique<FabricEntry>(core::FabricState(*std::move(topo)));
    entry->record = std::move(record);
    for (const auto& n : entry->state.topology().nodes()) {
      node_fabric_[n.name] = key;
    }
    fabrics_[key] = std::move(entry);
  }
  ASSIGN_OR_RETURN(auto links, store_->Scan(kTableLinks));
  for (const auto& [key, value] : links) {
    internal::LinkRecord rec;
    if (!rec.ParseFromString(value)) {
      return absl::DataLossError(
          absl::StrCat("store: link record \"", key, "\" is unreadable"));
    }
    auto it = fabrics_.find(rec.fabric());
    if (it == fabrics_.end()) continue;  // fabric deleted with the link
    auto idx = it->second->state.topology().FindLinkByName(key);
    if (!idx) continue;
    it->second->state.SetLink(*idx, rec.up());
  }
  ASSIGN_OR_RETURN(auto allocations, store_->Scan(kTableAllocations));
  for (const auto& [key, value] : allocations) {
    auto a = std::make_unique<AllocationEntry>();
    if (!a->record.ParseFromString(value)) {
      return absl::DataLossError(
          absl::StrCat("store: allocation record \"", key, "\" is unreadable"));
    }
    a->fabric = std::string(absl::StripPrefix(a->record.fabric(), "fabrics/"));
    auto fit = fabrics_.find(a->fabric);
    if (fit == fabrics_.end()) {
      return absl::DataLossError(absl::StrCat(
          "store: allocation ", key, " names missing fabric ", a->fabric));
    }
    const core::Topology& topo = fit->second->state.topology();
    auto b = topo.FindNode(absl::StripPrefix(a->record.borrower(), "nodes/"));
    auto t = topo.FindNode(absl::StripPrefix(a->record.target(), "nodes/"));
    if (!b || !t) {
      return absl::DataLossError(absl::StrCat(
          "store: allocation ", key, " names a node its fabric lacks"));
    }
    core::Grant g;
    g.id = key;
    g.borrower = *b;
    g.target = *t;
    g.size = a->record.size();
    g.target_addr = a->record.target_addr();
    g.fabric_addr = a->record.fabric_addr();
    g.slot_kind = SlotKindFromProto(a->record.slot_kind());
    g.slot_index = a->record.slot();
    g.slot_count = a->record.slot_count();
    g.borrower_addr = a->record.borrower_addr();
    absl::Status added = fit->second->state.AddGrant(g);
    if (!added.ok()) {
      return absl::DataLossError(absl::StrCat(
          "store: allocation ", key, " cannot be restored: ", added.message()));
    }
    a->committed = true;
    a->required_generation = generation_ + 1;
    allocations_[key] = std::move(a);
  }
  ASSIGN_OR_RETURN(auto attachments, store_->Scan(kTableAttachments));
  for (const auto& [key, value] : attachments) {
    auto a = std::make_unique<AttachmentEntry>();
    if (!a->record.ParseFromString(value)) {
      return absl::DataLossError(
          absl::StrCat("store: attachment record \"", key, "\" is unreadable"));
    }
    a->fabric = std::string(absl::StripPrefix(a->record.fabric(), "fabrics/"));
    auto fit = fabrics_.find(a->fabric);
    if (fit == fabrics_.end()) {
      return absl::DataLossError(absl::StrCat(
          "store: attachment ", key, " names missing fabric ", a->fabric));
    }
    const core::Topology& topo = fit->second->state.topology();
    for (const v1::AttachmentWindow& w : a->record.windows()) {
      auto from = topo.FindNode(w.from_node());
      auto to = topo.FindNode(w.to_node());
      if (!from || !to) {
        return absl::DataLossError(absl::StrCat(
            "store: attachment ", key, " names a node its fabric lacks"));
      }
      core::Grant g;
      g.id = absl::StrCat(key, ".", w.role());
      g.borrower = *from;
      g.target = *to;
      g.size = w.size();
      g.target_addr = w.target_addr();
      g.fabric_addr = w.fabric_addr();
      g.slot_kind = SlotKindFromProto(w.slot_kind());
      g.slot_index = w.slot();
      g.slot_count = w.slot_count();
      g.borrower_addr = w.local_addr();
      g.device = absl::StartsWith(w.role(), "mmio");
      absl::Status added = fit->second->state.AddGrant(g);
      if (!added.ok()) {
        return absl::DataLossError(absl::StrCat("store: attachment ", key,
                                                " cannot be restored: ",
                                                added.message()));
      }
    }
    a->committed = true;
    a->required_generation = generation_ + 1;
    attachments_[key] = std::move(a);
  }
  requests_.reserve(keep_requests);
  for (size_t i = drop_requests; i < loaded_requests.size(); ++i) {
    LoadedRequest& r = loaded_requests[i];
    r.pending->seq = next_request_seq_++;
    request_order_.push_back({r.pending->seq, r.key});
    requests_[std::move(r.key)] = std::move(r.pending);
  }
  BumpGeneration();
  return absl::OkStatus();
}

void FabricManager::Shutdown() {
  {
    absl::MutexLock l(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
  }
  stop_.Notify();
  if (sweeper_.joinable()) sweeper_.join();
  // A leader may still be writing what was planned before; let it finish.
  {
    absl::MutexLock l(&mu_);
    mu_.Await(absl::Condition(
        +[](FabricManager* m)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu_) { return !m->committing_; },
        this));
  }
  hub_.Close();
}

void FabricManager::SweeperLoop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.sweep_interval)) {
    Sweep();
  }
}

int64_t FabricManager::BumpGeneration() {
  ++generation_;
  hub_.SetGeneration(generation_);
  return generation_;
}

std::string FabricManager::NewAllocationId() {
  // Random, so that ids never repeat across restarts.
  std::string id;
  do {
    uint64_t v = absl::Uniform<uint64_t>(bitgen_) & 0xffffffffffffull;
    id = absl::StrCat("alloc-", absl::Hex(v, absl::kZeroPad12));
  } while (allocations_.count(id) != 0);
  return id;
}

void FabricManager::MutateAsync(
    absl::string_view method, absl::string_view request_id,
    const google::protobuf::Message& request,
    const std::function<absl::StatusOr<Plan>()>& plan_fn,
    Done<std::string> done) {
  if (request_id.size() > kMaxRequestIdLength) {
    done(absl::InvalidArgumentError(absl::StrCat(
        "request_id: ", request_id.size(), " characters is over the limit of ",
        kMaxRequestIdLength)));
    return;
  }
  const std::string fingerprint =
      request_id.empty() ? std::string() : Fingerprint(request);
  absl::Status early;
  std::optional<std::string> cached;
  bool lead = false;
  {
    absl::MutexLock l(&mu_);
    if (shutdown_) {
      early = absl::UnavailableError("the manager is shutting down");
    } else if (!request_id.empty()) {
      auto it = requests_.find(request_id);
      if (it != requests_.end()) {
        PendingRequest& prior = *it->second;
        if (prior.method != method || prior.fingerprint != fingerprint) {
          early = absl::InvalidArgumentError(
              absl::StrCat("request_id: \"", request_id,
                           "\" was already used for a different ", prior.method,
                           " request; use a new id for a new request"));
        } else if (prior.done) {
          cached = prior.response;
        } else {
          // In flight: answered together with the first attempt.
          prior.waiters.push_back(std::move(done));
          return;
        }
      }
    }
    if (early.ok() && !cached.has_value()) {
      absl::StatusOr<Plan> plan = plan_fn();
      if (!plan.ok()) {
        early = plan.status();
      } else {
        QueuedPlan q{*std::move(plan), nullptr, std::string(request_id),
                     std::move(done), {}};
        if (!request_id.empty()) {
          q.pending = std::make_shared<PendingRequest>();
          q.pending->method = std::string(method);
          q.pending->fingerprint = fingerprint;
          q.pending->time = clock_->Now();
          q.pending->seq = next_request_seq_++;
          requests_[q.request_id] = q.pending;
          request_order_.push_back({q.pending->seq, q.request_id});
          internal::RequestRecord rec;
          rec.set_method(q.pending->method);
          rec.set_fingerprint(fingerprint);
          rec.set_response(q.plan.response);
          rec.set_create_unix_micros(absl::ToUnixMicros(q.pending->time));
          q.plan.batch.Put(kTableRequests, q.request_id,
                           rec.SerializeAsString());
          // Keeps the number of ids bounded between sweeps: the ids this
          // one pushes over max_request_ids (or past retention) are
          // forgotten in the same atomic batch, so memory and store never
          // disagree, whatever becomes of the write.
          q.forget = TakeRequestsToForget(q.pending->time, kForgetPerRequest);
          for (const RequestSlot& f : q.forget) {
            q.plan.batch.Delete(kTableRequests, f.id);
          }
        }
        commit_queue_.push_back(std::move(q));
        if (committing_) return;  // the leader commits it with its group
        committing_ = true;
        lead = true;
      }
    }
  }
  if (lead) {
    // Leader/follower, as in leveldb: the first caller to find no commit in
    // progress writes every queued plan (its own first), in groups, then
    // finishes their calls; the others return at once.
    LeadCommits();
  } else if (!early.ok()) {
    done(early);
  } else {
    done(*std::move(cached));
  }
}

absl::StatusOr<std::string> FabricManager::Mutate(
    absl::string_view method, absl::string_view request_id,
    const google::protobuf::Message& request,
    const std::function<absl::StatusOr<Plan>()>& plan_fn) {
  absl::Notification finished;
  absl::StatusOr<std::string> result;
  MutateAsync(method, request_id, request, plan_fn,
              [&](absl::StatusOr<std::string> r) {
                result = std::move(r);
                finished.Notify();
              });
  finished.WaitForNotification();
  return result;
}

FabricManager::Replies FabricManager::CommitGroup(
    std::vector<QueuedPlan> group) {
  store::WriteBatch merged;
  for (const QueuedPlan& q : group) {
    for (const store::Mutation& m : q.plan.batch.mutations()) {
      if (m.value.has_value()) {
        merged.Put(m.table, m.key, *m.value);
      } else {
        merged.Delete(m.table, m.key);
      }
    }
  }
  absl::Status written = store_->Apply(merged);
  if (!written.ok() && absl::IsUnavailable(written)) {
    written = absl::UnavailableError(absl::StrCat(
        "the store cannot be written, nothing was changed; retry later: ",
        written.message()));
  }
  Replies replies;
  absl::MutexLock l(&mu_);
  if (written.ok()) {
    for (QueuedPlan& q : group) {
      if (q.plan.commit) q.plan.commit();
      ForgetRequests(q.forget);
      if (q.pending != nullptr) {
        q.pending->response = q.plan.response;
        q.pending->done = true;
        for (auto& w : q.pending->waiters)
          replies.emplace_back(std::move(w), q.plan.response);
        q.pending->waiters.clear();
      }
      replies.emplace_back(std::move(q.done), std::move(q.plan.response));
    }
  } else {
    // Undo in reverse order of planning.
    for (auto it = group.rbegin(); it != group.rend(); ++it) {
      if (it->plan.rollback) it->plan.rollback();
      RestoreRequests(std::move(it->forget));
      if (it->pending != nullptr) {
        it->pending->abandoned = true;
        requests_.erase(it->request_id);
        for (auto& w : it->pending->waiters)
          replies.emplace_back(std::move(w), written);
        it->pending->waiters.clear();
      }
      replies.emplace_back(std::move(it->done), written);
    }
  }
  return replies;
}

void FabricManager::LeadCommits() {
  // Bounds one transaction; the rest waits for the next round.
  constexpr size_t kMaxGroup = 1024;
  for (;;) {
    std::vector<QueuedPlan> group;
    {
      absl::MutexLock l(&mu_);
      if (commit_queue_.empty()) {
        committing_ = false;
        return;
      }
      while (!commit_queue_.empty() && group.size() < kMaxGroup) {
        group.push_back(std::move(commit_queue_.front()));
        commit_queue_.pop_front();
      }
    }
    Replies replies = CommitGroup(std::move(group));
    for (auto& [done, result] : replies) done(std::move(result));
  }
}

// --- Lookups ---------------------------------------------------------------

absl::StatusOr<FabricManager::FabricEntry*> FabricManager::FindFabric(
    absl::string_view field, absl::string_view name) {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "fabrics"));
  auto it = fabrics_.find(id);
  if (it == fabrics_.end()) {
    return absl::NotFoundError(
        absl::StrCat(field, ": fabric \"", id, "\" not found"));
  }
  return it->second.get();
}

absl::StatusOr<std::pair<FabricManager::FabricEntry*, int>>
FabricManager::FindNode(absl::string_view field, absl::string_view name) {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "nodes"));
  auto it = node_fabric_.find(id);
  if (it == node_fabric_.end()) {
    return absl::NotFoundError(
        absl::StrCat(field, ": node \"", id, "\" not found in any fabric"));
  }
  FabricEntry* f = fabrics_.at(it->second).get();
  return std::make_pair(f, *f->state.topology().FindNode(id));
}

absl::StatusOr<std::pair<FabricManager::FabricEntry*, int>>
FabricManager::FindLink(absl::string_view field, absl::string_view name) {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "links"));
  for (auto& [fid, f] : fabrics_) {
    auto idx = f->state.topology().FindLinkByName(id);
    if (idx) return std::make_pair(f.get(), *idx);
  }
  return absl::NotFoundError(absl::StrCat(
      field, ": link \"", id,
      "\" not found; links are named {a}--{b} in the order they were "
      "declared"));
}

absl::StatusOr<FabricManager::AllocationEntry*> FabricManager::FindAllocation(
    absl::string_view field, absl::string_view name) {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "allocations"));
  auto it = allocations_.find(id);
  if (it == allocations_.end() || !it->second->committed) {
    return absl::NotFoundError(
        absl::StrCat(field, ": allocation \"", id, "\" not found"));
  }
  return it->second.get();
}

bool FabricManager::GrantVisible(absl::string_view grant_id) const {
  // Attachment grants are "{attachment id}.{role}".
  const size_t dot = grant_id.find('.');
  if (dot != absl::string_view::npos) {
    auto it = attachments_.find(grant_id.substr(0, dot));
    return it != attachments_.end() && it->second->committed;
  }
  auto it = allocations_.find(grant_id);
  return it != allocations_.end() && it->second->committed;
}

std::string FabricManager::GrantOwner(absl::string_view grant_id) const {
  const size_t dot = grant_id.find('.');
  if (dot == absl::string_view::npos) return AllocationName(grant_id);
  return absl::StrCat("attachments/", grant_id.substr(0, dot), "/",
                      grant_id.substr(dot + 1));
}

// --- Views -------------------------------------------------------------------

v1::Fabric FabricManager::FabricView(const FabricEntry& f) const {
  v1::Fabric out = f.record;
  const core::Topology& topo = f.state.topology();
  out.set_generation(generation_);
  out.set_node_count(topo.node_count());
  out.set_link_count(static_cast<int>(topo.links().size()));
  int down = 0;
  for (bool up : f.state.link_states()) down += up ? 0 : 1;
  out.set_links_down(down);
  int count = 0;
  for (const auto& [id, a] : allocations_) {
    count += a->committed && a->fabric == f.id();
  }
  out.set_allocation_count(count);
  out.set_max_forward_entries(f.state.map().max_forward_entries());
  return out;
}

void FabricManager::AddAgentView(const AgentEntry& a, v1::Node* out) const {
  out->set_agent_state(a.state);
  out->set_applied_generation(a.applied_generation);
  *out->mutable_last_heartbeat() = ToProtoTime(a.last_heartbeat);
  *out->mutable_inventory() = a.inventory;
  out->set_repairs(a.repairs);
  for (const auto& r : a.recent_repairs) out->add_recent_repairs(r);
  for (const auto& e : a.errors) *out->add_apply_errors() = e;
  out->set_agent_address(a.control_address);
  out->set_agent_backend(a.backend);
  out->set_agent_session(a.session);
  out->set_agent_takeover(a.takeover);
}

v1::Node FabricManager::UnassignedNodeView(const std::string& id,
                                           const AgentEntry& a) const {
  v1::Node out;
  out.set_name(NodeName(id));
  out.set_desired_generation(generation_);
  AddAgentView(a, &out);
  return out;
}

v1::Node FabricManager::NodeView(const FabricEntry& f, int node) const {
  const core::NodeInfo& n = f.state.topology().node(node);
  v1::Node out;
  out.set_name(NodeName(n.name));
  out.set_fabric(FabricName(f.id()));
  out.set_bridge(BridgeName(n.name));
  out.set_hub(n.is_hub);
  out.set_export_base(n.export_base);
  out.set_export_size(n.export_size);
  out.set_window_base(n.window_base);
  out.set_aperture_base(n.aperture_base);
  out.set_aperture_size(n.aperture_size);
  out.set_mmio_base(n.mmio_base);
  out.set_mmio_size(n.mmio_size);
  out.set_mmio_aperture_base(n.mmio_aperture_base);
  out.set_desired_generation(generation_);
  out.set_agent_state(v1::Node::UNREGISTERED);
  auto it = agents_.find(n.name);
  if (it != agents_.end()) AddAgentView(*it->second, &out);
  uint64_t lent = 0;
  for (const core::Grant* g : f.state.grants()) {
    // Memory lent to allocations; attachments' windows are not counted.
    if (g->target == node && g->id.find('.') == std::string::npos &&
        GrantVisible(g->id)) {
      lent += g->size;
    }
  }
  out.set_lent_bytes(lent);
  return out;
}

v1::Bridge FabricManager::BridgeView(const FabricEntry& f, int node) const {
  const core::Topology& topo = f.state.topology();
  const core::NodeInfo& n = topo.node(node);
  v1::Bridge out;
  out.set_name(BridgeName(n.name));
  out.set_fabric(FabricName(f.id()));
  out.set_node(NodeName(n.name));
  *out.mutable_profile() = ProfileToProto(*n.profile);
  for (int port = 1; port <= n.port_count; ++port) {
    v1::Port* p = out.add_ports();
    p->set_number(port);
    auto peer = topo.PortPeer(node, port);
    if (peer) {
      const core::Link& link = topo.links()[peer->second];
      p->set_link(LinkName(link.name));
      p->set_peer_bridge(BridgeName(topo.node(peer->first).name));
      p->set_peer_port(link.a == node && link.a_port == port ? link.b_port
                                                             : link.a_port);
      p->set_up(f.state.link_up(peer->second));
    }
  }
  core::BridgeConfig cfg = f.state.ConfigFor(node);
  out.set_map_entries(static_cast<int>(cfg.map.size()));
  int windows = 0, lut = 0;
  for (const auto& w : cfg.windows) {
    if (!GrantVisible(w.grant_id)) continue;
    (w.kind == core::SlotKind::kLut ? lut : windows) += 1;
  }
  out.set_windows_used(windows);
  out.set_lut_entries_used(lut);
  return out;
}

v1::Link FabricManager::LinkView(const FabricEntry& f, int link) const {
  const core::Topology& topo = f.state.topology();
  const core::Link& l = topo.links()[link];
  v1::Link out;
  out.set_name(LinkName(l.name));
  out.set_fabric(FabricName(f.id()));
  out.set_a_bridge(BridgeName(topo.node(l.a).name));
  out.set_a_port(l.a_port);
  out.set_b_bridge(BridgeName(topo.node(l.b).name));
  out.set_b_port(l.b_port);
  out.set_up(f.state.link_up(link));
  return out;
}

v1::AddressMap FabricManager::MapView(const FabricEntry& f, int node) const {
  const core::Topology& topo = f.state.topology();
  core::BridgeConfig cfg = f.state.ConfigFor(node);
  v1::AddressMap out;
  const std::string& name = topo.node(node).name;
  out.set_name(absl::StrCat(BridgeName(name), "/addressMap"));
  out.set_bridge(BridgeName(name));
  out.set_generation(generation_);
  for (const core::MapEntry& e : cfg.map) {
    v1::MapEntry* m = out.add_entries();
    m->set_kind(e.kind == core::MapEntry::Kind::kClaim ? v1::MapEntry::CLAIM
                                                       : v1::MapEntry::FORWARD);
    m->set_base(e.base);
    m->set_size(e.size);
    if (e.kind == core::MapEntry::Kind::kForward) m->set_port(e.port);
    if (e.kind == core::MapEntry::Kind::kClaim) m->set_local_base(e.local_base);
    m->set_covers(CoveredNodes(topo, e.base, e.size));
  }
  for (const core::WindowEntry& w : cfg.windows) {
    if (!GrantVisible(w.grant_id)) continue;
    v1::WindowEntry* m = out.add_windows();
    m->set_slot_kind(SlotKindToProto(w.kind));
    m->set_slot(w.slot);
    m->set_local_base(w.local_base);
    m->set_size(w.size);
    m->set_translated_addr(w.xlat);
    m->set_allocation(GrantOwner(w.grant_id));
  }
  for (const core::InboundEntry& e : cfg.inbound) {
    if (!GrantVisible(e.grant_id)) continue;
    v1::InboundEntry* m = out.add_inbound();
    m->set_local_base(e.local_base);
    m->set_size(e.size);
    m->set_allocation(GrantOwner(e.grant_id));
    m->set_borrower(NodeName(topo.node(e.borrower).name));
  }
  return out;
}

v1::Allocation::State FabricManager::GrantState(const FabricEntry& f,
                                                const core::Grant& g,
                                                absl::string_view owner,
                                                int64_t required,
                                                std::string* reason) const {
  const core::Topology& topo = f.state.topology();
  auto path = f.state.GrantPath(g);
  if (!path) {
    std::vector<std::string> down;
    for (size_t i = 0; i < topo.links().size(); ++i) {
      if (!f.state.link_up(static_cast<int>(i)))
        down.push_back(topo.links()[i].name);
    }
    *reason = absl::StrCat("no path from ", topo.node(g.borrower).name, " to ",
                           topo.node(g.target).name,
                           "; links down: ", absl::StrJoin(down, ", "));
    return v1::Allocation::DEGRADED;
  }
  for (int n : *path) {
    const std::string& node = topo.node(n).name;
    auto it = agents_.find(node);
    if (it == agents_.end() || it->second->state == v1::Node::UNREGISTERED) {
      *reason =
          absl::StrCat("waiting for the agent of node ", node, " to register");
      return v1::Allocation::PENDING;
    }
    if (it->second->state != v1::Node::READY) {
      *reason = absl::StrCat("the agent of node ", node, " is not ready");
      return v1::Allocation::PENDING;
    }
    for (const v1::ApplyError& e : it->second->errors) {
      const std::string& tag = e.allocation();
      if (tag.empty() || tag == owner ||
          (absl::StartsWith(tag, owner) && tag.size() > owner.size() &&
           tag[owner.size()] == '/')) {
        *reason = absl::StrCat("node ", node, " could not apply ", e.entry(),
                               ": ", e.message());
        return v1::Allocation::PENDING;
      }
    }
    if (it->second->applied_generation < required) {
      *reason = absl::StrCat("waiting for node ", node, " to apply generation ",
                             required, " (applied ",
                             it->second->applied_generation, ")");
      return v1::Allocation::PENDING;
    }
  }
  reason->clear();
  return v1::Allocation::READY;
}

v1::Allocation::State FabricManager::DeriveState(const AllocationEntry& a,
                                                 std::string* reason) const {
  const FabricEntry& f = *fabrics_.at(a.fabric);
  return GrantState(f, *f.state.FindGrant(a.id()), a.record.name(),
                    a.required_generation, reason);
}

v1::Allocation FabricManager::AllocationView(const AllocationEntry& a) const {
  v1::Allocation out = a.record;
  std::string reason;
  out.set_state(DeriveState(a, &reason));
  out.set_state_reason(reason);
  out.set_required_generation(a.required_generation);
  const FabricEntry& f = *fabrics_.at(a.fabric);
  const core::Grant* g = f.state.FindGrant(a.id());
  auto path = f.state.GrantPath(*g);
  if (path) {
    for (int n : *path)
      out.add_path(BridgeName(f.state.topology().node(n).name));
  }
  return out;
}

void FabricManager::PublishAllocation(v1::WatchEvent::Type type,
                                      const v1::Allocation& a) {
  // Callers skip building `a` when nobody watches; see WatchHub.
  v1::WatchEvent e;
  e.set_type(type);
  *e.mutable_allocation() = a;
  hub_.Publish(std::move(e));
}

void FabricManager::RefreshStates(const std::string& fabric, int node) {
  auto fit = fabrics_.find(fabric);
  if (fit == fabrics_.end()) return;
  const core::FabricState& state = fit->second->state;
  for (auto& [id, a] : allocations_) {
    if (!a->committed || a->fabric != fabric) continue;
    if (node >= 0) {
      const core::Grant* g = state.FindGrant(id);
      auto path = state.GrantPath(*g);
      bool crosses =
          g->borrower == node || g->target == node ||
          (path && std::find(path->begin(), path->end(), node) != path->end());
      if (!crosses) continue;
    }
    std::string reason;
    v1::Allocation::State s = DeriveState(*a, &reason);
    if (s != a->last_state) {
      a->last_state = s;
      if (hub_.has_watchers())
        PublishAllocation(v1::WatchEvent::MODIFIED, AllocationView(*a));
    }
  }
  RefreshAttachments(fabric);
}

// --- Fabrics
// -------------------------------------------------------------------

absl::StatusOr<v1::Fabric> FabricManager::CreateFabric(
    const v1::CreateFabricRequest& req) {
  absl::MutexLock admin(&admin_mu_);
  auto topo_or = [&]() -> absl::StatusOr<core::Topology> {
    ASSIGN_OR_RETURN(core::FabricSpec spec, SpecFromProto(req.spec()));
    auto topo = core::Topology::Build(spec);
    if (!topo.ok()) {
      return absl::Status(topo.status().code(),
                          absl::StrCat("spec.", topo.status().message()));
    }
    return topo;
  }();
  RETURN_IF_ERROR(topo_or.status());
  auto topo = std::make_shared<core::Topology>(*std::move(topo_or));
  v1::Fabric created;
  auto plan_fn =
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<Plan> {
    const std::string& id = req.spec().name();
    if (fabrics_.count(id) != 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("spec.name: fabric \"", id, "\" already exists"));
    }
    for (const auto& n : topo->nodes()) {
      auto it = node_fabric_.find(n.name);
      if (it != node_fabric_.end()) {
        return absl::AlreadyExistsError(absl::StrCat(
            "spec.nodes: node \"", n.name, "\" already belongs to fabric \"",
            it->second, "\"; node names are unique across fabrics"));
      }
    }
    auto entry = std::make_shared<FabricEntry>(core::FabricState(*topo));
    entry->record.set_name(FabricName(id));
    *entry->record.mutable_spec() = req.spec();
    *entry->record.mutable_create_time() = ToProtoTime(clock_->Now());
    Plan plan;
    plan.batch.Put(kTableFabrics, id, entry->record.SerializeAsString());
    created = FabricView(*entry);
    plan.response = created.SerializeAsString();
    if (req.validate_only()) {
      plan.batch = store::WriteBatch();
      return plan;
    }
    plan.commit = [this, entry, id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& n : entry->state.topology().nodes())
        node_fabric_[n.name] = id;
      auto owned = std::make_unique<FabricEntry>(std::move(*entry));
      FabricEntry* f = owned.get();
      fabrics_[id] = std::move(owned);
      BumpGeneration();
      v1::WatchEvent e;
      e.set_type(v1::WatchEvent::ADDED);
      *e.mutable_fabric() = FabricView(*f);
      hub_.Publish(std::move(e));
    };
    return plan;
  };
  ASSIGN_OR_RETURN(std::string bytes,
                   Mutate("CreateFabric", req.request_id(), req, plan_fn));
  v1::Fabric out;
  out.ParseFromString(bytes);
  return out;
}

absl::StatusOr<v1::Fabric> FabricManager::GetFabric(absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(FabricEntry * f, FindFabric("name", name));
  return FabricView(*f);
}

absl::StatusOr<v1::ListFabricsResponse> FabricManager::ListFabrics(
    const v1::ListFabricsRequest& req) {
  absl::MutexLock l(&mu_);
  std::vector<std::string> keys;
  for (const auto& [id, f] : fabrics_) keys.push_back(id);
  ASSIGN_OR_RETURN(Page p, Paginate(keys, req.page_size(), req.page_token()));
  v1::ListFabricsResponse out;
  for (size_t i = p.begin; i < p.end; ++i)
    *out.add_fabrics() = FabricView(*fabrics_.at(keys[i]));
  out.set_next_page_token(p.next_token);
  return out;
}

absl::StatusOr<v1::Fabric> FabricManager::DeleteFabric(
    const v1::DeleteFabricRequest& req) {
  absl::MutexLock admin(&admin_mu_);
  auto plan_fn =
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<Plan> {
    ASSIGN_OR_RETURN(FabricEntry * f, FindFabric("name", req.name()));
    std::vector<std::string> live;
    for (const auto& [id, a] : allocations_) {
      if (a->fabric != f->id()) continue;
      if (!a->committed || a->releasing) {
        return absl::UnavailableError(
            absl::StrCat("name: allocation ", id, " of fabric ", f->id(),
                         " is being created or released; retry"));
      }
      live.push_back(id);
    }
    if (!live.empty() && !req.force()) {
      return absl::FailedPreconditionError(
          absl::StrCat("name: fabric \"", f->id(), "\" has ", live.size(),
                       " live allocation(s) (first: ", live[0],
                       "); release them or set force"));
    }
    std::vector<std::string> attached;
    for (const auto& [id, a] : attachments_) {
      if (a->fabric != f->id()) continue;
      if (!a->committed || a->releasing) {
        return absl::UnavailableError(
            absl::StrCat("name: attachment ", id, " of fabric ", f->id(),
                         " is being attached or detached; retry"));
      }
      attached.push_back(id);
    }
    if (!attached.empty() && !req.force()) {
      return absl::FailedPreconditionError(
          absl::StrCat("name: fabric \"", f->id(), "\" has ", attached.size(),
                       " VF attachment(s) (first: ", attached[0],
                       "); detach them or set force"));
    }
    Plan plan;
    for (const auto& id : attached) plan.batch.Delete(kTableAttachments, id);
    plan.batch.Delete(kTableFabrics, f->id());
    for (const auto& l : f->state.topology().links())
      plan.batch.Delete(kTableLinks, l.name);
    for (const auto& id : live) plan.batch.Delete(kTableAllocations, id);
    v1::Fabric view = FabricView(*f);
    plan.response = view.SerializeAsString();
    f->deleting = true;
    std::string fid = f->id();
    plan.rollback = [f]() { f->deleting = false; };
    plan.commit = [this, fid, live, attached,
                   view]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& id : attached) {
        auto it = attachments_.find(id);
        v1::Attachment a = AttachmentView(*it->second);
        a.set_state(v1::Attachment::DETACHED);
        a.set_state_reason("its fabric was deleted");
        attachments_.erase(it);
        PublishAttachment(v1::WatchEvent::DELETED, a);
      }
      for (const auto& id : live) {
        auto it = allocations_.find(id);
        v1::Allocation a = AllocationView(*it->second);
        a.set_state(v1::Allocation::RELEASED);
        a.set_state_reason("its fabric was deleted");
        a.clear_path();
        allocations_.erase(it);
        PublishAllocation(v1::WatchEvent::DELETED, a);
      }
      FabricEntry* f = fabrics_.at(fid).get();
      for (const auto& n : f->state.topology().nodes())
        node_fabric_.erase(n.name);
      fabrics_.erase(fid);
      BumpGeneration();
      v1::WatchEvent e;
      e.set_type(v1::WatchEvent::DELETED);
      *e.mutable_fabric() = view;
      hub_.Publish(std::move(e));
    };
    return plan;
  };
  ASSIGN_OR_RETURN(std::string bytes,
                   Mutate("DeleteFabric", req.request_id(), req, plan_fn));
  v1::Fabric out;
  out.ParseFromString(bytes);
  return out;
}

// --- Nodes, bridges, links, maps
// ------------------------------------------------

absl::StatusOr<v1::Node> FabricManager::GetNode(absl::string_view name) {
  absl::MutexLock l(&mu_);
  auto fn = FindNode("name", name);
  if (!fn.ok()) {
    // A node in no fabric whose agent is connected: its (empty) state.
    const AgentEntry* agent = UnassignedAgent(name);
    if (agent != nullptr) {
      return UnassignedNodeView(*ParseName("name", name, "nodes"), *agent);
    }
    return fn.status();
  }
  return NodeView(*fn->first, fn->second);
}

const FabricManager::AgentEntry* FabricManager::UnassignedAgent(
    absl::string_view name) const {
  auto id = ParseName("node", name, "nodes");
  if (!id.ok() || node_fabric_.contains(*id)) return nullptr;
  auto it = agents_.find(*id);
  return it == agents_.end() ? nullptr : it->second.get();
}

namespace {
// Every (fabric, index) pair over `count(f)` items of the fabrics that pass
// the optional filter, keyed by `key(f, i)`, sorted by key.
template <typename Fabrics, typename CountFn, typename KeyFn>
std::vector<std::pair<std::string, std::pair<std::string, int>>> Collect(
    const Fabrics& fabrics, absl::string_view only, CountFn count, KeyFn key) {
  std::vector<std::pair<std::string, std::pair<std::string, int>>> out;
  for (const auto& [id, f] : fabrics) {
    if (!only.empty() && id != only) continue;
    for (int i = 0; i < count(*f); ++i) out.push_back({key(*f, i), {id, i}});
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

#define FABRIC_LIST_IMPL(Method, Resp, adder, count_expr, key_expr, view)   \
  absl::StatusOr<v1::Resp> FabricManager::Method(                           \
      const v1::Method##Request& req) {                                     \
    absl::MutexLock l(&mu_);                                                \
    std::string only;                                                       \
    if (!req.fabric().empty()) {                                            \
      ASSIGN_OR_RETURN(FabricEntry* f, FindFabric("fabric", req.fabric())); \
      only = f->id();                                                       \
    }                                                                       \
    auto items = Collect(                                                   \
        fabrics_, only, [](const FabricEntry& f) { return count_expr; },    \
        [](const FabricEntry& f, int i) { return key_expr; });              \
    std::vector<std::string> keys;                                          \
    for (const auto& it : items) keys.push_back(it.first);                  \
    ASSIGN_OR_RETURN(Page p,                                                \
                     Paginate(keys, req.page_size(), req.page_token()));    \
    v1::Resp out;                                                           \
    for (size_t k = p.begin; k < p.end; ++k) {                              \
      const FabricEntry& f = *fabrics_.at(items[k].second.first);           \
      *out.adder() = view(f, items[k].second.second);                       \
    }                                                                       \
    out.set_next_page_token(p.next_token);                                  \
    return out;                                                             \
  }

FABRIC_LIST_IMPL(ListNodes, ListNodesResponse, add_nodes,
                 f.state.topology().node_count(),
                 f.state.topology().node(i).name, NodeView)
FABRIC_LIST_IMPL(ListBridges, ListBridgesResponse, add_bridges,
                 f.state.topology().node_count(),
                 f.state.topology().node(i).name, BridgeView)
FABRIC_LIST_IMPL(ListLinks, ListLinksResponse, add_links,
                 static_cast<int>(f.state.topology().links().size()),
                 f.state.topology().links()[i].name, LinkView)
FABRIC_LIST_IMPL(ListAddressMaps, ListAddressMapsResponse, add_address_maps,
                 f.state.topology().node_count(),
                 f.state.topology().node(i).name, MapView)
#undef FABRIC_LIST_IMPL

absl::StatusOr<v1::Bridge> FabricManager::GetBridge(absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(std::string id, ParseName("name", name, "bridges"));
  ASSIGN_OR_RETURN(auto fn, FindNode("name", id));
  return BridgeView(*fn.first, fn.second);
}

absl::StatusOr<v1::Link> FabricManager::GetLink(absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(auto fl, FindLink("name", name));
  return LinkView(*fl.first, fl.second);
}

absl::StatusOr<v1::AddressMap> FabricManager::GetAddressMap(
    absl::string_view name) {
  absl::MutexLock l(&mu_);
  absl::string_view bridge = absl::StripSuffix(name, "/addressMap");
  ASSIGN_OR_RETURN(std::string id, ParseName("name", bridge, "bridges"));
  ASSIGN_OR_RETURN(auto fn, FindNode("name", id));
  return MapView(*fn.first, fn.second);
}

absl::StatusOr<v1::Link> FabricManager::SetLinkState(
    const v1::SetLinkStateRequest& req) {
  absl::MutexLock admin(&admin_mu_);
  auto plan_fn =
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<Plan> {
    ASSIGN_OR_RETURN(auto fl, FindLink("name", req.name()));
    FabricEntry* f = fl.first;
    const int link = fl.second;
    if (f->deleting) {
      return absl::FailedPreconditionError(
          absl::StrCat("name: fabric ", f->id(), " is being deleted"));
    }
    RETURN_IF_ERROR(f->state.CheckLinkChange(link, req.up()));
    Plan plan;
    const std::string& lname = f->state.topology().links()[link].name;
    internal::LinkRecord rec;
    rec.set_fabric(f->id());
    rec.set_up(req.up());
    plan.batch.Put(kTableLinks, lname, rec.SerializeAsString());
    v1::Link view = LinkView(*f, link);
    view.set_up(req.up());
    plan.response = view.SerializeAsString();
    std::string fid = f->id();
    bool up = req.up();
    plan.commit = [this, fid, link, up, view]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                        FabricEntry* f = fabrics_.at(fid).get();
                        if (!f->state.SetLink(link, up)) return;
                        const int64_t gen = BumpGeneration();
                        for (auto& [id, a] : allocations_) {
                          if (a->fabric == fid && a->committed)
                            a->required_generation = gen;
                        }
                        v1::WatchEvent e;
                        e.set_type(v1::WatchEvent::MODIFIED);
                        *e.mutable_link() = view;
                        hub_.Publish(std::move(e));
                        RefreshStates(fid);
                      };
    return plan;
  };
  ASSIGN_OR_RETURN(std::string bytes,
                   Mutate("SetLinkState", req.request_id(), req, plan_fn));
  v1::Link out;
  out.ParseFromString(bytes);
  return out;
}

// --- Allocations
// ---------------------------------------------------------------

absl::StatusOr<v1::Allocation> FabricManager::CreateAllocation(
    const v1::CreateAllocationRequest& req) {
  return AwaitResult<v1::Allocation>(
      [&](Done<v1::Allocation> done) { CreateAllocationAsync(req, done); });
}

namespace {
// Validation of a new allocation that needs no state; sets *ttl.
absl::Status ValidateNewAllocation(const v1::Allocation& in,
                                   absl::Duration* ttl) {
  if (in.size() == 0) {
    return absl::InvalidArgumentError(
        "allocation.size: required and must be > 0 bytes");
  }
  if (in.owner().size() > kMaxOwnerLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("allocation.owner: ", in.owner().size(),
                     " characters is over the limit of ", kMaxOwnerLength));
  }
  if (in.labels_size() > kMaxLabels) {
    return absl::InvalidArgumentError(
        absl::StrCat("allocation.labels: ", in.labels_size(),
                     " labels is over the limit of ", kMaxLabels));
  }
  for (const auto& [k, v] : in.labels()) {
    if (k.empty() || k.size() > kMaxLabelKeyLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("allocation.labels: key \"", k, "\" must be 1-",
                       kMaxLabelKeyLength, " characters"));
    }
    if (v.size() > kMaxLabelValueLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("allocation.labels[", k, "]: value is over ",
                       kMaxLabelValueLength, " characters"));
    }
  }
  *ttl = absl::ZeroDuration();
  if (in.has_ttl()) {
    *ttl =
        absl::Seconds(in.ttl().seconds()) + absl::Nanoseconds(in.ttl().nanos());
    if (*ttl <= absl::ZeroDuration() || *ttl > kMaxTtl) {
      return absl::InvalidArgumentError(absl::StrCat(
          "allocation.ttl: must be between 1ns and ",
          absl::FormatDuration(kMaxTtl), ", got ", absl::FormatDuration(*ttl)));
    }
  }
  return absl::OkStatus();
}
}  // namespace

void FabricManager::CreateAllocationAsync(
    const v1::CreateAllocationRequest& req, Done<v1::Allocation> done) {
  const v1::Allocation& in = req.allocation();
  absl::Duration ttl;
  if (absl::Status valid = ValidateNewAllocation(in, &ttl); !valid.ok()) {
    done(valid);
    return;
  }
  auto plan_fn =
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<Plan> {
    ASSIGN_OR_RETURN(auto from, FindNode("allocation.borrower", in.borrower()));
    ASSIGN_OR_RETURN(auto to, FindNode("allocation.target", in.target()));
    FabricEntry* f = from.first;
    if (to.first != f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "allocation.target: node ", in.target(), " is in fabric ",
          to.first->id(), ", but the borrower is in fabric ", f->id()));
    }
    if (f->deleting) {
      return absl::FailedPreconditionError(
          absl::StrCat("allocation: fabric ", f->id(), " is being deleted"));
    }
    auto grant = f->state.PlanGrant(from.second, to.second, in.size());
    if (!grant.ok()) {
      return absl::Status(
          grant.status().code(),
          absl::StrCat("allocation.", grant.status().message()));
    }
    const std::string id = NewAllocationId();
    grant->id = id;
    absl::Status added = f->state.AddGrant(*grant);
    if (!added.ok()) {
      return absl::InternalError(
          absl::StrCat("planned grant was refused (a bug): ", added.message()));
    }
    const core::Topology& topo = f->state.topology();
    auto entry = std::make_unique<AllocationEntry>();
    AllocationEntry* a = entry.get();
    a->fabric = f->id();
    v1::Allocation& r = a->record;
    r.set_name(AllocationName(id));
    r.set_fabric(FabricName(f->id()));
    r.set_borrower(NodeName(topo.node(grant->borrower).name));
    r.set_target(NodeName(topo.node(grant->target).name));
    r.set_size(grant->size);
    r.set_borrower_addr(grant->borrower_addr);
    r.set_target_addr(grant->target_addr);
    r.set_fabric_addr(grant->fabric_addr);
    r.set_slot_kind(SlotKindToProto(grant->slot_kind));
    r.set_slot(grant->slot_index);
    r.set_slot_count(grant->slot_count);
    r.set_owner(in.owner());
    *r.mutable_labels() = in.labels();
    const absl::Time now = clock_->Now();
    *r.mutable_create_time() = ToProtoTime(now);
    if (in.has_ttl()) {
      *r.mutable_ttl() = in.ttl();
      *r.mutable_expire_time() = ToProtoTime(now + ttl);
    }
    allocations_[id] = std::move(entry);
    Plan plan;
    plan.batch.Put(kTableAllocations, id, r.SerializeAsString());
    v1::Allocation response = r;
    response.set_state(v1::Allocation::PENDING);
    response.set_state_reason("recorded; waiting for the agents on its path");
    if (auto path = f->state.GrantPath(*grant)) {
      for (int n : *path) response.add_path(BridgeName(topo.node(n).name));
    }
    plan.response = response.SerializeAsString();
    plan.commit = [this, a]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      a->committed = true;
      a->required_generation = BumpGeneration();
      std::string reason;
      a->last_state = DeriveState(*a, &reason);
      if (hub_.has_watchers())
        PublishAllocation(v1::WatchEvent::ADDED, AllocationView(*a));
    };
    std::string fid = f->id();
    plan.rollback = [this, fid, id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      (void)fabrics_.at(fid)->state.RemoveGrant(id);
      allocations_.erase(id);
    };
    return plan;
  };
  MutateAsync("CreateAllocation", req.request_id(), req, plan_fn,
              ParseInto<v1::Allocation>(std::move(done)));
}

absl::StatusOr<v1::Allocation> FabricManager::GetAllocation(
    absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(AllocationEntry * a, FindAllocation("name", name));
  return AllocationView(*a);
}

absl::StatusOr<v1::ListAllocationsResponse> FabricManager::ListAllocations(
    const v1::ListAllocationsRequest& req) {
  absl::MutexLock l(&mu_);
  std::string only_fabric, only_node;
  if (!req.fabric().empty()) {
    ASSIGN_OR_RETURN(FabricEntry * f, FindFabric("fabric", req.fabric()));
    only_fabric = f->id();
  }
  if (!req.node().empty()) {
    ASSIGN_OR_RETURN(only_node, ParseName("node", req.node(), "nodes"));
    if (!node_fabric_.contains(only_node)) {
      return absl::NotFoundError(
          absl::StrCat("node: node \"", only_node, "\" not found"));
    }
  }
  std::vector<std::string> keys;
  for (const auto& [id, a] : allocations_) {
    if (!a->committed) continue;
    if (!only_fabric.empty() && a->fabric != only_fabric) continue;
    if (!only_node.empty() && a->record.borrower() != NodeName(only_node) &&
        a->record.target() != NodeName(only_node))
      continue;
    if (!req.owner().empty() && a->record.owner() != req.owner()) continue;
    keys.push_back(id);
  }
  ASSIGN_OR_RETURN(Page p, Paginate(keys, req.page_size(), req.page_token()));
  v1::ListAllocationsResponse out;
  for (size_t i = p.begin; i < p.end; ++i)
    *out.add_allocations() = AllocationView(*allocations_.at(keys[i]));
  out.set_next_page_token(p.next_token);
  return out;
}

absl::StatusOr<v1::Allocation> FabricManager::DeleteAllocation(
    const v1::DeleteAllocationRequest& req) {
  return AwaitResult<v1::Allocation>(
      [&](Done<v1::Allocation> done) { DeleteAllocationAsync(req, done); });
}

void FabricManager::DeleteAllocationAsync(
    const v1::DeleteAllocationRequest& req, Done<v1::Allocation> done) {
  ReleaseAllocationAsync("DeleteAllocation", req.name(), req.request_id(), req,
                         std::move(done));
}

void FabricManager::ReleaseAllocationAsync(
    absl::string_view method, absl::string_view name,
    absl::string_view request_id, const google::protobuf::Message& request,
    Done<v1::Allocation> done) {
  auto plan_fn =
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<Plan> {
    ASSIGN_OR_RETURN(AllocationEntry * a, FindAllocation("name", name));
    if (a->releasing) {
      return absl::AbortedError(absl::StrCat("name: ", a->record.name(),
                                             " is already being released"));
    }
    a->releasing = true;
    Plan plan;
    const std::string id = a->id();
    plan.batch.Delete(kTableAllocations, id);
    v1::Allocation view = AllocationView(*a);
    view.set_state(v1::Allocation::RELEASED);
    view.set_state_reason(method == "DeleteAllocation" ? "released"
                                                       : "its lease expired");
    view.clear_path();
    plan.response = view.SerializeAsString();
    plan.rollback = [a]() { a->releasing = false; };
    plan.commit = [this, id, view]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      auto it = allocations_.find(id);
      (void)fabrics_.at(it->second->fabric)->state.RemoveGrant(id);
      allocations_.erase(it);
      BumpGeneration();
      PublishAllocation(v1::WatchEvent::DELETED, view);
    };
    return plan;
  };
  MutateAsync(method, request_id, request, plan_fn,
              ParseInto<v1::Allocation>(std::move(done)));
}

// --- Agents
// ----------------------------------------------------------------------

absl::StatusOr<v1::RegisterNodeResponse> FabricManager::RegisterNode(
    const v1::RegisterNodeRequest& req) {
  RETURN_IF_ERROR(ValidateInventory(req.inventory(), "inventory"));
  ASSIGN_OR_RETURN(const std::string node,
                   ParseName("node", req.node(), "nodes"));
  absl::MutexLock l(&mu_);
  auto& agent = agents_[node];
  if (agent == nullptr) agent = std::make_unique<AgentEntry>();
  // Sessions are unique across restarts: the epoch is in the high bits.
  const int64_t session = (generation_ & ~int64_t{0xffffffff}) |
                          (++session_counter_ & 0xffffffff);
  if (agent->session != 0 && agent->open_streams > 0) {
    // Another agent (or this one, reconnecting before its old stream
    // ended) registers while the current session still looks alive: the
    // newer one wins, the older is fenced.
    agent->takeover = absl::StrCat(
        "session ", session, " from ", req.control_address(),
        " replaced session ", agent->session, " from ",
        agent->control_address, " at ", absl::FormatTime(clock_->Now()));
    std::cerr << "fabric-manager: node " << node << ": " << agent->takeover
              << "; the older session is fenced" << std::endl;
  }
  agent->session = session;
  agent->open_streams = 0;
  agent->report_sequence = 0;
  const bool moved = agent->control_address != req.control_address();
  agent->inventory = req.inventory();
  agent->backend = req.backend();
  agent->control_address = req.control_address();
  agent->repairs = 0;
  agent->recent_repairs.clear();
  agent->state = v1::Node::READY;
  agent->last_heartbeat = clock_->Now();
  // A (re)registered agent must apply the current generation again.
  agent->applied_generation = 0;
  agent->errors.clear();
  v1::RegisterNodeResponse out;
  *out.mutable_heartbeat_interval() =
      ToProtoDuration(options_.heartbeat_interval);
  out.set_session(session);
  auto fn = FindNode("node", node);
  if (!fn.ok()) {
    // A node in no fabric (never added, or its fabric was deleted): its
    // agent is accepted and given an empty configuration (DesiredConfigFor),
    // so that it clears whatever its bridge still holds. It joins when a
    // fabric names it.
    *out.mutable_node() = UnassignedNodeView(node, *agent);
    return out;
  }
  if (moved) {
    // Borrowers of this node's VFs must learn the new address: a new
    // generation re-sends every node's configuration.
    for (const auto& [id, a] : attachments_) {
      if (a->committed && a->record.lender() == NodeName(node)) {
        BumpGeneration();
        break;
      }
    }
  }
  *out.mutable_node() = NodeView(*fn->first, fn->second);
  v1::WatchEvent e;
  e.set_type(v1::WatchEvent::MODIFIED);
  *e.mutable_node() = out.node();
  hub_.Publish(std::move(e));
  RefreshStates(fn->first->id(), fn->second);
  return out;
}

absl::StatusOr<v1::DesiredConfig> FabricManager::DesiredConfigFor(
    absl::string_view node) {
  absl::MutexLock l(&mu_);
  auto found = FindNode("node", node);
  if (!found.ok()) {
    if (UnassignedAgent(node) == nullptr) return found.status();
    // In no fabric: nothing is wanted of the bridge.
    v1::DesiredConfig empty;
    empty.set_node(NodeName(*ParseName("node", node, "nodes")));
    empty.set_generation(generation_);
    return empty;
  }
  const auto& fn = *found;
  v1::DesiredConfig out;
  out.set_node(NodeName(fn.first->state.topology().node(fn.second).name));
  out.set_fabric(FabricName(fn.first->id()));
  out.set_generation(generation_);
  *out.mutable_profile() =
      ProfileToProto(*fn.first->state.topology().node(fn.second).profile);
  *out.mutable_address_map() = MapView(*fn.first, fn.second);
  const core::NodeInfo& n = fn.first->state.topology().node(fn.second);
  out.set_export_base(n.export_base);
  out.set_export_size(n.export_size);
  out.set_window_base(n.window_base);
  out.set_mmio_base(n.mmio_base);
  out.set_mmio_size(n.mmio_size);
  *out.mutable_ports() = BridgeView(*fn.first, fn.second).ports();
  for (const auto& [id, a] : attachments_) {
    if (!a->committed || a->fabric != fn.first->id()) continue;
    const v1::Attachment& r = a->record;
    const bool lender = r.lender() == out.node();
    if (!lender && r.borrower() != out.node()) continue;
    v1::VfAssignment* va = out.add_vf_assignments();
    va->set_attachment(r.name());
    va->set_role(lender ? v1::VfAssignment::LENDER
                        : v1::VfAssignment::BORROWER);
    va->set_vf_address(r.vf_address());
    va->set_lender(r.lender());
    va->set_borrower(r.borrower());
    auto lit = agents_.find(absl::StripPrefix(r.lender(), "nodes/"));
    if (lit != agents_.end()) va->set_lender_agent(lit->second->control_address);
    va->set_vm(r.vm());
    va->set_interrupts(r.interrupts());
    *va->mutable_windows() = r.windows();
    auto vf = FindVf("vf", r.vf());
    if (vf.ok() && vf->function != nullptr) {
      va->set_vendor_id(vf->function->vendor_id());
      va->set_device_id(vf->function->device_id());
      *va->mutable_bar_sizes() = vf->function->bar_sizes();
    }
  }
  return out;
}

absl::StatusOr<FabricManager::VerifyTarget> FabricManager::PrepareVerify(
    absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(AllocationEntry * a, FindAllocation("name", name));
  VerifyTarget out;
  out.allocation = AllocationView(*a);
  if (out.allocation.state() != v1::Allocation::READY) {
    return absl::FailedPreconditionError(
        absl::StrCat("name: ", a->record.name(), " is ",
                     v1::Allocation::State_Name(out.allocation.state()),
                     ", not READY: ", out.allocation.state_reason()));
  }
  for (const auto& [node, field] :
       {std::pair<std::string, std::string*>{out.allocation.borrower(),
                                             &out.borrower_agent},
        {out.allocation.target(), &out.target_agent}}) {
    auto it = agents_.find(absl::StripPrefix(node, "nodes/"));
    if (it == agents_.end() || it->second->control_address.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("name: the agent of ", node,
                       " serves no data path (no control address registered)"));
    }
    *field = it->second->control_address;
  }
  return out;
}

absl::StatusOr<v1::ReportStatusResponse> FabricManager::ReportStatus(
    const v1::ReportStatusRequest& req) {
  if (req.has_inventory()) {
    RETURN_IF_ERROR(ValidateInventory(req.inventory(), "inventory"));
  }
  ASSIGN_OR_RETURN(const std::string node,
                   ParseName("node", req.node(), "nodes"));
  absl::MutexLock l(&mu_);
  auto found = FindNode("node", node);
  if (!found.ok() && !absl::IsNotFound(found.status())) return found.status();
  auto it = agents_.find(node);
  if (it == agents_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("node: ", node,
                     " has not registered with this manager; call "
                     "RegisterNode first"));
  }
  AgentEntry& a = *it->second;
  RETURN_IF_ERROR(CheckSession(node, a, req.session()));
  if (req.applied_generation() > generation_) {
    return absl::InvalidArgumentError(
        absl::StrCat("applied_generation: ", req.applied_generation(),
                     " is newer than the current generation ", generation_));
  }
  v1::ReportStatusResponse out;
  out.set_desired_generation(generation_);
  if (req.sequence() != 0) {
    // Overtaken by a newer report of this session: what it says is old.
    if (req.sequence() <= a.report_sequence) return out;
    a.report_sequence = req.sequence();
  }
  const bool was_ready = a.state == v1::Node::READY;
  a.last_heartbeat = clock_->Now();
  a.state = v1::Node::READY;
  bool errors_changed =
      a.errors.size() != static_cast<size_t>(req.errors_size());
  for (size_t i = 0; !errors_changed && i < a.errors.size(); ++i) {
    errors_changed = a.errors[i].SerializeAsString() !=
                     req.errors(static_cast<int>(i)).SerializeAsString();
  }
  a.errors.assign(req.errors().begin(), req.errors().end());
  a.repairs = req.repairs();
  a.recent_repairs.assign(req.recent_repairs().begin(),
                          req.recent_repairs().end());
  bool vf_changed = false;
  if (req.has_inventory()) {
    vf_changed = a.inventory.SerializeAsString() !=
                 req.inventory().SerializeAsString();
    a.inventory = req.inventory();
  }
  std::map<std::string, v1::VfHealthReport> health;
  for (const auto& h : req.vf_health()) health[h.vf_address()] = h;
  for (const auto& [addr, h] : health) {
    auto old = a.vf_health.find(addr);
    if (old == a.vf_health.end() || old->second.healthy() != h.healthy() ||
        old->second.reason() != h.reason()) {
      vf_changed = true;
    }
  }
  vf_changed |= health.size() != a.vf_health.size();
  a.vf_health = std::move(health);
  std::map<std::string, v1::ShadowStatus> shadows;
  for (const auto& sh : req.shadows()) shadows[sh.attachment()] = sh;
  for (const auto& [name, sh] : shadows) {
    auto old = a.shadows.find(name);
    if (old == a.shadows.end() || old->second.ready() != sh.ready() ||
        old->second.error() != sh.error()) {
      vf_changed = true;
    }
  }
  vf_changed |= shadows.size() != a.shadows.size();
  a.shadows = std::move(shadows);
  const bool moved = req.applied_generation() != a.applied_generation;
  a.applied_generation = req.applied_generation();
  // In no fabric (UnassignedNodeView): the agent's account of clearing its
  // bridge is kept for GetNode; no allocation depends on it.
  if (!found.ok()) return out;
  const auto& fn = *found;
  if (!was_ready || moved || errors_changed || vf_changed) {
    if (!was_ready || req.has_inventory()) {
      v1::WatchEvent e;
      e.set_type(v1::WatchEvent::MODIFIED);
      *e.mutable_node() = NodeView(*fn.first, fn.second);
      hub_.Publish(std::move(e));
    }
    RefreshStates(fn.first->id(), fn.second);
  }
  return out;
}

absl::Status FabricManager::CheckSession(absl::string_view node,
                                        const AgentEntry& a,
                                        int64_t session) const {
  if (session == 0 || session == a.session) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat(
      "session: ", session, " of node ", node,
      " was fenced by a newer registration (session ", a.session, " from ",
      a.control_address, "); another agent serves this node now"));
}

absl::Status FabricManager::ConfigStreamOpened(absl::string_view node,
                                               int64_t session) {
  ASSIGN_OR_RETURN(const std::string id, ParseName("node", node, "nodes"));
  absl::MutexLock l(&mu_);
  auto it = agents_.find(id);
  if (it == agents_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("node: ", id, " has not registered with this manager; "
                     "call RegisterNode first"));
  }
  RETURN_IF_ERROR(CheckSession(id, *it->second, session));
  // A stream without a session (a reader such as a test harness, not the
  // agent) proves nothing about the agent's transport.
  if (session != 0) ++it->second->open_streams;
  return absl::OkStatus();
}

void FabricManager::ConfigStreamClosed(absl::string_view node,
                                       int64_t session) {
  auto id = ParseName("node", node, "nodes");
  if (!id.ok()) return;
  absl::MutexLock l(&mu_);
  auto it = agents_.find(*id);
  if (it == agents_.end() || session == 0 || session != it->second->session) {
    return;  // a reader's, or a fenced session's stream: it never counted
  }
  AgentEntry& a = *it->second;
  if (a.open_streams > 0 && --a.open_streams == 0) {
    // The session's transport is gone: the agent died or reconnects (and
    // then registers again, giving its address anew). Its address is not
    // kept for a session that may never answer again.
    a.control_address.clear();
  }
}

// --- Background work
// ---------------------------------------------------------------

void FabricManager::Sweep() {
  std::vector<std::string> expired;
  std::vector<RequestSlot> old_requests;
  {
    absl::MutexLock l(&mu_);
    const absl::Time now = clock_->Now();
    for (auto& [id, a] : allocations_) {
      if (a->committed && !a->releasing && a->record.has_expire_time() &&
          FromProtoTime(a->record.expire_time()) <= now) {
        expired.push_back(id);
      }
    }
    const absl::Duration grace =
        std::max(options_.heartbeat_timeout, options_.stream_grace);
    std::vector<std::string> silent_unassigned;
    for (auto& [node, agent] : agents_) {
      const absl::Duration allowed =
          agent->open_streams > 0 ? grace : options_.heartbeat_timeout;
      if (agent->state == v1::Node::READY &&
          agent->last_heartbeat + allowed < now) {
        agent->state = v1::Node::NOT_READY;
        auto fn = FindNode("node", node);
        if (!fn.ok()) {
          // In no fabric and silent: nothing to remember it for.
          silent_unassigned.push_back(node);
          continue;
        }
        v1::WatchEvent e;
        e.set_type(v1::WatchEvent::MODIFIED);
        *e.mutable_node() = NodeView(*fn->first, fn->second);
        hub_.Publish(std::move(e));
        RefreshStates(fn->first->id(), fn->second);
      }
    }
    for (const std::string& node : silent_unassigned) agents_.erase(node);
    // Past retention or over max_request_ids (left over when new ids
    // could not forget them, e.g. after a failed write).
    old_requests = TakeRequestsToForget(now, kForgetPerSweep);
  }
  for (const std::string& id : expired) {
    v1::DeleteAllocationRequest req;
    req.set_name(AllocationName(id));
    // Failures (store down, released meanwhile) are retried next sweep.
    (void)AwaitResult<v1::Allocation>([&](Done<v1::Allocation> done) {
      ReleaseAllocationAsync("ExpireAllocation", req.name(), "", req, done);
    });
  }
  if (!old_requests.empty()) {
    store::WriteBatch batch;
    for (const RequestSlot& r : old_requests) {
      batch.Delete(kTableRequests, r.id);
    }
    const bool deleted = store_->Apply(batch).ok();
    absl::MutexLock l(&mu_);
    if (deleted) {
      ForgetRequests(old_requests);
    } else {
      // Still remembered in the store, so in memory too; the next sweep
      // (or the next new id) tries again.
      RestoreRequests(std::move(old_requests));
    }
  }
}

std::vector<FabricManager::RequestSlot> FabricManager::TakeRequestsToForget(
    absl::Time now, size_t limit) {
  std::vector<RequestSlot> taken;
  std::vector<RequestSlot> in_flight;  // skipped, put back in place
  const size_t cap = static_cast<size_t>(options_.max_request_ids);
  // Ids that count: remembered and not already being forgotten.
  size_t live = requests_.size() - forgetting_requests_;
  while (!request_order_.empty() && taken.size() < limit) {
    RequestSlot& slot = request_order_.front();
    auto it = requests_.find(slot.id);
    if (it == requests_.end() || it->second->seq != slot.seq) {
      request_order_.pop_front();  // an abandoned id's record
      continue;
    }
    const PendingRequest& p = *it->second;
    // Every live id after this slot is newer: live minus the slot itself
    // and the in-flight ones skipped before it.
    const size_t newer =
        live > in_flight.size() + 1 ? live - in_flight.size() - 1 : 0;
    if (newer < cap && p.time + options_.request_retention >= now) break;
    if (!p.done) {
      in_flight.push_back(std::move(slot));
    } else {
      taken.push_back(std::move(slot));
      --live;
    }
    request_order_.pop_front();
  }
  for (auto it = in_flight.rbegin(); it != in_flight.rend(); ++it) {
    request_order_.push_front(std::move(*it));
  }
  forgetting_requests_ += taken.size();
  return taken;
}

void FabricManager::ForgetRequests(const std::vector<RequestSlot>& slots) {
  for (const RequestSlot& slot : slots) {
    auto it = requests_.find(slot.id);
    if (it != requests_.end() && it->second->seq == slot.seq) {
      requests_.erase(it);
    }
  }
  forgetting_requests_ -= slots.size();
}

void FabricManager::RestoreRequests(std::vector<RequestSlot> slots) {
  if (slots.empty()) return;
  forgetting_requests_ -= slots.size();
  // Back in seq order: usually all older than what is left.
  const auto by_seq = [](const RequestSlot& a, const RequestSlot& b) {
    return a.seq < b.seq;
  };
  if (request_order_.empty() ||
      slots.back().seq < request_order_.front().seq) {
    request_order_.insert(request_order_.begin(),
                          std::make_move_iterator(slots.begin()),
                          std::make_move_iterator(slots.end()));
    return;
  }
  std::deque<RequestSlot> merged;
  std::merge(std::make_move_iterator(request_order_.begin()),
             std::make_move_iterator(request_order_.end()),
             std::make_move_iterator(slots.begin()),
             std::make_move_iterator(slots.end()), std::back_inserter(merged),
             by_seq);
  request_order_.swap(merged);
}

size_t FabricManager::RememberedRequestIds() const {
  absl::MutexLock l(&mu_);
  return requests_.size();
}

absl::Status FabricManager::CheckInvariants() {
  absl::MutexLock l(&mu_);
  std::vector<std::string> problems;
  for (const auto& [id, f] : fabrics_) {
    absl::Status s = core::CheckInvariants(f->state);
    if (!s.ok()) problems.push_back(absl::StrCat(id, ": ", s.message()));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InternalError(absl::StrJoin(problems, "; "));
}


// --- Virtual functions and attachments -----------------------------------

namespace {

constexpr uint64_t kDefaultDmaSize = 1ull << 20;
constexpr uint64_t kMaxDmaSize = 1ull << 30;
constexpr uint64_t kDoorbellSize = 4096;
constexpr size_t kMaxVmNameLength = 63;

std::string AttachmentName(absl::string_view id) {
  return absl::StrCat("attachments/", id);
}

// nodes/{node}/vfs/{0000-3b-00.4}
std::string VfName(absl::string_view node, absl::string_view address) {
  return absl::StrCat("nodes/", node, "/vfs/",
                      absl::StrReplaceAll(address, {{":", "-"}}));
}

}  // namespace

absl::StatusOr<FabricManager::AttachmentEntry*> FabricManager::FindAttachment(
    absl::string_view field, absl::string_view name) {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "attachments"));
  auto it = attachments_.find(id);
  if (it == attachments_.end() || !it->second->committed) {
    return absl::NotFoundError(
        absl::StrCat(field, ": attachment \"", id, "\" not found"));
  }
  return it->second.get();
}

absl::StatusOr<FabricManager::VfRef> FabricManager::FindVf(
    absl::string_view field, absl::string_view name) {
  absl::string_view rest = absl::StripPrefix(name, "nodes/");
  std::string node, address;
  const size_t vfs = rest.find("/vfs/");
  if (vfs != absl::string_view::npos) {
    node = std::string(rest.substr(0, vfs));
    address = absl::StrReplaceAll(rest.substr(vfs + 5), {{"-", ":"}});
  } else {
    const size_t slash = rest.find('/');
    if (slash == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": \"", name,
          "\" is not a VF name; use nodes/{node}/vfs/{0000-3b-00.4} or "
          "{node}/{0000:3b:00.4}"));
    }
    node = std::string(rest.substr(0, slash));
    address = std::string(rest.substr(slash + 1));
  }
  if (address.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", name, "\" names no function address"));
  }
  ASSIGN_OR_RETURN(auto fn, FindNode(field, node));
  VfRef ref;
  ref.fabric = fn.first;
  ref.node = fn.second;
  ref.node_name = node;
  ref.address = address;
  auto it = agents_.find(node);
  if (it != agents_.end()) {
    for (const v1::PciFunction& f : it->second->inventory.functions()) {
      if (f.address() == address) {
        ref.function = &f;
        break;
      }
    }
  }
  return ref;
}

std::vector<v1::VirtualFunction> FabricManager::VfViews(const FabricEntry& f,
                                                        int node) const {
  const std::string& name = f.state.topology().node(node).name;
  std::map<std::string, v1::VirtualFunction> out;
  const AgentEntry* agent = nullptr;
  if (auto it = agents_.find(name); it != agents_.end()) {
    agent = it->second.get();
  }
  if (agent != nullptr) {
    for (const v1::PciFunction& fn : agent->inventory.functions()) {
      if (fn.kind() != v1::PciFunction::SRIOV_VF) continue;
      v1::VirtualFunction& v = out[fn.address()];
      v.set_name(VfName(name, fn.address()));
      v.set_node(NodeName(name));
      v.set_address(fn.address());
      v.set_pf_address(fn.pf_address());
      v.set_vendor_id(fn.vendor_id());
      v.set_device_id(fn.device_id());
      *v.mutable_bar_sizes() = fn.bar_sizes();
      v.set_state(v1::VirtualFunction::FREE);
      v.set_health(v1::VirtualFunction::UNKNOWN);
      if (auto h = agent->vf_health.find(fn.address());
          h != agent->vf_health.end()) {
        v.set_health(h->second.healthy() ? v1::VirtualFunction::HEALTHY
                                         : v1::VirtualFunction::UNHEALTHY);
        v.set_health_reason(h->second.reason());
      }
    }
  }
  for (const auto& [id, a] : attachments_) {
    if (!a->committed || a->record.lender() != NodeName(name)) continue;
    auto [it, added] = out.try_emplace(a->record.vf_address());
    v1::VirtualFunction& v = it->second;
    if (added) {
      // Lent, but the lender no longer reports it.
      v.set_name(VfName(name, a->record.vf_address()));
      v.set_node(NodeName(name));
      v.set_address(a->record.vf_address());
      v.set_health(v1::VirtualFunction::UNHEALTHY);
      v.set_health_reason(
          agent == nullptr
              ? "the lender's agent has not registered"
              : "the VF disappeared from the lender's inventory");
    }
    v.set_state(v1::VirtualFunction::LENT);
    v.set_attachment(a->record.name());
    v.set_borrower(a->record.borrower());
  }
  std::vector<v1::VirtualFunction> views;
  for (auto& [addr, v] : out) views.push_back(std::move(v));
  return views;
}

absl::StatusOr<v1::ListVirtualFunctionsResponse>
FabricManager::ListVirtualFunctions(const v1::ListVirtualFunctionsRequest& req) {
  absl::MutexLock l(&mu_);
  std::string only_fabric;
  if (!req.fabric().empty()) {
    ASSIGN_OR_RETURN(FabricEntry * f, FindFabric("fabric", req.fabric()));
    only_fabric = f->id();
  }
  std::string only_node;
  if (!req.node().empty()) {
    ASSIGN_OR_RETURN(auto fn, FindNode("node", req.node()));
    only_node = fn.first->state.topology().node(fn.second).name;
  }
  std::vector<std::string> keys;
  std::map<std::string, v1::VirtualFunction> all;
  for (const auto& [fid, f] : fabrics_) {
    if (!only_fabric.empty() && fid != only_fabric) continue;
    const core::Topology& topo = f->state.topology();
    for (int n = 0; n < topo.node_count(); ++n) {
      if (!only_node.empty() && topo.node(n).name != only_node) continue;
      for (v1::VirtualFunction& v : VfViews(*f, n)) {
        std::string key = v.name();
        all.emplace(std::move(key), std::move(v));
      }
    }
  }
  for (const auto& [k, v] : all) keys.push_back(k);
  ASSIGN_OR_RETURN(Page p, Paginate(keys, req.page_size(), req.page_token()));
  v1::ListVirtualFunctionsResponse out;
  for (size_t i = p.begin; i < p.end; ++i) {
    *out.add_virtual_functions() = std::move(all[keys[i]]);
  }
  out.set_next_page_token(p.next_token);
  return out;
}

absl::StatusOr<v1::VirtualFunction> FabricManager::GetVirtualFunction(
    absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(VfRef ref, FindVf("name", name));
  for (v1::VirtualFunction& v : VfViews(*ref.fabric, ref.node)) {
    if (v.address() == ref.address) return std::move(v);
  }
  return absl::NotFoundError(absl::StrCat("name: node ", ref.node_name,
                                          " reports no VF ", ref.address));
}

v1::Attachment::State FabricManager::DeriveAttachmentState(
    const AttachmentEntry& a, std::string* reason) const {
  const FabricEntry& f = *fabrics_.at(a.fabric);
  const v1::Attachment& r = a.record;
  std::string pending;
  for (const v1::AttachmentWindow& w : r.windows()) {
    const core::Grant* g =
        f.state.FindGrant(absl::StrCat(a.id(), ".", w.role()));
    if (g == nullptr) continue;
    std::string why;
    v1::Allocation::State s =
        GrantState(f, *g, r.name(), a.required_generation, &why);
    if (s == v1::Allocation::DEGRADED) {
      *reason = absl::StrCat(w.role(), " window: ", why);
      return v1::Attachment::DEGRADED;
    }
    if (s == v1::Allocation::PENDING && pending.empty()) {
      pending = absl::StrCat(w.role(), " window: ", why);
    }
  }
  const std::string lender(absl::StripPrefix(r.lender(), "nodes/"));
  const std::string borrower(absl::StripPrefix(r.borrower(), "nodes/"));
  if (auto it = agents_.find(lender); it != agents_.end()) {
    bool present = false;
    for (const v1::PciFunction& fn : it->second->inventory.functions()) {
      present |= fn.address() == r.vf_address();
    }
    if (!present) {
      *reason = absl::StrCat("VF ", r.vf_address(),
                             " disappeared from the inventory of ", lender);
      return v1::Attachment::DEGRADED;
    }
    auto h = it->second->vf_health.find(r.vf_address());
    if (h != it->second->vf_health.end() && !h->second.healthy()) {
      *reason = absl::StrCat("VF ", r.vf_address(), " on ", lender,
                             " is unhealthy: ", h->second.reason());
      return v1::Attachment::DEGRADED;
    }
  }
  if (!pending.empty()) {
    *reason = pending;
    return v1::Attachment::PENDING;
  }
  auto b = agents_.find(borrower);
  const v1::ShadowStatus* shadow = nullptr;
  if (b != agents_.end()) {
    auto sh = b->second->shadows.find(r.name());
    if (sh != b->second->shadows.end()) shadow = &sh->second;
  }
  if (shadow == nullptr || !shadow->ready()) {
    *reason = absl::StrCat("waiting for the shadow device on ", borrower,
                           shadow != nullptr && !shadow->error().empty()
                               ? absl::StrCat(": ", shadow->error())
                               : "");
    return v1::Attachment::PENDING;
  }
  reason->clear();
  return v1::Attachment::READY;
}

v1::Attachment FabricManager::AttachmentView(const AttachmentEntry& a) const {
  v1::Attachment out = a.record;
  std::string reason;
  out.set_state(DeriveAttachmentState(a, &reason));
  out.set_state_reason(reason);
  out.set_required_generation(a.required_generation);
  out.set_vf_health(v1::VirtualFunction::UNKNOWN);
  auto l = agents_.find(absl::StripPrefix(a.record.lender(), "nodes/"));
  if (l != agents_.end()) {
    auto h = l->second->vf_health.find(a.record.vf_address());
    if (h != l->second->vf_health.end()) {
      out.set_vf_health(h->second.healthy() ? v1::VirtualFunction::HEALTHY
                                            : v1::VirtualFunction::UNHEALTHY);
      out.set_vf_health_reason(h->second.reason());
    }
  }
  auto b = agents_.find(absl::StripPrefix(a.record.borrower(), "nodes/"));
  if (b != agents_.end()) {
    auto sh = b->second->shadows.find(a.record.name());
    if (sh != b->second->shadows.end()) {
      *out.mutable_counters() = sh->second.counters();
    }
  }
  return out;
}

void FabricManager::PublishAttachment(v1::WatchEvent::Type type,
                                      const v1::Attachment& a) {
  v1::WatchEvent e;
  e.set_type(type);
  *e.mutable_attachment() = a;
  hub_.Publish(std::move(e));
}

void FabricManager::RefreshAttachments(const std::string& fabric) {
  for (auto& [id, a] : attachments_) {
    if (!a->committed || a->fabric != fabric) continue;
    std::string reason;
    v1::Attachment::State s = DeriveAttachmentState(*a, &reason);
    if (s != a->last_state) {
      a->last_state = s;
      if (hub_.has_watchers())
        PublishAttachment(v1::WatchEvent::MODIFIED, AttachmentView(*a));
    }
  }
}

absl::StatusOr<v1::Attachment> FabricManager::CreateAttachment(
    const v1::CreateAttachmentRequest& req) {
  const v1::Attachment& in = req.attachment();
  if (in.vf().empty()) {
    return absl::InvalidArgumentError(
        "attachment.vf: required (nodes/{node}/vfs/{vf} or {node}/{address})");
  }
  if (in.borrower().empty()) {
    return absl::InvalidArgumentError("attachment.borrower: required");
  }
  if (!v1::Attachment::InterruptPolicy_IsValid(in.interrupts())) {
    return absl::InvalidArgumentError(
        absl::StrCat("attachment.interrupts: unknown policy ", in.interrupts(),
                     "; use AUTO, DIRECT or HYPERVISOR"));
  }
  if (in.interrupts() == v1::Attachment::HYPERVISOR && in.vm().empty()) {
    return absl::InvalidArgumentError(
        "attachment.interrupts: HYPERVISOR delivery needs a VM "
        "(attachment.vm); a host-owned device has no guest to inject into");
  }
  if (in.vm().size() > kMaxVmNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("attachment.vm: ", in.vm().size(),
                     " characters is over the limit of ", kMaxVmNameLength));
  }
  if (in.owner().size() > kMaxOwnerLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("attachment.owner: ", in.owner().size(),
                     " characters is over the limit of ", kMaxOwnerLength));
  }
  const uint64_t dma_size = in.dma_size() == 0 ? kDefaultDmaSize : in.dma_size();
  if (dma_size % 4096 != 0 || dma_size > kMaxDmaSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attachment.dma_size: ", dma_size,
        " bytes must be a multiple of 4 KiB and at most ",
        FormatSize(kMaxDmaSize)));
  }
  auto plan_fn =
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<Plan> {
    ASSIGN_OR_RETURN(VfRef vf, FindVf("attachment.vf", in.vf()));
    FabricEntry* f = vf.fabric;
    if (f->deleting) {
      return absl::FailedPreconditionError(
          absl::StrCat("attachment: fabric ", f->id(), " is being deleted"));
    }
    auto ready = [&](absl::string_view field,
                     const std::string& node) -> absl::Status {
      auto it = agents_.find(node);
      if (it == agents_.end() || it->second->state != v1::Node::READY) {
        return absl::UnavailableError(absl::StrCat(
            field, ": the agent of node ", node, " is ",
            it == agents_.end()
                ? "not registered"
                : v1::Node::AgentState_Name(it->second->state),
            "; VF lending needs both agents READY"));
      }
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(ready("attachment.vf", vf.node_name));
    if (vf.function == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "attachment.vf: node ", vf.node_name, " reports no function ",
          vf.address, " (see fabricctl get vfs)"));
    }
    if (vf.function->kind() != v1::PciFunction::SRIOV_VF) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attachment.vf: ", vf.address, " on ", vf.node_name, " is ",
          vf.function->kind() == v1::PciFunction::SRIOV_PF
              ? "an SR-IOV physical function"
              : "not a virtual function",
          "; only VFs can be lent"));
    }
    ASSIGN_OR_RETURN(auto to, FindNode("attachment.borrower", in.borrower()));
    if (to.first != f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attachment.borrower: node ", in.borrower(), " is in fabric ",
          to.first->id(), ", but the VF is in fabric ", f->id()));
    }
    const core::Topology& topo = f->state.topology();
    const std::string borrower = topo.node(to.second).name;
    if (to.second == vf.node) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attachment.borrower: node ", borrower,
          " is the VF's lender; a host cannot borrow its own VF"));
    }
    for (const auto& [id, a] : attachments_) {
      if (a->record.lender() == NodeName(vf.node_name) &&
          a->record.vf_address() == vf.address) {
        if (a->releasing || !a->committed) {
          return absl::UnavailableError(absl::StrCat(
              "attachment.vf: ", vf.address, " on ", vf.node_name,
              " is being attached or detached (", id, "); retry"));
        }
        return absl::FailedPreconditionError(absl::StrCat(
            "attachment.vf: ", vf.address, " on ", vf.node_name,
            " is already lent to ", a->record.borrower(), " (",
            a->record.name(), ")"));
      }
    }
    const AgentEntry& lender_agent = *agents_.at(vf.node_name);
    if (auto h = lender_agent.vf_health.find(vf.address);
        h != lender_agent.vf_health.end() && !h->second.healthy()) {
      return absl::FailedPreconditionError(
          absl::StrCat("attachment.vf: ", vf.address, " on ", vf.node_name,
                       " is unhealthy: ", h->second.reason()));
    }
    RETURN_IF_ERROR(ready("attachment.borrower", borrower));

    // Plan every window; nothing stays if one fails.
    std::string id;
    do {
      id = absl::StrCat("att-", absl::Hex(absl::Uniform<uint64_t>(bitgen_) &
                                              0xffffffffffffull,
                                          absl::kZeroPad12));
    } while (attachments_.count(id) != 0);
    std::vector<std::string> added;
    auto undo = [&]() {
      for (const auto& g : added) (void)f->state.RemoveGrant(g);
    };
    v1::Attachment r;
    auto add = [&](absl::string_view role, absl::string_view field,
                   absl::StatusOr<core::Grant> grant) -> absl::Status {
      if (!grant.ok()) {
        undo();
        return absl::Status(grant.status().code(),
                            absl::StrCat(field, " (", role, " window): ",
                                         grant.status().message()));
      }
      grant->id = absl::StrCat(id, ".", role);
      absl::Status st = f->state.AddGrant(*grant);
      if (!st.ok()) {
        undo();
        return absl::InternalError(absl::StrCat(
            "planned grant was refused (a bug): ", st.message()));
      }
      added.push_back(grant->id);
      v1::AttachmentWindow* w = r.add_windows();
      w->set_role(std::string(role));
      w->set_from_node(topo.node(grant->borrower).name);
      w->set_to_node(topo.node(grant->target).name);
      w->set_local_addr(grant->borrower_addr);
      w->set_target_addr(grant->target_addr);
      w->set_fabric_addr(grant->fabric_addr);
      w->set_size(grant->size);
      w->set_slot_kind(SlotKindToProto(grant->slot_kind));
      w->set_slot(grant->slot_index);
      w->set_slot_count(grant->slot_count);
      return absl::OkStatus();
    };
    const v1::PciFunction& fn = *vf.function;
    for (int bar = 0; bar < fn.bar_sizes_size(); ++bar) {
      const uint64_t size = fn.bar_sizes(bar);
      if (size == 0) continue;
      const uint64_t addr =
          bar < fn.bar_addresses_size() ? fn.bar_addresses(bar) : 0;
      if (addr == 0) {
        undo();
        return absl::FailedPreconditionError(absl::StrCat(
            "attachment.vf: the lender reports no address for BAR ", bar,
            " of ", vf.address, "; it cannot be mapped"));
      }
      RETURN_IF_ERROR(add(absl::StrCat("mmio-bar", bar), "attachment.vf",
                          f->state.PlanDeviceGrant(to.second, vf.node, addr,
                                                   size)));
    }
    RETURN_IF_ERROR(add("dma", "attachment.dma_size",
                        f->state.PlanGrant(vf.node, to.second, dma_size)));
    const uint64_t doorbell = std::max<uint64_t>(
        kDoorbellSize, topo.node(vf.node).profile->min_window_size);
    RETURN_IF_ERROR(add("msix", "attachment.borrower",
                        f->state.PlanGrant(vf.node, to.second, doorbell)));

    auto entry = std::make_unique<AttachmentEntry>();
    AttachmentEntry* a = entry.get();
    a->fabric = f->id();
    r.set_name(AttachmentName(id));
    r.set_fabric(FabricName(f->id()));
    r.set_vf(VfName(vf.node_name, vf.address));
    r.set_lender(NodeName(vf.node_name));
    r.set_vf_address(vf.address);
    r.set_borrower(NodeName(borrower));
    r.set_vm(in.vm());
    r.set_interrupts(in.interrupts() == v1::Attachment::INTERRUPT_POLICY_UNSPECIFIED
                         ? v1::Attachment::AUTO
                         : in.interrupts());
    r.set_dma_size(dma_size);
    r.set_shadow_device(absl::StrCat("shadow-", id));
    r.set_owner(in.owner());
    *r.mutable_create_time() = ToProtoTime(clock_->Now());
    a->record = r;
    attachments_[id] = std::move(entry);
    Plan plan;
    plan.batch.Put(kTableAttachments, id, r.SerializeAsString());
    v1::Attachment response = r;
    response.set_state(v1::Attachment::PENDING);
    response.set_state_reason(
        "recorded; waiting for both agents and the shadow device");
    plan.response = response.SerializeAsString();
    plan.commit = [this, a]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      a->committed = true;
      a->required_generation = BumpGeneration();
      std::string reason;
      a->last_state = DeriveAttachmentState(*a, &reason);
      if (hub_.has_watchers())
        PublishAttachment(v1::WatchEvent::ADDED, AttachmentView(*a));
    };
    std::string fid = f->id();
    plan.rollback = [this, fid, id, added]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& g : added) (void)fabrics_.at(fid)->state.RemoveGrant(g);
      attachments_.erase(id);
    };
    return plan;
  };
  ASSIGN_OR_RETURN(std::string bytes, Mutate("CreateAttachment",
                                             req.request_id(), req, plan_fn));
  v1::Attachment out;
  out.ParseFromString(bytes);
  return out;
}

absl::StatusOr<v1::Attachment> FabricManager::GetAttachment(
    absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(AttachmentEntry * a, FindAttachment("name", name));
  return AttachmentView(*a);
}

absl::StatusOr<v1::ListAttachmentsResponse> FabricManager::ListAttachments(
    const v1::ListAttachmentsRequest& req) {
  absl::MutexLock l(&mu_);
  std::string only_fabric, only_node;
  if (!req.fabric().empty()) {
    ASSIGN_OR_RETURN(FabricEntry * f, FindFabric("fabric", req.fabric()));
    only_fabric = f->id();
  }
  if (!req.node().empty()) {
    ASSIGN_OR_RETURN(auto fn, FindNode("node", req.node()));
    only_node = NodeName(fn.first->state.topology().node(fn.second).name);
  }
  std::vector<std::string> keys;
  for (const auto& [id, a] : attachments_) {
    if (!a->committed) continue;
    if (!only_fabric.empty() && a->fabric != only_fabric) continue;
    if (!only_node.empty() && a->record.lender() != only_node &&
        a->record.borrower() != only_node)
      continue;
    keys.push_back(id);
  }
  ASSIGN_OR_RETURN(Page p, Paginate(keys, req.page_size(), req.page_token()));
  v1::ListAttachmentsResponse out;
  for (size_t i = p.begin; i < p.end; ++i)
    *out.add_attachments() = AttachmentView(*attachments_.at(keys[i]));
  out.set_next_page_token(p.next_token);
  return out;
}

absl::StatusOr<v1::Attachment> FabricManager::DeleteAttachment(
    const v1::DeleteAttachmentRequest& req) {
  return AwaitResult<v1::Attachment>([&](Done<v1::Attachment> done) {
    DetachAsync(req.name(), req.request_id(), req, std::move(done));
  });
}

void FabricManager::DetachAsync(absl::string_view name,
                                absl::string_view request_id,
                                const google::protobuf::Message& request,
                                Done<v1::Attachment> done) {
  auto plan_fn =
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<Plan> {
    ASSIGN_OR_RETURN(AttachmentEntry * a, FindAttachment("name", name));
    if (a->releasing) {
      return absl::AbortedError(absl::StrCat("name: ", a->record.name(),
                                             " is already being detached"));
    }
    a->releasing = true;
    Plan plan;
    const std::string id = a->id();
    plan.batch.Delete(kTableAttachments, id);
    v1::Attachment view = AttachmentView(*a);
    view.set_state(v1::Attachment::DETACHED);
    view.set_state_reason("detached");
    plan.response = view.SerializeAsString();
    plan.rollback = [a]() { a->releasing = false; };
    plan.commit = [this, id, view]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      auto it = attachments_.find(id);
      FabricEntry& f = *fabrics_.at(it->second->fabric);
      for (const v1::AttachmentWindow& w : it->second->record.windows()) {
        (void)f.state.RemoveGrant(absl::StrCat(id, ".", w.role()));
      }
      attachments_.erase(it);
      BumpGeneration();
      PublishAttachment(v1::WatchEvent::DELETED, view);
    };
    return plan;
  };
  MutateAsync("DeleteAttachment", request_id, request, plan_fn,
              ParseInto<v1::Attachment>(std::move(done)));
}

absl::StatusOr<FabricManager::AttachmentTarget>
FabricManager::PrepareAttachmentOp(absl::string_view name, bool need_ready) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(AttachmentEntry * a, FindAttachment("name", name));
  AttachmentTarget out;
  out.attachment = AttachmentView(*a);
  if (need_ready && out.attachment.state() != v1::Attachment::READY) {
    return absl::FailedPreconditionError(
        absl::StrCat("name: ", a->record.name(), " is ",
                     v1::Attachment::State_Name(out.attachment.state()),
                     ", not READY: ", out.attachment.state_reason()));
  }
  ASSIGN_OR_RETURN(out.lender_agent,
                   ControlAddress("name", a->record.lender()));
  ASSIGN_OR_RETURN(out.borrower_agent,
                   ControlAddress("name", a->record.borrower()));
  return out;
}

absl::StatusOr<std::string> FabricManager::ControlAddress(
    absl::string_view field, absl::string_view node) const {
  auto it = agents_.find(absl::StripPrefix(node, "nodes/"));
  if (it == agents_.end() || it->second->control_address.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": the agent of ", node,
                     " serves no control address (not registered, or its "
                     "connection to the manager ended)"));
  }
  return it->second->control_address;
}

absl::StatusOr<std::string> FabricManager::AgentAddress(
    absl::string_view node) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(auto fn, FindNode("node", node));
  return ControlAddress("node",
                        fn.first->state.topology().node(fn.second).name);
}

}  // namespace fabric::service
