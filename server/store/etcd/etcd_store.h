// A Store on an etcd v3 cluster (issue 14), for managers that share their
// state and elect a leader (server/ha/leader_election.h).
//
// Layout: every (table, key) is one etcd key under the URL's prefix,
//   PREFIX/kv/<table, length-prefixed>/<key>
// so that Scan(table) is one paged range read in bytewise key order and no
// table's range holds another table's keys. PREFIX/meta/schema holds the
// schema version (kEtcdSchemaVersion), written at open when absent;
// a newer version is refused, as SQLite's user_version is.
//
// Apply: each batch is one etcd Txn (all of it or none). Concurrent Apply
// calls are grouped (group commit, as SqliteStore does), as many batches per
// Txn as fit in limits(); a batch never spans two Txns. A batch that alone
// does not fit fails with INVALID_ARGUMENT naming the limit (etcd's
// --max-txn-ops, --max-request-bytes) and is not written.
//
// Fencing: once SetFence() gave a fence, every Txn also compares
// CREATE revision of fence.key == fence.create_revision; when the compare
// fails (the lease behind the election key expired, or another manager
// holds it now), nothing is written and Apply fails with UNAVAILABLE
// "not the leader: ..." (the leader may take the same call) and calls the
// fence-lost callback once.
//
// Reads: Get is one linearizable Range; Scan pages (kScanPageSize keys per
// Range) at the revision of its first page, so it is one consistent snapshot.
//
// Errors: UNAVAILABLE when etcd cannot be reached or has no quorum (the
// message names the endpoints and etcd's own error); DATA_LOSS for a key
// under the prefix that is not in this layout; INTERNAL otherwise.
//
// Thread-safe.
#ifndef FABRIC_SERVER_STORE_ETCD_ETCD_STORE_H_
#define FABRIC_SERVER_STORE_ETCD_ETCD_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/etcd/etcd_client.h"
#include "server/store/store.h"

namespace fabric::store {

inline constexpr int kEtcdSchemaVersion = 1;
inline constexpr size_t kScanPageSize = 1000;

struct EtcdStoreOptions {
  EtcdClientOptions client;
  std::string prefix;  // as EtcdUrl::prefix
  // etcd's server limits; lower them here if the cluster runs with lower
  // ones. The store's limits() derive from them (with room for its key
  // layout and the fence compare).
  size_t max_txn_ops = 128;
  size_t max_request_bytes = 1536 * 1024;
};

// What every write of a leader is conditioned on: its election key, at the
// revision that created it (LeaderElection::fence()).
struct Fence {
  std::string key;
  int64_t create_revision = 0;
};

class EtcdStore : public Store {
 public:
  // Connects, checks (or writes) the schema version.
  // Errors: INVALID_ARGUMENT for bad options; UNAVAILABLE when etcd does not
  // answer within the rpc timeout; FAILED_PRECONDITION for a newer schema.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(
      const EtcdStoreOptions& options);

  // From now on every Txn carries `fence`'s compare (nullopt: none; a lone
  // manager, or `fabric-manager migrate`). `on_lost` runs once, on the
  // thread whose Apply found the fence gone.
  virtual void SetFence(std::optional<Fence> fence,
                        std::function<void()> on_lost = nullptr) = 0;

  // True when no key exists under the prefix but the schema key (for
  // `migrate`, which refuses a non-empty target).
  virtual absl::StatusOr<bool> IsEmpty() = 0;

  // The etcd revision of the last write this store made or saw (0 before
  // any); for `fabricctl get managers`.
  virtual int64_t revision() const = 0;
};

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_ETCD_ETCD_STORE_H_
