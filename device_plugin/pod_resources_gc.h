// PodResourcesGc: frees the devices no pod holds any more (issue 15). The
// kubelet never tells a device plugin that a pod is done with a device, so
// this asks the kubelet's pod-resources API (v1 PodResourcesLister.List, on
// its unix socket; the API has no watch) every `interval` which device ids
// pods still hold, and releases through Claimer::Release every held device
// (Claimer::HeldDeviceIds) that no pod has listed for `grace`.
//
// Rules:
//   - A listed device is never released, and being listed resets its timer.
//   - A held device's timer starts the first time a pass sees it held and
//     unlisted, so a device claimed less than `grace` ago is never released
//     (the kubelet may not list it yet). NoteClaimed restarts it at once.
//   - A List that fails releases nothing and restarts every timer: an
//     unreachable kubelet says nothing about what pods hold.
//   - Only devices of this plugin's resources (kResourceDomain) count as
//     listed; ids are matched as the kubelet reports them.
// Thread-safe.
#ifndef FABRIC_DEVICE_PLUGIN_POD_RESOURCES_GC_H_
#define FABRIC_DEVICE_PLUGIN_POD_RESOURCES_GC_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "device_plugin/claimer.h"
#include "kubelet/podresources/v1/api.grpc.pb.h"

namespace fabric::device_plugin {

inline constexpr absl::string_view kPodResourcesSocket =
    "/var/lib/kubelet/pod-resources/kubelet.sock";

struct PodResourcesGcOptions {
  // The kubelet's pod-resources socket (a path; "unix://" is added).
  std::string socket = std::string(kPodResourcesSocket);
  // Between two passes of the background loop.
  absl::Duration interval = absl::Seconds(10);
  // How long a held device may go unlisted before it is released.
  absl::Duration grace = absl::Seconds(30);
  // Deadline of one List call.
  absl::Duration list_timeout = absl::Seconds(5);
  // Measures `grace`; not owned, must outlive the GC.
  Clock* clock = Clock::Real();
};

class PodResourcesGc {
 public:
  // `claimer` is not owned and must outlive the GC.
  PodResourcesGc(PodResourcesGcOptions options, Claimer* claimer);
  // Stops the loop.
  ~PodResourcesGc();

  PodResourcesGc(const PodResourcesGc&) = delete;
  PodResourcesGc& operator=(const PodResourcesGc&) = delete;

  // Starts the background loop (a pass every `interval`). Once.
  void Start();
  // Stops and joins the loop; idempotent.
  void Stop();

  // One pass. Returns the ids it released, or List's error (then nothing is
  // released). A Release that fails is retried on the next pass; the first
  // such error is returned after the pass has tried every device.
  absl::StatusOr<std::vector<std::string>> RunOnce();

  // Restarts `device_id`'s timer (call after claiming it).
  void NoteClaimed(absl::string_view device_id);

 private:
  // The device ids of our resources that pods hold.
  absl::StatusOr<std::set<std::string>> ListInUse();

  const PodResourcesGcOptions options_;
  Claimer* const claimer_;
  const std::unique_ptr<::v1::PodResourcesLister::Stub> stub_;

  absl::Mutex mu_;
  // Held and unlisted since.
  std::map<std::string, absl::Time> unlisted_since_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loop_;
};

}  // namespace fabric::device_plugin

#endif  // FABRIC_DEVICE_PLUGIN_POD_RESOURCES_GC_H_
