#include "agent/testing/scrape.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace fabric::agent::testing {
namespace {

// Runs `command` under sh; its exit code (-1 if it did not exit) and
// stdout+stderr.
int Run(const std::string& command, std::string* output) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

absl::StatusOr<Samples> ParseSamples(absl::string_view text) {
  Samples out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("no value: ", line));
    }
    absl::string_view v = line.substr(space + 1);
    if (v == "+Inf") {
      value = HUGE_VAL;
    } else if (!absl::SimpleAtod(v, &value)) {
      return absl::InvalidArgumentError(absl::StrCat("bad value: ", line));
    }
    out[std::string(line.substr(0, space))] = value;
  }
  return out;
}

double Value(const Samples& samples, const std::string& series) {
  auto it = samples.find(series);
  return it == samples.end() ? 0 : it->second;
}

absl::StatusOr<int> CheckWithPrometheusClient(absl::string_view text) {
  std::string python;
  for (const char* candidate : {"/usr/bin/python3", "python3"}) {
    std::string ignored;
    if (Run(absl::StrCat(candidate, " -c 'import prometheus_client.parser'"),
            &ignored) == 0) {
      python = candidate;
      break;
    }
  }
  if (python.empty()) {
    return absl::UnimplementedError(
        "python3 with prometheus_client (Debian python3-prometheus-client) "
        "is absent");
  }
  char path[] = "/tmp/agent_metrics_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return absl::InternalError("mkstemp failed");
  close(fd);
  std::ofstream(path) << text;
  const std::string script =
      "import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "print(sum(len(f.samples) for f in "
      "text_string_to_metric_families(open(sys.argv[1]).read())))\n";
  std::string output;
  const int code =
      Run(absl::StrCat(python, " -c '", script, "' ", path), &output);
  unlink(path);
  int samples = 0;
  if (code != 0 ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(output), &samples)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prometheus_client refused the exposition: ", output));
  }
  return samples;
}

}  // namespace fabric::agent::testing
