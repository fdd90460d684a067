#include "server/ha/run_ha.h"

#include <pthread.h>

#include <iostream>
#include <thread>

#include "common/status_line.h"

namespace fabric::ha {

int RunHaManager(store::EtcdStore* store, const HaOptions& options,
                 const sigset_t& stop_signals, const StartBeside& beside) {
  absl::StatusOr<std::unique_ptr<HaManager>> ha =
      HaManager::Start(store, options);
  if (!ha.ok()) {
    std::cerr << "error: " << ha.status().message() << "\n";
    return ha.status().code() == absl::StatusCode::kUnavailable ? 1 : 2;
  }
  std::function<void()> stop_beside = [] {};
  if (beside != nullptr) {
    absl::StatusOr<std::function<void()>> started = beside(ha->get());
    if (!started.ok()) {
      std::cerr << "error: " << started.status().message() << "\n";
      return 2;
    }
    stop_beside = *std::move(started);
  }
  // The waiter ends on a stop signal; when the manager stops on its own,
  // the waiter is sent one (below).
  sigset_t signals = stop_signals;
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    PrintLine(std::cout, "fabric-manager: signal ", sig, ", shutting down");
    (*ha)->Shutdown();
  });
  absl::Status done = (*ha)->Wait();
  if (!done.ok()) {
    // Stopped on its own: wake the waiter (the signal is blocked, so it is
    // queued for sigwait).
    pthread_kill(waiter.native_handle(), SIGTERM);
  }
  waiter.join();
  stop_beside();
  ha->reset();
  if (!done.ok()) {
    PrintLine(std::cerr, "fabric-manager: exiting: ", done.message());
    return 1;
  }
  return 0;
}

}  // namespace fabric::ha
