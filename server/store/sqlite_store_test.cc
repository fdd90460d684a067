#include "server/store/sqlite_store.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/store.h"
#include "server/store/store_test_util.h"

namespace fabric::store {
namespace {

using ::fabric::store::testing::RawDb;
using ::fabric::store::testing::ScopedTempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

using Rows = std::vector<std::pair<std::string, std::string>>;

SqliteOptions Options(const std::string& path, int busy_timeout_ms = 2000,
                      bool read_only = false, int max_value_bytes = 0) {
  SqliteOptions options;
  options.path = path;
  options.busy_timeout_ms = busy_timeout_ms;
  options.read_only = read_only;
  options.max_value_bytes = max_value_bytes;
  return options;
}

std::unique_ptr<Store> MustOpen(const SqliteOptions& options) {
  auto store = OpenSqliteStore(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

absl::Status Put(Store& store, const std::string& table, const std::string& key,
                 const std::string& value) {
  WriteBatch batch;
  batch.Put(table, key, value);
  return store.Apply(batch);
}

// ---------------------------------------------------------------------------
// Basic operations, on both an in-memory database and a file.

class BasicTest : public ::testing::TestWithParam<bool /*on_disk*/> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    store_ = MustOpen(Options(GetParam() ? dir_.File("kv.db") : ":memory:"));
    ASSERT_NE(store_, nullptr);
  }

  ScopedTempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(BasicTest, PutGetDelete) {
  EXPECT_EQ(store_->Get("t", "k").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(Put(*store_, "t", "k", "v1").ok());
  EXPECT_EQ(*store_->Get("t", "k"), "v1");
  ASSERT_TRUE(Put(*store_, "t", "k", "v2").ok());
  EXPECT_EQ(*store_->Get("t", "k"), "v2");

  WriteBatch del;
  del.Delete("t", "k");
  ASSERT_TRUE(store_->Apply(del).ok());
  EXPECT_EQ(store_->Get("t", "k").status().code(), absl::StatusCode::kNotFound);
  // Deleting an absent key is fine.
  ASSERT_TRUE(store_->Apply(del).ok());
}

TEST_P(BasicTest, ScanReturnsKeysInBytewiseOrder) {
  WriteBatch batch;
  batch.Put("t", "b", "2");
  batch.Put("t", "a", "1");
  batch.Put("t", "a\x01", "1.5");
  batch.Put("t", "B", "0");
  batch.Put("t", "c", "3");
  ASSERT_TRUE(store_->Apply(batch).ok());
  auto rows = store_->Scan("t");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_THAT(*rows,
              ElementsAre(Pair("B", "0"), Pair("a", "1"), Pair("a\x01", "1.5"),
                          Pair("b", "2"), Pair("c", "3")));
  EXPECT_THAT(*store_->Scan("empty"), IsEmpty());
}

// ScanEach visits what Scan returns, row by row, and stops at the visitor's
// error; the store's own (SQLite) and the default (over Scan) agree.
TEST_P(BasicTest, ScanEachVisitsScansRowsAndStopsAtTheVisitorsError) {
  WriteBatch batch;
  batch.Put("t", "b", "2");
  batch.Put("t", "a", std::string("1\0x", 3));
  batch.Put("t", "c", "");
  batch.Put("u", "a", "other table");
  ASSERT_TRUE(store_->Apply(batch).ok());
  // Scan's rows, through the default Store::ScanEach.
  class ScanOnly : public Store {
   public:
    explicit ScanOnly(Store* base) : base_(base) {}
    absl::Status Apply(const WriteBatch& b) override { return base_->Apply(b); }
    absl::StatusOr<std::string> Get(absl::string_view t,
                                    absl::string_view k) override {
      return base_->Get(t, k);
    }
    absl::StatusOr<Rows> Scan(absl::string_view t) override {
      return base_->Scan(t);
    }
    StoreStats stats() const override { return base_->stats(); }

   private:
    Store* base_;
  } scan_only(store_.get());
  for (Store* store : {static_cast<Store*>(store_.get()),
                       static_cast<Store*>(&scan_only)}) {
    Rows seen;
    ASSERT_TRUE(store
                    ->ScanEach("t",
                               [&](absl::string_view k, absl::string_view v) {
                                 seen.emplace_back(k, v);
                                 return absl::OkStatus();
                               })
                    .ok());
    EXPECT_EQ(seen, *store_->Scan("t"));
    EXPECT_EQ(seen.size(), 3u);
    int visits = 0;
    absl::Status stopped =
        store->ScanEach("t", [&](absl::string_view k, absl::string_view) {
          ++visits;
          return k == "b" ? absl::DataLossError("row b is bad")
                          : absl::OkStatus();
        });
    EXPECT_EQ(stopped, absl::DataLossError("row b is bad"));
    EXPECT_EQ(visits, 2);
    // The store is usable after a scan that stopped.
    EXPECT_EQ(*store->Get("t", "c"), "");
  }
}

TEST_P(BasicTest, TablesAreIndependent) {
  WriteBatch batch;
  batch.Put("fabrics", "x", "fabric-x");
  batch.Put("links", "x", "link-x");
  batch.Put("links", "y", "link-y");
  ASSERT_TRUE(store_->Apply(batch).ok());
  EXPECT_EQ(*store_->Get("fabrics", "x"), "fabric-x");
  EXPECT_EQ(*store_->Get("links", "x"), "link-x");
  EXPECT_EQ(store_->Get("fabrics", "y").status().code(),
            absl::StatusCode::kNotFound);

  WriteBatch del;
  del.Delete("links", "x");
  ASSERT_TRUE(store_->Apply(del).ok());
  EXPECT_EQ(*store_->Get("fabrics", "x"), "fabric-x");
  EXPECT_THAT(*store_->Scan("links"), ElementsAre(Pair("y", "link-y")));
  EXPECT_THAT(*store_->Scan("fabrics"), ElementsAre(Pair("x", "fabric-x")));
}

TEST_P(BasicTest, EmptyBatchIsOkAndCountsNothing) {
  WriteBatch empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_TRUE(store_->Apply(empty).ok());
  EXPECT_EQ(store_->stats().batches, 0u);
  EXPECT_EQ(store_->stats().commits, 0u);
}

TEST_P(BasicTest, LaterMutationInABatchWins) {
  WriteBatch batch;
  batch.Put("t", "k", "first");
  batch.Put("t", "k", "second");
  batch.Put("t", "gone", "x");
  batch.Delete("t", "gone");
  ASSERT_TRUE(store_->Apply(batch).ok());
  EXPECT_EQ(*store_->Get("t", "k"), "second");
  EXPECT_EQ(store_->Get("t", "gone").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->stats().batches, 1u);
  EXPECT_EQ(store_->stats().commits, 1u);
}

TEST(WriteBatchTest, AppendMovesMutationsInOrderAndEmptiesTheOther) {
  WriteBatch first;
  first.Put("t", "a", "1");
  WriteBatch second;
  second.Delete("t", "a");
  second.Put("t", "b", "22");
  const size_t bytes = first.ApproximateBytes() + second.ApproximateBytes();
  first.Append(std::move(second));
  ASSERT_EQ(first.mutations().size(), 3u);
  EXPECT_EQ(first.mutations()[0].key, "a");
  EXPECT_EQ(first.mutations()[0].value, "1");
  EXPECT_EQ(first.mutations()[1].key, "a");
  EXPECT_FALSE(first.mutations()[1].value.has_value());
  EXPECT_EQ(first.mutations()[2].value, "22");
  EXPECT_EQ(first.ApproximateBytes(), bytes);
  EXPECT_TRUE(second.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(second.ApproximateBytes(), 0u);

  WriteBatch empty;
  empty.Append(std::move(first));
  EXPECT_EQ(empty.mutations().size(), 3u);
  EXPECT_TRUE(first.empty());  // NOLINT(bugprone-use-after-move)
}

TEST_P(BasicTest, BinaryAndEmptyValuesRoundTrip) {
  const std::string binary("\0\xff\x01proto\0", 9);
  ASSERT_TRUE(Put(*store_, "t", "bin", binary).ok());
  ASSERT_TRUE(Put(*store_, "t", "empty", "").ok());
  ASSERT_TRUE(Put(*store_, "t", "", "empty key").ok());
  EXPECT_EQ(*store_->Get("t", "bin"), binary);
  EXPECT_EQ(*store_->Get("t", "empty"), "");
  EXPECT_EQ(*store_->Get("t", ""), "empty key");
  EXPECT_THAT(*store_->Scan("t"),
              ElementsAre(Pair("", "empty key"), Pair("bin", binary),
                          Pair("empty", "")));
}

INSTANTIATE_TEST_SUITE_P(MemoryAndFile, BasicTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "File" : "Memory";
                         });

// ---------------------------------------------------------------------------
// Opening, reopening and schema versions.

TEST(OpenTest, RejectsBadOptions) {
  EXPECT_EQ(OpenSqliteStore(Options("")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenSqliteStore(Options(":memory:", /*busy_timeout_ms=*/-1))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OpenTest, ReopenKeepsData) {
  ScopedTempDir dir;
  const std::string path = dir.File("kv.db");
  {
    auto store = MustOpen(Options(path));
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(Put(*store, "fabrics", "f1", "one").ok());
    ASSERT_TRUE(Put(*store, "fabrics", "f2", "two").ok());
  }
  auto store = MustOpen(Options(path));
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(*store->Scan("fabrics"),
              ElementsAre(Pair("f1", "one"), Pair("f2", "two")));
  RawDb raw(path);
  EXPECT_EQ(*raw.Query("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(*raw.Query("PRAGMA user_version"),
            std::to_string(kSqliteSchemaVersion));
}

TEST(OpenTest, MigratesEmptyVersionZeroFile) {
  ScopedTempDir dir;
  const std::string path = dir.File("old.db");
  {
    // What `sqlite3 old.db` with no statements leaves: user_version 0.
    RawDb raw(path);
    ASSERT_EQ(*raw.Query("PRAGMA user_version"), "0");
  }
  auto store = MustOpen(Options(path));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Put(*store, "t", "k", "v").ok());
  EXPECT_EQ(*store->Get("t", "k"), "v");

  RawDb raw(path);
  EXPECT_EQ(*raw.Query("PRAGMA user_version"),
            std::to_string(kSqliteSchemaVersion));
  EXPECT_EQ(*raw.Query("PRAGMA application_id"),
            std::to_string(kSqliteApplicationId));
}

// A database of another application is refused, not adopted, and left as
// it was (not even switched to WAL).
TEST(OpenTest, ForeignDatabaseIsRefusedAndUntouched) {
  ScopedTempDir dir;
  const std::string path = dir.File("other.db");
  {
    RawDb raw(path);
    ASSERT_TRUE(raw.Query("CREATE TABLE notes(x TEXT)").ok());
    ASSERT_TRUE(raw.Query("INSERT INTO notes VALUES('keep me')").ok());
  }
  auto store = OpenSqliteStore(Options(path));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_THAT(store.status().message(), HasSubstr("notes"));
  EXPECT_THAT(store.status().message(), HasSubstr("left untouched"));
  RawDb raw(path);
  EXPECT_EQ(*raw.Query("PRAGMA user_version"), "0");
  EXPECT_EQ(*raw.Query("PRAGMA journal_mode"), "delete");
  EXPECT_EQ(*raw.Query("SELECT count(*) FROM sqlite_master WHERE name='kv'"),
            "0");
  EXPECT_EQ(*raw.Query("SELECT x FROM notes"), "keep me");

  // Another application's id is refused too, even with our table shape.
  const std::string tagged = dir.File("tagged.db");
  {
    RawDb other(tagged);
    ASSERT_TRUE(other.Query("PRAGMA application_id = 1234").ok());
  }
  auto refused = OpenSqliteStore(Options(tagged));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("application_id 1234"));
}

// One writer per file: a second open for writing is refused while the
// first is open, names the holder, and touches nothing; once the first
// closes, the file opens again.
TEST(OpenTest, SecondWriterIsRefusedWithTheHolder) {
  ScopedTempDir dir;
  const std::string path = dir.File("kv.db");
  SqliteOptions first_options = Options(path);
  first_options.holder = "fabric-manager listening on 127.0.0.1:7070";
  auto first = MustOpen(first_options);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(Put(*first, "t", "k", "v").ok());

  auto second = OpenSqliteStore(Options(path));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr(path));
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("pid ", getpid())));
  EXPECT_THAT(second.status().message(),
              HasSubstr("listening on 127.0.0.1:7070"));
  // The first store is unaffected; a read-only open (inspection) works.
  ASSERT_TRUE(Put(*first, "t", "k2", "v2").ok());
  auto reader = MustOpen(Options(path, 2000, /*read_only=*/true));
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(*reader->Get("t", "k2"), "v2");

  first.reset();
  auto again = MustOpen(Options(path));
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(*again->Get("t", "k"), "v");
}

// The lock is the kernel's: a holder killed with SIGKILL leaves no stale
// lock behind.
TEST(OpenTest, LockOfAKilledHolderIsFree) {
  ScopedTempDir dir;
  const std::string path = dir.File("kv.db");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = OpenSqliteStore(Options(path));
    const char c = store.ok() ? 'y' : 'n';
    (void)!write(ready[1], &c, 1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto held = OpenSqliteStore(Options(path));
  EXPECT_EQ(held.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(held.status().message(), HasSubstr(absl::StrCat("pid ", child)));
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  close(ready[0]);
  close(ready[1]);
  EXPECT_NE(MustOpen(Options(path)), nullptr);
}

TEST(OpenTest, TooNewSchemaIsFailedPrecondition) {
  ScopedTempDir dir;
  const std::string path = dir.File("new.db");
  {
    RawDb raw(path);
    ASSERT_TRUE(raw.Query("PRAGMA user_version = 99").ok());
  }
  auto store = OpenSqliteStore(Options(path));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("99"));
  EXPECT_THAT(store.status().message(),
              HasSubstr(absl::StrCat("version ", kSqliteSchemaVersion)));
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  // The failed open did not touch the version.
  RawDb raw(path);
  EXPECT_EQ(*raw.Query("PRAGMA user_version"), "99");
}

TEST(OpenTest, GarbageFileIsAClearError) {
  ScopedTempDir dir;
  const std::string path = dir.File("garbage.db");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 256; ++i) out << "this is not a sqlite database. ";
  }
  auto store = OpenSqliteStore(Options(path));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_THAT(store.status().message(), HasSubstr("not a database"));
}

TEST(OpenTest, MissingDirectoryIsUnavailable) {
  ScopedTempDir dir;
  const std::string path = dir.File("no/such/dir/kv.db");
  auto store = OpenSqliteStore(Options(path));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store.status().message(), HasSubstr(path));
}

// ---------------------------------------------------------------------------
// Atomicity with real SQLite failures.

TEST(AtomicityTest, FailedBatchChangesNothing) {
  ScopedTempDir dir;
  auto store = MustOpen(
      Options(dir.File("kv.db"), 2000, false, /*max_value_bytes=*/1024));
  ASSERT_NE(store, nullptr);
  WriteBatch setup;
  setup.Put("t", "a", "old-a");
  setup.Put("t", "b", "old-b");
  ASSERT_TRUE(store->Apply(setup).ok());
  const StoreStats before = store->stats();

  // The third mutation is over the row limit, so SQLite fails mid-batch
  // after the first two statements already ran inside the transaction.
  WriteBatch batch;
  batch.Put("t", "a", "new-a");
  batch.Delete("t", "b");
  batch.Put("t", "c", std::string(4096, 'x'));
  batch.Put("t", "d", "new-d");
  const absl::Status status = store->Apply(batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;

  EXPECT_THAT(*store->Scan("t"),
              ElementsAre(Pair("a", "old-a"), Pair("b", "old-b")));
  EXPECT_EQ(store->stats().batches, before.batches);
  EXPECT_EQ(store->stats().commits, before.commits);
  // The connection is still usable.
  ASSERT_TRUE(Put(*store, "t", "c", "small").ok());
  EXPECT_EQ(*store->Get("t", "c"), "small");
}

// ---------------------------------------------------------------------------
// An unwritable medium: UNAVAILABLE, reads keep working, writes recover.
// Tests run as root, where chmod does not stop writes, so each test below
// uses a mechanism that binds root too; what is real and what is simulated
// is stated per test.

// Real: another process-level connection holds the write lock, exactly as a
// second manager or an admin's sqlite3 shell would.
TEST(UnavailableTest, LockedDatabaseFailsWritesButNotReads) {
  ScopedTempDir dir;
  const std::string path = dir.File("kv.db");
  auto store = MustOpen(Options(path, /*busy_timeout_ms=*/100));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Put(*store, "t", "k", "before").ok());

  RawDb other(path);
  ASSERT_TRUE(other.Query("BEGIN IMMEDIATE").ok());
  ASSERT_TRUE(
      other.Query("INSERT OR REPLACE INTO kv VALUES('t', 'k', 'uncommitted')")
          .ok());

  const absl::Status status = Put(*store, "t", "k2", "v");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("locked"));

  // Reads go through the read connection and see the last committed state;
  // in WAL mode the other connection's write lock does not block them.
  EXPECT_EQ(*store->Get("t", "k"), "before");
  EXPECT_THAT(*store->Scan("t"), ElementsAre(Pair("k", "before")));
  EXPECT_EQ(store->Get("t", "k2").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(other.Query("ROLLBACK").ok());
  ASSERT_TRUE(Put(*store, "t", "k2", "v").ok());
  EXPECT_EQ(*store->Get("t", "k2"), "v");
}

// Simulated: a read-only medium, via SqliteOptions::read_only (the file is
// opened with SQLITE_OPEN_READONLY, which is what SQLite falls back to for
// a file it cannot write). "Recovery" is reopening read-write.
TEST(UnavailableTest, ReadOnlyFileFailsWritesButNotReads) {
  ScopedTempDir dir;
  const std::string path = dir.File("kv.db");
  {
    auto store = MustOpen(Options(path));
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(Put(*store, "t", "k", "v").ok());
  }
  {
    auto store = MustOpen(Options(path, 2000, /*read_only=*/true));
    ASSERT_NE(store, nullptr);
    const absl::Status status = Put(*store, "t", "k2", "v2");
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_THAT(status.message(), HasSubstr(path));
    EXPECT_THAT(status.message(), HasSubstr("readonly"));
    EXPECT_EQ(*store->Get("t", "k"), "v");
    EXPECT_THAT(*store->Scan("t"), ElementsAre(Pair("k", "v")));
  }
  auto store = MustOpen(Options(path));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Put(*store, "t", "k2", "v2").ok());
  EXPECT_THAT(*store->Scan("t"), ElementsAre(Pair("k", "v"), Pair("k2", "v2")));
}

// Real write failures: RLIMIT_FSIZE binds root too, so growing the WAL past
// the limit fails inside write(2) with EFBIG, as a full disk fails with
// ENOSPC. The limit is raised back afterwards (soft limit <= hard limit).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    ok_ = setrlimit(RLIMIT_FSIZE, &limit) == 0;
  }
  ~FileSizeLimit() { Lift(); }
  void Lift() {
    if (lifted_) return;
    lifted_ = true;
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, old_handler_);
  }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  sighandler_t old_handler_;
  bool ok_ = false;
  bool lifted_ = false;
};

TEST(UnavailableTest, FileSizeLimitFailsWritesButNotReads) {
  ScopedTempDir dir;
  const std::string path = dir.File("kv.db");
  auto store = MustOpen(Options(path));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Put(*store, "t", "k", "v").ok());

  struct stat wal {};
  ASSERT_EQ(stat((path + "-wal").c_str(), &wal), 0);
  {
    FileSizeLimit limit(wal.st_size);
    ASSERT_TRUE(limit.ok());
    const absl::Status status =
        Put(*store, "t", "big", std::string(1 << 20, 'x'));
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_THAT(status.message(), HasSubstr(path));
    EXPECT_EQ(*store->Get("t", "k"), "v");
    EXPECT_THAT(*store->Scan("t"), ElementsAre(Pair("k", "v")));
    limit.Lift();
    ASSERT_TRUE(Put(*store, "t", "big", std::string(1 << 20, 'x')).ok());
  }
  EXPECT_EQ(store->Get("t", "big")->size(), 1u << 20);
  store.reset();
  RawDb raw(path);
  EXPECT_EQ(*raw.Query("PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace fabric::store
