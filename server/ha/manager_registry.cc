#include "server/ha/manager_registry.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "fabric/internal/records.pb.h"
#include "server/service/records.h"

namespace fabric::ha {
namespace {

using service::ManagerRole;
using service::ManagerStatus;

absl::Status EtcdError(absl::string_view what, const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("etcd ", what, ": ", s.error_message()));
}

// The end of the range of every key that starts with `prefix`.
std::string PrefixEnd(std::string prefix) {
  // Our prefixes end in '/', so the last byte is never 0xff.
  ++prefix.back();
  return prefix;
}

void ReadRange(etcdserverpb::RangeRequest* r, const std::string& prefix) {
  r->set_key(prefix);
  r->set_range_end(PrefixEnd(prefix));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ManagerRegistry>> ManagerRegistry::Open(
    const RegistryOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      store::DialEtcd(options.client);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<ManagerRegistry>(
      new ManagerRegistry(options, *std::move(channel)));
}

ManagerRegistry::ManagerRegistry(const RegistryOptions& options,
                                 std::shared_ptr<grpc::Channel> channel)
    : options_(options),
      records_(absl::StrCat(options.prefix, "/managers/")),
      leaders_(absl::StrCat(options.prefix, "/leader/")),
      kv_(etcdserverpb::KV::NewStub(channel)),
      lease_(etcdserverpb::Lease::NewStub(channel)) {}

ManagerRegistry::~ManagerRegistry() {
  std::string key;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    key = self_key_;
  }
  if (keeper_.joinable()) keeper_.join();
  if (key.empty()) return;
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(key);
  etcdserverpb::DeleteRangeResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(store::EtcdDeadline(options_.client));
  kv_->DeleteRange(&ctx, req, &resp);  // best effort: the lease ends it too
}

absl::Status ManagerRegistry::Join(const ManagerSelf& self,
                                   std::function<int64_t()> lease) {
  if (self.address.empty() || absl::StrContains(self.address, '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("manager registry: address \"", self.address,
                     "\" must be HOST:PORT (not empty, no '/')"));
  }
  const int64_t first = lease ? lease() : 0;
  if (first == 0) {
    return absl::InvalidArgumentError(
        "manager registry: lease must name a granted lease (not 0)");
  }
  internal::ManagerRecord record;
  record.set_address(self.address);
  record.set_store(self.store);
  if (self.start_time != absl::InfinitePast()) {
    *record.mutable_start_time() = service::ToProtoTime(self.start_time);
  }
  record.set_version(self.version);
  {
    absl::MutexLock l(&mu_);
    if (!self_key_.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("manager registry: already joined as ", self_key_));
    }
    self_key_ = absl::StrCat(records_, self.address);
    self_value_ = record.SerializeAsString();
    lease_fn_ = std::move(lease);
  }
  absl::Status put = Put(first);
  if (!put.ok()) {
    absl::MutexLock l(&mu_);
    self_key_.clear();
    return put;
  }
  keeper_ = std::thread([this] { KeepLoop(); });
  return absl::OkStatus();
}

absl::Status ManagerRegistry::Put(int64_t lease) {
  etcdserverpb::PutRequest req;
  {
    absl::MutexLock l(&mu_);
    req.set_key(self_key_);
    req.set_value(self_value_);
  }
  req.set_lease(lease);
  etcdserverpb::PutResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(store::EtcdDeadline(options_.client));
  grpc::Status s = kv_->Put(&ctx, req, &resp);
  if (!s.ok()) return EtcdError(absl::StrCat("Put ", req.key()), s);
  absl::MutexLock l(&mu_);
  recorded_lease_ = lease;
  return absl::OkStatus();
}

void ManagerRegistry::KeepLoop() {
  absl::StatusCode last = absl::StatusCode::kOk;
  for (;;) {
    std::function<int64_t()> lease_fn;
    int64_t recorded;
    {
      absl::MutexLock l(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.refresh);
      if (stopping_) return;
      lease_fn = lease_fn_;
      recorded = recorded_lease_;
    }
    const int64_t lease = lease_fn();
    if (lease == 0 || lease == recorded) continue;
    absl::Status s = Put(lease);
    // A lease the election has not granted yet, or etcd down: log once per
    // kind of failure, retry next round.
    if (!s.ok() && s.code() != last) {
      std::fprintf(stderr, "manager_registry: %s (retrying)\n",
                   s.ToString().c_str());
    }
    last = s.code();
  }
}

absl::StatusOr<std::vector<ManagerStatus>>
ManagerRegistry::ListManagers() {
  // The records and the leader key at one revision.
  etcdserverpb::TxnRequest txn;
  ReadRange(txn.add_success()->mutable_request_range(), records_);
  etcdserverpb::RangeRequest* leader =
      txn.add_success()->mutable_request_range();
  ReadRange(leader, leaders_);
  leader->set_sort_target(etcdserverpb::RangeRequest::CREATE);
  leader->set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  leader->set_limit(1);
  etcdserverpb::TxnResponse resp;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(store::EtcdDeadline(options_.client));
    grpc::Status s = kv_->Txn(&ctx, txn, &resp);
    if (!s.ok()) {
      return EtcdError(absl::StrCat("reading ", records_, " and ", leaders_),
                       s);
    }
  }
  if (resp.responses_size() != 2) {
    return absl::InternalError("etcd Txn: expected 2 range responses");
  }
  const etcdserverpb::RangeResponse& records =
      resp.responses(0).response_range();
  const etcdserverpb::RangeResponse& leaders =
      resp.responses(1).response_range();
  const std::string leader_address =
      leaders.kvs_size() > 0 ? leaders.kvs(0).value() : "";

  std::vector<ManagerStatus> out;
  absl::flat_hash_map<int64_t, absl::Duration> ttls;
  for (const mvccpb::KeyValue& kv : records.kvs()) {
    internal::ManagerRecord record;
    if (!record.ParseFromString(kv.value())) {
      return absl::DataLossError(
          absl::StrCat("manager registry: ", kv.key(),
                       " is not a fabric.internal.ManagerRecord"));
    }
    ManagerStatus m;
    m.address = record.address();
    m.role = !leader_address.empty() && m.address == leader_address
                 ? ManagerRole::kLeader
                 : ManagerRole::kStandby;
    m.store = record.store();
    m.lease_id = kv.lease();
    if (record.has_start_time()) {
      m.start_time = service::FromProtoTime(record.start_time());
    }
    m.version = record.version();
    if (m.lease_id != 0 && !ttls.contains(m.lease_id)) {
      etcdserverpb::LeaseTimeToLiveRequest req;
      req.set_id(m.lease_id);
      etcdserverpb::LeaseTimeToLiveResponse ttl;
      grpc::ClientContext ctx;
      ctx.set_deadline(store::EtcdDeadline(options_.client));
      grpc::Status s = lease_->LeaseTimeToLive(&ctx, req, &ttl);
      if (!s.ok()) {
        return EtcdError(absl::StrCat("LeaseTimeToLive ", m.lease_id), s);
      }
      // -1: expired since the read.
      ttls[m.lease_id] = absl::Seconds(std::max<int64_t>(ttl.ttl(), 0));
    }
    if (m.lease_id != 0) m.lease_ttl = ttls[m.lease_id];
    out.push_back(std::move(m));
  }
  // Keys are PREFIX/managers/<address>: already in address order.
  return out;
}

}  // namespace fabric::ha
