#include "tests/process/process_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/base/config.h"
#include "absl/time/clock.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace fabric::proctest {

std::string BinDir() {
  const char* dir = std::getenv("FABRIC_BIN_DIR");
  return dir != nullptr ? dir : "build/bin";
}

std::string ExecutableDir() {
  std::error_code ec;
  std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "" : self.parent_path().string();
}

TempDir::TempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "fabric-proc-XXXXXX").string();
  path_ = mkdtemp(tmpl.data());
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {
pid_t Spawn(const std::vector<std::string>& argv, int out_fd, int err_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int error =
      posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    // Say so where the process's output would have gone: a test that only
    // sees a silent log would be left guessing.
    const std::string line = absl::StrCat("process_util: cannot start ",
                                          argv[0], ": ", strerror(error), "\n");
    (void)!write(err_fd, line.data(), line.size());
    return -1;
  }
  return pid;
}

int WaitPid(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}
}  // namespace

Child::Child(const std::vector<std::string>& argv,
             const std::string& log_path) {
  int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_ = Spawn(argv, fd, fd);
  close(fd);
}

Child::~Child() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    WaitPid(pid_);
  }
}

Child::Child(Child&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }

void Child::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

int Child::Wait() {
  if (pid_ <= 0) return -1;
  int code = WaitPid(pid_);
  pid_ = -1;
  return code;
}

bool Child::TryWait(int* code) {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid_, &status, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (r != pid_) return false;
  pid_ = -1;
  if (WIFEXITED(status)) {
    *code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    *code = 128 + WTERMSIG(status);
  } else {
    *code = -1;
  }
  return true;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int RunCommand(const std::vector<std::string>& argv, std::string* out,
               std::string* err) {
  TempDir dir;
  const std::string out_path = dir.path() + "/out";
  const std::string err_path = dir.path() + "/err";
  int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int err_fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = Spawn(argv, out_fd, err_fd);
  close(out_fd);
  close(err_fd);
  if (pid < 0) return -1;
  int code = WaitPid(pid);
  if (out != nullptr) *out = ReadFile(out_path);
  if (err != nullptr) *err = ReadFile(err_path);
  return code;
}

int SlowdownFactor() {
#ifdef ABSL_HAVE_ADDRESS_SANITIZER
  return 5;
#else
  return 1;
#endif
}

absl::Duration Scaled(absl::Duration base) { return base * SlowdownFactor(); }

ConnectProbe::ConnectProbe(int port) : port_(port) {
  thread_ = std::thread([this] {
    while (!stop_) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd >= 0) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<uint16_t>(port_));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, reinterpret_cast<const sockaddr*>(&addr),
                    sizeof(addr)) != 0 &&
            errno == ECONNREFUSED) {
          ++refused_;
        }
        close(fd);
      }
      ++probes_;
      // Pacing (not a wait for a state): a connection every 200 us.
      absl::SleepFor(absl::Microseconds(200));
    }
  });
}

ConnectProbe::~ConnectProbe() { Stop(); }

void ConnectProbe::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout,
             absl::Duration poll) {
  const absl::Time deadline = absl::Now() + Scaled(timeout);
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(poll);
  }
  return done();
}

Manager StartManager(const std::string& db, const std::string& log_path,
                     const std::vector<std::string>& extra_flags) {
  return StartManagerAt(BinDir() + "/fabric-manager", 0, db, log_path,
                        extra_flags);
}

Manager StartManagerAt(const std::string& binary, int port,
                       const std::string& db, const std::string& log_path,
                       const std::vector<std::string>& extra_flags) {
  std::vector<std::string> argv = {binary};
  if (!db.empty()) argv.insert(argv.end(), {"--db", db});
  argv.insert(argv.end(), {"--listen", "127.0.0.1:" + std::to_string(port)});
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  // Only this start's lines are searched for the port.
  const size_t offset = ReadFile(log_path).size();
  Manager m{Child(argv, log_path), -1};
  static const std::regex kListening("listening on 127\\.0\\.0\\.1:([0-9]+)");
  WaitFor(
      [&] {
        std::string log = ReadFile(log_path);
        std::smatch match;
        std::string tail = log.substr(std::min(offset, log.size()));
        if (std::regex_search(tail, match, kListening)) {
          m.port = std::stoi(match[1]);
          return true;
        }
        int code = 0;
        return m.child.TryWait(&code);  // it exited (e.g. port taken)
      },
      absl::Seconds(10), absl::Milliseconds(10));
  return m;
}

}  // namespace fabric::proctest
