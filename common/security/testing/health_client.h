// Test clients for TLS servers: fresh connections and one health check.
//
//   auto channel = NewConnectionChannel(address, ChannelCredentials(...));
//   grpc::Status s = HealthCheck(channel, &server_id);
//
// Test-only (target fabric_security_testing).
#ifndef FABRIC_COMMON_SECURITY_TESTING_HEALTH_CLIENT_H_
#define FABRIC_COMMON_SECURITY_TESTING_HEALTH_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace fabric::security {

// A channel with a subchannel pool of its own, so that it makes its own
// connection (and TLS handshake) instead of sharing another channel's.
std::shared_ptr<grpc::Channel> NewConnectionChannel(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> creds);

// One grpc.health.v1.Health/Check with a 10 s deadline. When it succeeds
// and `server_id` is given, *server_id is the server's SPIFFE ID as the
// handshake saw it ("" for none).
grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                         std::string* server_id = nullptr);

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_TESTING_HEALTH_CLIENT_H_
