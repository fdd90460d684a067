#include "server/service/manager_state.h"

#include "absl/random/distributions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "server/service/convert.h"
#include "server/service/records.h"

namespace fabric::service {

int64_t ManagerState::BumpGeneration() {
  ++generation_;
  hub_->SetGeneration(generation_);
  return generation_;
}

std::string ManagerState::RandomId(absl::string_view prefix) {
  const uint64_t v = absl::Uniform<uint64_t>(bitgen_) & 0xffffffffffffull;
  return absl::StrCat(prefix, absl::Hex(v, absl::kZeroPad12));
}

absl::StatusOr<FabricEntry*> ManagerState::FindFabric(
    absl::string_view field, absl::string_view name) const {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "fabrics"));
  auto it = fabrics.find(id);
  if (it == fabrics.end()) {
    return absl::NotFoundError(
        absl::StrCat(field, ": fabric \"", id, "\" not found"));
  }
  return it->second.get();
}

absl::StatusOr<std::pair<FabricEntry*, int>> ManagerState::FindNode(
    absl::string_view field, absl::string_view name) const {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "nodes"));
  auto it = node_fabric.find(id);
  if (it == node_fabric.end()) {
    return absl::NotFoundError(
        absl::StrCat(field, ": node \"", id, "\" not found in any fabric"));
  }
  FabricEntry* f = fabrics.at(it->second).get();
  return std::make_pair(f, *f->state.topology().FindNode(id));
}

absl::StatusOr<std::pair<FabricEntry*, int>> ManagerState::FindLink(
    absl::string_view field, absl::string_view name) const {
  ASSIGN_OR_RETURN(std::string id, ParseName(field, name, "links"));
  for (auto& [fid, f] : fabrics) {
    auto idx = f->state.topology().FindLinkByName(id);
    if (idx) return std::make_pair(f.get(), *idx);
  }
  return absl::NotFoundError(absl::StrCat(
      field, ": link \"", id,
      "\" not found; links are named {a}--{b} in the order they were "
      "declared"));
}

absl::StatusOr<VfRef> ManagerState::FindVf(absl::string_view field,
                                           absl::string_view name) const {
  absl::string_view rest = absl::StripPrefix(name, "nodes/");
  std::string node, address;
  const size_t vfs = rest.find("/vfs/");
  if (vfs != absl::string_view::npos) {
    node = std::string(rest.substr(0, vfs));
    address = absl::StrReplaceAll(rest.substr(vfs + 5), {{"-", ":"}});
  } else {
    const size_t slash = rest.find('/');
    if (slash == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": \"", name,
          "\" is not a VF name; use nodes/{node}/vfs/{0000-3b-00.4} or "
          "{node}/{0000:3b:00.4}"));
    }
    node = std::string(rest.substr(0, slash));
    address = std::string(rest.substr(slash + 1));
  }
  if (address.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", name, "\" names no function address"));
  }
  ASSIGN_OR_RETURN(auto fn, FindNode(field, node));
  VfRef ref;
  ref.fabric = fn.first;
  ref.node = fn.second;
  ref.node_name = node;
  ref.address = address;
  if (const AgentEntry* agent = FindAgent(node); agent != nullptr) {
    for (const v1::PciFunction& f : agent->inventory.functions()) {
      if (f.address() == address) {
        ref.function = &f;
        break;
      }
    }
  }
  return ref;
}

const AgentEntry* ManagerState::FindAgent(absl::string_view node) const {
  auto it = agents.find(node);
  return it == agents.end() ? nullptr : it->second.get();
}

const AgentEntry* ManagerState::UnassignedAgent(absl::string_view name) const {
  auto id = ParseName("node", name, "nodes");
  if (!id.ok() || node_fabric.contains(*id)) return nullptr;
  return FindAgent(*id);
}

absl::StatusOr<std::string> ManagerState::ControlAddress(
    absl::string_view field, absl::string_view node) const {
  const AgentEntry* agent = FindAgent(absl::StripPrefix(node, "nodes/"));
  if (agent == nullptr || agent->control_address.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": the agent of ", node,
                     " serves no control address (not registered, or its "
                     "connection to the manager ended)"));
  }
  return agent->control_address;
}

bool ManagerState::GrantVisible(absl::string_view grant_id) const {
  if (auto lease = AttachmentOfGrant(grant_id)) {
    auto it = attachments.find(*lease);
    return it != attachments.end() && it->second->committed;
  }
  auto it = allocations.find(grant_id);
  return it != allocations.end() && it->second->committed;
}

}  // namespace fabric::service
