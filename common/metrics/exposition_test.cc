// Feeds a rendered registry to the reference parsers: prometheus_client's
// text parser (Debian python3-prometheus-client) and `promtool check
// metrics` (Debian prometheus). Each part is skipped, naming the package,
// only when its tool is not installed.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/metrics/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::metrics {
namespace {

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Result RunShell(const std::string& command) {
  Result r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Debian's interpreter first: a pyenv or venv python3 earlier in PATH may
// lack the Debian package.
std::string PythonWithPrometheusClient() {
  for (const char* python : {"/usr/bin/python3", "python3"}) {
    if (RunShell(absl::StrCat(python, " -c 'import prometheus_client.parser'"))
            .exit_code == 0) {
      return python;
    }
  }
  return "";
}

// One registry with every kind of family, escaped labels and +Inf.
std::string RenderSample() {
  Registry r;
  CounterFamily* rpcs =
      r.AddCounter("fabric_rpcs_total", "RPCs served.", {"method", "code"});
  rpcs->WithLabels({"Ping", "OK"})->Increment(3);
  rpcs->WithLabels({"we\"ird\\na\nme", "NOT_FOUND"})->Increment();
  GaugeFamily* g =
      r.AddGauge("fabric_value_bytes", "Help with \\ and\nnewline.", {"kind"});
  g->WithLabels({"inf"})->Set(INFINITY);
  g->WithLabels({"neg"})->Set(-2.5);
  g->WithLabels({"big"})->Set(1e300);
  Histogram* h = r.AddHistogram("fabric_latency_seconds", "Latency.",
                                {"method"}, {0.001, 0.5})
                     ->WithLabels({"Ping"});
  h->Observe(0.0005);
  h->Observe(0.25);
  h->Observe(2);
  r.AddCallback(MetricType::kGauge, "fabric_allocations", "By state.",
                {"state"}, [](SampleWriter& w) {
                  w.Add({"ACTIVE"}, 2);
                  w.Add({"DEGRADED"}, 1);
                });
  return r.Render();
}

TEST(ExpositionTest, PrometheusClientParsesWhatWasRecorded) {
  const std::string python = PythonWithPrometheusClient();
  if (python.empty()) GTEST_SKIP() << "python3-prometheus-client is absent";
  const std::string path = testing::TempDir() + "/exposition.txt";
  std::ofstream(path) << RenderSample();
  // One line per sample: name, labels (sorted), value; JSON-quoted so that
  // escapes are checked after the parser undid them.
  const std::string script = R"PY(
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in f.samples:
        print(json.dumps([f.type, s.name, sorted(s.labels.items()), s.value]))
)PY";
  const Result r = RunShell(absl::StrCat(python, " -c '", script, "' ", path));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::vector<std::string> lines =
      absl::StrSplit(r.output, '\n', absl::SkipEmpty());
  const std::set<std::string> got(lines.begin(), lines.end());
  const std::set<std::string> want = {
      R"(["counter", "fabric_rpcs_total", [["code", "OK"], ["method", "Ping"]], 3.0])",
      R"(["counter", "fabric_rpcs_total", [["code", "NOT_FOUND"], ["method", "we\"ird\\na\nme"]], 1.0])",
      R"(["gauge", "fabric_value_bytes", [["kind", "big"]], 1e+300])",
      R"(["gauge", "fabric_value_bytes", [["kind", "inf"]], Infinity])",
      R"(["gauge", "fabric_value_bytes", [["kind", "neg"]], -2.5])",
      R"(["histogram", "fabric_latency_seconds_bucket", [["le", "0.001"], ["method", "Ping"]], 1.0])",
      R"(["histogram", "fabric_latency_seconds_bucket", [["le", "0.5"], ["method", "Ping"]], 2.0])",
      R"(["histogram", "fabric_latency_seconds_bucket", [["le", "+Inf"], ["method", "Ping"]], 3.0])",
      R"(["histogram", "fabric_latency_seconds_sum", [["method", "Ping"]], 2.2505])",
      R"(["histogram", "fabric_latency_seconds_count", [["method", "Ping"]], 3.0])",
      R"(["gauge", "fabric_allocations", [["state", "ACTIVE"]], 2.0])",
      R"(["gauge", "fabric_allocations", [["state", "DEGRADED"]], 1.0])",
  };
  EXPECT_EQ(got, want) << r.output;
}

TEST(ExpositionTest, PromtoolAcceptsIt) {
  if (RunShell("command -v promtool").exit_code != 0) {
    GTEST_SKIP() << "promtool (Debian package prometheus) is absent";
  }
  const std::string path = testing::TempDir() + "/exposition_promtool.txt";
  std::ofstream(path) << RenderSample();
  const Result r = RunShell(absl::StrCat("promtool check metrics < ", path));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "") << "lint findings";
}

}  // namespace
}  // namespace fabric::metrics
