#include "server/store/migrate.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/store/batch_limits.h"

namespace fabric::store {
namespace {

using Rows = std::vector<std::pair<std::string, std::string>>;

size_t BytesOf(const Rows& rows) {
  size_t bytes = 0;
  for (const auto& [k, v] : rows) bytes += k.size() + v.size();
  return bytes;
}

}  // namespace

std::string MigrateSummary::ToString() const {
  std::string out;
  size_t rows = 0;
  size_t bytes = 0;
  for (const Table& t : tables) {
    absl::StrAppend(&out, t.name, ": ", t.rows, " rows, ", t.bytes, " bytes\n");
    rows += t.rows;
    bytes += t.bytes;
  }
  absl::StrAppend(&out, "total: ", rows, " rows, ", bytes, " bytes in ",
                  transactions, " transaction(s), verified\n");
  return out;
}

absl::StatusOr<MigrateSummary> Migrate(Store& from, EtcdStore& to,
                                       const std::vector<std::string>& tables,
                                       const std::string& to_name) {
  absl::StatusOr<bool> empty = to.IsEmpty();
  if (!empty.ok()) return empty.status();
  if (!*empty) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--to ", to_name,
        " is not empty; migrate copies into an empty prefix only (pick "
        "another prefix, or delete this one with etcdctl del --prefix)"));
  }
  MigrateSummary summary;
  std::vector<Rows> source;
  for (const std::string& table : tables) {
    absl::StatusOr<Rows> rows = from.Scan(table);
    if (!rows.ok()) return rows.status();
    WriteBatch batch;
    for (const auto& [k, v] : *rows) batch.Put(table, k, v);
    absl::StatusOr<std::vector<WriteBatch>> chunks =
        SplitToFit(std::move(batch), to.limits());
    if (!chunks.ok()) {
      return absl::Status(
          chunks.status().code(),
          absl::StrCat("table ", table, ": ", chunks.status().message()));
    }
    for (const WriteBatch& chunk : *chunks) {
      if (absl::Status s = to.Apply(chunk); !s.ok()) return s;
      ++summary.transactions;
    }
    summary.tables.push_back({table, rows->size(), BytesOf(*rows)});
    source.push_back(*std::move(rows));
  }
  // Verify: everything read back from the target, row by row.
  for (size_t i = 0; i < tables.size(); ++i) {
    absl::StatusOr<Rows> copied = to.Scan(tables[i]);
    if (!copied.ok()) return copied.status();
    if (copied->size() != source[i].size() ||
        BytesOf(*copied) != summary.tables[i].bytes) {
      return absl::DataLossError(absl::StrCat(
          "verify: table ", tables[i], " has ", copied->size(), " rows (",
          BytesOf(*copied), " bytes) in the target, ", source[i].size(),
          " rows (", summary.tables[i].bytes, " bytes) in the source"));
    }
    for (size_t r = 0; r < copied->size(); ++r) {
      if ((*copied)[r] != source[i][r]) {
        return absl::DataLossError(absl::StrCat("verify: table ", tables[i],
                                                " key \"", source[i][r].first,
                                                "\" differs in the target"));
      }
    }
  }
  return summary;
}

absl::StatusOr<MigrateSummary> MigrateStores(
    const StoreSpec& from, const StoreSpec& to,
    const std::vector<std::string>& tables) {
  if (from.kind != StoreSpec::Kind::kSqlite) {
    return absl::InvalidArgumentError(
        "--from: migrate reads a sqlite:PATH store");
  }
  if (to.kind != StoreSpec::Kind::kEtcd) {
    return absl::InvalidArgumentError("--to: migrate writes an etcd:// store");
  }
  SqliteOptions source = from.sqlite;
  source.read_only = true;
  absl::StatusOr<std::unique_ptr<Store>> in = OpenSqliteStore(source);
  if (!in.ok()) {
    return absl::Status(
        in.status().code(),
        absl::StrCat("--from ", from.text, ": ", in.status().message()));
  }
  absl::StatusOr<std::unique_ptr<EtcdStore>> out = EtcdStore::Open(to.etcd);
  if (!out.ok()) {
    return absl::Status(
        out.status().code(),
        absl::StrCat("--to ", to.text, ": ", out.status().message()));
  }
  return Migrate(**in, **out, tables, to.text);
}

}  // namespace fabric::store
