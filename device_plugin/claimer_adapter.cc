// NewFabricClaimer: FabricClaimer behind the Claimer interface, filling the
// kubelet's ContainerAllocateResponse. Built only with the kubelet's v1beta1
// device plugin API (target kubelet_deviceplugin_proto).
#include "device_plugin/claimer_impl.h"
#include "kubelet/deviceplugin/v1beta1/api.pb.h"

namespace fabric::device_plugin {
namespace {

class FabricClaimerAdapter : public Claimer {
 public:
  explicit FabricClaimerAdapter(std::unique_ptr<FabricClaimer> claimer)
      : claimer_(std::move(claimer)) {}

  absl::Status Claim(absl::string_view resource,
                     absl::Span<const Device> devices,
                     v1beta1::ContainerAllocateResponse* response) override {
    absl::StatusOr<ClaimedDevices> claimed =
        claimer_->Claim(resource, devices);
    if (!claimed.ok()) return claimed.status();
    for (const std::string& name : claimed->cdi_devices) {
      response->add_cdi_devices()->set_name(name);
    }
    for (const auto& [k, v] : claimed->envs) (*response->mutable_envs())[k] = v;
    return absl::OkStatus();
  }
  absl::Status Release(absl::string_view device_id) override {
    return claimer_->Release(device_id);
  }
  absl::Status Recover() override { return claimer_->Recover(); }
  std::vector<std::string> HeldDeviceIds() const override {
    return claimer_->HeldDeviceIds();
  }

 private:
  const std::unique_ptr<FabricClaimer> claimer_;
};

}  // namespace

std::unique_ptr<Claimer> NewFabricClaimer(
    ClaimerOptions options, std::shared_ptr<client::FabricClient> client,
    std::string owner) {
  return std::make_unique<FabricClaimerAdapter>(std::make_unique<FabricClaimer>(
      std::move(options), std::move(client), std::move(owner)));
}

}  // namespace fabric::device_plugin
