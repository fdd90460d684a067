// Registrar: serves one resource's DevicePlugin service on its unix socket
// in the kubelet's device-plugin directory and keeps it registered with
// the kubelet (issue 15; the rules are in docs/kubernetes.md).
//
//   - Start() serves first, on <kubelet_dir>/<SocketNameFor(resource)>,
//     and only then starts registering: Register(version "v1beta1",
//     endpoint = the socket's file name, resource_name, options) on
//     <kubelet_dir>/kubelet.sock, retried with backoff until it succeeds.
//   - The directory is watched (inotify, with a stat of the socket every
//     `recheck` as a fallback). When the kubelet restarts it deletes every
//     socket there: when ours is gone (or replaced) the registrar serves
//     again on a fresh socket and registers again. When a kubelet.sock
//     appears (is created or moved in) that is not the one it registered
//     with, it registers again.
//   - Stop() stops watching, ends the service's streams, shuts the server
//     down and removes the socket (if it is still ours).
//
// Thread-safe. Start and Stop are called once each, in that order.
#ifndef FABRIC_DEVICE_PLUGIN_REGISTRAR_H_
#define FABRIC_DEVICE_PLUGIN_REGISTRAR_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_plugin/resource_server.h"
#include "grpcpp/grpcpp.h"

namespace fabric::device_plugin {

// The kubelet's API version and its registration socket's file name.
inline constexpr char kDevicePluginVersion[] = "v1beta1";
inline constexpr char kKubeletSocket[] = "kubelet.sock";

// The socket file name of `resource`: '/' becomes '_', then ".sock"
// ("pciefabric.dev/vf-8086-154c" -> "pciefabric.dev_vf-8086-154c.sock").
std::string SocketNameFor(absl::string_view resource);

struct RegistrarOptions {
  // The kubelet's device-plugin directory (--kubelet-dir).
  std::string kubelet_dir = "/var/lib/kubelet/device-plugins";
  std::string resource;
  // The deadline of one Register call.
  absl::Duration register_timeout = absl::Seconds(5);
  // Backoff between failed registrations: doubles up to retry_max.
  absl::Duration retry_initial = absl::Milliseconds(100);
  absl::Duration retry_max = absl::Seconds(5);
  // How often the socket is stat'ed besides the inotify watch.
  absl::Duration recheck = absl::Seconds(1);
};

class Registrar {
 public:
  // Makes the service for each new socket (a gRPC service belongs to one
  // server at a time, and the socket is served again after a kubelet
  // restart).
  using ServiceFactory = std::function<std::unique_ptr<ResourceServer>()>;

  Registrar(RegistrarOptions options, ServiceFactory factory);
  ~Registrar();  // Stop()s

  // Serves the socket (FAILED_PRECONDITION naming the path when the
  // directory is missing or the path is too long for a unix socket,
  // UNAVAILABLE when gRPC cannot listen there), then starts the thread that
  // registers and watches.
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& socket_path() const { return socket_path_; }
  // Successful Register calls so far, and times the socket was served.
  int registrations() const ABSL_LOCKS_EXCLUDED(mu_);
  int serves() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Status Serve() ABSL_LOCKS_EXCLUDED(mu_);
  void StopServing() ABSL_LOCKS_EXCLUDED(mu_);
  // True when the socket file is the one this registrar last served.
  bool SocketIsOurs() const ABSL_LOCKS_EXCLUDED(mu_);
  // True when kubelet.sock is the one the last Register went to.
  bool RegisteredWithKubelet() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Register() ABSL_LOCKS_EXCLUDED(mu_);
  void Run();

  const RegistrarOptions options_;
  const ServiceFactory factory_;
  const std::string socket_path_;
  const std::string kubelet_socket_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd Stop() writes
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<ResourceServer> service_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Server> server_ ABSL_GUARDED_BY(mu_);
  // The served socket's inode (0: none).
  ino_t socket_inode_ ABSL_GUARDED_BY(mu_) = 0;
  // The kubelet.sock the last successful Register went to (its inode), so
  // that its own creation event does not register a second time.
  ino_t registered_with_ ABSL_GUARDED_BY(mu_) = 0;
  int registrations_ ABSL_GUARDED_BY(mu_) = 0;
  int serves_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fabric::device_plugin

#endif  // FABRIC_DEVICE_PLUGIN_REGISTRAR_H_
