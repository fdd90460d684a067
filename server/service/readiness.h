// Readiness: the derived state of allocations and attachments. States are
// never stored; they follow from the links, the agents' reports and the
// generation each lease requires.
//
// Functions of a ManagerState; the caller holds the lock that guards it.
#ifndef FABRIC_SERVER_SERVICE_READINESS_H_
#define FABRIC_SERVER_SERVICE_READINESS_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "fabric/v1/resources.pb.h"
#include "server/core/fabric_state.h"
#include "server/service/manager_state.h"

namespace fabric::service {

// Why a grant owned by `owner` (an allocation or attachment name) is not
// in place: DEGRADED when its path is cut, PENDING while an agent on it
// has not applied `required` or reports an error for `owner`, else READY.
// Sets *reason (empty when READY), and *waits_for (when not null) to the
// node index of the first agent on the path it is PENDING for, else -1.
// Walks the path in order and stops at that agent.
v1::Allocation::State GrantState(const ManagerState& s, const FabricEntry& f,
                                 const core::Grant& g, absl::string_view owner,
                                 int64_t required, std::string* reason,
                                 int* waits_for = nullptr);

// The derived state of a committed allocation, and why; *waits_for as
// GrantState's.
v1::Allocation::State DeriveState(const ManagerState& s,
                                  const AllocationEntry& a,
                                  std::string* reason,
                                  int* waits_for = nullptr);
// The derived state of a committed attachment, and why: DEGRADED when a
// window's path is cut or the VF is gone or unhealthy, PENDING until every
// window is applied and the borrower's shadow device is ready.
v1::Attachment::State DeriveState(const ManagerState& s,
                                  const AttachmentEntry& a,
                                  std::string* reason);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_READINESS_H_
