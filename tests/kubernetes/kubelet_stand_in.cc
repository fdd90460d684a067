#include "tests/kubernetes/kubelet_stand_in.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace fabric::testing {

class KubeletStandIn::Service final : public v1beta1::Registration::Service {
 public:
  explicit Service(KubeletStandIn* kubelet) : kubelet_(kubelet) {}
  grpc::Status Register(grpc::ServerContext*,
                        const v1beta1::RegisterRequest* req,
                        v1beta1::Empty*) override {
    return kubelet_->OnRegister(*req);
  }

 private:
  KubeletStandIn* const kubelet_;
};

KubeletStandIn::KubeletStandIn(std::string dir) : dir_(std::move(dir)) {}

KubeletStandIn::~KubeletStandIn() { Stop(); }

std::string KubeletStandIn::socket_path() const {
  return absl::StrCat(dir_, "/kubelet.sock");
}

absl::Status KubeletStandIn::Start() {
  auto service = std::make_unique<Service>(this);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix:", socket_path()),
                           grpc::InsecureServerCredentials());
  builder.RegisterService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve on ", socket_path()));
  }
  absl::MutexLock l(&mu_);
  service_ = std::move(service);
  server_ = std::move(server);
  ++incarnation_;
  return absl::OkStatus();
}

void KubeletStandIn::Close(Connection* conn) {
  conn->stream_ctx.TryCancel();
  if (conn->reader.joinable()) conn->reader.join();
}

void KubeletStandIn::Stop() {
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<Service> service;
  std::map<std::string, std::shared_ptr<Connection>> connections;
  std::vector<std::shared_ptr<Connection>> retired;
  {
    absl::MutexLock l(&mu_);
    server = std::move(server_);
    service = std::move(service_);
  }
  // No Register runs after this, so no new connection is made.
  if (server != nullptr) {
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    server->Wait();
  }
  {
    absl::MutexLock l(&mu_);
    connections = std::move(connections_);
    retired = std::move(retired_);
  }
  for (auto& [resource, conn] : connections) Close(conn.get());
  for (auto& conn : retired) Close(conn.get());
  unlink(socket_path().c_str());
}

absl::Status KubeletStandIn::Restart() {
  Stop();
  // The kubelet deletes every socket in its directory (its checkpoint file
  // stays).
  if (DIR* d = opendir(dir_.c_str()); d != nullptr) {
    while (dirent* e = readdir(d)) {
      const std::string path = absl::StrCat(dir_, "/", e->d_name);
      struct stat st;
      if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path.c_str());
      }
    }
    closedir(d);
  }
  return Start();
}

grpc::Status KubeletStandIn::OnRegister(const v1beta1::RegisterRequest& req) {
  if (req.version() != "v1beta1") {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "version: \"" + req.version() +
                            "\" is not supported; want v1beta1");
  }
  const std::string& name = req.resource_name();
  const size_t slash = name.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == name.size() ||
      name.find('/', slash + 1) != std::string::npos) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "resource_name: \"" + name +
                            "\" is not an extended resource name "
                            "(domain/type)");
  }
  if (req.endpoint().empty() ||
      absl::StrContains(req.endpoint(), "/")) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "endpoint: \"" + req.endpoint() +
                            "\" is not a file name in the directory");
  }
  Registration reg;
  reg.request = req;
  auto conn = std::make_shared<Connection>();
  conn->channel =
      grpc::CreateChannel(absl::StrCat("unix:", dir_, "/", req.endpoint()),
                          grpc::InsecureChannelCredentials());
  conn->stub = v1beta1::DevicePlugin::NewStub(conn->channel);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1beta1::Empty empty;
    grpc::Status s =
        conn->stub->GetDevicePluginOptions(&ctx, empty, &reg.options);
    reg.plugin_served = s.ok();
    if (!s.ok()) reg.error = s.error_message();
  }
  std::shared_ptr<Connection> old;
  {
    absl::MutexLock l(&mu_);
    reg.incarnation = incarnation_;
    registrations_.push_back(reg);
    if (reg.plugin_served) {
      auto& slot = connections_[name];
      old = std::move(slot);
      if (old != nullptr) {
        old->current = false;
        retired_.push_back(old);
      }
      slot = conn;
      conn->watching = true;
    }
  }
  if (old != nullptr) old->stream_ctx.TryCancel();
  if (reg.plugin_served) {
    conn->reader = std::thread([this, c = conn.get(), name] {
      ReadList(c, name);
    });
  }
  return grpc::Status::OK;
}

void KubeletStandIn::ReadList(Connection* conn, std::string resource) {
  v1beta1::Empty empty;
  auto reader = conn->stub->ListAndWatch(&conn->stream_ctx, empty);
  v1beta1::ListAndWatchResponse list;
  while (reader->Read(&list)) {
    absl::MutexLock l(&mu_);
    conn->latest = list;
    if (conn->current) ++lists_[resource];
  }
  reader->Finish();
  absl::MutexLock l(&mu_);
  conn->watching = false;
}

std::vector<KubeletStandIn::Registration> KubeletStandIn::registrations()
    const {
  absl::MutexLock l(&mu_);
  return registrations_;
}

bool KubeletStandIn::WaitForRegistrations(size_t n,
                                          absl::Duration timeout) const {
  absl::MutexLock l(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return registrations_.size() >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

v1beta1::ListAndWatchResponse KubeletStandIn::Devices(
    const std::string& resource) const {
  absl::MutexLock l(&mu_);
  auto it = connections_.find(resource);
  return it == connections_.end() ? v1beta1::ListAndWatchResponse()
                                  : it->second->latest;
}

int KubeletStandIn::lists(const std::string& resource) const {
  absl::MutexLock l(&mu_);
  auto it = lists_.find(resource);
  return it == lists_.end() ? 0 : it->second;
}

bool KubeletStandIn::WaitForDevices(
    const std::string& resource,
    std::function<bool(const v1beta1::ListAndWatchResponse&)> pred,
    absl::Duration timeout) const {
  absl::MutexLock l(&mu_);
  auto holds = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = connections_.find(resource);
    return it != connections_.end() && lists_.count(resource) > 0 &&
           pred(it->second->latest);
  };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), timeout);
}

bool KubeletStandIn::WaitForStreamEnd(const std::string& resource,
                                      absl::Duration timeout) const {
  absl::MutexLock l(&mu_);
  auto it = connections_.find(resource);
  if (it == connections_.end()) return false;
  const Connection* conn = it->second.get();
  auto ended = [conn]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !conn->watching;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&ended), timeout);
}

std::shared_ptr<KubeletStandIn::Connection> KubeletStandIn::CurrentConnection(
    const std::string& resource) const {
  absl::MutexLock l(&mu_);
  auto it = connections_.find(resource);
  return it == connections_.end() ? nullptr : it->second;
}

absl::StatusOr<v1beta1::PreferredAllocationResponse>
KubeletStandIn::GetPreferredAllocation(
    const std::string& resource,
    const v1beta1::PreferredAllocationRequest& req) {
  std::shared_ptr<Connection> conn = CurrentConnection(resource);
  if (conn == nullptr) {
    return absl::NotFoundError(absl::StrCat("no plugin for ", resource));
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1beta1::PreferredAllocationResponse resp;
  grpc::Status s = conn->stub->GetPreferredAllocation(&ctx, req, &resp);
  if (!s.ok()) {
    return FromGrpcStatus(s);
  }
  return resp;
}

absl::StatusOr<v1beta1::AllocateResponse> KubeletStandIn::Allocate(
    const std::string& resource, const v1beta1::AllocateRequest& req) {
  std::shared_ptr<Connection> conn = CurrentConnection(resource);
  if (conn == nullptr) {
    return absl::NotFoundError(absl::StrCat("no plugin for ", resource));
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1beta1::AllocateResponse resp;
  grpc::Status s = conn->stub->Allocate(&ctx, req, &resp);
  if (!s.ok()) {
    return FromGrpcStatus(s);
  }
  return resp;
}

}  // namespace fabric::testing
