#include "server/ha/standby_server.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/leader_channel.h"
#include "common/security/grpc_auth.h"
#include "common/security/tls.h"

namespace fabric::ha {

// Answers every method it is asked for as a standby, without reading the
// request.
class StandbyServer::Service : public grpc::CallbackGenericService {
 public:
  explicit Service(const StandbyServer* owner) : owner_(owner) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* ctx) override {
    return new Refusal(ctx, owner_->leader());
  }

 private:
  class Refusal : public grpc::ServerGenericBidiReactor {
   public:
    Refusal(grpc::GenericCallbackServerContext* ctx,
            const std::optional<std::string>& leader) {
      if (leader.has_value()) {
        ctx->AddTrailingMetadata(kLeaderMetadataKey, *leader);
      }
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          StandbyMessage(leader)));
    }
    void OnDone() override { delete this; }
  };

  const StandbyServer* const owner_;
};

StandbyServer::StandbyServer() : service_(std::make_unique<Service>(this)) {}

absl::StatusOr<std::unique_ptr<StandbyServer>> StandbyServer::Start(
    const std::string& address, const service::ServerOptions& options) {
  if (absl::Status transport = security::CheckTransport(
          "fabric-manager", options.tls, address, /*warn=*/false);
      !transport.ok()) {
    return transport;
  }
  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<StandbyServer> s(new StandbyServer());
  grpc::ServerBuilder builder;
  // As the manager's server (server/service/server.cc): the port is shared
  // only when options.reuse_port (with this manager's own leader server,
  // across the switch), and dead peers are noticed.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT,
                             options.reuse_port ? 1 : 0);
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIME_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_time)));
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_timeout)));
  // The same choke point as the leader's: the policy decides before the
  // standby says anything.
  builder.AddListeningPort(
      address,
      ListeningCredentials(options),
      &s->port_);
  builder.RegisterCallbackGenericService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("--listen: cannot listen on ", address,
                     " (address in use, or not HOST:PORT?)"));
  }
  // Health checks are registered ahead of the generic service, so they are
  // answered: NOT_SERVING, for the whole server and every service.
  s->server_->GetHealthCheckService()->SetServingStatus(false);
  s->inproc_ = s->server_->InProcessChannel(grpc::ChannelArguments());
  return s;
}

StandbyServer::~StandbyServer() { Shutdown(); }

void StandbyServer::SetLeader(std::optional<std::string> leader) {
  absl::MutexLock l(&mu_);
  leader_ = std::move(leader);
}

std::optional<std::string> StandbyServer::leader() const {
  absl::MutexLock l(&mu_);
  return leader_;
}

void StandbyServer::Shutdown() {
  absl::MutexLock l(&shutdown_mu_);
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  // Every answer is immediate; nothing needs a grace period.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
}

}  // namespace fabric::ha
