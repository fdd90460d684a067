// KubeletStandIn: the kubelet's side of the device plugin API v1beta1, for
// tests (issue 15), written from the kubelet's contract
// (docs/kubernetes.md), not from its code.
//
// It serves v1beta1.Registration on <dir>/kubelet.sock. On each Register it
//   - checks the request as the kubelet does (version "v1beta1", an
//     extended resource name "domain/type", an endpoint that is a file
//     name): INVALID_ARGUMENT otherwise;
//   - records it, in order, with whether the plugin's socket was already
//     served: it dials <dir>/<endpoint> back and calls
//     GetDevicePluginOptions before Register returns;
//   - then reads the plugin's ListAndWatch on a thread of its own into a
//     snapshot per resource that tests wait on (a later registration of
//     the same resource replaces the connection).
// GetPreferredAllocation and Allocate go to the resource's latest
// connection. Restart() is a kubelet restart: it stops serving, ends every
// plugin connection, deletes every socket in the directory and serves
// kubelet.sock again.
//
//   KubeletStandIn kubelet(dir);
//   ASSERT_OK(kubelet.Start());
//   ... start the plugin with --kubelet-dir dir ...
//   ASSERT_TRUE(kubelet.WaitForRegistrations(1, absl::Seconds(10)));
//   kubelet.WaitForDevices("pciefabric.dev/remote-memory",
//       [](const v1beta1::ListAndWatchResponse& r) {
//         return r.devices_size() == 2; }, absl::Seconds(10));
//
// Thread-safe.
#ifndef FABRIC_TESTS_KUBERNETES_KUBELET_STAND_IN_H_
#define FABRIC_TESTS_KUBERNETES_KUBELET_STAND_IN_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "kubelet/deviceplugin/v1beta1/api.grpc.pb.h"

namespace fabric::testing {

class KubeletStandIn {
 public:
  struct Registration {
    v1beta1::RegisterRequest request;
    // Which serving of kubelet.sock took it: 0 first, +1 per Restart().
    int incarnation = 0;
    // The plugin's socket answered GetDevicePluginOptions before Register
    // returned, with these options; else `error` says why not.
    bool plugin_served = false;
    v1beta1::DevicePluginOptions options;
    std::string error;
  };

  // `dir`: the device-plugin directory (must exist; the caller removes it).
  explicit KubeletStandIn(std::string dir);
  ~KubeletStandIn();  // Stop()s

  // Serves kubelet.sock. UNAVAILABLE when it cannot.
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);
  // Stops serving and ends every plugin connection; removes kubelet.sock.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Stop(), deletes every socket in the directory, Start().
  absl::Status Restart() ABSL_LOCKS_EXCLUDED(mu_);

  std::string socket_path() const;

  // Every registration so far, in order.
  std::vector<Registration> registrations() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until there are at least `n`; false on timeout.
  bool WaitForRegistrations(size_t n, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // The latest ListAndWatch list of `resource` (empty before any), and how
  // many lists its connections have received.
  v1beta1::ListAndWatchResponse Devices(const std::string& resource) const
      ABSL_LOCKS_EXCLUDED(mu_);
  int lists(const std::string& resource) const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until `pred` holds for the latest list of `resource` received on
  // its current connection; false on timeout.
  bool WaitForDevices(
      const std::string& resource,
      std::function<bool(const v1beta1::ListAndWatchResponse&)> pred,
      absl::Duration timeout) const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until the ListAndWatch of the current connection of `resource`
  // has ended (the plugin ended it); false on timeout or when there is no
  // connection.
  bool WaitForStreamEnd(const std::string& resource,
                        absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // The kubelet's calls, on the resource's current connection (NOT_FOUND
  // when it has none).
  absl::StatusOr<v1beta1::PreferredAllocationResponse> GetPreferredAllocation(
      const std::string& resource,
      const v1beta1::PreferredAllocationRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1beta1::AllocateResponse> Allocate(
      const std::string& resource, const v1beta1::AllocateRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Service;
  struct Connection {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1beta1::DevicePlugin::Stub> stub;
    grpc::ClientContext stream_ctx;
    std::thread reader;
    bool watching = false;  // guarded by the stand-in's mu_
    bool current = true;    // guarded by the stand-in's mu_
    v1beta1::ListAndWatchResponse latest;  // guarded by the stand-in's mu_
  };

  grpc::Status OnRegister(const v1beta1::RegisterRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ReadList(Connection* conn, std::string resource)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<Connection> CurrentConnection(const std::string& resource)
      const ABSL_LOCKS_EXCLUDED(mu_);
  static void Close(Connection* conn);

  const std::string dir_;

  mutable absl::Mutex mu_;
  // One per serving of kubelet.sock.
  std::unique_ptr<Service> service_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Server> server_ ABSL_GUARDED_BY(mu_);
  int incarnation_ ABSL_GUARDED_BY(mu_) = -1;
  std::vector<Registration> registrations_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Connection>> connections_
      ABSL_GUARDED_BY(mu_);
  // Connections replaced by a later registration, closed at Stop().
  std::vector<std::shared_ptr<Connection>> retired_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> lists_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::testing

#endif  // FABRIC_TESTS_KUBERNETES_KUBELET_STAND_IN_H_
