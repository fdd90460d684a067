#include "common/latency_trace.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fabric {
namespace {

// The trace file's descriptor, or -1; opened once, never closed.
int TraceFd() {
  static const int fd = [] {
    const char* path = std::getenv(LatencyTrace::kEnv);
    if (path == nullptr || *path == '\0') return -1;
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }();
  return fd;
}

}  // namespace

bool LatencyTrace::enabled() { return TraceFd() >= 0; }

int64_t LatencyTrace::NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void LatencyTrace::Record(absl::string_view point, absl::string_view key,
                          int64_t value) {
  const int fd = TraceFd();
  if (fd < 0) return;
  const std::string line =
      absl::StrCat(NowNs(), " ", point, " ", key, " ", value, "\n");
  // Best effort: a short or failed write loses a line of a debugging aid.
  (void)!write(fd, line.data(), line.size());
}

std::vector<LatencyTrace::Point> LatencyTrace::Parse(absl::string_view text) {
  std::vector<Point> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    Point p;
    if (f.size() != 4 || !absl::SimpleAtoi(f[0], &p.ns) ||
        !absl::SimpleAtoi(f[3], &p.value)) {
      continue;
    }
    p.point = std::string(f[1]);
    p.key = std::string(f[2]);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace fabric
