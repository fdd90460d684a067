// Stored records and their grants: the store's table names, and the
// conversion between a core::Grant and the placement fields of an
// allocation record or an attachment window.
//
// An allocation owns one grant, named by its id. An attachment owns one
// grant per window, named "{attachment id}.{role}"; grants and agents tell
// them apart by the dot.
//
// Pure functions; thread-compatible.
#ifndef FABRIC_SERVER_SERVICE_RECORDS_H_
#define FABRIC_SERVER_SERVICE_RECORDS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fabric/v1/resources.pb.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/core/fabric_state.h"
#include "server/core/topology.h"

namespace fabric::service {

inline constexpr char kTableMeta[] = "meta";
inline constexpr char kTableFabrics[] = "fabrics";
inline constexpr char kTableLinks[] = "links";
inline constexpr char kTableAllocations[] = "allocations";
inline constexpr char kTableAttachments[] = "attachments";
// Fabrics being deleted in several transactions (a fabric too large to
// delete in one; see PlanDeleteFabric): key the fabric id, value empty.
// While a fabric's key is here, its rows are garbage that recovery deletes.
inline constexpr char kTableDeletingFabrics[] = "deleting_fabrics";

// What each node's agent attested its node holds (internal::NodeHolding),
// by node id; see node_holdings.h.
inline constexpr char kTableHoldings[] = "holdings";

// Every table the manager keeps (the above and kTableRequests), for tools
// that copy a manager's whole state (`fabric-manager migrate`).
std::vector<std::string> StoreTables();

google::protobuf::Timestamp ToProtoTime(absl::Time t);
google::protobuf::Duration ToProtoDuration(absl::Duration d);
absl::Time FromProtoTime(const google::protobuf::Timestamp& t);

std::string AttachmentName(absl::string_view id);
// nodes/{node}/vfs/{0000-3b-00.4}
std::string VfName(absl::string_view node, absl::string_view address);

// The grant of window `role` of attachment `id`.
std::string AttachmentGrantId(absl::string_view id, absl::string_view role);
// The attachment id of an attachment's grant; nullopt for an allocation's.
std::optional<absl::string_view> AttachmentOfGrant(absl::string_view grant_id);
// The allocation or attachment name a grant's windows are tagged with:
// allocations/{id}, or attachments/{id}/{role}.
std::string GrantOwner(absl::string_view grant_id);

// The grants a lease's record owns, by id.
std::vector<std::string> GrantIds(absl::string_view id,
                                  const v1::Allocation& record);
std::vector<std::string> GrantIds(absl::string_view id,
                                  const v1::Attachment& record);

// Grant -> record: the placement of `g` in `topo`.
void SetPlacement(const core::Grant& g, const core::Topology& topo,
                  v1::Allocation* out);
v1::AttachmentWindow WindowOf(absl::string_view role, const core::Grant& g,
                              const core::Topology& topo);

// Record -> grants, for recovery: the grants record `id` owns in `topo`;
// nullopt when it names a node `topo` lacks.
std::optional<std::vector<core::Grant>> GrantsOf(absl::string_view id,
                                                 const v1::Allocation& record,
                                                 const core::Topology& topo);
std::optional<std::vector<core::Grant>> GrantsOf(absl::string_view id,
                                                 const v1::Attachment& record,
                                                 const core::Topology& topo);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_RECORDS_H_
