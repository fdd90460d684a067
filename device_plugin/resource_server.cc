#include "device_plugin/resource_server.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "google/protobuf/util/message_differencer.h"

namespace fabric::device_plugin {

v1beta1::ListAndWatchResponse DeviceList(absl::Span<const Device> devices) {
  v1beta1::ListAndWatchResponse out;
  for (const Device& d : devices) {
    v1beta1::Device* kd = out.add_devices();
    kd->set_id(d.id);
    kd->set_health(d.offer.healthy() ? kHealthy : kUnhealthy);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> PreferDevices(
    const v1beta1::ContainerPreferredAllocationRequest& request,
    absl::Span<const Device> current) {
  const int size = request.allocation_size();
  const int available = request.available_deviceids_size();
  if (size < 0 || size > available) {
    return absl::InvalidArgumentError(absl::StrCat(
        "allocation_size: ", size, " is not between 0 and the ", available,
        " available_deviceIDs"));
  }
  if (size < request.must_include_deviceids_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "allocation_size: ", size, " is smaller than the ",
        request.must_include_deviceids_size(), " must_include_deviceIDs"));
  }
  absl::flat_hash_set<std::string> avail(
      request.available_deviceids().begin(),
      request.available_deviceids().end());
  absl::flat_hash_set<std::string> must;
  for (const std::string& id : request.must_include_deviceids()) {
    if (!avail.contains(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("must_include_deviceIDs: \"", id,
                       "\" is not among the available_deviceIDs"));
    }
    must.insert(id);
  }
  absl::flat_hash_map<std::string, const Device*> by_id;
  for (const Device& d : current) by_id[d.id] = &d;
  // (must_include first, not a device now last, unhealthy after healthy,
  // hops, load, id)
  using Key = std::tuple<bool, bool, bool, int, double, std::string>;
  std::vector<Key> keys;
  for (const std::string& id : avail) {
    auto it = by_id.find(id);
    const Device* d = it == by_id.end() ? nullptr : it->second;
    keys.emplace_back(!must.contains(id), d == nullptr,
                      d != nullptr && !d->offer.healthy(),
                      d == nullptr ? 0 : d->offer.hops(),
                      d == nullptr ? 0.0 : d->offer.lender_load(), id);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> out;
  for (int i = 0; i < size; ++i) out.push_back(std::get<5>(keys[i]));
  return out;
}

ResourceServer::ResourceServer(std::string resource, const DeviceTable* table,
                               Claimer* claimer)
    : resource_(std::move(resource)), table_(table), claimer_(claimer) {}

void ResourceServer::Shutdown() {
  absl::MutexLock l(&mu_);
  stopping_ = true;
}

bool ResourceServer::stopping() const {
  absl::MutexLock l(&mu_);
  return stopping_;
}

grpc::Status ResourceServer::GetDevicePluginOptions(
    grpc::ServerContext*, const v1beta1::Empty*,
    v1beta1::DevicePluginOptions* resp) {
  resp->set_pre_start_required(false);
  resp->set_get_preferred_allocation_available(true);
  return grpc::Status::OK;
}

grpc::Status ResourceServer::ListAndWatch(
    grpc::ServerContext* ctx, const v1beta1::Empty*,
    grpc::ServerWriter<v1beta1::ListAndWatchResponse>* writer) {
  bool sent = false;
  v1beta1::ListAndWatchResponse last;
  uint64_t seen = table_->version();
  while (!ctx->IsCancelled() && !stopping()) {
    v1beta1::ListAndWatchResponse now = DeviceList(table_->Devices(resource_));
    if (!sent ||
        !google::protobuf::util::MessageDifferencer::Equals(now, last)) {
      if (!writer->Write(now)) break;  // the kubelet went away
      sent = true;
      last = std::move(now);
    }
    // A change after `seen` was read is caught by the next round.
    seen = table_->AwaitChange(seen, absl::Now() + kStreamPoll);
  }
  return grpc::Status::OK;
}

grpc::Status ResourceServer::GetPreferredAllocation(
    grpc::ServerContext*, const v1beta1::PreferredAllocationRequest* req,
    v1beta1::PreferredAllocationResponse* resp) {
  const std::vector<Device> current = table_->Devices(resource_);
  for (int i = 0; i < req->container_requests_size(); ++i) {
    absl::StatusOr<std::vector<std::string>> ids =
        PreferDevices(req->container_requests(i), current);
    if (!ids.ok()) {
      return ToGrpcStatus(absl::Status(
          ids.status().code(), absl::StrCat("container_requests[", i, "].",
                                            ids.status().message())));
    }
    auto* out = resp->add_container_responses();
    for (std::string& id : *ids) out->add_deviceids(std::move(id));
  }
  return grpc::Status::OK;
}

grpc::Status ResourceServer::Allocate(grpc::ServerContext*,
                                      const v1beta1::AllocateRequest* req,
                                      v1beta1::AllocateResponse* resp) {
  // Every id is checked before anything is claimed.
  std::vector<std::vector<Device>> containers;
  for (int i = 0; i < req->container_requests_size(); ++i) {
    absl::flat_hash_set<std::string> listed;
    std::vector<Device>& devices = containers.emplace_back();
    for (const std::string& id : req->container_requests(i).devices_ids()) {
      const std::string field =
          absl::StrCat("container_requests[", i, "].devices_ids");
      if (!listed.insert(id).second) {
        return ToGrpcStatus(absl::InvalidArgumentError(
            absl::StrCat(field, ": \"", id, "\" is listed twice")));
      }
      absl::StatusOr<Device> d = table_->Find(resource_, id);
      if (!d.ok()) {
        return ToGrpcStatus(absl::InvalidArgumentError(
            absl::StrCat(field, ": ", d.status().message())));
      }
      devices.push_back(*std::move(d));
    }
  }
  for (size_t i = 0; i < containers.size(); ++i) {
    absl::Status s = claimer_->Claim(resource_, containers[i],
                                     resp->add_container_responses());
    if (s.ok()) continue;
    for (size_t j = 0; j < i; ++j) {
      for (const Device& d : containers[j]) {
        // Best effort: the pod fails admission either way, and whatever
        // stays held is freed by the PodResources check.
        (void)claimer_->Release(d.id);
      }
    }
    return ToGrpcStatus(absl::Status(
        s.code(), absl::StrCat("container_requests[", i, "]: ", s.message())));
  }
  return grpc::Status::OK;
}

grpc::Status ResourceServer::PreStartContainer(
    grpc::ServerContext*, const v1beta1::PreStartContainerRequest*,
    v1beta1::PreStartContainerResponse*) {
  return grpc::Status::OK;
}

}  // namespace fabric::device_plugin
