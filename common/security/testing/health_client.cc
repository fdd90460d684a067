#include "common/security/testing/health_client.h"

#include <chrono>
#include <utility>
#include <vector>

#include "health_check.grpc.pb.h"

namespace fabric::security {

std::shared_ptr<grpc::Channel> NewConnectionChannel(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> creds) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, std::move(creds), args);
}

grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                         std::string* server_id) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = grpc::health::v1::Health::NewStub(channel)->Check(
      &context, grpc::health::v1::HealthCheckRequest(), &response);
  if (status.ok() && server_id != nullptr) {
    std::vector<grpc::string_ref> ids =
        context.auth_context()->FindPropertyValues("peer_spiffe_id");
    *server_id = ids.empty() ? "" : std::string(ids[0].data(), ids[0].size());
  }
  return status;
}

}  // namespace fabric::security
