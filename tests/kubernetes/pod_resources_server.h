// A stand-in for the kubelet's pod-resources API (v1 PodResourcesLister,
// proto/kubelet/podresources/v1/api.proto) on a unix socket, for the device
// plugin's tests: the test says which pods hold which devices, and List
// answers that. Get answers one pod (NOT_FOUND for another);
// GetAllocatableResources answers empty.
//
//   PodResourcesServer kubelet(dir + "/pod-resources.sock");
//   ASSERT_TRUE(kubelet.Start().ok());
//   kubelet.SetPod("default", "p1", "pciefabric.dev/remote-memory", {"mem-n2-0"});
//
// Thread-safe. Test-only.
#ifndef FABRIC_TESTS_KUBERNETES_POD_RESOURCES_SERVER_H_
#define FABRIC_TESTS_KUBERNETES_POD_RESOURCES_SERVER_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "kubelet/podresources/v1/api.grpc.pb.h"

namespace fabric::k8stest {

class PodResourcesServer final : public ::v1::PodResourcesLister::Service {
 public:
  explicit PodResourcesServer(std::string socket_path);
  ~PodResourcesServer() override;

  // Serves on the socket (removing a stale file first). Once.
  absl::Status Start();
  // Stops serving and removes the socket; idempotent.
  void Stop();
  const std::string& socket_path() const { return socket_path_; }

  // Pod `ns`/`name` holds `device_ids` of `resource` (one container,
  // "main"); replaces what it held of that resource.
  void SetPod(const std::string& ns, const std::string& name,
              const std::string& resource,
              const std::vector<std::string>& device_ids);
  // The pod is gone.
  void RemovePod(const std::string& ns, const std::string& name);
  // While set, List fails with UNAVAILABLE.
  void SetFailing(bool failing);
  // How many List calls were answered (or failed).
  int list_calls() const;

  grpc::Status List(grpc::ServerContext* ctx,
                    const ::v1::ListPodResourcesRequest* req,
                    ::v1::ListPodResourcesResponse* resp) override;
  grpc::Status GetAllocatableResources(
      grpc::ServerContext* ctx, const ::v1::AllocatableResourcesRequest* req,
      ::v1::AllocatableResourcesResponse* resp) override;
  grpc::Status Get(grpc::ServerContext* ctx,
                   const ::v1::GetPodResourcesRequest* req,
                   ::v1::GetPodResourcesResponse* resp) override;

 private:
  using PodKey = std::pair<std::string, std::string>;  // namespace, name
  ::v1::PodResources PodLocked(const PodKey& key) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string socket_path_;
  std::unique_ptr<grpc::Server> server_;
  mutable absl::Mutex mu_;
  // pod -> resource -> device ids.
  std::map<PodKey, std::map<std::string, std::vector<std::string>>> pods_
      ABSL_GUARDED_BY(mu_);
  bool failing_ ABSL_GUARDED_BY(mu_) = false;
  int list_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fabric::k8stest

#endif  // FABRIC_TESTS_KUBERNETES_POD_RESOURCES_SERVER_H_
