// fabric-overload-bench: several hundred concurrent clients against the real
// fabric-manager (see overload.h). Prints clients, requests, OK /
// RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED / other counts, p50/p99 latency
// and the manager's resident memory before, at its peak and after.
//
//   fabric-overload-bench --clients 400 --duration 10s
//   fabric-overload-bench --clients 400 --manager-flag=--max-inflight=0
//
// Exit code 1 when the manager crashed, answered anything but OK,
// RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED, or leaked allocations.
#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/time/time.h"
#include "tests/faults/overload.h"

int main(int argc, char** argv) {
  CLI::App app{"fabric-overload-bench: the manager under hundreds of clients"};
  fabric::faults::OverloadOptions options;
  std::string duration = "5s";
  std::string deadline = "2s";
  std::string output = "table";
  app.add_option("--clients", options.clients, "concurrent client threads")
      ->capture_default_str();
  app.add_option("--duration", duration, "how long the load lasts")
      ->capture_default_str();
  app.add_option("--deadline", deadline, "deadline of every call")
      ->capture_default_str();
  app.add_option("--nodes", options.nodes, "ring size")->capture_default_str();
  app.add_option("--channels", options.channels,
                 "connections the clients share")
      ->capture_default_str();
  app.add_option("--create-weight", options.create_weight,
                 "weight of create+delete")
      ->capture_default_str();
  app.add_option("--ping-weight", options.ping_weight, "weight of Ping")
      ->capture_default_str();
  app.add_option("--list-weight", options.list_weight,
                 "weight of ListAllocations")
      ->capture_default_str();
  bool no_request_ids = false;
  app.add_flag("--no-request-ids", no_request_ids,
               "send creates and deletes without request ids");
  app.add_option("--manager-flag", options.manager_flags,
                 "extra fabric-manager flag (repeatable), e.g. "
                 "--manager-flag=--max-inflight=64");
  app.add_option("-o,--output", output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  CLI11_PARSE(app, argc, argv);
  options.request_ids = !no_request_ids;
  if (!absl::ParseDuration(duration, &options.duration) ||
      !absl::ParseDuration(deadline, &options.deadline)) {
    std::cerr << "error: --duration and --deadline take durations (5s)\n";
    return 2;
  }
  auto report = fabric::faults::RunOverload(options);
  if (!report.ok()) {
    std::cerr << "error: " << report.status() << "\n";
    return 1;
  }
  std::cout << (output == "json" ? fabric::faults::FormatJson(*report)
                                 : fabric::faults::FormatTable(*report));
  const auto& all = report->ops.at("all");
  return report->manager_alive && report->ping_after_ok && all.other == 0 &&
                 report->leftover_allocations == 0
             ? 0
             : 1;
}
