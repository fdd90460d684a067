#include "server/store/store.h"

namespace fabric::store {

void WriteBatch::Put(absl::string_view table, absl::string_view key,
                     absl::string_view value) {
  mutations_.push_back(
      Mutation{std::string(table), std::string(key), std::string(value)});
  bytes_ += table.size() + key.size() + value.size();
}

void WriteBatch::Delete(absl::string_view table, absl::string_view key) {
  mutations_.push_back(
      Mutation{std::string(table), std::string(key), std::nullopt});
  bytes_ += table.size() + key.size();
}

}  // namespace fabric::store
