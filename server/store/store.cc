#include "server/store/store.h"

#include <iterator>

namespace fabric::store {

void WriteBatch::Put(absl::string_view table, absl::string_view key,
                     absl::string_view value) {
  mutations_.push_back(
      Mutation{std::string(table), std::string(key), std::string(value)});
  bytes_ += table.size() + key.size() + value.size();
}

void WriteBatch::Append(WriteBatch&& other) {
  if (mutations_.empty()) {
    mutations_ = std::move(other.mutations_);
  } else {
    mutations_.insert(mutations_.end(),
                      std::make_move_iterator(other.mutations_.begin()),
                      std::make_move_iterator(other.mutations_.end()));
  }
  bytes_ += other.bytes_;
  other.mutations_.clear();
  other.bytes_ = 0;
}

void WriteBatch::Delete(absl::string_view table, absl::string_view key) {
  mutations_.push_back(
      Mutation{std::string(table), std::string(key), std::nullopt});
  bytes_ += table.size() + key.size();
}

absl::Status Store::ScanEach(absl::string_view table,
                             const ScanVisitor& visit) {
  auto rows = Scan(table);
  if (!rows.ok()) return rows.status();
  for (const auto& [key, value] : *rows) {
    absl::Status s = visit(key, value);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace fabric::store
