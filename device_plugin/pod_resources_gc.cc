#include "device_plugin/pod_resources_gc.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "device_plugin/device.h"
#include "grpcpp/grpcpp.h"

namespace fabric::device_plugin {

PodResourcesGc::PodResourcesGc(PodResourcesGcOptions options, Claimer* claimer)
    : options_(std::move(options)),
      claimer_(claimer),
      stub_(::v1::PodResourcesLister::NewStub(grpc::CreateChannel(
          absl::StrCat("unix://", options_.socket),
          grpc::InsecureChannelCredentials()))) {}

PodResourcesGc::~PodResourcesGc() { Stop(); }

void PodResourcesGc::Start() {
  loop_ = std::thread([this] {
    absl::MutexLock l(&mu_);
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_;
    };
    while (!mu_.AwaitWithTimeout(absl::Condition(&stopping),
                                 options_.interval)) {
      mu_.Unlock();
      // Errors are retried on the next pass; the plugin's log has them
      // through the Claimer.
      (void)RunOnce();
      mu_.Lock();
    }
  });
}

void PodResourcesGc::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (loop_.joinable()) loop_.join();
}

void PodResourcesGc::NoteClaimed(absl::string_view device_id) {
  absl::MutexLock l(&mu_);
  unlisted_since_[std::string(device_id)] = options_.clock->Now();
}

absl::StatusOr<std::set<std::string>> PodResourcesGc::ListInUse() {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.list_timeout));
  ::v1::ListPodResourcesRequest req;
  ::v1::ListPodResourcesResponse resp;
  grpc::Status s = stub_->List(&ctx, req, &resp);
  if (!s.ok()) {
    absl::Status st = FromGrpcStatus(s);
    return absl::Status(st.code(), absl::StrCat("pod-resources List on ",
                                                options_.socket, ": ",
                                                st.message()));
  }
  const std::string prefix = absl::StrCat(kResourceDomain, "/");
  std::set<std::string> in_use;
  for (const ::v1::PodResources& pod : resp.pod_resources()) {
    for (const ::v1::ContainerResources& c : pod.containers()) {
      for (const ::v1::ContainerDevices& d : c.devices()) {
        if (!absl::StartsWith(d.resource_name(), prefix)) continue;
        in_use.insert(d.device_ids().begin(), d.device_ids().end());
      }
    }
  }
  return in_use;
}

absl::StatusOr<std::vector<std::string>> PodResourcesGc::RunOnce() {
  // Held first: a device claimed after the List cannot be taken for
  // unlisted on the strength of a List that came before it.
  const std::vector<std::string> held = claimer_->HeldDeviceIds();
  absl::StatusOr<std::set<std::string>> in_use = ListInUse();
  const absl::Time now = options_.clock->Now();
  std::vector<std::string> expired;
  {
    absl::MutexLock l(&mu_);
    if (!in_use.ok()) {
      unlisted_since_.clear();
      return in_use.status();
    }
    std::map<std::string, absl::Time> next;
    for (const std::string& id : held) {
      if (in_use->count(id) > 0) continue;
      auto it = unlisted_since_.find(id);
      const absl::Time since = it == unlisted_since_.end() ? now : it->second;
      next[id] = since;
      if (now - since >= options_.grace) expired.push_back(id);
    }
    unlisted_since_ = std::move(next);
  }
  std::vector<std::string> released;
  absl::Status first_error;
  for (const std::string& id : expired) {
    absl::Status s = claimer_->Release(id);
    if (!s.ok()) {
      if (first_error.ok()) first_error = s;
      continue;
    }
    released.push_back(id);
    absl::MutexLock l(&mu_);
    unlisted_since_.erase(id);
  }
  if (!first_error.ok()) return first_error;
  return released;
}

}  // namespace fabric::device_plugin
