// `fabric-manager migrate`: copies a stopped manager's state from one store
// into an empty etcd store, and verifies the copy.
//
// Usage:
//
//   ASSIGN_OR_RETURN(MigrateSummary s,
//                    Migrate(*sqlite, *etcd, service::StoreTables()));
//   std::cout << s.ToString();
//
// The copy is written in batches that fit the target's limits(); it is not
// atomic as a whole: a migration that failed half-way leaves a non-empty
// target, which a new attempt refuses (delete the prefix first:
// `etcdctl del --prefix PREFIX`).
#ifndef FABRIC_SERVER_STORE_MIGRATE_H_
#define FABRIC_SERVER_STORE_MIGRATE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/etcd/etcd_store.h"
#include "server/store/open_store.h"
#include "server/store/store.h"

namespace fabric::store {

struct MigrateSummary {
  struct Table {
    std::string name;
    size_t rows = 0;
    size_t bytes = 0;  // keys and values
  };
  std::vector<Table> tables;
  size_t transactions = 0;  // Applies on the target
  // One line per table and a total, e.g.
  //   "fabrics: 2 rows, 1830 bytes\n...total: 57 rows, 9120 bytes in 1
  //    transaction(s), verified\n"
  std::string ToString() const;
};

// Copies every row of `tables` from `from` to `to`, then reads both back
// and compares them row by row (count and bytes).
// Errors: FAILED_PRECONDITION when `to` is not empty (naming it by
// `to_name`); INVALID_ARGUMENT when one row alone does not fit the target's
// limits(); DATA_LOSS when the read-back differs (naming the table and
// key); the stores' own errors otherwise.
absl::StatusOr<MigrateSummary> Migrate(Store& from, EtcdStore& to,
                                       const std::vector<std::string>& tables,
                                       const std::string& to_name = "target");

// The whole `fabric-manager migrate --from sqlite:PATH --to etcd://...`:
// opens `from` read-only (it must be a sqlite: store) and `to` (an etcd://
// store, with `to`'s etcd TLS), then Migrate. INVALID_ARGUMENT for other
// kinds of store.
absl::StatusOr<MigrateSummary> MigrateStores(
    const StoreSpec& from, const StoreSpec& to,
    const std::vector<std::string>& tables);

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_MIGRATE_H_
