// What a manager that is not the leader serves on its address (issue 14 §2):
// every call of every service but grpc.health.v1 is refused with
// UNAVAILABLE, the message StandbyMessage(leader) and the trailing metadata
// kLeaderMetadataKey (common/leader_channel.h), so that clients follow the
// leader by themselves; the health service reports NOT_SERVING. A standby
// holds no state and applies nothing.
//
// Security is the manager's own (service::ServerOptions::tls, policy,
// audit): the same mutual TLS, and the same AuthProcessor before any answer,
// so that a caller the leader would refuse learns nothing here either, not
// even the leader's address (with mutual TLS, a caller without a
// certificate of the fabric's CA never gets past the handshake).
//
// Thread-safe.
#ifndef FABRIC_SERVER_HA_STANDBY_SERVER_H_
#define FABRIC_SERVER_HA_STANDBY_SERVER_H_

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/server.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/service/server.h"

namespace fabric::ha {

class StandbyServer {
 public:
  // Listens on `address` (HOST:PORT; port 0 picks a free one) with
  // `options`' transport security, policy, audit log and keepalive (its
  // load limits do not apply: a standby's answer costs nothing). Errors as
  // service::GrpcServer::Start's: UNAVAILABLE when the address cannot be
  // bound, the errors of security::CheckTransport.
  static absl::StatusOr<std::unique_ptr<StandbyServer>> Start(
      const std::string& address, const service::ServerOptions& options);
  ~StandbyServer();  // Shutdown()

  StandbyServer(const StandbyServer&) = delete;
  StandbyServer& operator=(const StandbyServer&) = delete;

  int port() const { return port_; }
  // A channel to this server that never leaves the process (the REST
  // gateway's, server/rest), as GrpcServer::InProcessChannel.
  std::shared_ptr<grpc::Channel> InProcessChannel() const { return inproc_; }

  // The leader to name from now on (nullopt: none is elected).
  void SetLeader(std::optional<std::string> leader) ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<std::string> leader() const ABSL_LOCKS_EXCLUDED(mu_);

  // Stops listening (the address is free when it returns) and ends calls in
  // flight. Idempotent.
  void Shutdown();

 private:
  class Service;
  StandbyServer();

  mutable absl::Mutex mu_;
  std::optional<std::string> leader_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> inproc_;
  int port_ = 0;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace fabric::ha

#endif  // FABRIC_SERVER_HA_STANDBY_SERVER_H_
