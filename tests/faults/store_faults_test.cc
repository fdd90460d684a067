// A store that cannot write, for real: the FabricManager on its SQLite store
// (in this process) while
//   - the disk is full: the database lives on a 1 MiB tmpfs that a filler
//     file fills up (ENOSPC inside SQLite's write(2));
//   - another process holds the database's write lock (BEGIN EXCLUSIVE from
//     a second sqlite3 connection in a child process): SQLITE_BUSY once
//     busy_timeout runs out;
//   - the write-ahead log is made immutable (chattr +i, FS_IMMUTABLE_FL):
//     a read-only file that binds root too, where chmod does not (these
//     tests run as root in CI, and chmod never stops an open descriptor).
// Every mutation must fail with UNAVAILABLE and a message naming the cause
// and saying that nothing changed; reads keep working; once the medium
// recovers the same manager (no restart) accepts mutations again, including
// the retried request ids; and nothing is corrupted: PRAGMA integrity_check
// is "ok" and a manager restarted on the same file loads exactly the state
// the first one had.
//
// The tmpfs is mounted in a private mount namespace (unshare(CLONE_NEWNS)),
// so it disappears with the test process whatever happens; the tests that
// need it skip where mounting is not permitted (not root).
#include <fcntl.h>
#include <linux/fs.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/manager.h"
#include "server/store/sqlite_store.h"
#include "tests/process/process_util.h"

namespace fabric::faults {
namespace {

using ::testing::HasSubstr;

// A private tmpfs of `size` at a fresh directory, in a mount namespace of
// this process only. ok() is false (with why()) where that is not allowed.
class PrivateTmpfs {
 public:
  explicit PrivateTmpfs(const std::string& size) {
    std::string tmpl = (std::filesystem::temp_directory_path() /
                        "fabric-store-faults-XXXXXX")
                           .string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      why_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    if (unshare(CLONE_NEWNS) != 0) {
      why_ = absl::StrCat("unshare(CLONE_NEWNS): ", strerror(errno));
      return;
    }
    // Keep the mount out of the parent namespace.
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      why_ = absl::StrCat("making / private: ", strerror(errno));
      return;
    }
    const std::string options = absl::StrCat("size=", size, ",mode=0755");
    if (mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      why_ = absl::StrCat("mount tmpfs: ", strerror(errno));
      return;
    }
    mounted_ = true;
  }
  ~PrivateTmpfs() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  bool ok() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
  std::string why_;
  bool mounted_ = false;
};

// Fills the file system holding `path` by writing it until ENOSPC.
uint64_t FillDisk(const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return 0;
  std::string block(4096, 'f');
  uint64_t written = 0;
  for (;;) {
    const ssize_t n = write(fd, block.data(), block.size());
    if (n <= 0) break;
    written += n;
  }
  close(fd);
  return written;
}

// Sets or clears FS_IMMUTABLE_FL on `path`; the errno text on failure.
std::string SetImmutable(const std::string& path, bool on) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return strerror(errno);
  int flags = 0;
  std::string error;
  if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    error = strerror(errno);
  } else {
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) error = strerror(errno);
  }
  close(fd);
  return error;
}

// A second process holding the database's write lock with BEGIN EXCLUSIVE,
// as an administrator's sqlite3 shell would. Forked at construction, while
// the test process has no other thread; it takes and drops the lock on
// command and exits when destroyed.
class LockHolder {
 public:
  explicit LockHolder(const std::string& db) {
    int to_child[2], to_parent[2];
    if (pipe(to_child) != 0 || pipe(to_parent) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(to_child[1]);
      close(to_parent[0]);
      Serve(db, to_child[0], to_parent[1]);
      _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    out_ = to_child[1];
    in_ = to_parent[0];
  }
  ~LockHolder() {
    if (out_ >= 0) close(out_);  // EOF: the child exits, dropping the lock
    if (in_ >= 0) close(in_);
    if (pid_ > 0) {
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  bool ok() const { return pid_ > 0; }
  // "ok" or the error the child saw.
  std::string Lock() { return Command('L'); }
  std::string Unlock() { return Command('U'); }

 private:
  static void Serve(const std::string& path, int in, int out) {
    sqlite3* db = nullptr;
    char c;
    while (read(in, &c, 1) == 1) {
      std::string reply = "ok";
      if (db == nullptr && sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
        reply = sqlite3_errmsg(db);
      } else {
        const char* sql = c == 'L' ? "BEGIN EXCLUSIVE" : "ROLLBACK";
        if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
          reply = sqlite3_errmsg(db);
        }
      }
      reply.push_back('\n');
      (void)!write(out, reply.data(), reply.size());
    }
    sqlite3_close(db);
  }
  std::string Command(char c) {
    if (write(out_, &c, 1) != 1) return "child gone";
    std::string reply;
    char ch;
    while (read(in_, &ch, 1) == 1 && ch != '\n') reply.push_back(ch);
    return reply;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
};

std::string IntegrityCheck(const std::string& path) {
  sqlite3* db = nullptr;
  std::string result = "cannot open";
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) ==
      SQLITE_OK) {
    result.clear();
    sqlite3_exec(
        db, "PRAGMA integrity_check",
        [](void* out, int n, char** values, char**) {
          auto* s = static_cast<std::string*>(out);
          if (!s->empty()) s->append("; ");
          s->append(n > 0 && values[0] != nullptr ? values[0] : "");
          return 0;
        },
        &result, nullptr);
  }
  sqlite3_close(db);
  return result;
}

// The durable state as the API shows it, without what is derived at run
// time (states, generations, paths), in a comparable form.
std::string StateOf(service::FabricManager& m) {
  std::vector<std::string> out;
  v1::ListFabricsRequest lf;
  auto fabrics = m.ListFabrics(lf);
  EXPECT_TRUE(fabrics.ok());
  for (v1::Fabric f : fabrics->fabrics()) {
    f.clear_generation();
    out.push_back(f.ShortDebugString());
  }
  v1::ListLinksRequest ll;
  ll.set_page_size(1000);
  auto links = m.ListLinks(ll);
  EXPECT_TRUE(links.ok());
  for (const auto& l : links->links()) out.push_back(l.ShortDebugString());
  v1::ListAllocationsRequest la;
  la.set_page_size(1000);
  auto allocs = m.ListAllocations(la);
  EXPECT_TRUE(allocs.ok());
  for (v1::Allocation a : allocs->allocations()) {
    a.clear_state();
    a.clear_state_reason();
    a.clear_required_generation();
    a.clear_path();
    out.push_back(a.ShortDebugString());
  }
  return absl::StrJoin(out, "\n");
}

v1::CreateAllocationRequest Alloc(int from, int to, const std::string& id) {
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower(absl::StrCat("n", from));
  req.mutable_allocation()->set_target(absl::StrCat("n", to));
  req.mutable_allocation()->set_size(1 << 20);
  req.set_request_id(id);
  return req;
}

// The manager on the SQLite file at `db`, with a fabric and allocations.
class StoreFaultsTest : public ::testing::Test {
 protected:
  void Open(const std::string& db, int busy_timeout_ms = 2000) {
    db_ = db;
    store::SqliteOptions options;
    options.path = db;
    options.busy_timeout_ms = busy_timeout_ms;
    auto s = store::OpenSqliteStore(options);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    auto m = service::FabricManager::Open(store_.get(), Clock::Real());
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = *std::move(m);
  }

  void Populate() {
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name("lab");
    req.mutable_spec()->set_topology(v1::RING);
    for (int i = 0; i < 4; ++i)
      req.mutable_spec()->add_nodes()->set_name(absl::StrCat("n", i));
    ASSERT_TRUE(manager_->CreateFabric(req).ok());
    for (int i = 0; i < 6; ++i) {
      auto a = manager_->CreateAllocation(
          Alloc(i % 4, (i + 1) % 4, absl::StrCat("before-", i)));
      ASSERT_TRUE(a.ok()) << a.status();
      names_.push_back(a->name());
    }
    v1::SetLinkStateRequest link;
    link.set_name("links/n1--n2");
    link.set_up(false);
    ASSERT_TRUE(manager_->SetLinkState(link).ok());
  }

  // Every kind of mutation fails with UNAVAILABLE naming `cause`; reads
  // still answer, and show nothing changed.
  void ExpectMutationsFail(const std::string& cause) {
    const std::string before = StateOf(*manager_);
    std::vector<absl::Status> failures;
    failures.push_back(
        manager_->CreateAllocation(Alloc(0, 2, "during")).status());
    v1::DeleteAllocationRequest del;
    del.set_name(names_[0]);
    del.set_request_id("delete-during");
    failures.push_back(manager_->DeleteAllocation(del).status());
    v1::SetLinkStateRequest link;
    link.set_name("links/n1--n2");
    link.set_up(true);
    link.set_request_id("link-during");
    failures.push_back(manager_->SetLinkState(link).status());
    for (const absl::Status& s : failures) {
      EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
      EXPECT_THAT(s.message(), HasSubstr(cause));
      EXPECT_THAT(s.message(), HasSubstr("nothing was changed"));
      EXPECT_THAT(s.message(), HasSubstr(db_));
    }
    std::cout << "  mutation refused: " << failures[0].message() << "\n";
    // Reads keep working and show the state before.
    EXPECT_EQ(StateOf(*manager_), before);
    EXPECT_TRUE(manager_->GetAllocation(names_[1]).ok());
    EXPECT_TRUE(manager_->GetFabric("lab").ok());
  }

  // The medium is back: the same manager takes the same requests again
  // (their ids were not spent by the failures), and more.
  void ExpectRecovered() {
    auto created = manager_->CreateAllocation(Alloc(0, 2, "during"));
    ASSERT_TRUE(created.ok()) << created.status();
    v1::DeleteAllocationRequest del;
    del.set_name(names_[0]);
    del.set_request_id("delete-during");
    ASSERT_TRUE(manager_->DeleteAllocation(del).ok());
    v1::SetLinkStateRequest link;
    link.set_name("links/n1--n2");
    link.set_up(true);
    link.set_request_id("link-during");
    ASSERT_TRUE(manager_->SetLinkState(link).ok());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(manager_->CreateAllocation(
                              Alloc(3, i, absl::StrCat("after-", i)))
                      .ok());
    }
    EXPECT_TRUE(manager_->CheckInvariants().ok());
  }

  // Nothing corrupted: integrity_check, and a restart on the same file
  // loads exactly this state.
  void ExpectIntactAfterRestart() {
    const std::string state = StateOf(*manager_);
    manager_.reset();
    store_.reset();
    EXPECT_EQ(IntegrityCheck(db_), "ok");
    Open(db_);
    EXPECT_EQ(StateOf(*manager_), state);
    EXPECT_TRUE(manager_->CheckInvariants().ok());
  }

  void TearDown() override {
    manager_.reset();
    store_.reset();
  }

  std::string db_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<service::FabricManager> manager_;
  std::vector<std::string> names_;
};

TEST_F(StoreFaultsTest, DiskFull) {
  PrivateTmpfs fs("1m");
  if (!fs.ok()) GTEST_SKIP() << "no private tmpfs: " << fs.why();
  Open(fs.path() + "/fabric.db");
  Populate();
  const std::string filler = fs.path() + "/filler";
  ASSERT_GT(FillDisk(filler), 0u);
  // Frames already allocated to the write-ahead log may still take a
  // commit or two; the disk is full once one needs a new block.
  absl::Status s;
  int landed = 0;
  for (; landed < 64; ++landed) {
    s = manager_->CreateAllocation(Alloc(2, 3, absl::StrCat("fill-", landed)))
            .status();
    if (!s.ok()) break;
  }
  ASSERT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  std::cout << "disk full after " << landed << " more commits: " << s << "\n";
  ExpectMutationsFail("full");
  std::filesystem::remove(filler);
  ExpectRecovered();
  ExpectIntactAfterRestart();
}

TEST_F(StoreFaultsTest, DatabaseLockedByAnotherProcess) {
  proctest::TempDir dir;
  const std::string db = dir.path() + "/fabric.db";
  LockHolder other(db);  // forked while this process is one thread
  ASSERT_TRUE(other.ok());
  Open(db, /*busy_timeout_ms=*/300);
  Populate();
  ASSERT_EQ(other.Lock(), "ok");
  const absl::Time start = absl::Now();
  auto s = manager_->CreateAllocation(Alloc(2, 3, "locked")).status();
  const absl::Duration waited = absl::Now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_GE(waited, absl::Milliseconds(250)) << "busy_timeout not honoured";
  std::cout << "locked: refused after " << absl::FormatDuration(waited)
            << ": " << s << "\n";
  ExpectMutationsFail("locked");
  ASSERT_EQ(other.Unlock(), "ok");
  ExpectRecovered();
  ExpectIntactAfterRestart();
}

// Clears FS_IMMUTABLE_FL again on destruction, so that the temporary
// directory can be removed whatever the test did.
class ImmutableGuard {
 public:
  explicit ImmutableGuard(std::string path) : path_(std::move(path)) {}
  ~ImmutableGuard() { SetImmutable(path_, false); }

 private:
  std::string path_;
};

TEST_F(StoreFaultsTest, WriteAheadLogMadeImmutable) {
  // Not on tmpfs: it takes the flag but does not enforce it on descriptors
  // already open. ext4 and xfs (where /tmp usually is) do.
  proctest::TempDir dir;
  Open(dir.path() + "/fabric.db");
  Populate();
  const std::string wal = dir.path() + "/fabric.db-wal";
  ImmutableGuard guard(wal);
  const std::string error = SetImmutable(wal, true);
  if (!error.empty()) GTEST_SKIP() << "chattr +i " << wal << ": " << error;
  auto s = manager_->CreateAllocation(Alloc(2, 3, "immutable")).status();
  if (s.ok()) {
    GTEST_SKIP() << "the file system of " << wal
                 << " does not enforce FS_IMMUTABLE_FL on open files";
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  std::cout << "read-only (immutable) log: " << s << "\n";
  ExpectMutationsFail("refused a write");
  ASSERT_EQ(SetImmutable(wal, false), "");
  ExpectRecovered();
  ExpectIntactAfterRestart();
}

// A manager cannot start on a store it cannot write (it records a new
// epoch first), and says so.
TEST(StoreFaultsStartTest, ReadOnlyDatabaseRefusesToStart) {
  std::string tmpl = (std::filesystem::temp_directory_path() /
                      "fabric-store-ro-XXXXXX")
                         .string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const std::string db = tmpl + "/fabric.db";
  {
    auto s = store::OpenSqliteStore({.path = db});
    ASSERT_TRUE(s.ok());
    auto m = service::FabricManager::Open(s->get(), Clock::Real());
    ASSERT_TRUE(m.ok());
  }
  store::SqliteOptions options;
  options.path = db;
  options.read_only = true;
  auto s = store::OpenSqliteStore(options);
  ASSERT_TRUE(s.ok()) << s.status();
  auto m = service::FabricManager::Open(s->get(), Clock::Real());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("read-only"));
  std::cout << "read-only at start: " << m.status() << "\n";
  s->reset();
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace fabric::faults
