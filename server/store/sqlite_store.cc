#include "server/store/sqlite_store.h"

#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "server/store/group_committer.h"
#include "server/store/store_lock.h"

namespace fabric::store {
namespace {

// Ordered schema migrations; entry i moves the file from version i to i + 1.
// Each runs inside the single open-time migration transaction. Never edit a
// released entry: append a new one and bump kSqliteSchemaVersion.
constexpr const char* kMigrations[] = {
    // 0 -> 1: the key/value table.
    "CREATE TABLE kv(tbl TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY(tbl, key)) WITHOUT ROWID",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) ==
                  kSqliteSchemaVersion,
              "one migration per schema version");

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_TOOBIG:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kInternal;
  }
}

// What an operator should know about a medium error, in plain words.
std::string CauseFor(int rc, int busy_timeout_ms) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return "the disk is full (or the database reached its size limit)";
    case SQLITE_READONLY:
      return "the database is read-only (file, directory or mount)";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StrFormat(
          "another connection held the database's write lock for longer "
          "than the %d ms busy timeout",
          busy_timeout_ms);
    case SQLITE_IOERR:
      switch (rc) {
        case SQLITE_IOERR_WRITE:
          return "the medium refused a write (failing disk, or a read-only "
                 "or immutable file)";
        case SQLITE_IOERR_FSYNC:
        case SQLITE_IOERR_DIR_FSYNC:
          return "fsync failed: the medium cannot make writes durable";
        case SQLITE_IOERR_READ:
        case SQLITE_IOERR_SHORT_READ:
          return "the medium failed a read";
        case SQLITE_IOERR_TRUNCATE:
          return "the medium refused to resize a file";
        case SQLITE_IOERR_SHMOPEN:
        case SQLITE_IOERR_SHMSIZE:
        case SQLITE_IOERR_SHMMAP:
          return "the shared-memory index (-shm file) cannot be used";
        default:
          return "the medium failed an I/O operation";
      }
    case SQLITE_CANTOPEN:
      return "the file or its directory cannot be opened";
    default:
      return "";
  }
}

// Builds the status for a failed SQLite call: what failed, the path,
// SQLite's message, the operating system's error where there is one, the
// extended result code, and for medium errors the cause in plain words,
// e.g. "cannot write /var/lib/fabric.db: database or disk is full (No
// space left on device; sqlite code 13): the disk is full ...". `db` may be
// null (failed open without a handle). Must be called before any other call
// on `db` replaces its error message.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what,
                         absl::string_view path, int busy_timeout_ms = 0) {
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string os;
  const int primary = rc & 0xff;
  if (db != nullptr && (primary == SQLITE_IOERR || primary == SQLITE_FULL ||
                        primary == SQLITE_CANTOPEN ||
                        primary == SQLITE_READONLY)) {
    const int err = sqlite3_system_errno(db);
    if (err != 0) os = absl::StrCat(strerror(err), "; ");
  }
  std::string cause = CauseFor(rc, busy_timeout_ms);
  if (!cause.empty()) cause = absl::StrCat(": ", cause);
  return absl::Status(CodeFor(rc),
                      absl::StrFormat("%s %s: %s (%ssqlite code %d)%s", what,
                                      path, msg, os, rc, cause));
}

// True for failures that are a property of the medium rather than of one
// batch, so retrying a group's batches one by one cannot help.
bool IsMediumError(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDataLoss;
}

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

int BindText(sqlite3_stmt* stmt, int index, absl::string_view text) {
  // A null pointer would bind SQL NULL; an empty string must stay a string.
  return sqlite3_bind_text64(stmt, index,
                             text.data() != nullptr ? text.data() : "",
                             text.size(), SQLITE_STATIC, SQLITE_UTF8);
}

int BindBlob(sqlite3_stmt* stmt, int index, absl::string_view blob) {
  if (blob.empty()) return sqlite3_bind_zeroblob(stmt, index, 0);
  return sqlite3_bind_blob64(stmt, index, blob.data(), blob.size(),
                             SQLITE_STATIC);
}

// The bytes of `column` of the current row, valid until the next step or
// reset of `stmt`.
absl::string_view ColumnView(sqlite3_stmt* stmt, int column) {
  const void* data = sqlite3_column_blob(stmt, column);
  const int size = sqlite3_column_bytes(stmt, column);
  if (data == nullptr || size <= 0) return absl::string_view();
  return absl::string_view(static_cast<const char*>(data), size);
}

std::string ColumnBytes(sqlite3_stmt* stmt, int column) {
  return std::string(ColumnView(stmt, column));
}

// One sqlite3 connection and its cached statements. Thread-safe: every
// public method holds mu_ for its whole duration. Multi-call transactions
// (Begin/Rollback around Exec) are only used while a single thread owns the
// connection, i.e. during open.
class Connection {
 public:
  // Opens `path` with sqlite3_open_v2 `flags`; extended result codes on.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& path, int flags, int busy_timeout_ms) {
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX,
                        /*zVfs=*/nullptr);
    DbPtr db(raw);  // sqlite3_open_v2 may return a handle even on failure.
    if (rc != SQLITE_OK) {
      return SqliteError(raw, rc, "cannot open", path, busy_timeout_ms);
    }
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, busy_timeout_ms);
    return std::unique_ptr<Connection>(
        new Connection(path, std::move(db), busy_timeout_ms));
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `sql` (no result rows expected). `what` names the step in errors.
  absl::Status Exec(const std::string& sql, absl::string_view what)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return ExecLocked(sql, what);
  }

  // Runs `sql` and returns column 0 of its first row as text.
  absl::StatusOr<std::string> QueryText(const std::string& sql,
                                        absl::string_view what)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return ErrorLocked(rc, what);
    rc = sqlite3_step(raw);
    if (rc == SQLITE_DONE) {
      return absl::InternalError(
          absl::StrFormat("%s %s: no result row", what, path_));
    }
    if (rc != SQLITE_ROW) return ErrorLocked(rc, what);
    return ColumnBytes(raw, 0);
  }

  // Rolls back the open transaction, if any. Errors are ignored: SQLite
  // rolls back by itself when the connection cannot.
  void RollbackIfActive() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    RollbackIfActiveLocked();
  }

  void SetLengthLimit(int bytes) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    sqlite3_limit(db_.get(), SQLITE_LIMIT_LENGTH, bytes);
  }

  absl::StatusOr<std::string> Get(absl::string_view table,
                                  absl::string_view key)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(PrepareLocked(
        get_stmt_, "SELECT value FROM kv WHERE tbl = ?1 AND key = ?2"));
    sqlite3_stmt* stmt = get_stmt_.get();
    StatementResetter reset(stmt);
    int rc = BindText(stmt, 1, table);
    if (rc == SQLITE_OK) rc = BindText(stmt, 2, key);
    if (rc != SQLITE_OK) return ErrorLocked(rc, "cannot read");
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) return ColumnBytes(stmt, 0);
    if (rc == SQLITE_DONE) {
      return absl::NotFoundError(absl::StrCat("no key '", absl::CHexEscape(key),
                                              "' in table '",
                                              absl::CHexEscape(table), "'"));
    }
    return ErrorLocked(rc, "cannot read");
  }

  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      absl::string_view table) ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<std::pair<std::string, std::string>> rows;
    RETURN_IF_ERROR(
        ScanEach(table, [&](absl::string_view key, absl::string_view value) {
          rows.emplace_back(key, value);
          return absl::OkStatus();
        }));
    return rows;
  }

  // Store::ScanEach, stepping one statement (one read snapshot). Holds
  // mu_ while `visit` runs.
  absl::Status ScanEach(absl::string_view table,
                        const Store::ScanVisitor& visit)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(PrepareLocked(
        scan_stmt_, "SELECT key, value FROM kv WHERE tbl = ?1 ORDER BY key"));
    sqlite3_stmt* stmt = scan_stmt_.get();
    StatementResetter reset(stmt);
    int rc = BindText(stmt, 1, table);
    if (rc != SQLITE_OK) return ErrorLocked(rc, "cannot scan");
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      RETURN_IF_ERROR(visit(ColumnView(stmt, 0), ColumnView(stmt, 1)));
    }
    if (rc != SQLITE_DONE) return ErrorLocked(rc, "cannot scan");
    return absl::OkStatus();
  }

  // Applies every mutation of `batches`, in order, in one transaction. On
  // error the transaction is rolled back and nothing is applied.
  absl::Status Write(const std::vector<const WriteBatch*>& batches)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    // BEGIN and COMMIT are prepared once, like the writes, rather than
    // parsed again for every group commit.
    RETURN_IF_ERROR(
        RunCachedLocked(begin_stmt_, "BEGIN IMMEDIATE", "cannot write"));
    absl::Status status = WriteMutationsLocked(batches);
    if (status.ok()) {
      status = RunCachedLocked(commit_stmt_, "COMMIT", "cannot commit to");
    }
    if (!status.ok()) RollbackIfActiveLocked();
    return status;
  }

 private:
  // Resets a cached statement and drops its bindings on scope exit, so the
  // next user starts clean and no read transaction stays open.
  class StatementResetter {
   public:
    explicit StatementResetter(sqlite3_stmt* stmt) : stmt_(stmt) {}
    ~StatementResetter() {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }

   private:
    sqlite3_stmt* const stmt_;
  };

  Connection(std::string path, DbPtr db, int busy_timeout_ms)
      : path_(std::move(path)),
        busy_timeout_ms_(busy_timeout_ms),
        db_(std::move(db)) {}

  absl::Status ErrorLocked(int rc, absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return SqliteError(db_.get(), rc, what, path_, busy_timeout_ms_);
  }

  absl::Status ExecLocked(const std::string& sql, absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int rc =
        sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return ErrorLocked(rc, what);
    return absl::OkStatus();
  }

  void RollbackIfActiveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (sqlite3_get_autocommit(db_.get()) == 0) {
      sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  absl::Status PrepareLocked(StmtPtr& slot, const char* sql)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (slot != nullptr) return absl::OkStatus();
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), sql, -1,
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(raw);
      return ErrorLocked(rc, "cannot prepare statement for");
    }
    slot.reset(raw);
    return absl::OkStatus();
  }

  // Runs the statement `sql` (no parameters, no rows), prepared into `slot`
  // the first time; errors say `what`.
  absl::Status RunCachedLocked(StmtPtr& slot, const char* sql,
                               absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RETURN_IF_ERROR(PrepareLocked(slot, sql));
    StatementResetter reset(slot.get());
    const int rc = sqlite3_step(slot.get());
    if (rc != SQLITE_DONE) return ErrorLocked(rc, what);
    return absl::OkStatus();
  }

  // Runs one bound statement to completion.
  absl::Status StepLocked(sqlite3_stmt* stmt, int bind_rc)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    StatementResetter reset(stmt);
    if (bind_rc != SQLITE_OK) return ErrorLocked(bind_rc, "cannot write");
    const int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) return ErrorLocked(rc, "cannot write");
    return absl::OkStatus();
  }

  absl::Status WriteMutationsLocked(
      const std::vector<const WriteBatch*>& batches)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RETURN_IF_ERROR(PrepareLocked(put_stmt_,
                                  "INSERT OR REPLACE INTO kv(tbl, key, value) "
                                  "VALUES(?1, ?2, ?3)"));
    RETURN_IF_ERROR(PrepareLocked(
        delete_stmt_, "DELETE FROM kv WHERE tbl = ?1 AND key = ?2"));
    for (const WriteBatch* batch : batches) {
      for (const Mutation& m : batch->mutations()) {
        sqlite3_stmt* stmt =
            m.value.has_value() ? put_stmt_.get() : delete_stmt_.get();
        int rc = BindText(stmt, 1, m.table);
        if (rc == SQLITE_OK) rc = BindText(stmt, 2, m.key);
        if (rc == SQLITE_OK && m.value.has_value()) {
          rc = BindBlob(stmt, 3, *m.value);
        }
        RETURN_IF_ERROR(StepLocked(stmt, rc));
      }
    }
    return absl::OkStatus();
  }

  absl::Mutex mu_;
  const std::string path_;
  const int busy_timeout_ms_;
  // Declared before the statements so it is closed after they are finalized.
  const DbPtr db_ ABSL_PT_GUARDED_BY(mu_);
  StmtPtr get_stmt_ ABSL_GUARDED_BY(mu_);
  StmtPtr scan_stmt_ ABSL_GUARDED_BY(mu_);
  StmtPtr put_stmt_ ABSL_GUARDED_BY(mu_);
  StmtPtr delete_stmt_ ABSL_GUARDED_BY(mu_);
  StmtPtr begin_stmt_ ABSL_GUARDED_BY(mu_);
  StmtPtr commit_stmt_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<int> ReadVersion(Connection& db, const std::string& path) {
  ASSIGN_OR_RETURN(
      std::string text,
      db.QueryText("PRAGMA user_version", "cannot read schema version of"));
  int version = 0;
  if (!absl::SimpleAtoi(text, &version)) {
    return absl::InternalError(absl::StrFormat(
        "database '%s': unparsable user_version '%s'", path, text));
  }
  return version;
}

// OK when the file is empty or this project's; FAILED_PRECONDITION, with
// nothing written, when it belongs to another application. The first
// statement that reads the file: a non-database fails here (DATA_LOSS).
absl::Status CheckOwnership(Connection& db, const std::string& path) {
  ASSIGN_OR_RETURN(std::string app_text,
                   db.QueryText("PRAGMA application_id",
                                "cannot read the application id of"));
  int app = 0;
  if (!absl::SimpleAtoi(app_text, &app)) app = -1;
  if (app != 0 && app != kSqliteApplicationId) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "database '%s' belongs to another application (application_id %s, "
        "ours is %d); refusing to use it, and it was left untouched",
        path, app_text, kSqliteApplicationId));
  }
  ASSIGN_OR_RETURN(const int version, ReadVersion(db, path));
  ASSIGN_OR_RETURN(
      std::string tables,
      db.QueryText("SELECT ifnull(group_concat(name, ', '), '') FROM "
                   "(SELECT name FROM sqlite_master WHERE type = 'table' "
                   "AND name NOT LIKE 'sqlite_%' ORDER BY name)",
                   "cannot list the tables of"));
  if (version == 0 && !tables.empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "database '%s' is not a fabric-manager database: it has tables (%s) "
        "but no schema version of ours; refusing to adopt it, and it was "
        "left untouched",
        path, tables.size() > 200 ? tables.substr(0, 200) + "..." : tables));
  }
  return absl::OkStatus();
}

// Brings the file to kSqliteSchemaVersion in one transaction.
absl::Status Migrate(Connection& db, const std::string& path) {
  RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE", "cannot start migration of"));
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(const int version, ReadVersion(db, path));
    if (version > kSqliteSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "database '%s' has schema version %d, newer than version %d that "
          "this binary knows; run a newer binary",
          path, version, kSqliteSchemaVersion));
    }
    if (version < 0) {
      return absl::DataLossError(absl::StrFormat(
          "database '%s' has invalid schema version %d", path, version));
    }
    if (version == kSqliteSchemaVersion) return absl::OkStatus();
    for (int v = version; v < kSqliteSchemaVersion; ++v) {
      RETURN_IF_ERROR(db.Exec(
          kMigrations[v],
          absl::StrFormat("migration to schema version %d failed for", v + 1)));
    }
    RETURN_IF_ERROR(
        db.Exec(absl::StrCat("PRAGMA user_version = ", kSqliteSchemaVersion),
                "cannot set schema version of"));
    RETURN_IF_ERROR(db.Exec(
        absl::StrCat("PRAGMA application_id = ", kSqliteApplicationId),
        "cannot set the application id of"));
    return db.Exec("COMMIT", "cannot commit migration of");
  }();
  // Ends the transaction when nothing was committed (no migration needed,
  // or a failure); a no-op after COMMIT.
  db.RollbackIfActive();
  return status;
}

// Read-only opens cannot migrate; they only check the version.
absl::Status CheckVersion(Connection& db, const std::string& path) {
  ASSIGN_OR_RETURN(const int version, ReadVersion(db, path));
  if (version != kSqliteSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "database '%s' has schema version %d but this binary needs version "
        "%d, and a read-only open cannot migrate it",
        path, version, kSqliteSchemaVersion));
  }
  return absl::OkStatus();
}

class SqliteStore final : public Store {
 public:
  // `reader` may be null, in which case reads use `writer`.
  SqliteStore(std::unique_ptr<Connection> writer,
              std::unique_ptr<Connection> reader,
              std::unique_ptr<StoreLock> lock)
      : lock_(std::move(lock)),
        writer_(std::move(writer)),
        owned_reader_(std::move(reader)),
        reader_(owned_reader_ != nullptr ? owned_reader_.get()
                                         : writer_.get()) {}

  // REQUIRES: no call on this store is in progress.
  ~SqliteStore() override = default;

  absl::Status Apply(const WriteBatch& batch) override {
    if (batch.empty()) return absl::OkStatus();
    return committer_.Commit(batch);
  }

  absl::StatusOr<std::string> Get(absl::string_view table,
                                  absl::string_view key) override {
    return reader_->Get(table, key);
  }

  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      absl::string_view table) override {
    return reader_->Scan(table);
  }
  absl::Status ScanEach(absl::string_view table,
                        const ScanVisitor& visit) override {
    return reader_->ScanEach(table, visit);
  }

  StoreStats stats() const override { return committer_.stats(); }

 private:
  // Held for the store's lifetime; released after the connections close
  // (members are destroyed in reverse order). Null for :memory: and
  // read-only stores.
  const std::unique_ptr<StoreLock> lock_;
  const std::unique_ptr<Connection> writer_;
  const std::unique_ptr<Connection> owned_reader_;  // May be null.
  Connection* const reader_;  // writer_ or owned_reader_; not owned.

  // Groups concurrent Apply calls; only its leader uses writer_, so the
  // write connection is used by one thread at a time.
  GroupCommitter committer_{
      kMaxGroupBatches, StoreLimits{.max_bytes = kMaxGroupBytes},
      [this](const std::vector<const WriteBatch*>& batches) {
        return writer_->Write(batches);
      },
      IsMediumError};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(
    const SqliteOptions& options) {
  const std::string& path = options.path;
  if (path.empty()) {
    return absl::InvalidArgumentError("SqliteOptions.path is empty");
  }
  if (options.busy_timeout_ms < 0 || options.max_value_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SqliteOptions for '%s': busy_timeout_ms (%d) and max_value_bytes "
        "(%d) must not be negative",
        path, options.busy_timeout_ms, options.max_value_bytes));
  }
  const bool in_memory = path == ":memory:";
  const int flags = options.read_only
                        ? SQLITE_OPEN_READONLY
                        : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

  // One writer per file: the lock comes first, so that a refused opener
  // touches nothing.
  std::unique_ptr<StoreLock> lock;
  if (!in_memory && !options.read_only) {
    ASSIGN_OR_RETURN(lock, StoreLock::Acquire(path));
    RETURN_IF_ERROR(lock->Describe(options.holder));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer,
                   Connection::Open(path, flags, options.busy_timeout_ms));
  RETURN_IF_ERROR(CheckOwnership(*writer, path));
  if (!in_memory && !options.read_only) {
    ASSIGN_OR_RETURN(std::string mode,
                     writer->QueryText("PRAGMA journal_mode = WAL",
                                       "cannot enable WAL mode on"));
    if (mode != "wal") {
      return absl::UnavailableError(absl::StrFormat(
          "cannot enable WAL mode on %s: journal_mode is '%s'", path, mode));
    }
  }
  RETURN_IF_ERROR(
      writer->Exec("PRAGMA synchronous = FULL", "cannot set synchronous on"));
  if (options.read_only) {
    RETURN_IF_ERROR(CheckVersion(*writer, path));
  } else {
    RETURN_IF_ERROR(Migrate(*writer, path));
  }
  if (options.max_value_bytes > 0) {
    writer->SetLengthLimit(options.max_value_bytes);
  }

  std::unique_ptr<Connection> reader;
  if (!in_memory) {
    ASSIGN_OR_RETURN(reader, Connection::Open(path, SQLITE_OPEN_READONLY,
                                              options.busy_timeout_ms));
  }
  return std::unique_ptr<Store>(
      new SqliteStore(std::move(writer), std::move(reader), std::move(lock)));
}

}  // namespace fabric::store
