// The durable table/key/value store behind the fabric manager.
//
// The manager keeps all of its durable state (fabrics, link states,
// allocations, request-id results, node registrations) as serialized protobuf
// blobs, addressed by (table, key). It talks to that state only through the
// `Store` interface below, so the SQLite implementation (sqlite_store.h) can
// later be replaced by an etcd-backed one without touching the manager.
//
// Usage:
//
//   SqliteOptions options;
//   options.path = "/var/lib/fabric/state.db";
//   ASSIGN_OR_RETURN(std::unique_ptr<Store> store, OpenSqliteStore(options));
//   WriteBatch batch;
//   batch.Put("allocations", "alloc-17", alloc.SerializeAsString());
//   batch.Delete("pending", "req-9");
//   RETURN_IF_ERROR(store->Apply(batch));  // both or neither, and durable
//   ASSIGN_OR_RETURN(std::string blob, store->Get("allocations", "alloc-17"));
//
// Tables and keys are arbitrary byte strings compared bytewise (memcmp
// order). Tables need not be declared: a table exists while it has a key.
#ifndef FABRIC_SERVER_STORE_STORE_H_
#define FABRIC_SERVER_STORE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric::store {

// One change inside a WriteBatch.
struct Mutation {
  std::string table;
  std::string key;
  std::optional<std::string> value;  // std::nullopt means delete.
};

// An ordered list of puts and deletes that Store::Apply applies atomically.
// When a batch touches the same (table, key) twice, the later mutation wins.
// Deleting an absent key is not an error. Not thread-safe; a batch is a plain
// value that the caller fills and then hands to Apply.
class WriteBatch {
 public:
  void Put(absl::string_view table, absl::string_view key,
           absl::string_view value);
  void Delete(absl::string_view table, absl::string_view key);
  // Moves `other`'s mutations, in order, after this batch's (no copy of
  // their keys or values); `other` is left empty.
  void Append(WriteBatch&& other);

  const std::vector<Mutation>& mutations() const { return mutations_; }
  bool empty() const { return mutations_.empty(); }
  // Sum of the sizes of all tables, keys and values in the batch.
  size_t ApproximateBytes() const { return bytes_; }

 private:
  std::vector<Mutation> mutations_;
  size_t bytes_ = 0;
};

// Counters since the store was opened.
struct StoreStats {
  // Non-empty batches that Apply made durable (returned OK for).
  uint64_t batches = 0;
  // Durable transactions (fsyncs) that carried them; fewer than `batches`
  // when concurrent callers were grouped into one transaction.
  uint64_t commits = 0;
};

// The most one Apply may carry, as a store's medium enforces it (etcd: 128
// operations and 1.5 MiB per transaction by default). A batch fits when
//   mutations().size() <= max_ops, and
//   ApproximateBytes() + mutations().size() * per_op_overhead_bytes
//       <= max_bytes.
// Zero means no limit. Callers that group work into one Apply (the
// manager's CommitQueue) cut their groups so that each fits; a single
// logical change that cannot fit is refused by its caller.
struct StoreLimits {
  size_t max_ops = 0;
  size_t max_bytes = 0;
  size_t per_op_overhead_bytes = 0;

  bool Fits(const WriteBatch& batch) const {
    const size_t n = batch.mutations().size();
    return (max_ops == 0 || n <= max_ops) &&
           (max_bytes == 0 ||
            batch.ApproximateBytes() + n * per_op_overhead_bytes <= max_bytes);
  }
};

// A table/key/value store. All methods are thread-safe.
class Store {
 public:
  virtual ~Store() = default;

  // Applies `batch` atomically. Returns OK only once the batch is durable:
  // it survives kill -9 and power loss as far as fsync promises. Concurrent
  // callers may be grouped into one transaction (group commit). On error
  // nothing of the batch is applied. An empty batch returns OK at once.
  //
  // Errors:
  //   UNAVAILABLE when the medium cannot be written (disk full, read-only
  //     file, database busy/locked, I/O error); the message names the cause
  //     and the path. Retrying later may succeed.
  //   DATA_LOSS when the database is corrupt.
  //   INVALID_ARGUMENT when the batch itself is unacceptable (e.g. a value
  //     larger than the store's limit).
  virtual absl::Status Apply(const WriteBatch& batch) = 0;

  // Returns the value stored under (table, key); NOT_FOUND if absent.
  virtual absl::StatusOr<std::string> Get(absl::string_view table,
                                          absl::string_view key) = 0;

  // Returns every (key, value) of `table` in key order; empty if the table
  // has no keys.
  virtual absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      absl::string_view table) = 0;

  // Calls `visit` with every (key, value) of `table` in key order, as Scan
  // returns them, but one row at a time where the store can: a caller that
  // keeps little of each row (recovery) then needs memory for a row, not
  // for the table. The views are valid during the call only, and `visit`
  // must not call the store. Stops at the first error `visit` returns and
  // returns it; else the store's error, as Scan's. The default visits
  // Scan's rows.
  using ScanVisitor = std::function<absl::Status(absl::string_view key,
                                                 absl::string_view value)>;
  virtual absl::Status ScanEach(absl::string_view table,
                                const ScanVisitor& visit);

  virtual StoreStats stats() const = 0;

  // What one Apply may carry; a batch that does not fit (StoreLimits::Fits)
  // fails with INVALID_ARGUMENT naming the limit, and nothing of it is
  // written. The default: no limits (SQLite).
  virtual StoreLimits limits() const { return {}; }
};

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_STORE_H_
