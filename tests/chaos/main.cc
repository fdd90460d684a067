// fabric-chaos: kill -9 campaigns against the manager and simulated agents
// running as processes. Flags only; the campaign is in campaign.cc.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/chaos/campaign.h"
#include "tests/process/process_util.h"

int main(int argc, char** argv) {
  CLI::App app{
      "fabric-chaos: runs the manager and a ring of simulated agents as "
      "processes, storms them with creates and deletes, kills -9 the "
      "manager, an agent or both at a seeded random moment, restarts them, "
      "and checks that nothing acknowledged was lost, duplicated or leaked"};
  fabric::chaos::CampaignOptions options;
  int storm_ms = 2000;
  int converge_timeout_ms = 30000;
  int max_down_ms = 500;
  app.add_option("--cycles", options.cycles, "cycles to run")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--seed", options.seed,
                 "seeds the kill schedule (and the clients' choices); "
                 "--seed S --cycles N replays a campaign's kills")
      ->capture_default_str();
  app.add_option("--start-cycle", options.start_cycle,
                 "number of the first cycle (to replay one cycle alone)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--nodes", options.nodes, "ring size (one agent each)")
      ->check(CLI::Range(3, 32))
      ->capture_default_str();
  app.add_option("--clients", options.clients, "concurrent client threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--storm-ms", storm_ms, "length of each cycle's storm")
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();
  app.add_option("--max-down-ms", max_down_ms,
                 "killed processes stay down for a random time below this")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  app.add_option("--converge-timeout-ms", converge_timeout_ms,
                 "how long the fabric may take to converge")
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();
  app.add_option("--work-dir", options.work_dir,
                 "where each cycle's databases, simulator and logs go "
                 "(default: a new directory under $TMPDIR)");
  app.add_option("--bin-dir", options.bin_dir,
                 "directory of fabric-manager and fabric-agent (default: "
                 "$FABRIC_BIN_DIR, else this program's directory)");
  app.add_flag("--keep", options.keep,
               "keep every cycle's directory (failed ones are always kept)");
  app.add_flag("--stop-on-failure", options.stop_on_failure,
               "stop after the first cycle with a violation");
  bool print_schedule = false;
  app.add_flag("--print-schedule", print_schedule,
               "print each cycle's kill and exit (same seed, same schedule)");
  app.add_flag("--vf-lending,!--no-vf-lending", options.vf_lending,
               "also attach and detach SR-IOV VFs lent by node n0 (on by "
               "default)");
  std::string store = "sqlite";
  app.add_option("--store", store,
                 "the managers' store: sqlite (one manager) or etcd (a "
                 "3-member etcd cluster on loopback and two managers, leader "
                 "and standby; kills also hit the standby and etcd members)")
      ->check(CLI::IsMember({"sqlite", "etcd"}))
      ->capture_default_str();
  options.sim_hardware = FABRIC_CHAOS_SIM_HARDWARE;
  app.add_option("--sim-hardware", options.sim_hardware,
                 "--vf-lending: n0's simulated hardware (protobuf JSON)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  options.store = store == "etcd" ? fabric::chaos::StoreKind::kEtcd
                                  : fabric::chaos::StoreKind::kSqlite;
  options.storm = absl::Milliseconds(storm_ms);
  options.max_down = absl::Milliseconds(max_down_ms);
  if (print_schedule) {
    fabric::chaos::PrintSchedule(options, std::cout);
    return 0;
  }
  options.converge_timeout = absl::Milliseconds(converge_timeout_ms);
  if (options.bin_dir.empty()) {
    const char* env = std::getenv("FABRIC_BIN_DIR");
    options.bin_dir = env != nullptr ? env : fabric::proctest::ExecutableDir();
  }
  for (const char* binary : {"fabric-manager", "fabric-agent"}) {
    const std::string path = options.bin_dir + "/" + binary;
    if (access(path.c_str(), X_OK) != 0) {
      std::cerr << "error: --bin-dir: no executable " << path << "\n";
      return 2;
    }
  }
  return fabric::chaos::RunCampaign(options, std::cout);
}
