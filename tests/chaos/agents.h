// The simulated agents of one chaos cycle, as processes (fabric-agent
// --backend sim), one per node of the ring, each dialling every manager
// (`--manager a,b`: the agent follows the leader). Agent i's output goes to
// <dir>/agent-<i>.log, appended across restarts; the simulated hardware
// lives in sim_dir(). The destructor kills (SIGKILL) and reaps every agent.
// Not thread-safe: the campaign's thread drives it.
#ifndef FABRIC_TESTS_CHAOS_AGENTS_H_
#define FABRIC_TESTS_CHAOS_AGENTS_H_

#include <memory>
#include <string>
#include <vector>

#include "tests/process/process_util.h"

namespace fabric::chaos {

// Node i's id: "n<i>".
std::string NodeId(int i);

class Agents {
 public:
  // `nodes` agents (none started yet); `lender_hardware`, if not empty, is
  // the simulated hardware file of node n0 (the VF lender). `managers`: at
  // least one HOST:PORT.
  Agents(std::string bin_dir, std::string dir, int nodes,
         std::string lender_hardware, const std::vector<std::string>& managers);

  // Starts agent i (again, after Kill).
  void Start(int i);
  // kill -9 agent i, and reaps it.
  void Kill(int i);

  // The agents that exited although nobody killed them, with their exit
  // codes, and those that could not be started at all; one line each with
  // its log, each reported once.
  std::vector<std::string> ReapUnexpected();

  std::string sim_dir() const { return dir_ + "/sim"; }

 private:
  const std::string bin_dir_;
  const std::string dir_;
  const std::string lender_hardware_;
  const std::string managers_;  // comma-separated
  std::vector<std::unique_ptr<proctest::Child>> agents_;
};

}  // namespace fabric::chaos

#endif  // FABRIC_TESTS_CHAOS_AGENTS_H_
