#include "server/service/manager_stats.h"

namespace fabric::service {
namespace {

template <typename Record>
void CountLeases(const ManagerState& state, const FabricEntry& fabric,
                 std::map<std::string, int64_t>* out) {
  const LeaseIds& ids = fabric.lease_ids<Record>();
  const int64_t ready =
      ids.committed - static_cast<int64_t>(ids.unsettled.size());
  if (ready > 0) {
    (*out)[Record::State_Name(Record::READY)] += ready;
  }
  for (absl::string_view id : ids.unsettled) {
    auto it = state.leases<Record>().find(id);
    if (it == state.leases<Record>().end()) continue;
    ++(*out)[Record::State_Name(it->second->last_state)];
  }
}

}  // namespace

int64_t GenerationLag(int64_t desired, int64_t applied) {
  if (applied >= desired) return 0;
  constexpr int64_t kCounterMask = (int64_t{1} << 32) - 1;
  if ((desired >> 32) == (applied >> 32)) return desired - applied;
  return (desired & kCounterMask) + 1;
}

ManagerStats CollectStats(const ManagerState& state) {
  ManagerStats out;
  out.generation = state.generation();
  out.holdings_unsaved =
      static_cast<int64_t>(state.unsaved_holdings.size()) +
      state.holdings_writing;
  for (const auto& [id, fabric] : state.fabrics) {
    CountLeases<v1::Allocation>(state, *fabric, &out.allocations);
    CountLeases<v1::Attachment>(state, *fabric, &out.attachments);
    for (bool up : fabric->state.link_states()) {
      if (!up) ++out.links_down;
    }
    for (const auto& node : fabric->record.spec().nodes()) {
      auto agent = state.agents.find(node.name());
      ++out.agents[v1::Node::AgentState_Name(
          agent == state.agents.end() ? v1::Node::UNREGISTERED
                                      : agent->second->state)];
    }
  }
  for (const auto& [node, agent] : state.agents) {
    out.generation_lag[node] =
        GenerationLag(out.generation, state.HeldGeneration(node, *agent));
  }
  return out;
}

}  // namespace fabric::service
