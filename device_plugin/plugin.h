// Plugin: the kubelet-facing half of fabric-device-plugin (issue 15). For
// every resource the DeviceTable lists (now or later) it runs a Registrar,
// which serves that resource's ResourceServer on its own socket and keeps
// it registered with the kubelet.
//
//   DeviceTable table;
//   OfferFeed feed(feed_options, [&](const v1::OfferSet& s) {
//     table.Apply(s);
//   });
//   Plugin plugin(options, &table, claimer.get());
//   RETURN_IF_ERROR(plugin.Start());
//   feed.Start();
//   ... SIGTERM ...
//   plugin.Stop();   // every socket removed
//
// Thread-safe. The table and the claimer are not owned and must outlive
// the plugin.
#ifndef FABRIC_DEVICE_PLUGIN_PLUGIN_H_
#define FABRIC_DEVICE_PLUGIN_PLUGIN_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "device_plugin/claimer.h"
#include "device_plugin/device_table.h"
#include "device_plugin/registrar.h"

namespace fabric::device_plugin {

struct PluginOptions {
  // Each resource's registrar options, but for the resource itself.
  RegistrarOptions registrar;
  // For tests: called first on the thread that follows the table, before it
  // looks at the table (a test changes the table there, as the offer feed
  // may while the thread is still starting).
  std::function<void()> on_follow_start;
};

class Plugin {
 public:
  Plugin(PluginOptions options, const DeviceTable* table, Claimer* claimer);
  ~Plugin();  // Stop()s

  // Rebuilds the claimer's state from the manager (Claimer::Recover; a
  // failure is logged and the plugin starts anyway: a device it cannot
  // account for is still freed by the PodResources check), then checks
  // that the kubelet directory exists (FAILED_PRECONDITION naming it) and
  // starts following the table. A registrar that cannot start (its socket
  // cannot be served) is logged and tried again at the table's next change.
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);
  // Stops every registrar (removing its socket). Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // The resources served now, sorted.
  std::vector<std::string> resources() const ABSL_LOCKS_EXCLUDED(mu_);
  // The registrar of `resource`, nullptr when it is not served (for tests).
  const Registrar* registrar(const std::string& resource) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Starts a registrar for each resource of the table that has none.
  void AddResources() ABSL_LOCKS_EXCLUDED(mu_);
  // Follows the table from version `seen`, which the resources served
  // already reflect: every change after it adds what it brings.
  void Run(uint64_t seen);

  const PluginOptions options_;
  const DeviceTable* const table_;  // not owned
  Claimer* const claimer_;          // not owned
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::unique_ptr<Registrar>> registrars_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::device_plugin

#endif  // FABRIC_DEVICE_PLUGIN_PLUGIN_H_
