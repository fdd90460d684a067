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

#include "absl/container/flat_hash_map.h"
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

// SHA-256 of a Fingerprint: what the log keeps and compares.
using RequestDigest = std::array<uint8_t, 32>;
RequestDigest DigestOf(absl::string_view fingerprint);

// One remembered request id. Small (about 100 bytes), since a manager
// remembers up to --max-request-ids of them: the answer of a completed one
// is not kept here but read back from its store row (RecordedAnswer).
struct PendingRequest {
  const std::string* method = nullptr;  // interned by the log
  RequestDigest fingerprint{};
  absl::Time time;
  uint64_t seq = 0;        // its RequestSlot in the order
  bool done = false;       // durable: its row holds the answer
  bool abandoned = false;  // the write failed; the id may be used again
  bool bare_key = false;   // its row is keyed by the bare id (older form)
  // Retries that arrived while the first attempt was in flight.
  std::vector<std::function<void(absl::StatusOr<std::string>)>> waiters;
};

// A recorded id in the order; `seq` tells it from an older record of the
// same id that was abandoned.
struct RequestSlot {
  uint64_t seq = 0;
  std::string id;
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
  // The store key of the row of remembered request `id`, recorded as `p`.
  static std::string RowKey(absl::string_view id, const PendingRequest& p);
  // The store key of the row of `slot`, taken by TakeToForget (its request
  // is still found until Forget or Restore).
  std::string RowKey(const RequestSlot& slot) const;

  // Remembers `id` as in flight, recorded at `now`, and returns it. The
  // caller completes it (done) or calls Abandon.
  std::shared_ptr<PendingRequest> Record(const std::string& id,
                                         absl::string_view method,
                                         const RequestDigest& fingerprint,
                                         absl::Time now);
  // Forgets the in-flight `id` at once: its write failed.
  void Abandon(const std::string& id);

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
  // keyed in either form (RequestRowKey or the bare id). Keeps the newest max_ids as completed ids; adds the deletes of the
  // older and the unreadable ones to `batch`, so that memory and store
  // agree once it is written. Call once, on an empty log.
  void Load(std::vector<std::pair<std::string, std::string>> rows,
            store::WriteBatch* batch);

  // Ids remembered now (completed, in flight and being forgotten).
  size_t size() const { return requests_.size(); }

 private:
  // `method`, kept once for every request that names it.
  const std::string* Intern(absl::string_view method);

  const size_t max_ids_;
  const absl::Duration retention_;
  std::set<std::string, std::less<>> methods_;
  // By request id.
  absl::flat_hash_map<std::string, std::shared_ptr<PendingRequest>> requests_;
  // Recorded ids by ascending seq (the order recorded), for forgetting the
  // oldest; may hold stale slots of abandoned ids. Lacks the ids taken by
  // TakeToForget whose rows are being deleted.
  std::deque<RequestSlot> order_;
  uint64_t next_seq_ = 0;
  // Ids in requests_ but taken out of order_ to be forgotten.
  size_t forgetting_ = 0;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_REQUEST_LOG_H_
