// Recovery: what the manager reads back from the store on restart.
//
// Starts a new epoch (durable before anything is served, so generations
// keep increasing across restarts), then restores every fabric, link
// state, allocation and attachment, and the newest request ids.
#ifndef FABRIC_SERVER_SERVICE_RECOVERY_H_
#define FABRIC_SERVER_SERVICE_RECOVERY_H_

#include "absl/status/status.h"
#include "server/service/manager_state.h"
#include "server/service/request_log.h"
#include "server/store/store.h"

namespace fabric::service {

// Loads `store` into the empty `state` and `requests`, and bumps the
// generation to the first of the new epoch. DATA_LOSS for a record that is
// unreadable or no longer fits (an unreadable request record only costs
// idempotency: it is deleted); the store's errors as they come. The caller
// holds the lock that guards `state` and `requests`.
absl::Status Recover(store::Store* store, ManagerState* state,
                     RequestLog* requests);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_RECOVERY_H_
