// ManagerStats: counts over the manager's state that its metrics publish
// (manager_metrics.h), collected in one pass under the manager's lock.
//
// Cost: O(nodes + links + unsettled leases), never O(all leases): READY
// leases are counted from LeaseIds (committed minus unsettled), and only
// the unsettled ones are looked at one by one.
#ifndef FABRIC_SERVER_SERVICE_MANAGER_STATS_H_
#define FABRIC_SERVER_SERVICE_MANAGER_STATS_H_

#include <cstdint>
#include <map>
#include <string>

#include "server/service/manager_state.h"

namespace fabric::service {

struct ManagerStats {
  // Committed allocations and attachments by state name ("READY", ...).
  std::map<std::string, int64_t> allocations;
  std::map<std::string, int64_t> attachments;
  // Every node of every fabric by its agent's state name (a node whose
  // agent never registered is "UNREGISTERED").
  std::map<std::string, int64_t> agents;
  // Registered agents: node id -> GenerationLag(desired, applied).
  std::map<std::string, int64_t> generation_lag;
  // Links that are down, over every fabric.
  int64_t links_down = 0;
  // The manager's generation (what every node should have applied).
  int64_t generation = 0;
  // Nodes whose agent's holding (node_holdings.h) is not durable yet
  // (unsaved, or in a write that has not finished).
  int64_t holdings_unsaved = 0;
};

// How far an agent that applied `applied` is behind `desired`: in
// generations within one epoch (generation = epoch << 32 | n); an agent
// still on an earlier epoch's generation is behind by all of this epoch's
// generations plus one. 0 when it is not behind.
int64_t GenerationLag(int64_t desired, int64_t applied);

// REQUIRES: the manager's lock, which guards `state`.
ManagerStats CollectStats(const ManagerState& state);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_MANAGER_STATS_H_
