// A Store on one SQLite database file.
//
// The file is in WAL mode with synchronous=FULL, so every commit fsyncs the
// WAL before Apply returns. Writes go through one connection and are grouped
// (leader/follower group commit, as in leveldb's DBImpl::Write): concurrent
// Apply calls queue up, the caller at the head of the queue becomes leader,
// commits every queued batch (up to kMaxGroupBatches / kMaxGroupBytes) in ONE
// transaction and one fsync, and hands each follower the shared result.
//
// Failure policy of a group: if the grouped transaction fails with
// UNAVAILABLE or DATA_LOSS (a property of the medium, not of any one batch),
// every batch of the group gets that same status. Any other failure (e.g. one
// batch holds an oversized value) makes the leader retry each batch of the
// group in its own transaction, so one bad batch cannot fail its neighbours.
//
// Reads use a second connection, so they keep working while writes fail and
// do not wait for a group's fsync. (":memory:" databases are private to one
// connection, so there reads share the write connection.)
//
// The schema is versioned with PRAGMA user_version and migrated in one
// transaction at open; PRAGMA application_id marks the file as this
// project's (kSqliteApplicationId). Schema version 1 is
//   kv(tbl TEXT, key TEXT, value BLOB, PRIMARY KEY(tbl, key)) WITHOUT ROWID.
//
// Error mapping (messages carry the path, sqlite3_errmsg, the operating
// system's error where there is one, the extended result code, and for the
// UNAVAILABLE ones the cause in plain words: disk full, read-only, lock held
// past busy_timeout_ms, I/O error):
//   SQLITE_FULL, READONLY, BUSY, LOCKED, IOERR, CANTOPEN -> UNAVAILABLE
//   SQLITE_CORRUPT, NOTADB                                -> DATA_LOSS
//   SQLITE_TOOBIG                                         -> INVALID_ARGUMENT
//   anything else                                         -> INTERNAL
//
// Caveat shared with every fsync-based store: if fsync itself fails, Apply
// returns UNAVAILABLE and the batch is not visible to this process, but the
// kernel may still have written the bytes, so the batch can reappear after a
// crash. Callers that need exactly-once should make batches idempotent.
#ifndef FABRIC_SERVER_STORE_SQLITE_STORE_H_
#define FABRIC_SERVER_STORE_SQLITE_STORE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace fabric::store {

struct SqliteOptions {
  // File path, or ":memory:" for a private in-memory database (tests).
  std::string path;
  // How long a write (or open) waits for another process's lock before
  // failing with UNAVAILABLE.
  int busy_timeout_ms = 2000;
  // Opens the file with SQLITE_OPEN_READONLY: reads work, every Apply fails
  // with UNAVAILABLE naming the path. The file must already exist at the
  // current schema version (no migrations run). For inspection tools, and
  // the way tests running as root simulate a read-only medium.
  bool read_only = false;
  // Largest row Apply accepts, in bytes (SQLITE_LIMIT_LENGTH on the write
  // connection): table + key + value plus a few bytes of record header. A
  // batch holding a larger row fails with INVALID_ARGUMENT. 0 keeps SQLite's
  // own limit (SQLITE_MAX_LENGTH, 1e9 by default).
  int max_value_bytes = 0;
  // A file opened for writing is held exclusively while the store is open
  // (StoreLock, on PATH.lock); this line says who holds it, for the error
  // a second opener gets, e.g. "fabric-manager listening on 127.0.0.1:7070".
  std::string holder = "";
};

// Most batches one group commit takes, and the byte total after which the
// leader stops adding batches to its group (it always takes its own).
inline constexpr size_t kMaxGroupBatches = 512;
inline constexpr size_t kMaxGroupBytes = 8 << 20;

// The schema version this binary creates and understands.
inline constexpr int kSqliteSchemaVersion = 1;
// PRAGMA application_id of the files this project creates ("FBRC"). Files
// made before it was set carry 0 and are still ours when their schema
// version is.
inline constexpr int kSqliteApplicationId = 0x46425243;

// Opens (creating if needed, unless read_only) the database at
// `options.path` and migrates it to kSqliteSchemaVersion.
// Errors:
//   INVALID_ARGUMENT for an empty path or negative limits.
//   FAILED_PRECONDITION if the file's schema version is newer than this
//     binary knows (the message names both), or read_only and the file needs
//     a migration.
//   DATA_LOSS if the file is not a SQLite database or is corrupt.
//   FAILED_PRECONDITION if another open store (in this process or another)
//     holds the file for writing; the file is not touched, and the message
//     names the holder (StoreLock).
//   FAILED_PRECONDITION if the file is a SQLite database of another
//     application (it has tables but no schema version of ours, or a
//     foreign application_id); it is left untouched.
//   UNAVAILABLE if the file cannot be opened or locked.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(
    const SqliteOptions& options);

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_SQLITE_STORE_H_
