// For tests of the agent's /metrics: reads a text-format 0.0.4 exposition
// into samples, and has prometheus_client's reference parser check it.
#ifndef FABRIC_AGENT_TESTING_SCRAPE_H_
#define FABRIC_AGENT_TESTING_SCRAPE_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric::agent::testing {

// Samples by their series as rendered: `name` or `name{l1="v1",l2="v2"}`
// (metrics::Registry renders labels in a fixed order). Comment lines are
// skipped. INVALID_ARGUMENT naming the line for a line without a value.
using Samples = std::map<std::string, double>;
absl::StatusOr<Samples> ParseSamples(absl::string_view text);

// The value of `series` in `samples`, 0 when it is absent.
double Value(const Samples& samples, const std::string& series);

// Runs /usr/bin/python3 (or python3 on PATH) with
// prometheus_client.parser.text_string_to_metric_families over `text`.
// Returns the number of samples it read; UNIMPLEMENTED when no python3 with
// prometheus_client is installed (the caller skips, naming the package);
// INVALID_ARGUMENT with the parser's output when it refuses the text.
absl::StatusOr<int> CheckWithPrometheusClient(absl::string_view text);

}  // namespace fabric::agent::testing

#endif  // FABRIC_AGENT_TESTING_SCRAPE_H_
