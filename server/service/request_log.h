// RequestLog: the request ids the manager remembers, so that a retried
// mutation gets its original response and a reused id is refused.
//
// An id is recorded when its mutation is planned (in flight), completed once
// the mutation is durable, and abandoned if the write failed (the id may be
// used again). Completed ids are forgotten once older than the retention or
// once max_ids newer ids are remembered; in-flight ids never are. Forgetting
// is two-phase so that memory and store agree: TakeToForget takes ids out of
// the order (retries still find them), then Forget once their store rows are
// deleted, or Restore if the delete failed.
//
// Not thread-safe: the owner serializes every call (FabricManager guards it
// with its mu_).
#ifndef FABRIC_SERVER_SERVICE_REQUEST_LOG_H_
#define FABRIC_SERVER_SERVICE_REQUEST_LOG_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "server/store/store.h"

namespace fabric::service {

inline constexpr char kTableRequests[] = "requests";
inline constexpr size_t kMaxRequestIdLength = 128;

// The store key of the row of a request id recorded at `time`:
// "{Unix microseconds, 16 hex digits}/{id}". Rows thus sit in the order
// they were recorded, so recording appends at one end of the store's key
// order and forgetting the oldest deletes at the other: a full log (100k
// ids) writes a few pages per commit, not a random page per id. Rows
// written before this form are keyed by the bare id; they keep that key
// until forgotten (PendingRequest::bare_key).
std::string RequestRowKey(absl::Time time, absl::string_view id);

// Deterministic bytes of `request` without its request_id, so that a retry
// can be told from a different request that reuses the id.
std::string Fingerprint(const google::protobuf::Message& request);

// The first 16 bytes of the SHA-256 of a Fingerprint: what the log keeps
// and compares (a retry is told from another request that reuses its id by
// these 128 bits; half the digest keeps a remembered id smaller).
using RequestDigest = std::array<uint8_t, 16>;
RequestDigest DigestOf(absl::string_view fingerprint);

// A caller waiting for the answer of a request in flight.
using RequestWaiter = std::function<void(absl::StatusOr<std::string>)>;

// One remembered request id, owned by its RequestLog. Small (about 160
// bytes with its slots, for an id of up to 24 characters), since a manager
// remembers up to --max-request-ids of them: the answer of a completed one
// is not kept here but read back from its store row (RecordedAnswer).
struct PendingRequest {
  std::string id;
  const std::string* method = nullptr;  // interned by the log
  RequestDigest fingerprint{};
  // When it was recorded, in Unix microseconds (what its row keeps).
  int64_t time_us = 0;
  uint64_t seq = 0;        // its RequestSlot in the order
  // Retries that arrived while the first attempt was in flight; null when
  // there are none (the usual case: a pointer, not an empty vector).
  std::unique_ptr<std::vector<RequestWaiter>> waiters;
  bool done = false;       // durable: its row holds the answer
  bool bare_key = false;   // its row is keyed by the bare id (older form)

  absl::Time time() const { return absl::FromUnixMicros(time_us); }
  void set_time(absl::Time t) { time_us = absl::ToUnixMicros(t); }
  void AddWaiter(RequestWaiter w);
  // The waiters, taken out (none are left).
  std::vector<RequestWaiter> TakeWaiters();
};

// A recorded id in the order. `request` is null once the id was
// abandoned (a stale slot, skipped); otherwise it is the log's, alive until
// Forget (or Abandon, for one in flight).
struct RequestSlot {
  uint64_t seq = 0;
  PendingRequest* request = nullptr;
  absl::string_view id() const { return request->id; }
};

class RequestLog {
 public:
  // `max_ids` >= 1; see ManagerOptions.
  RequestLog(int64_t max_ids, absl::Duration retention)
      : max_ids_(static_cast<size_t>(max_ids)), retention_(retention) {}

  RequestLog(const RequestLog&) = delete;
  RequestLog& operator=(const RequestLog&) = delete;

  // The remembered request `id`, or null.
  PendingRequest* Find(absl::string_view id);
  // The store key of the row of remembered request `p`.
  static std::string RowKey(const PendingRequest& p);

  // Remembers `id` (not remembered now) as in flight, recorded at `now`,
  // and returns it: the log's, alive at least until the caller completes
  // it (Complete) or abandons it (Abandon), whatever else is called.
  PendingRequest* Record(absl::string_view id, absl::string_view method,
                         const RequestDigest& fingerprint, absl::Time now);
  // The in-flight `request` is durable: marks it done and returns its
  // waiters, to be answered.
  std::vector<RequestWaiter> Complete(PendingRequest* request);
  // Forgets the in-flight `request` at once (its write failed; the id may
  // be used again) and returns its waiters, to be answered. `request` is
  // gone on return.
  std::vector<RequestWaiter> Abandon(PendingRequest* request);

  // The store row of request `p` answered by `response`: what a restart
  // reads back (Load), and a retry (RecordedAnswer).
  static std::string Row(const PendingRequest& p, absl::string_view response);
  // The answer in store row `row` of a request with `fingerprint`; NOT_FOUND
  // when the row is of another request (the id was forgotten and used
  // again), DATA_LOSS when it does not parse.
  static absl::StatusOr<std::string> RecordedAnswer(
      absl::string_view row, const RequestDigest& fingerprint);

  // Takes out of the order, oldest first and at most `limit`, the completed
  // ids due to be forgotten: those recorded before now - retention, and
  // those with at least max_ids newer ids (ids being forgotten do not
  // count). In-flight ids are skipped, never taken. The taken ids stay
  // findable until Forget or Restore.
  std::vector<RequestSlot> TakeToForget(absl::Time now, size_t limit);
  // The taken `slots` are deleted from the store: forget them.
  void Forget(const std::vector<RequestSlot>& slots);
  // The delete of the taken `slots` failed: remember them again, in order.
  void Restore(std::vector<RequestSlot> slots);

  // Recovery: reads the store rows of the requests table (key, value),
  // keyed in either form (RequestRowKey or the bare id). Keeps the newest
  // max_ids as completed ids; adds the deletes of the older and the
  // unreadable ones to `batch`, so that memory and store agree once it is
  // written. Call once, on an empty log.
  void Load(std::vector<std::pair<std::string, std::string>> rows,
            store::WriteBatch* batch);
  // Load, a row at a time, so that recovery need not hold the rows (with
  // their answers) all at once: LoadRow for every row, then FinishLoad.
  void LoadRow(absl::string_view key, absl::string_view value,
               store::WriteBatch* batch);
  void FinishLoad(store::WriteBatch* batch);

  // Ids remembered now (completed, in flight and being forgotten).
  size_t size() const { return requests_.size(); }

 private:
  // Hashes and compares the owned requests by id, and ids themselves, so
  // that the set is keyed by the id its elements hold (one copy of it).
  struct ById {
    using is_transparent = void;
    static absl::string_view Id(absl::string_view id) { return id; }
    static absl::string_view Id(const std::unique_ptr<PendingRequest>& p) {
      return p->id;
    }
    template <typename A>
    size_t operator()(const A& a) const {
      return absl::Hash<absl::string_view>()(Id(a));
    }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return Id(a) == Id(b);
    }
  };

  // `method`, kept once for every request that names it.
  const std::string* Intern(absl::string_view method);
  // Adds `p`, recorded now or loaded, at the end of the order.
  PendingRequest* Insert(std::unique_ptr<PendingRequest> p);
  // Frees `request`, a member of requests_.
  void Erase(const PendingRequest* request);

  const size_t max_ids_;
  const absl::Duration retention_;
  std::set<std::string, std::less<>> methods_;
  // Every remembered request, by id.
  absl::flat_hash_set<std::unique_ptr<PendingRequest>, ById, ById> requests_;
  // Recorded ids by ascending seq (the order recorded), for forgetting the
  // oldest; may hold stale slots of abandoned ids (request null). Lacks the
  // ids taken by TakeToForget whose rows are being deleted.
  std::deque<RequestSlot> order_;
  uint64_t next_seq_ = 0;
  // Rows read by LoadRow, until FinishLoad.
  std::vector<std::unique_ptr<PendingRequest>> loading_;
  // Ids in requests_ but taken out of order_ to be forgotten.
  size_t forgetting_ = 0;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_REQUEST_LOG_H_
