// Helpers for tests that run the real binaries as child processes.
//
// Every child is owned by a Child object whose destructor kills (SIGKILL)
// and reaps it, so a failing assertion never leaves a process behind.
#ifndef FABRIC_TESTS_PROCESS_PROCESS_UTIL_H_
#define FABRIC_TESTS_PROCESS_PROCESS_UTIL_H_

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace fabric::proctest {

// The directory holding fabric-manager and fabricctl: $FABRIC_BIN_DIR, set
// by ctest.
std::string BinDir();

// The directory holding the running executable (the binaries are built
// side by side), or "" if /proc/self/exe cannot be read.
std::string ExecutableDir();

// A directory under $TMPDIR removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Child {
 public:
  // Starts `argv` with stdout and stderr appended to `log_path`.
  Child(const std::vector<std::string>& argv, const std::string& log_path);
  ~Child();
  Child(Child&& other) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // -1 when the process could not be started (the log says why).
  pid_t pid() const { return pid_; }
  // Sends `sig`; the process is still reaped by Wait() or the destructor.
  void Signal(int sig);
  // Waits for exit; returns the exit code, or 128+signal.
  int Wait();
  // Reaps the process if it has exited, without blocking: true with its
  // exit code (or 128+signal) in *code; false while it runs (or when there
  // is no process).
  bool TryWait(int* code);

 private:
  pid_t pid_ = -1;
};

// Runs `argv` to completion, returning its exit code; stdout goes to *out,
// stderr to *err (either may be null).
int RunCommand(const std::vector<std::string>& argv, std::string* out,
               std::string* err = nullptr);

// How many times slower than a Release build this build runs its
// processes: 5 under AddressSanitizer (ASan roughly triples the CPU each
// process needs, and the sanitizer stage runs two heavy tests at once on
// two cores), else 1.
int SlowdownFactor();

// `base` times SlowdownFactor(): every deadline a test waits on.
absl::Duration Scaled(absl::Duration base);

// Calls `done` every `poll` until it returns true (then true) or until
// Scaled(timeout) has passed (then false, after one last call). Tests wait
// for the state they need with this, never for a fixed time.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout,
             absl::Duration poll = absl::Milliseconds(5));

// Reads a whole file ("" if absent).
std::string ReadFile(const std::string& path);

// Dials 127.0.0.1:`port` with a fresh TCP connection again and again, on a
// thread of its own, from construction until Stop(), and counts the
// connections refused (nothing listened on the port at that moment): what
// clients dialling a server see while it changes listeners. Thread-safe.
class ConnectProbe {
 public:
  explicit ConnectProbe(int port);
  ~ConnectProbe();  // Stop()
  ConnectProbe(const ConnectProbe&) = delete;
  ConnectProbe& operator=(const ConnectProbe&) = delete;

  void Stop();
  int probes() const { return probes_; }
  int refused() const { return refused_; }

 private:
  const int port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> probes_{0};
  std::atomic<int> refused_{0};
  std::thread thread_;
};

// Starts fabric-manager on 127.0.0.1:0 with `db` (no --db when empty, e.g.
// for a manager given --store in `extra_flags`) and returns it with the
// bound port read from its log; -1 port if it did not come up in
// Scaled(10 s) (or exited first).
struct Manager {
  Child child;
  int port;
};
Manager StartManager(const std::string& db, const std::string& log_path,
                     const std::vector<std::string>& extra_flags = {});

// The same for the manager binary at `binary`, listening on 127.0.0.1:`port`
// (0 picks a free port), e.g. to restart a killed manager where its agents
// expect it. An empty `db` passes no --db (e.g. for --store in
// `extra_flags`).
Manager StartManagerAt(const std::string& binary, int port,
                       const std::string& db, const std::string& log_path,
                       const std::vector<std::string>& extra_flags = {});

}  // namespace fabric::proctest

#endif  // FABRIC_TESTS_PROCESS_PROCESS_UTIL_H_
