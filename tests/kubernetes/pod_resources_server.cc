#include "tests/kubernetes/pod_resources_server.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace fabric::k8stest {

PodResourcesServer::PodResourcesServer(std::string socket_path)
    : socket_path_(std::move(socket_path)) {}

PodResourcesServer::~PodResourcesServer() { Stop(); }

absl::Status PodResourcesServer::Start() {
  unlink(socket_path_.c_str());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix://", socket_path_),
                           grpc::InsecureServerCredentials());
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve pod-resources on ", socket_path_));
  }
  return absl::OkStatus();
}

void PodResourcesServer::Stop() {
  if (server_ == nullptr) return;
  server_->Shutdown();
  server_->Wait();
  server_.reset();
  unlink(socket_path_.c_str());
}

void PodResourcesServer::SetPod(const std::string& ns, const std::string& name,
                                const std::string& resource,
                                const std::vector<std::string>& device_ids) {
  absl::MutexLock l(&mu_);
  pods_[{ns, name}][resource] = device_ids;
}

void PodResourcesServer::RemovePod(const std::string& ns,
                                   const std::string& name) {
  absl::MutexLock l(&mu_);
  pods_.erase({ns, name});
}

void PodResourcesServer::SetFailing(bool failing) {
  absl::MutexLock l(&mu_);
  failing_ = failing;
}

int PodResourcesServer::list_calls() const {
  absl::MutexLock l(&mu_);
  return list_calls_;
}

::v1::PodResources PodResourcesServer::PodLocked(const PodKey& key) const {
  ::v1::PodResources pod;
  pod.set_namespace_(key.first);
  pod.set_name(key.second);
  ::v1::ContainerResources* c = pod.add_containers();
  c->set_name("main");
  for (const auto& [resource, ids] : pods_.at(key)) {
    ::v1::ContainerDevices* d = c->add_devices();
    d->set_resource_name(resource);
    for (const std::string& id : ids) d->add_device_ids(id);
  }
  return pod;
}

grpc::Status PodResourcesServer::List(grpc::ServerContext*,
                                      const ::v1::ListPodResourcesRequest*,
                                      ::v1::ListPodResourcesResponse* resp) {
  absl::MutexLock l(&mu_);
  ++list_calls_;
  if (failing_) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the kubelet is restarting");
  }
  for (const auto& [key, resources] : pods_) {
    *resp->add_pod_resources() = PodLocked(key);
  }
  return grpc::Status::OK;
}

grpc::Status PodResourcesServer::GetAllocatableResources(
    grpc::ServerContext*, const ::v1::AllocatableResourcesRequest*,
    ::v1::AllocatableResourcesResponse*) {
  return grpc::Status::OK;
}

grpc::Status PodResourcesServer::Get(grpc::ServerContext*,
                                     const ::v1::GetPodResourcesRequest* req,
                                     ::v1::GetPodResourcesResponse* resp) {
  absl::MutexLock l(&mu_);
  const PodKey key{req->pod_namespace(), req->pod_name()};
  if (pods_.count(key) == 0) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("pod ", key.first, "/", key.second,
                                     " not found"));
  }
  *resp->mutable_pod_resources() = PodLocked(key);
  return grpc::Status::OK;
}

}  // namespace fabric::k8stest
