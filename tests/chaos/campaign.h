// fabric-chaos's campaign: cycles of (start a manager and a ring of
// simulated agents as processes; storm them with creates and deletes of
// memory allocations and VF attachments; kill
// -9 the manager, an agent or both at a seeded random moment; restart what
// was killed; wait for the fabric to converge; check that nothing
// acknowledged was lost, duplicated or resurrected, that the invariants hold
// in the hardware and in the durable state, that every READY grant carries
// bytes, and that releasing everything leaves no entry behind).
//
// With `--store etcd` the manager is an HA pair on a 3-member etcd cluster
// (control_plane.h): the kills are of the leader, the standby, one etcd
// member, an agent, or the leader and an agent, and the clients and agents
// follow the leader.
//
// The kill schedule of cycle c depends only on (seed, c, nodes, storm,
// max_down, store), so `--seed S --cycles N` replays it; client timing is
// not replayed.
#ifndef FABRIC_TESTS_CHAOS_CAMPAIGN_H_
#define FABRIC_TESTS_CHAOS_CAMPAIGN_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tests/chaos/control_plane.h"
#include "tests/chaos/ledger.h"

namespace fabric::chaos {

struct CampaignOptions {
  int cycles = 10;
  uint64_t seed = 1;
  // The first cycle's number: `--start-cycle c --cycles 1` replays cycle c
  // of a longer campaign alone.
  int start_cycle = 0;
  int nodes = 4;
  int clients = 4;
  absl::Duration storm = absl::Seconds(2);
  // The killed processes stay down for a random time below this.
  absl::Duration max_down = absl::Milliseconds(500);
  // Each cycle runs in <work_dir>/cycle-<c>, removed after a clean cycle
  // unless `keep`; "" means a fresh directory under $TMPDIR.
  std::string work_dir;
  bool keep = false;
  // Where fabric-manager and fabric-agent are.
  std::string bin_dir;
  // Stop after the first cycle with a violation.
  bool stop_on_failure = false;
  // How long the fabric may take to converge before that is a violation.
  absl::Duration converge_timeout = absl::Seconds(30);
  // Also lend SR-IOV VFs (CreateAttachment / DeleteAttachment) in the storm:
  // node n0's agent simulates the hardware in `sim_hardware` (protobuf
  // JSON, see agent/hw/sim/examples) and n0 lends its device MMIO range.
  bool vf_lending = true;
  std::string sim_hardware;
  // The managers' store (control_plane.h).
  StoreKind store = StoreKind::kSqlite;
};

// kManager is the manager that leads (with SQLite, the only one); kBoth is
// it and an agent. kStandby and kEtcdMember only with `--store etcd`.
enum class KillKind { kManager, kAgent, kBoth, kStandby, kEtcdMember };
const char* KillKindName(KillKind k);

// What cycle `cycle` kills, and when (from the storm's start).
struct KillPlan {
  KillKind kind = KillKind::kManager;
  int agent = -1;   // node index, for kAgent and kBoth
  int member = -1;  // etcd member, for kEtcdMember
  absl::Duration at;
  // How long the killed processes stay down.
  absl::Duration down_for;
};
// Deterministic in its arguments; the SQLite schedule is the one campaigns
// had before `--store` existed.
KillPlan PlanKill(uint64_t seed, int cycle, int nodes, absl::Duration storm,
                  absl::Duration max_down,
                  StoreKind store = StoreKind::kSqlite);

struct CycleReport {
  int cycle = 0;
  KillPlan kill;
  bool killed = false;  // the kill happened (the storm got that far)
  int64_t acknowledged_creates = 0;
  int64_t acknowledged_deletes = 0;
  // Acknowledged creates and deletes by resource kind.
  std::map<std::string, int64_t> acknowledged_by_kind;
  int64_t unknown_attempts = 0;  // retried during the storm
  int resolved = 0;              // in-flight outcomes learnt by retrying
  LedgerFindings ledger;
  int leaked = 0;
  int invariant_violations = 0;
  int verified = 0;
  int verify_failures = 0;
  // Processes that exited without being killed (a manager that exited 1
  // after losing its leadership is not one: see leadership_losses).
  int crashes = 0;
  // etcd: managers restarted after losing the leadership.
  int leadership_losses = 0;
  // Everything else that went wrong (setup, restart, convergence).
  int other_failures = 0;
  // From the end of the storm (in-flight outcomes resolved, killed
  // processes back) until every node is READY at the desired generation and
  // every resource settled.
  bool converged = false;
  absl::Duration converge_time;
  // Kills of the manager that leads: until every agent had registered
  // again, from its restart (SQLite) or from the kill (etcd: the standby
  // takes over).
  bool recovered = false;
  absl::Duration recovery_time;
  std::vector<std::string> problems;  // one line per violation
  std::string dir;                    // kept when there were problems

  int violations() const {
    return ledger.violations() + leaked + invariant_violations +
           verify_failures + crashes + other_failures;
  }
};

// Runs one cycle; never throws, every failure is in the report.
CycleReport RunCycle(const CampaignOptions& options, int cycle);

// One line per cycle.
std::string FormatCycleLine(const CampaignOptions& options,
                            const CycleReport& r);

// "kill agent n2 at 812ms for 120ms".
std::string FormatKillPlan(const KillPlan& p);

// Prints the kill schedule of the campaign's cycles, one line each, without
// running anything.
void PrintSchedule(const CampaignOptions& options, std::ostream& out);

// Runs the campaign, printing a line per cycle (with its problems) and a
// summary to `out`. Returns 0 when no cycle had a violation, else 1.
int RunCampaign(const CampaignOptions& options, std::ostream& out);

}  // namespace fabric::chaos

#endif  // FABRIC_TESTS_CHAOS_CAMPAIGN_H_
