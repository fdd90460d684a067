// The manager's `--store` flag: which Store to open, and opening it.
//
//   --store sqlite:PATH                                 (the default)
//   --store etcd://HOST:PORT[,HOST:PORT...][/PREFIX]
//
// Usage:
//
//   ASSIGN_OR_RETURN(StoreSpec spec, ParseStoreFlag(flag));
//   spec.etcd.client.ca_file = etcd_ca;  // --etcd-ca etc., when given
//   ASSIGN_OR_RETURN(std::unique_ptr<Store> store, OpenStore(spec));
//
// Pure parsing; OpenStore opens (and for SQLite locks) the store.
#ifndef FABRIC_SERVER_STORE_OPEN_STORE_H_
#define FABRIC_SERVER_STORE_OPEN_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/etcd/etcd_store.h"
#include "server/store/sqlite_store.h"
#include "server/store/store.h"

namespace fabric::store {

struct StoreSpec {
  enum class Kind { kSqlite, kEtcd };
  Kind kind = Kind::kSqlite;
  SqliteOptions sqlite;   // kSqlite: path (and holder, set by the caller)
  EtcdStoreOptions etcd;  // kEtcd: endpoints and prefix from the URL
  // The flag as given, for messages ("sqlite:fabric.db").
  std::string text;
};

// Parses a --store value: "sqlite:PATH" (PATH not empty) or an etcd:// URL
// (ParseEtcdUrl). Errors: INVALID_ARGUMENT naming --store and what is wrong
// (an unknown scheme, an empty path, a bad etcd URL).
absl::StatusOr<StoreSpec> ParseStoreFlag(absl::string_view flag);

// Sets the etcd client TLS files (--etcd-ca, --etcd-cert, --etcd-key).
// Errors: INVALID_ARGUMENT when given for a SQLite store, or when only one
// of cert and key is given.
absl::Status SetEtcdTls(StoreSpec& spec, const std::string& ca,
                        const std::string& cert, const std::string& key);

// Opens the store `spec` names: OpenSqliteStore or EtcdStore::Open, with
// their errors.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreSpec& spec);

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_OPEN_STORE_H_
