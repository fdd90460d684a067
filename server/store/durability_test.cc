// Durability across kill -9: every batch whose Apply returned OK before the
// process was SIGKILLed is in the database after reopening.
//
// What this proves and what it does not: SIGKILL loses the process but not
// the kernel's page cache, so this checks that OK is only returned after the
// transaction is committed to the file (no acknowledgement from memory), and
// that a torn WAL is recovered cleanly. Power loss additionally relies on
// synchronous=FULL fsyncing the WAL on every commit, which a test cannot
// observe without a crash-simulating filesystem.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"
#include "server/store/store.h"
#include "server/store/store_test_util.h"

namespace fabric::store {
namespace {

using ::fabric::store::testing::RawDb;
using ::fabric::store::testing::ScopedTempDir;

constexpr int kChildThreads = 4;
constexpr uint32_t kPerThreadRange = 1000000;

std::string Key(uint32_t n) { return absl::StrFormat("n%010u", n); }
std::string Value(uint32_t n) { return absl::StrFormat("payload-%u", n); }

// Kills and reaps the child when the test ends, even on a failed assertion.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() { KillAndReap(); }
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;

  // SIGKILLs the child (if still unreaped) and returns its wait status.
  int KillAndReap() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      while (waitpid(pid_, &wait_status_, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
    return wait_status_;
  }

 private:
  pid_t pid_;
  int wait_status_ = 0;
};

// The child: kChildThreads writers apply numbered batches in a loop and
// write each acknowledged number to `ack_fd` (4-byte writes are atomic on a
// pipe). Never returns.
[[noreturn]] void RunChild(const std::string& path, uint32_t base, int ack_fd) {
  SqliteOptions options;
  options.path = path;
  auto store = OpenSqliteStore(options);
  if (!store.ok()) {
    std::fprintf(stderr, "child: %s\n", store.status().ToString().c_str());
    _exit(2);
  }
  std::vector<std::thread> writers;
  for (int t = 0; t < kChildThreads; ++t) {
    writers.emplace_back([&, t] {
      for (uint32_t i = 0;; ++i) {
        const uint32_t n = base + t * kPerThreadRange + i;
        WriteBatch batch;
        batch.Put("seq", Key(n), Value(n));
        batch.Put("mirror", Key(n), Value(n));
        const absl::Status status = (*store)->Apply(batch);
        if (!status.ok()) {
          std::fprintf(stderr, "child: %s\n", status.ToString().c_str());
          _exit(3);
        }
        if (write(ack_fd, &n, sizeof(n)) != sizeof(n)) _exit(4);
      }
    });
  }
  for (std::thread& w : writers) w.join();
  _exit(5);
}

// Reads 4-byte acknowledgements from `fd` into `acked` until `deadline`
// passes (or EOF, when `deadline` is infinite).
void ReadAcks(int fd, std::chrono::steady_clock::time_point deadline,
              std::string& carry, std::set<uint32_t>& acked) {
  char buf[4096];
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)
            .count();
    pollfd pfd{fd, POLLIN, 0};
    const int ready =
        poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (ready <= 0) continue;
    const ssize_t got = read(fd, buf, sizeof(buf));
    if (got == 0) return;  // EOF: the child is gone.
    if (got < 0) {
      if (errno == EINTR) continue;
      return;
    }
    carry.append(buf, got);
    size_t used = 0;
    for (; used + 4 <= carry.size(); used += 4) {
      uint32_t n;
      std::memcpy(&n, carry.data() + used, 4);
      acked.insert(n);
    }
    carry.erase(0, used);
  }
}

TEST(DurabilityTest, AcknowledgedBatchesSurviveKill9) {
  ScopedTempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.File("state.db");
  std::set<uint32_t> all_acked;

  // Several rounds on the same file, so later rounds also recover from the
  // WAL a killed round left behind.
  for (uint32_t round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const uint32_t base = (round + 1) * 10 * kPerThreadRange;
    fflush(nullptr);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      RunChild(path, base, fds[1]);
    }
    ChildGuard child(pid);
    close(fds[1]);

    // Wait for the first acknowledgement, then let it run ~200 ms more.
    std::set<uint32_t> acked;
    std::string carry;
    const auto start = std::chrono::steady_clock::now();
    while (acked.empty() && std::chrono::steady_clock::now() - start <
                                std::chrono::seconds(10)) {
      ReadAcks(fds[0],
               std::chrono::steady_clock::now() + std::chrono::milliseconds(10),
               carry, acked);
    }
    ASSERT_FALSE(acked.empty()) << "child never acknowledged a batch";
    ReadAcks(fds[0],
             std::chrono::steady_clock::now() + std::chrono::milliseconds(200),
             carry, acked);
    const int wait_status = child.KillAndReap();
    // Acks written before the kill are still in the pipe.
    ReadAcks(fds[0], std::chrono::steady_clock::time_point::max(), carry,
             acked);
    close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
        << "child exited early with status " << wait_status;
    EXPECT_TRUE(carry.empty());
    std::printf("round %u: %zu batches acknowledged before SIGKILL\n", round,
                acked.size());
    all_acked.insert(acked.begin(), acked.end());

    SqliteOptions options;
    options.path = path;
    auto store = OpenSqliteStore(options);
    ASSERT_TRUE(store.ok()) << store.status();
    for (uint32_t n : all_acked) {
      auto value = (*store)->Get("seq", Key(n));
      ASSERT_TRUE(value.ok())
          << "acknowledged batch " << n << " lost: " << value.status();
      ASSERT_EQ(*value, Value(n));
    }
    // Each batch was atomic: both tables hold the same keys, including
    // batches that committed but were not acknowledged before the kill.
    auto seq = (*store)->Scan("seq");
    auto mirror = (*store)->Scan("mirror");
    ASSERT_TRUE(seq.ok() && mirror.ok());
    EXPECT_EQ(*seq, *mirror);
    EXPECT_GE(seq->size(), all_acked.size());
  }

  RawDb raw(path);
  EXPECT_EQ(*raw.Query("PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace fabric::store
