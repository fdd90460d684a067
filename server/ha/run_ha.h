// fabric-manager's main loop in HA mode (--store etcd://...): runs an
// HaManager until a stop signal (exit 0, after resigning) or until it stops
// on its own (exit 1: it lost the leadership it held, or could not take
// over; the service manager restarts it, and it comes back as a standby).
#ifndef FABRIC_SERVER_HA_RUN_HA_H_
#define FABRIC_SERVER_HA_RUN_HA_H_

#include <csignal>
#include <functional>

#include "server/ha/ha_manager.h"
#include "server/store/etcd/etcd_store.h"

namespace fabric::ha {

// `stop_signals` (which must hold SIGTERM) are blocked in every thread (the
// caller blocked them before any thread started); one thread here waits
// for them. `store` is not
// owned. Returns the process's exit code.
//
// `beside`, when given, starts what serves beside the manager's gRPC
// listener (the REST listener, server/rest) once the HaManager listens; it
// returns how to stop it, which runs before the HaManager stops. An error
// from it stops the manager (exit 2).
using StartBeside =
    std::function<absl::StatusOr<std::function<void()>>(HaManager*)>;
int RunHaManager(store::EtcdStore* store, const HaOptions& options,
                 const sigset_t& stop_signals,
                 const StartBeside& beside = nullptr);

}  // namespace fabric::ha

#endif  // FABRIC_SERVER_HA_RUN_HA_H_
