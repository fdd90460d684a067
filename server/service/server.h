// Assembles the gRPC server: the fabric and agent services, grpc.health.v1
// and server reflection.
#ifndef FABRIC_SERVER_SERVICE_SERVER_H_
#define FABRIC_SERVER_SERVICE_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/service/grpc_services.h"
#include "server/service/manager.h"

namespace fabric::service {

// A running gRPC server. Not copyable; Shutdown() is idempotent and also
// runs on destruction.
class GrpcServer {
 public:
  // Listens on `address` (HOST:PORT; port 0 picks a free one). `manager` is
  // not owned. UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      FabricManager* manager, const std::string& address);
  ~GrpcServer();

  // The bound port.
  int port() const { return port_; }
  // Stops accepting calls, ends streams, waits for calls in flight.
  void Shutdown();
  void Wait();

 private:
  GrpcServer(FabricManager* manager) : fabric_(manager), agent_(manager) {}

  FabricManager* manager_ = nullptr;  // not owned
  FabricServiceImpl fabric_;
  AgentServiceImpl agent_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_SERVER_H_
