#include "server/service/request_log.h"

#include <algorithm>
#include <cassert>
#include <iterator>
#include <tuple>

#include "fabric/internal/records.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "openssl/sha.h"

namespace fabric::service {

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

RequestDigest DigestOf(absl::string_view fingerprint) {
  unsigned char full[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(fingerprint.data()),
         fingerprint.size(), full);
  RequestDigest d;
  std::copy(full, full + d.size(), d.begin());
  return d;
}

namespace {

// The fingerprint digest of a stored row (older rows hold the fingerprint
// itself).
RequestDigest DigestOfRow(const internal::RequestRecord& rec) {
  RequestDigest d{};
  // 16 bytes, or the whole SHA-256 in rows of older builds.
  const std::string& sha = rec.fingerprint_sha256();
  if (sha.size() == d.size() || sha.size() == SHA256_DIGEST_LENGTH) {
    std::copy(sha.begin(), sha.begin() + d.size(), d.begin());
    return d;
  }
  return DigestOf(rec.fingerprint());
}

}  // namespace

std::string RequestRowKey(absl::Time time, absl::string_view id) {
  return absl::StrCat(
      absl::Hex(static_cast<uint64_t>(absl::ToUnixMicros(time)),
                absl::kZeroPad16),
      "/", id);
}

std::string RequestLog::RowKey(const PendingRequest& p) {
  return p.bare_key ? p.id : RequestRowKey(p.time(), p.id);
}

void PendingRequest::AddWaiter(RequestWaiter w) {
  if (waiters == nullptr) {
    waiters = std::make_unique<std::vector<RequestWaiter>>();
  }
  waiters->push_back(std::move(w));
}

std::vector<RequestWaiter> PendingRequest::TakeWaiters() {
  if (waiters == nullptr) return {};
  std::vector<RequestWaiter> out = std::move(*waiters);
  waiters.reset();
  return out;
}

const std::string* RequestLog::Intern(absl::string_view method) {
  auto it = methods_.find(method);
  if (it == methods_.end()) it = methods_.emplace(method).first;
  return &*it;
}

PendingRequest* RequestLog::Find(absl::string_view id) {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : it->get();
}

PendingRequest* RequestLog::Insert(std::unique_ptr<PendingRequest> p) {
  assert(Find(p->id) == nullptr);
  p->seq = next_seq_++;
  PendingRequest* raw = p.get();
  order_.push_back({raw->seq, raw});
  requests_.insert(std::move(p));
  return raw;
}

void RequestLog::Erase(const PendingRequest* request) {
  auto it = requests_.find(request->id);
  if (it != requests_.end() && it->get() == request) requests_.erase(it);
}

PendingRequest* RequestLog::Record(absl::string_view id,
                                   absl::string_view method,
                                   const RequestDigest& fingerprint,
                                   absl::Time now) {
  auto p = std::make_unique<PendingRequest>();
  p->id = std::string(id);
  p->method = Intern(method);
  p->fingerprint = fingerprint;
  p->set_time(now);
  return Insert(std::move(p));
}

std::vector<RequestWaiter> RequestLog::Complete(PendingRequest* request) {
  request->done = true;
  return request->TakeWaiters();
}

std::vector<RequestWaiter> RequestLog::Abandon(PendingRequest* request) {
  std::vector<RequestWaiter> waiters = request->TakeWaiters();
  // Its slot goes stale; the order is by seq, so it is found by halving.
  auto slot = std::lower_bound(
      order_.begin(), order_.end(), request->seq,
      [](const RequestSlot& s, uint64_t seq) { return s.seq < seq; });
  if (slot != order_.end() && slot->request == request) slot->request = nullptr;
  Erase(request);
  return waiters;
}

std::string RequestLog::Row(const PendingRequest& p,
                            absl::string_view response) {
  internal::RequestRecord rec;
  rec.set_method(*p.method);
  rec.set_fingerprint_sha256(p.fingerprint.data(), p.fingerprint.size());
  rec.set_response(std::string(response));
  rec.set_create_unix_micros(p.time_us);
  return rec.SerializeAsString();
}

absl::StatusOr<std::string> RequestLog::RecordedAnswer(
    absl::string_view row, const RequestDigest& fingerprint) {
  internal::RequestRecord rec;
  if (!rec.ParseFromArray(row.data(), static_cast<int>(row.size()))) {
    return absl::DataLossError("store: a request row is unreadable");
  }
  if (DigestOfRow(rec) != fingerprint) {
    return absl::NotFoundError("the row is of another request");
  }
  return std::move(*rec.mutable_response());
}

std::vector<RequestSlot> RequestLog::TakeToForget(absl::Time now,
                                                  size_t limit) {
  std::vector<RequestSlot> taken;
  std::vector<RequestSlot> in_flight;  // skipped, put back in place
  // Ids that count: remembered and not already being forgotten.
  size_t live = requests_.size() - forgetting_;
  while (!order_.empty() && taken.size() < limit) {
    RequestSlot& slot = order_.front();
    if (slot.request == nullptr) {
      order_.pop_front();  // an abandoned id's record
      continue;
    }
    const PendingRequest& p = *slot.request;
    // Every live id after this slot is newer: live minus the slot itself
    // and the in-flight ones skipped before it.
    const size_t newer =
        live > in_flight.size() + 1 ? live - in_flight.size() - 1 : 0;
    if (newer < max_ids_ && p.time() + retention_ >= now) break;
    if (!p.done) {
      in_flight.push_back(std::move(slot));
    } else {
      taken.push_back(std::move(slot));
      --live;
    }
    order_.pop_front();
  }
  for (auto it = in_flight.rbegin(); it != in_flight.rend(); ++it) {
    order_.push_front(std::move(*it));
  }
  forgetting_ += taken.size();
  return taken;
}

void RequestLog::Forget(const std::vector<RequestSlot>& slots) {
  for (const RequestSlot& slot : slots) Erase(slot.request);
  forgetting_ -= slots.size();
}

void RequestLog::Restore(std::vector<RequestSlot> slots) {
  if (slots.empty()) return;
  forgetting_ -= slots.size();
  // Back in seq order: usually all older than what is left.
  const auto by_seq = [](const RequestSlot& a, const RequestSlot& b) {
    return a.seq < b.seq;
  };
  if (order_.empty() || slots.back().seq < order_.front().seq) {
    order_.insert(order_.begin(), std::make_move_iterator(slots.begin()),
                  std::make_move_iterator(slots.end()));
    return;
  }
  std::deque<RequestSlot> merged;
  std::merge(std::make_move_iterator(order_.begin()),
             std::make_move_iterator(order_.end()),
             std::make_move_iterator(slots.begin()),
             std::make_move_iterator(slots.end()), std::back_inserter(merged),
             by_seq);
  order_.swap(merged);
}

void RequestLog::Load(std::vector<std::pair<std::string, std::string>> rows,
                      store::WriteBatch* batch) {
  for (const auto& [key, value] : rows) LoadRow(key, value, batch);
  FinishLoad(batch);
}

void RequestLog::LoadRow(absl::string_view key, absl::string_view value,
                         store::WriteBatch* batch) {
  internal::RequestRecord rec;
  if (!rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    batch->Delete(kTableRequests, key);  // only costs idempotency
    return;
  }
  auto p = std::make_unique<PendingRequest>();
  p->method = Intern(rec.method());
  p->fingerprint = DigestOfRow(rec);
  p->time_us = rec.create_unix_micros();
  p->done = true;
  // "{time}/{id}", the time the row's own; any other key is a bare id.
  const size_t slash = key.find('/');
  if (slash == 16 && key.substr(0, slash + 1) == RequestRowKey(p->time(), "")) {
    p->id = std::string(key.substr(slash + 1));
  } else {
    p->id = std::string(key);
    p->bare_key = true;
  }
  loading_.push_back(std::move(p));
}

void RequestLog::FinishLoad(store::WriteBatch* batch) {
  std::vector<std::unique_ptr<PendingRequest>> loaded = std::move(loading_);
  loading_.clear();
  // Oldest first; the order of ids recorded in the same microsecond is not
  // kept, so it is made deterministic.
  std::sort(loaded.begin(), loaded.end(),
            [](const std::unique_ptr<PendingRequest>& a,
               const std::unique_ptr<PendingRequest>& b) {
              return std::tie(a->time_us, a->id, a->bare_key) <
                     std::tie(b->time_us, b->id, b->bare_key);
            });
  const size_t keep = std::min(loaded.size(), max_ids_);
  const size_t drop = loaded.size() - keep;
  for (size_t i = 0; i < drop; ++i) {
    batch->Delete(kTableRequests, RowKey(*loaded[i]));
  }
  loaded.erase(loaded.begin(), loaded.begin() + drop);
  requests_.reserve(requests_.size() + loaded.size());
  for (std::unique_ptr<PendingRequest>& p : loaded) {
    // An id with rows in both key forms: the newer row wins.
    if (PendingRequest* older = Find(p->id)) {
      batch->Delete(kTableRequests, RowKey(*older));
      Abandon(older);
    }
    Insert(std::move(p));
  }
}

}  // namespace fabric::service
