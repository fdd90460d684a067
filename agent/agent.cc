#include "agent/agent.h"

#include <grpc/grpc.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fabric::agent {

Agent::Agent(AgentOptions options, hw::BridgeHardware* hardware,
             v1::NodeInventory inventory, hw::SriovFunctions* functions)
    : options_(std::move(options)),
      reconciler_(options_.node, options_, hardware, options_.clock,
                  [this] { session_->RequestReport(); }),
      vf_(std::make_unique<VfLending>(
          options_.node, functions,
          [this](uint64_t addr, absl::Span<uint8_t> out) {
            return reconciler_.HostRead(addr, out);
          },
          [this] { session_->RequestReport(); })),
      session_(std::make_unique<ManagerSession>(options_, std::move(inventory),
                                                &reconciler_, vf_.get(),
                                                options_.clock)),
      control_(&reconciler_, vf_.get()) {}

Agent::~Agent() { Stop(); }

absl::Status Agent::Start() {
  grpc::ServerBuilder builder;
  // A port in use is refused, never shared (gRPC sets SO_REUSEPORT by
  // default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(),
                           &control_port_);
  builder.RegisterService(&control_);
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
