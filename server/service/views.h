// Views: the manager's state as API resources. Uncommitted leases are
// left out of every view (ManagerState::GrantVisible).
//
// Functions of a ManagerState; the caller holds the lock that guards it.
#ifndef FABRIC_SERVER_SERVICE_VIEWS_H_
#define FABRIC_SERVER_SERVICE_VIEWS_H_

#include <string>
#include <vector>

#include "fabric/v1/resources.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "server/service/manager_state.h"

namespace fabric::service {

v1::Fabric FabricView(const ManagerState& s, const FabricEntry& f);
v1::Node NodeView(const ManagerState& s, const FabricEntry& f, int node);
// A node in no fabric whose agent registered: no fabric, bridge or ranges;
// the agent's state and what it applied (an empty configuration).
v1::Node UnassignedNodeView(const ManagerState& s, const std::string& id,
                            const AgentEntry& a);
v1::Bridge BridgeView(const ManagerState& s, const FabricEntry& f, int node);
// The ports of `node`'s bridge (BridgeView's, without deriving its
// configuration).
google::protobuf::RepeatedPtrField<v1::Port> PortViews(const FabricEntry& f,
                                                       int node);
v1::Link LinkView(const FabricEntry& f, int link);
v1::AddressMap MapView(const ManagerState& s, const FabricEntry& f, int node);
// A committed lease with its derived state.
v1::Allocation LeaseView(const ManagerState& s, const AllocationEntry& a);
v1::Attachment LeaseView(const ManagerState& s, const AttachmentEntry& a);
// The committed leases `node` of `f` is an end of (an allocation's
// borrower or target; an attachment's lender or borrower), by id. Costs
// O(leases of the node).
template <typename Record>
std::vector<const LeaseEntry<Record>*> NodeLeases(const ManagerState& s,
                                                  const FabricEntry& f,
                                                  int node);
// Every VF of `node` (inventory plus lent ones that vanished), sorted by
// address.
std::vector<v1::VirtualFunction> VfViews(const ManagerState& s,
                                         const FabricEntry& f, int node);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_VIEWS_H_
