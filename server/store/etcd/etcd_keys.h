// The etcd store's key layout (etcd_store.h): where each (table, key) and
// the schema version live under a prefix, and the key ranges that hold them.
//
//   PREFIX/kv/<decimal length of table>:<table>/<key>
//   PREFIX/meta/schema
//
// The table's length comes first, so one table's range never holds another
// table's keys (tables "a" and "ab" encode as "1:a/" and "2:ab/"), whatever
// bytes tables and keys hold ('/', '\0', ...). Within a table, etcd's
// bytewise order of its keys is the order of the store's keys.
//
// Plain values; thread-compatible.
#ifndef FABRIC_SERVER_STORE_ETCD_ETCD_KEYS_H_
#define FABRIC_SERVER_STORE_ETCD_ETCD_KEYS_H_

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric::store {

// A [begin, end) range of etcd keys, as KV.Range's key and range_end.
struct EtcdKeyRange {
  std::string begin;
  std::string end;
};

class EtcdKeys {
 public:
  // `prefix` as EtcdUrl::prefix: "" or "/..." without a trailing '/'.
  explicit EtcdKeys(std::string prefix) : prefix_(std::move(prefix)) {}

  const std::string& prefix() const { return prefix_; }

  // The etcd key of (table, key).
  std::string Key(absl::string_view table, absl::string_view key) const;
  // The etcd key holding the schema version.
  std::string SchemaKey() const;
  // Every etcd key of `table`.
  EtcdKeyRange Table(absl::string_view table) const;
  // Every etcd key under the prefix (data, schema and anything else).
  EtcdKeyRange All() const;
  // Bytes Key() adds to a table and key of this prefix, apart from the
  // table length's digits (at most 20).
  size_t KeyOverhead() const;

  // The store key of `etcd_key`, an etcd key of `table`.
  // Errors: DATA_LOSS naming the etcd key when it is not one of `table`'s.
  absl::StatusOr<std::string> StoreKey(absl::string_view table,
                                       absl::string_view etcd_key) const;

 private:
  std::string TablePrefix(absl::string_view table) const;

  std::string prefix_;
};

// The smallest key greater than every key that starts with `prefix`
// (etcd's "prefix end"); "\0" (every key) when there is none.
std::string EtcdPrefixEnd(absl::string_view prefix);

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_ETCD_ETCD_KEYS_H_
