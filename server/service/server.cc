#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/security/grpc_auth.h"

namespace fabric::service {

std::shared_ptr<grpc::ServerCredentials> ListeningCredentials(
    const ServerOptions& options) {
  return security::ServerCredentials(
      options.tls, std::make_shared<security::AuthProcessor>(
                       options.policy.has_value() ? *options.policy
                                                  : security::Policy::Default(),
                       options.audit));
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    FabricManager* manager, const std::string& address,
    const ServerOptions& options) {
  if (options.max_inflight < 0 || options.max_threads < 0 ||
      options.grpc_memory_bytes < 0 ||
      options.keepalive_time < absl::Milliseconds(1) ||
      options.keepalive_timeout < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server limits must not be negative: max_inflight ",
        options.max_inflight, ", max_threads ", options.max_threads,
        ", grpc_memory_bytes ", options.grpc_memory_bytes,
        "; keepalive_time and keepalive_timeout must be at least 1ms"));
  }
  if (absl::Status transport =
          security::CheckTransport("fabric-manager", options.tls, address,
                                   /*warn=*/false);
      !transport.ok()) {
    return transport;
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<GrpcServer> s(new GrpcServer(
      manager, {.agent_credentials = AgentCredentials(options.tls)}));
  s->manager_ = manager;
  s->admission_ = std::make_unique<AdmissionControl>(options.max_inflight);
  s->fabric_.set_admission(s->admission_.get());
  s->offers_ = std::make_unique<offers::OfferService>(manager, options.offers);
  s->fabric_.set_offers(s->offers_.get());
  s->fabric_.set_audit(options.audit);
  if (options.managers != nullptr) {
    s->fabric_.set_managers(options.managers);
  } else {
    s->self_ = std::make_unique<SingleManagerSource>(
        ManagerStatus{.address = address,
                      .store = options.store,
                      .start_time = absl::Now(),
                      .version = std::string(BuildVersion())});
    s->fabric_.set_managers(s->self_.get());
  }
  grpc::ServerBuilder builder;
  if (options.max_threads > 0 || options.grpc_memory_bytes > 0) {
    grpc::ResourceQuota quota("fabric-manager");
    if (options.max_threads > 0) quota.SetMaxThreads(options.max_threads);
    if (options.grpc_memory_bytes > 0) {
      quota.Resize(static_cast<size_t>(options.grpc_memory_bytes));
    }
    builder.SetResourceQuota(quota);
  }
  // A port another process holds is refused, never shared (gRPC sets
  // SO_REUSEPORT by default, which let a second manager serve beside the
  // first), except for an HA manager's own switch (reuse_port).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT,
                             options.reuse_port ? 1 : 0);
  // Keepalive pings end the streams of a peer that stopped answering, so
  // an open agent config stream means a live transport (see
  // ManagerOptions::stream_grace). Pings go out on idle connections too.
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIME_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_time)));
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_timeout)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Every call passes the AuthProcessor (the one authorization check)
  // before any handler runs; then the audit interceptor sees mutations.
  builder.AddListeningPort(
      address,
      ListeningCredentials(options),
      &s->port_);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  if (options.audit != nullptr) {
    interceptors.push_back(
        std::make_unique<AuditInterceptorFactory>(options.audit));
  }
  for (const auto& make : options.interceptors) interceptors.push_back(make());
  if (!interceptors.empty()) {
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  builder.RegisterService(&s->fabric_);
  builder.RegisterService(&s->agent_);
  builder.RegisterService(&s->hypervisor_);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("--listen: cannot listen on ", address,
                     " (address in use, or not HOST:PORT?)"));
  }
  s->inproc_ = s->server_->InProcessChannel(grpc::ChannelArguments());
  if (s->self_ != nullptr) {
    // HOST:0 named the port to pick; list the bound one.
    s->self_->set_address(absl::StrCat(
        address.substr(0, address.rfind(':') + 1), s->port_));
  }
  return s;
}

GrpcServer::~GrpcServer() { Shutdown(); }

void GrpcServer::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  // Open streams listen to the manager's hub; closing it ends them (with
  // UNAVAILABLE) before the grace period cancels whatever is left.
  manager_->hub().Close();
  offers_->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

void GrpcServer::Wait() { server_->Wait(); }

}  // namespace fabric::service
