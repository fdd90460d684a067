#include "server/ha/ha_manager.h"

#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/host_port.h"
#include "common/listen_probe.h"
#include "common/status_line.h"

namespace fabric::ha {

absl::StatusOr<std::unique_ptr<HaManager>> HaManager::Start(
    store::EtcdStore* store, HaOptions options) {
  absl::StatusOr<HostPort> listen = ParseHostPort("--listen", options.listen);
  if (!listen.ok()) return listen.status();
  // The standby and then the leader's server share the port across the
  // switch (reuse_port), so it is never closed to clients; nobody else may
  // hold it: checked without SO_REUSEPORT first, as a lone manager's.
  if (absl::Status free = ProbeListen("--listen", *listen); !free.ok()) {
    return free;
  }
  options.server.reuse_port = true;
  std::unique_ptr<HaManager> ha(new HaManager(store, std::move(options)));
  absl::StatusOr<std::unique_ptr<StandbyServer>> standby =
      StandbyServer::Start(ha->options_.listen, ha->options_.server);
  if (!standby.ok()) return standby.status();
  ha->address_ =
      HostPort{listen->host, static_cast<uint16_t>((*standby)->port())}
          .ToString();
  {
    absl::MutexLock l(&ha->mu_);
    ha->standby_ = *std::move(standby);
  }
  ha->gate_ = std::make_unique<StoreGate>(
      store, StoreGateOptions{.clock = ha->options_.clock},
      [raw = ha.get()](const absl::Status&) { raw->Post({Event::kLost, {}}); });
  ha->loop_ = std::thread([raw = ha.get()] { raw->Loop(); });

  ElectionOptions election = ha->options_.election;
  election.address = ha->address_;
  LeaderElection::Callbacks callbacks;
  HaManager* raw = ha.get();
  callbacks.on_elected = [raw](const store::Fence& fence) {
    raw->Post({Event::kElected, fence});
  };
  callbacks.on_lost = [raw] { raw->Post({Event::kLost, {}}); };
  callbacks.on_unreachable = [gate = ha->gate_.get()](const absl::Status& s) {
    gate->LeaseUnconfirmed(s);
  };
  callbacks.on_reachable = [gate = ha->gate_.get()] { gate->LeaseConfirmed(); };
  callbacks.on_leader = [raw](const std::optional<LeaderInfo>& leader) {
    absl::MutexLock l(&raw->mu_);
    if (raw->standby_ == nullptr) return;
    raw->standby_->SetLeader(leader.has_value()
                                 ? std::optional<std::string>(leader->address)
                                 : std::nullopt);
  };
  absl::StatusOr<std::unique_ptr<LeaderElection>> started =
      LeaderElection::Start(election, std::move(callbacks));
  if (!started.ok()) return started.status();  // ~HaManager stops the rest
  ha->election_ = *std::move(started);
  absl::StatusOr<std::unique_ptr<ManagerRegistry>> registry =
      ManagerRegistry::Open({election.client, election.prefix});
  if (!registry.ok()) return registry.status();
  ha->registry_ = *std::move(registry);
  if (absl::Status s = ha->registry_->Join(
          {.address = ha->address_,
           .store = ha->options_.server.store,
           .start_time = absl::Now(),
           .version = std::string(service::BuildVersion())},
          [e = ha->election_.get()] { return e->lease(); });
      !s.ok()) {
    return s;
  }
  PrintLine(std::cout, "fabric-manager listening on ", ha->address_,
            " as a standby, campaigning for leadership");
  return ha;
}

HaManager::~HaManager() { Shutdown(); }

HaManager::Role HaManager::role() const {
  absl::MutexLock l(&mu_);
  return role_;
}

std::shared_ptr<grpc::Channel> HaManager::InProcessChannel() const {
  absl::MutexLock l(&mu_);
  if (server_ != nullptr) return server_->InProcessChannel();
  if (standby_ != nullptr) return standby_->InProcessChannel();
  return nullptr;
}

std::optional<service::ManagerStats> HaManager::Stats() const {
  absl::MutexLock l(&serving_mu_);
  if (serving_manager_ == nullptr) return std::nullopt;
  return serving_manager_->Stats();
}

uint64_t HaManager::ShedRequests() const {
  absl::MutexLock l(&serving_mu_);
  return serving_server_ == nullptr ? 0
                                    : serving_server_->admission().rejected();
}

service::FabricManager* HaManager::manager() {
  absl::MutexLock l(&mu_);
  return manager_.get();
}

void HaManager::Post(Event event) {
  absl::MutexLock l(&mu_);
  events_.push_back(std::move(event));
}

void HaManager::Loop() {
  while (true) {
    Event event;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(
          +[](std::deque<Event>* events) { return !events->empty(); },
          &events_));
      event = std::move(events_.front());
      events_.pop_front();
    }
    switch (event.kind) {
      case Event::kStop:
        return;
      case Event::kElected:
        if (role() != Role::kStandby) break;
        if (absl::Status s = TakeOver(event.fence); !s.ok()) {
          PrintLine(std::cerr, "fabric-manager: could not take over as leader: ",
                    s.message(), "; exiting");
          Stop(s);
          return;
        }
        break;
      case Event::kLost:
        if (role() != Role::kLeader) break;
        PrintLine(std::cerr,
                  "fabric-manager: lost the leadership (the lease expired "
                  "or a write found the fence gone); stopped serving; "
                  "exiting, to be restarted as a standby");
        Stop(absl::AbortedError(
            "lost the leadership; restart this manager as a standby"));
        return;
    }
  }
}

absl::Status HaManager::TakeOver(const store::Fence& fence) {
  PrintLine(std::cout, "fabric-manager: elected leader (", fence.key, " at ",
            fence.create_revision, "); loading the state");
  // Every write from now on, starting with recovery's next epoch, is
  // conditioned on this leadership.
  store_->SetFence(fence, [this] { Post({Event::kLost, {}}); });
  absl::StatusOr<std::unique_ptr<service::FabricManager>> manager =
      service::FabricManager::Open(gate_.get(), options_.clock,
                                   options_.manager);
  if (!manager.ok()) {
    return absl::Status(manager.status().code(),
                        absl::StrCat("loading the state: ",
                                     manager.status().message()));
  }
  // The leader's server binds the port beside the standby's (both allow
  // SO_REUSEPORT), and only then does the standby stop: the port is never
  // closed, so no client is refused a connection (and sent into gRPC's
  // reconnect backoff) by the switch. Until the standby stops, the kernel
  // hands some new connections to it; it answers them as a standby naming
  // this manager, and clients try here again (LeaderChannel::Observe).
  service::ServerOptions server_options = options_.server;
  server_options.managers = registry_.get();
  server_options.interceptors.push_back([gate = gate_.get()] {
    return std::make_unique<StaleReadsInterceptorFactory>(gate);
  });
  absl::StatusOr<std::unique_ptr<service::GrpcServer>> server =
      service::GrpcServer::Start(manager->get(), address_, server_options);
  if (!server.ok()) {
    (*manager)->Shutdown();
    return server.status();
  }
  std::unique_ptr<StandbyServer> standby;
  service::FabricManager* const serving_manager = manager->get();
  service::GrpcServer* const serving_server = server->get();
  {
    absl::MutexLock l(&mu_);
    standby = std::move(standby_);
    manager_ = *std::move(manager);
    server_ = *std::move(server);
    role_ = Role::kLeader;
  }
  {
    absl::MutexLock l(&serving_mu_);
    serving_manager_ = serving_manager;
    serving_server_ = serving_server;
  }
  // Ends its connections with GOAWAY: their clients reconnect at once, to
  // the leader's server, the port's only listener from now on.
  if (standby != nullptr) standby->Shutdown();
  PrintLine(std::cout, "fabric-manager: leader, serving on ", address_);
  return absl::OkStatus();
}

void HaManager::Stop(absl::Status why) {
  std::unique_ptr<StandbyServer> standby;
  std::unique_ptr<service::FabricManager> manager;
  std::unique_ptr<service::GrpcServer> server;
  {
    absl::MutexLock l(&mu_);
    standby = std::move(standby_);
    manager = std::move(manager_);
    server = std::move(server_);
    role_ = Role::kStopped;
  }
  {
    // Waits for a scrape reading them.
    absl::MutexLock l(&serving_mu_);
    serving_manager_ = nullptr;
    serving_server_ = nullptr;
  }
  if (server != nullptr) server->Shutdown();  // ends streams, then calls
  if (manager != nullptr) manager->Shutdown();
  if (standby != nullptr) standby->Shutdown();
  server.reset();
  manager.reset();
  absl::MutexLock l(&mu_);
  if (!done_.has_value()) done_ = std::move(why);
}

absl::Status HaManager::Wait() {
  absl::MutexLock l(&mu_);
  mu_.Await(absl::Condition(
      +[](std::optional<absl::Status>* done) { return done->has_value(); },
      &done_));
  return *done_;
}

void HaManager::Shutdown() {
  {
    absl::MutexLock l(&shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  Post({Event::kStop, {}});
  if (loop_.joinable()) loop_.join();
  Stop(absl::OkStatus());
  registry_.reset();  // reads the election's lease
  // Last: another manager takes over only once this one stopped serving.
  election_.reset();
  gate_.reset();
}

}  // namespace fabric::ha
