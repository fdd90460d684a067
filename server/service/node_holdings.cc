#include "server/service/node_holdings.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/service/records.h"
#include "server/store/batch_limits.h"

namespace fabric::service {

std::optional<internal::NodeHolding> HoldingOf(const AgentEntry& a) {
  if (a.state != v1::Node::READY || a.held_digest.empty()) return std::nullopt;
  internal::NodeHolding h;
  h.set_config_digest(a.held_digest);
  h.set_control_address(a.control_address);
  h.set_backend(a.backend);
  *h.mutable_inventory() = a.inventory;
  for (const auto& [name, shadow] : a.shadows) *h.add_shadows() = shadow;
  for (const auto& [address, health] : a.vf_health) *h.add_vf_health() = health;
  return h;
}

std::vector<std::string> TakeUnsavedHoldings(ManagerState& s,
                                             const store::StoreLimits& limits,
                                             store::WriteBatch* batch) {
  std::vector<std::string> taken;
  while (!s.unsaved_holdings.empty()) {
    const std::string& node = *s.unsaved_holdings.begin();
    auto it = s.agents.find(node);
    std::optional<internal::NodeHolding> h;
    if (it != s.agents.end()) h = HoldingOf(*it->second);
    // Whether `row` fits beside what `batch` holds.
    const auto fits = [&](const store::WriteBatch& row) {
      return store::FitsIn(
          limits, batch->mutations().size() + row.mutations().size(),
          batch->ApproximateBytes() + row.ApproximateBytes());
    };
    store::WriteBatch row;
    if (h.has_value()) row.Put(kTableHoldings, node, h->SerializeAsString());
    if (!h.has_value() || (batch->empty() && !fits(row))) {
      // None to keep, or one no write can hold (an inventory over the
      // store's request limit): the row goes, and after a takeover the
      // node's leases wait for its agent, as without holdings.
      row = store::WriteBatch();
      row.Delete(kTableHoldings, node);
    }
    if (!fits(row)) break;  // the next write takes it
    batch->Append(std::move(row));
    taken.push_back(node);
    s.unsaved_holdings.erase(s.unsaved_holdings.begin());
  }
  return taken;
}

void MarkUnsaved(ManagerState& s, const std::vector<std::string>& nodes) {
  s.unsaved_holdings.insert(nodes.begin(), nodes.end());
}

absl::StatusOr<std::map<std::string, internal::NodeHolding>> LoadHoldings(
    store::Store* store) {
  ASSIGN_OR_RETURN(auto rows, store->Scan(kTableHoldings));
  std::map<std::string, internal::NodeHolding> out;
  for (const auto& [key, value] : rows) {
    if (!out[key].ParseFromString(value)) {
      return absl::DataLossError(
          absl::StrCat("store: holding record \"", key, "\" is unreadable"));
    }
  }
  return out;
}

}  // namespace fabric::service
