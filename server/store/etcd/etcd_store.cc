#include "server/store/etcd/etcd_store.h"

#include <algorithm>
#include <atomic>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/store/etcd/etcd_keys.h"
#include "server/store/group_committer.h"

namespace fabric::store {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

// Room in each request for what is not a mutation: the raft request's
// header, the Txn's fence compare and its failure branch (a Range on the
// fence key). Covers a fence key of up to 1 KiB.
constexpr size_t kTxnMarginBytes = 4096;
// etcd 3.4 (api/v3rpc/key.go checkTxnRequest) counts
// max(len(compare), len(success), len(failure)) against --max-txn-ops, not
// their sum: the fence's one compare and one failure Range take no room
// from the mutations, so max_ops is max_txn_ops itself (the tests commit
// a fenced batch of exactly 128 mutations). Its byte limit applies to the
// whole raft request, hence kTxnMarginBytes.
//
// Protobuf framing of one Put in a Txn (TxnRequest.success entry, RequestOp,
// PutRequest.key, PutRequest.value: a tag and a length of up to 3 bytes
// each), the table length's decimal digits (up to 20), with slack.
constexpr size_t kOpFramingBytes = 16 + 20 + 12;

// etcd's error (`status`, from `what`) as a canonical absl::Status.
absl::Status FromGrpc(const grpc::Status& status, absl::string_view endpoints,
                      absl::string_view what) {
  const std::string message =
      absl::StrCat("etcd at ", endpoints, ": ", what, ": ",
                   status.error_message(), " (gRPC code ",
                   static_cast<int>(status.error_code()), ")");
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:        // no leader, timed out, down
    case grpc::StatusCode::DEADLINE_EXCEEDED:  // no answer in rpc_timeout
    case grpc::StatusCode::CANCELLED:
      return absl::UnavailableError(message);
    case grpc::StatusCode::INVALID_ARGUMENT:    // too many ops, too large
    case grpc::StatusCode::RESOURCE_EXHAUSTED:  // over gRPC's receive limit
      return absl::InvalidArgumentError(absl::StrCat(
          message, "; the store's limits() (from EtcdStoreOptions "
                   "max_txn_ops and max_request_bytes) should have prevented "
                   "this: is the cluster's --max-txn-ops or "
                   "--max-request-bytes lower?"));
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(message);
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::UnauthenticatedError(message);
    default:
      return absl::InternalError(message);
  }
}

bool IsShared(const absl::Status& status) {
  // A property of the cluster or of the fence, not of one batch: every
  // batch of a group gets it.
  return absl::IsUnavailable(status) || absl::IsFailedPrecondition(status) ||
         absl::IsPermissionDenied(status) || absl::IsUnauthenticated(status);
}

class EtcdStoreImpl final : public EtcdStore {
 public:
  EtcdStoreImpl(const EtcdStoreOptions& options,
                std::shared_ptr<grpc::Channel> channel)
      : options_(options),
        endpoints_(absl::StrJoin(options.client.endpoints, ",")),
        keys_(options.prefix),
        limits_{.max_ops = options.max_txn_ops,
                .max_bytes = options.max_request_bytes - kTxnMarginBytes,
                .per_op_overhead_bytes =
                    keys_.KeyOverhead() + kOpFramingBytes},
        channel_(std::move(channel)),
        kv_(etcdserverpb::KV::NewStub(channel_)),
        committer_(
            /*max_batches=*/0, limits_,
            [this](const std::vector<const WriteBatch*>& batches) {
              return Write(batches);
            },
            IsShared) {}

  absl::Status CheckSchema() {
    // Written when absent; the compare makes two racing openers safe.
    const std::string schema_key = keys_.SchemaKey();
    TxnRequest txn;
    Compare* absent = txn.add_compare();
    absent->set_key(schema_key);
    absent->set_target(Compare::VERSION);
    absent->set_result(Compare::EQUAL);
    absent->set_version(0);
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(schema_key);
    put->set_value(absl::StrCat(kEtcdSchemaVersion));
    txn.add_failure()->mutable_request_range()->set_key(schema_key);
    ASSIGN_OR_RETURN(TxnResponse response, Txn(txn, "writing the schema"));
    if (response.succeeded()) return absl::OkStatus();
    const auto& kvs = response.responses(0).response_range().kvs();
    int version = 0;
    if (kvs.empty() || !absl::SimpleAtoi(kvs[0].value(), &version)) {
      return absl::DataLossError(absl::StrCat(
          "etcd at ", endpoints_, ": schema key ", schema_key, " holds \"",
          kvs.empty() ? "" : absl::CHexEscape(kvs[0].value()),
          "\", not a schema version"));
    }
    if (version > kEtcdSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "etcd at ", endpoints_, " prefix \"", keys_.prefix(),
          "\": the store's schema version is ", version,
          ", newer than this binary's ", kEtcdSchemaVersion));
    }
    return absl::OkStatus();
  }

  absl::Status Apply(const WriteBatch& batch) override {
    if (batch.empty()) return absl::OkStatus();
    RETURN_IF_ERROR(CheckFits(batch));
    return committer_.Commit(batch);
  }

  absl::StatusOr<std::string> Get(absl::string_view table,
                                  absl::string_view key) override {
    RangeRequest request;
    request.set_key(keys_.Key(table, key));
    ASSIGN_OR_RETURN(RangeResponse response, Range(request, "Get"));
    if (response.kvs().empty()) {
      return absl::NotFoundError(absl::StrCat("no key \"",
                                              absl::CHexEscape(key),
                                              "\" in table \"",
                                              absl::CHexEscape(table), "\""));
    }
    return std::move(*response.mutable_kvs(0)->mutable_value());
  }

  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      absl::string_view table) override {
    std::vector<std::pair<std::string, std::string>> out;
    RETURN_IF_ERROR(
        ScanEach(table, [&](absl::string_view key, absl::string_view value) {
          out.emplace_back(key, value);
          return absl::OkStatus();
        }));
    return out;
  }

  // A page (kScanPageSize keys) in memory at a time.
  absl::Status ScanEach(absl::string_view table,
                        const ScanVisitor& visit) override {
    const EtcdKeyRange range = keys_.Table(table);
    RangeRequest request;
    request.set_key(range.begin);
    request.set_range_end(range.end);
    request.set_limit(kScanPageSize);
    while (true) {
      ASSIGN_OR_RETURN(RangeResponse page, Range(request, "Scan"));
      // Every later page at the first page's revision: one snapshot.
      if (request.revision() == 0) {
        request.set_revision(page.header().revision());
      }
      for (const auto& kv : page.kvs()) {
        ASSIGN_OR_RETURN(std::string key, keys_.StoreKey(table, kv.key()));
        RETURN_IF_ERROR(visit(key, kv.value()));
      }
      if (!page.more() || page.kvs().empty()) return absl::OkStatus();
      request.set_key(absl::StrCat(page.kvs().rbegin()->key(),
                                   absl::string_view("\0", 1)));
    }
  }

  StoreStats stats() const override { return committer_.stats(); }

  StoreLimits limits() const override { return limits_; }

  void SetFence(std::optional<Fence> fence,
                std::function<void()> on_lost) override {
    absl::MutexLock lock(&fence_mu_);
    fence_ = std::move(fence);
    on_lost_ = std::move(on_lost);
    ++fence_generation_;
  }

  absl::StatusOr<bool> IsEmpty() override {
    const EtcdKeyRange all = keys_.All();
    RangeRequest request;
    request.set_key(all.begin);
    request.set_range_end(all.end);
    request.set_limit(2);
    request.set_keys_only(true);
    ASSIGN_OR_RETURN(RangeResponse response, Range(request, "IsEmpty"));
    return response.count() == 0 ||
           (response.count() == 1 &&
            response.kvs(0).key() == keys_.SchemaKey());
  }

  int64_t revision() const override {
    return revision_.load(std::memory_order_relaxed);
  }

 private:
  absl::Status CheckFits(const WriteBatch& batch) const {
    const size_t ops = batch.mutations().size();
    if (ops > limits_.max_ops) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch of ", ops, " mutations exceeds the etcd store's max_ops ",
          limits_.max_ops, " (etcd's --max-txn-ops); nothing written"));
    }
    const size_t bytes =
        batch.ApproximateBytes() + ops * limits_.per_op_overhead_bytes;
    if (bytes > limits_.max_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch of ", bytes, " bytes (with ", limits_.per_op_overhead_bytes,
          " per mutation) exceeds the etcd store's max_bytes ",
          limits_.max_bytes, " (etcd's --max-request-bytes ",
          options_.max_request_bytes, "); nothing written"));
    }
    return absl::OkStatus();
  }

  // One Txn putting and deleting what `batches` hold, in order, fenced.
  absl::Status Write(const std::vector<const WriteBatch*>& batches) {
    // etcd refuses a key twice in one Txn: the last mutation of a key wins.
    absl::flat_hash_map<std::string, const Mutation*> last;
    std::vector<std::string> order;
    for (const WriteBatch* batch : batches) {
      for (const Mutation& m : batch->mutations()) {
        std::string key = keys_.Key(m.table, m.key);
        auto [it, inserted] = last.try_emplace(key, &m);
        if (inserted) {
          order.push_back(std::move(key));
        } else {
          it->second = &m;
        }
      }
    }
    TxnRequest txn;
    for (const std::string& key : order) {
      const Mutation& m = *last[key];
      if (m.value.has_value()) {
        auto* put = txn.add_success()->mutable_request_put();
        put->set_key(key);
        put->set_value(*m.value);
      } else {
        txn.add_success()->mutable_request_delete_range()->set_key(key);
      }
    }
    std::optional<Fence> fence;
    uint64_t generation = 0;
    {
      absl::MutexLock lock(&fence_mu_);
      fence = fence_;
      generation = fence_generation_;
    }
    if (fence.has_value()) {
      Compare* held = txn.add_compare();
      held->set_key(fence->key);
      held->set_target(Compare::CREATE);
      held->set_result(Compare::EQUAL);
      held->set_create_revision(fence->create_revision);
      txn.add_failure()->mutable_request_range()->set_key(fence->key);
    }
    ASSIGN_OR_RETURN(TxnResponse response, Txn(txn, "Apply"));
    if (response.succeeded()) return absl::OkStatus();
    if (!fence.has_value() || response.responses_size() != 1) {
      return absl::InternalError(absl::StrCat(
          "etcd at ", endpoints_, ": Apply: a Txn without a fence failed"));
    }
    return FenceLost(*fence, generation, response);
  }

  // The Txn under `fence` (of SetFence call `generation`) found it gone.
  absl::Status FenceLost(const Fence& fence, uint64_t generation,
                         const TxnResponse& response) {
    const auto& kvs = response.responses(0).response_range().kvs();
    const std::string now =
        kvs.empty() ? "is gone (its lease expired or was revoked)"
                    : absl::StrCat("was created again at revision ",
                                   kvs[0].create_revision(),
                                   " (another manager holds it)");
    std::function<void()> on_lost;
    {
      absl::MutexLock lock(&fence_mu_);
      if (generation == fence_generation_) on_lost = std::move(on_lost_);
      on_lost_ = nullptr;
    }
    if (on_lost) on_lost();
    // UNAVAILABLE: nothing was written, and the same call made to the
    // manager that leads now may succeed (clients move on, and retry).
    return absl::UnavailableError(absl::StrCat(
        "not the leader: election key ", fence.key, ", created at revision ",
        fence.create_revision, ", ", now, "; nothing written"));
  }

  absl::StatusOr<TxnResponse> Txn(const TxnRequest& request,
                                  absl::string_view what) {
    return Call(&etcdserverpb::KV::Stub::Txn, request, what);
  }

  absl::StatusOr<RangeResponse> Range(const RangeRequest& request,
                                      absl::string_view what) {
    return Call(&etcdserverpb::KV::Stub::Range, request, what);
  }

  // One unary KV call within the rpc timeout.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(
      grpc::Status (etcdserverpb::KV::Stub::*method)(grpc::ClientContext*,
                                                     const Request&,
                                                     Response*),
      const Request& request, absl::string_view what) {
    grpc::ClientContext context;
    context.set_deadline(EtcdDeadline(options_.client));
    Response response;
    grpc::Status status = (kv_.get()->*method)(&context, request, &response);
    if (!status.ok()) return FromGrpc(status, endpoints_, what);
    SawRevision(response.header().revision());
    return response;
  }

  void SawRevision(int64_t revision) {
    int64_t seen = revision_.load(std::memory_order_relaxed);
    while (seen < revision &&
           !revision_.compare_exchange_weak(seen, revision,
                                            std::memory_order_relaxed)) {
    }
  }

  const EtcdStoreOptions options_;
  const std::string endpoints_;  // for messages
  const EtcdKeys keys_;
  const StoreLimits limits_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::atomic<int64_t> revision_{0};

  // Groups concurrent Apply calls into one Txn each, within limits_; the
  // batches of a group that etcd refuses are retried one Txn each.
  GroupCommitter committer_;

  absl::Mutex fence_mu_;
  std::optional<Fence> fence_ ABSL_GUARDED_BY(fence_mu_);
  std::function<void()> on_lost_ ABSL_GUARDED_BY(fence_mu_);
  // Counts SetFence calls, so that a Txn that used an older fence does not
  // call the newer fence's callback.
  uint64_t fence_generation_ ABSL_GUARDED_BY(fence_mu_) = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(
    const EtcdStoreOptions& options) {
  const std::string& prefix = options.prefix;
  if (!prefix.empty() && (prefix.front() != '/' || prefix.back() == '/')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "EtcdStoreOptions.prefix \"", prefix,
        "\" must be empty or start with '/' and not end with '/'"));
  }
  if (options.max_txn_ops < 1 ||
      options.max_request_bytes < 2 * kTxnMarginBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "EtcdStoreOptions: max_txn_ops (", options.max_txn_ops,
        ") must be at least 1 and max_request_bytes (",
        options.max_request_bytes, ") at least ", 2 * kTxnMarginBytes));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                   DialEtcd(options.client));
  auto store = std::make_unique<EtcdStoreImpl>(options, std::move(channel));
  RETURN_IF_ERROR(store->CheckSchema());
  return store;
}

}  // namespace fabric::store
