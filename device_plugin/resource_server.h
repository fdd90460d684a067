// ResourceServer: the kubelet's v1beta1.DevicePlugin service for one
// resource name (issue 15), over the devices a DeviceTable lists for it.
// The registrar (registrar.h) serves it on the resource's unix socket.
//
//   - GetDevicePluginOptions: get_preferred_allocation_available, no
//     PreStartContainer.
//   - ListAndWatch: the resource's whole device list at once, then a new
//     list whenever what the kubelet sees of it (ids, health) changes: a
//     device offered away or lent elsewhere disappears, an unhealthy offer
//     is "Unhealthy", a recovered one "Healthy". Ends when the kubelet
//     cancels it or at Shutdown().
//   - GetPreferredAllocation: PreferDevices() per container request.
//   - Allocate: every id of every container request must be a current
//     device of this resource, listed once (else INVALID_ARGUMENT naming
//     it, and nothing is claimed); then Claimer::Claim per container
//     request, in order. When one fails, the devices of the containers
//     claimed before it in this call are released and its error returned.
//   - PreStartContainer: does nothing.
//
// Thread-safe. The table and the claimer are not owned and must outlive
// the server.
#ifndef FABRIC_DEVICE_PLUGIN_RESOURCE_SERVER_H_
#define FABRIC_DEVICE_PLUGIN_RESOURCE_SERVER_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "device_plugin/claimer.h"
#include "device_plugin/device.h"
#include "device_plugin/device_table.h"
#include "kubelet/deviceplugin/v1beta1/api.grpc.pb.h"

namespace fabric::device_plugin {

// The kubelet's health values.
inline constexpr char kHealthy[] = "Healthy";
inline constexpr char kUnhealthy[] = "Unhealthy";

// What ListAndWatch sends for `devices`: each id with its health, in order.
v1beta1::ListAndWatchResponse DeviceList(absl::Span<const Device> devices);

// The devices to give one container, best first, `request.allocation_size`
// of them: every must_include id first (in id order), then the other
// available ids by fewest ring hops, then lowest lender load, then id.
// Healthy devices come before unhealthy ones, and available ids that are
// not in `current` (not devices now) come last, by id.
// INVALID_ARGUMENT naming the field when allocation_size is negative or
// larger than the available ids, when it is smaller than the must_include
// ids, or when a must_include id is not available.
absl::StatusOr<std::vector<std::string>> PreferDevices(
    const v1beta1::ContainerPreferredAllocationRequest& request,
    absl::Span<const Device> current);

class ResourceServer final : public v1beta1::DevicePlugin::Service {
 public:
  ResourceServer(std::string resource, const DeviceTable* table,
                 Claimer* claimer);

  const std::string& resource() const { return resource_; }

  // Ends the open ListAndWatch streams (within kStreamPoll) and every later
  // one at once; call before shutting the gRPC server down.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  grpc::Status GetDevicePluginOptions(
      grpc::ServerContext* ctx, const v1beta1::Empty* req,
      v1beta1::DevicePluginOptions* resp) override;
  grpc::Status ListAndWatch(
      grpc::ServerContext* ctx, const v1beta1::Empty* req,
      grpc::ServerWriter<v1beta1::ListAndWatchResponse>* writer) override;
  grpc::Status GetPreferredAllocation(
      grpc::ServerContext* ctx, const v1beta1::PreferredAllocationRequest* req,
      v1beta1::PreferredAllocationResponse* resp) override;
  grpc::Status Allocate(grpc::ServerContext* ctx,
                        const v1beta1::AllocateRequest* req,
                        v1beta1::AllocateResponse* resp) override;
  grpc::Status PreStartContainer(
      grpc::ServerContext* ctx, const v1beta1::PreStartContainerRequest* req,
      v1beta1::PreStartContainerResponse* resp) override;

  // How often an idle ListAndWatch looks for its cancellation.
  static constexpr absl::Duration kStreamPoll = absl::Milliseconds(100);

 private:
  bool stopping() const ABSL_LOCKS_EXCLUDED(mu_);

  const std::string resource_;
  const DeviceTable* const table_;  // not owned
  Claimer* const claimer_;          // not owned
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fabric::device_plugin

#endif  // FABRIC_DEVICE_PLUGIN_RESOURCE_SERVER_H_
