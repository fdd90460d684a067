#include "agent/agent.h"

#include <grpc/grpc.h>
#include <grpcpp/server_builder.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/security/grpc_auth.h"
#include "common/security/tls.h"

namespace fabric::agent {

Agent::Agent(AgentOptions options, hw::BridgeHardware* hardware,
             v1::NodeInventory inventory, hw::SriovFunctions* functions)
    : options_(std::move(options)),
      reconciler_(
          options_.node, options_, hardware, options_.clock,
          [this] { session_->RequestReport(); }, &metrics_),
      vf_(std::make_unique<VfLending>(
          options_.node, functions,
          [this](uint64_t addr, absl::Span<uint8_t> out) {
            return reconciler_.HostRead(addr, out);
          },
          [this] { session_->RequestReport(); },
          [tls = options_.tls](const std::string& lender) {
            return security::ChannelCredentials(
                tls, security::PeerRequirement::Node(lender));
          },
          &metrics_)),
      session_(std::make_unique<ManagerSession>(
          options_, std::move(inventory), &reconciler_, vf_.get(),
          options_.clock, &grants_, &metrics_)),
      control_(&reconciler_, vf_.get(), &grants_) {}

Agent::~Agent() { Stop(); }

absl::Status Agent::Start() {
  grpc::ServerBuilder builder;
  // A port in use is refused, never shared (gRPC sets SO_REUSEPORT by
  // default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(
      options_.listen,
      security::ServerCredentials(
          options_.tls, std::make_shared<security::AuthProcessor>(
                            options_.policy, /*audit=*/nullptr)),
      &control_port_);
  builder.RegisterService(&control_);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(metrics_.rpc().NewInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  control_server_ = builder.BuildAndStart();
  if (control_server_ == nullptr || control_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("--listen: cannot listen on ", options_.listen));
  }
  session_->Start(control_port_);
  reconciler_.Start();
  return absl::OkStatus();
}

void Agent::Stop() {
  if (stopped_.exchange(true)) return;
  session_->Stop();
  reconciler_.Stop();
  if (control_server_ != nullptr) {
    control_server_->Shutdown(std::chrono::system_clock::now() +
                              std::chrono::seconds(1));
  }
}

AgentStats Agent::stats() const {
  AgentStats s;
  static_cast<ReconcileStats&>(s) = reconciler_.stats();
  static_cast<SessionStats&>(s) = session_->stats();
  return s;
}

}  // namespace fabric::agent
