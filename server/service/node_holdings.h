// Node holdings: what each node's agent attested its bridge holds (the
// digest of a configuration, common/config_digest.h), kept in the store so
// that a manager that takes over, or restarts, knows it before the agents
// reconnect.
//
// The leader marks a node unsaved (ManagerState::unsaved_holdings) when
// what it knows of the node's agent changes, and its sweeper writes the
// unsaved ones (SaveHoldings, at the sweep's pace: a holding lags its
// report by up to a sweep interval). A holding is kept only for an agent
// that is READY and holds a configuration in full; else its row is
// deleted. On recovery, AgentRegistry::Presume takes a holding whose digest
// is that of what the manager wants of the node now as the agent's: the
// node holds the current generation, and its leases stay READY, until the
// agent reconnects and attests again, or stays silent past its allowance.
// A holding that no longer matches (its node changed after the last save)
// is dropped, and the node's leases wait for its agent, as before.
//
// Functions of a ManagerState; the caller holds the lock that guards it.
#ifndef FABRIC_SERVER_SERVICE_NODE_HOLDINGS_H_
#define FABRIC_SERVER_SERVICE_NODE_HOLDINGS_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "fabric/internal/records.pb.h"
#include "server/service/manager_state.h"
#include "server/store/store.h"

namespace fabric::service {

// The holding to keep for agent `a`; nullopt when none is to be kept (it
// is not READY, or holds no configuration in full).
std::optional<internal::NodeHolding> HoldingOf(const AgentEntry& a);

// Moves unsaved holdings of `s` into `batch` (a Put of HoldingOf, or a
// Delete when there is none or no agent), as many as fit `limits` in one
// write, and returns the nodes moved (empty when none is unsaved). They
// are no longer unsaved; put them back (MarkUnsaved) if the write fails.
std::vector<std::string> TakeUnsavedHoldings(ManagerState& s,
                                             const store::StoreLimits& limits,
                                             store::WriteBatch* batch);
// Marks `nodes`' holdings unsaved again.
void MarkUnsaved(ManagerState& s, const std::vector<std::string>& nodes);

// The holdings table of `store`, by node id; DATA_LOSS naming an
// unreadable row.
absl::StatusOr<std::map<std::string, internal::NodeHolding>> LoadHoldings(
    store::Store* store);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_NODE_HOLDINGS_H_
