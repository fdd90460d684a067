#include "server/store/etcd/etcd_keys.h"

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace fabric::store {

std::string EtcdKeys::TablePrefix(absl::string_view table) const {
  return absl::StrCat(prefix_, "/kv/", table.size(), ":", table, "/");
}

std::string EtcdKeys::Key(absl::string_view table,
                          absl::string_view key) const {
  return absl::StrCat(TablePrefix(table), key);
}

std::string EtcdKeys::SchemaKey() const {
  return absl::StrCat(prefix_, "/meta/schema");
}

EtcdKeyRange EtcdKeys::Table(absl::string_view table) const {
  std::string begin = TablePrefix(table);
  std::string end = EtcdPrefixEnd(begin);
  return {std::move(begin), std::move(end)};
}

EtcdKeyRange EtcdKeys::All() const {
  std::string begin = absl::StrCat(prefix_, "/");
  std::string end = EtcdPrefixEnd(begin);
  return {std::move(begin), std::move(end)};
}

size_t EtcdKeys::KeyOverhead() const {
  return prefix_.size() + sizeof("/kv/:/") - 1;
}

absl::StatusOr<std::string> EtcdKeys::StoreKey(
    absl::string_view table, absl::string_view etcd_key) const {
  absl::string_view rest = etcd_key;
  if (!absl::ConsumePrefix(&rest, TablePrefix(table))) {
    return absl::DataLossError(absl::StrCat(
        "etcd key \"", absl::CHexEscape(etcd_key), "\" is not in table \"",
        absl::CHexEscape(table), "\" of the store under \"", prefix_, "\""));
  }
  return std::string(rest);
}

std::string EtcdPrefixEnd(absl::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      ++end.back();
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

}  // namespace fabric::store
