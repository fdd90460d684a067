#include "device_plugin/registrar.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/grpc_status.h"

namespace fabric::device_plugin {
namespace {

// The inode of the socket at `path`, 0 when there is none.
ino_t SocketInode(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  return st.st_ino;
}

}  // namespace

std::string SocketNameFor(absl::string_view resource) {
  return absl::StrCat(absl::StrReplaceAll(resource, {{"/", "_"}}), ".sock");
}

Registrar::Registrar(RegistrarOptions options, ServiceFactory factory)
    : options_(std::move(options)),
      factory_(std::move(factory)),
      socket_path_(absl::StrCat(options_.kubelet_dir, "/",
                                SocketNameFor(options_.resource))),
      kubelet_socket_(
          absl::StrCat(options_.kubelet_dir, "/", kKubeletSocket)) {}

Registrar::~Registrar() { Stop(); }

absl::Status Registrar::Serve() {
  struct stat st;
  if (stat(options_.kubelet_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--kubelet-dir: ", options_.kubelet_dir,
                     " is not a directory"));
  }
  if (socket_path_.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--kubelet-dir: the socket path ", socket_path_, " is longer than ",
        sizeof(sockaddr_un{}.sun_path) - 1, " bytes"));
  }
  // A socket left by an earlier run of the plugin.
  unlink(socket_path_.c_str());
  std::unique_ptr<ResourceServer> service = factory_();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix:", socket_path_),
                           grpc::InsecureServerCredentials());
  builder.RegisterService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve on ", socket_path_));
  }
  absl::MutexLock l(&mu_);
  service_ = std::move(service);
  server_ = std::move(server);
  socket_inode_ = SocketInode(socket_path_);
  ++serves_;
  return absl::OkStatus();
}

void Registrar::StopServing() {
  std::unique_ptr<ResourceServer> service;
  std::unique_ptr<grpc::Server> server;
  ino_t inode;
  {
    absl::MutexLock l(&mu_);
    service = std::move(service_);
    server = std::move(server_);
    inode = socket_inode_;
    socket_inode_ = 0;
  }
  if (service != nullptr) service->Shutdown();
  if (server != nullptr) {
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(1));
    server->Wait();
  }
  if (inode != 0 && SocketInode(socket_path_) == inode) {
    unlink(socket_path_.c_str());
  }
}

bool Registrar::SocketIsOurs() const {
  absl::MutexLock l(&mu_);
  return socket_inode_ != 0 && SocketInode(socket_path_) == socket_inode_;
}

absl::Status Registrar::Register() {
  auto channel = grpc::CreateChannel(absl::StrCat("unix:", kubelet_socket_),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1beta1::Registration::NewStub(channel);
  v1beta1::RegisterRequest req;
  req.set_version(kDevicePluginVersion);
  req.set_endpoint(SocketNameFor(options_.resource));
  req.set_resource_name(options_.resource);
  req.mutable_options()->set_get_preferred_allocation_available(true);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.register_timeout));
  v1beta1::Empty resp;
  const ino_t kubelet = SocketInode(kubelet_socket_);
  grpc::Status s = stub->Register(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  absl::MutexLock l(&mu_);
  registered_with_ = kubelet;
  ++registrations_;
  return absl::OkStatus();
}

absl::Status Registrar::Start() {
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (absl::Status s = Serve(); !s.ok()) return s;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Registrar::Stop() {
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  StopServing();
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  inotify_fd_ = wake_fd_ = -1;
}

bool Registrar::RegisteredWithKubelet() const {
  const ino_t kubelet = SocketInode(kubelet_socket_);
  absl::MutexLock l(&mu_);
  return kubelet != 0 && kubelet == registered_with_;
}

int Registrar::registrations() const {
  absl::MutexLock l(&mu_);
  return registrations_;
}

int Registrar::serves() const {
  absl::MutexLock l(&mu_);
  return serves_;
}

void Registrar::Run() {
  const std::string& resource = options_.resource;
  constexpr uint32_t kEvents = IN_CREATE | IN_DELETE | IN_MOVED_TO |
                               IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF;
  int watch = -1;
  bool need_register = true;
  bool failing = false;  // the last attempt failed (logged once)
  absl::Duration backoff = options_.retry_initial;
  absl::Time next_attempt = absl::Now();
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (stopping_) break;
    }
    if (watch < 0 && inotify_fd_ >= 0) {
      watch = inotify_add_watch(inotify_fd_, options_.kubelet_dir.c_str(),
                                kEvents);
    }
    if (!SocketIsOurs()) {
      // The kubelet deleted it (it restarted): serve a fresh socket.
      StopServing();
      absl::Status s = Serve();
      if (s.ok()) {
        std::cerr << "fabric-device-plugin: " << resource
                  << ": socket gone, serving again on " << socket_path_
                  << std::endl;
        need_register = true;
        next_attempt = absl::Now();
        backoff = options_.retry_initial;
      } else if (!failing) {
        failing = true;
        std::cerr << "fabric-device-plugin: " << resource
                  << ": cannot serve (will keep trying): " << s.message()
                  << std::endl;
      }
    }
    const bool serving = SocketIsOurs();
    if (need_register && serving && absl::Now() >= next_attempt) {
      absl::Status s = Register();
      if (s.ok()) {
        need_register = false;
        failing = false;
        backoff = options_.retry_initial;
        std::cerr << "fabric-device-plugin: " << resource
                  << ": registered with the kubelet at " << kubelet_socket_
                  << std::endl;
      } else {
        if (!failing) {
          failing = true;
          std::cerr << "fabric-device-plugin: " << resource
                    << ": register with " << kubelet_socket_
                    << " failed (will keep trying): " << s.message()
                    << std::endl;
        }
        next_attempt = absl::Now() + backoff;
        backoff = std::min(backoff * 2, options_.retry_max);
      }
    }
    // Not serving: the next try is at the next event or recheck.
    absl::Duration wait = options_.recheck;
    if (need_register && serving) {
      wait = std::min(wait, std::max(absl::ZeroDuration(),
                                     next_attempt - absl::Now()));
    }
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int n = poll(fds, inotify_fd_ >= 0 ? 2 : 1,
                       static_cast<int>(absl::ToInt64Milliseconds(wait)) + 1);
    if (n <= 0 || !(fds[1].revents & POLLIN)) continue;
    alignas(inotify_event) char buf[4096];
    ssize_t len;
    while ((len = read(inotify_fd_, buf, sizeof(buf))) > 0) {
      for (char* p = buf; p < buf + len;) {
        const auto* e = reinterpret_cast<const inotify_event*>(p);
        p += sizeof(inotify_event) + e->len;
        if (e->mask & IN_IGNORED) watch = -1;  // the directory went away
        if (e->len == 0) continue;
        // Our own socket's events are judged by its inode, above.
        if (std::strcmp(e->name, kKubeletSocket) == 0 &&
            (e->mask & (IN_CREATE | IN_MOVED_TO)) && !RegisteredWithKubelet()) {
          need_register = true;
          next_attempt = absl::Now();
          backoff = options_.retry_initial;
        }
      }
    }
  }
}

}  // namespace fabric::device_plugin
