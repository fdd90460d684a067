// Assembles the gRPC server: the fabric and agent services, grpc.health.v1
// and server reflection, behind mutual TLS and the authorization check
// (common/security), with the audit trail (audit_interceptor.h).
#ifndef FABRIC_SERVER_SERVICE_SERVER_H_
#define FABRIC_SERVER_SERVICE_SERVER_H_

#include <grpcpp/server.h>
#include <grpcpp/support/server_interceptor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/security/audit_log.h"
#include "common/security/policy.h"
#include "common/security/tls.h"
#include "server/service/admission.h"
#include "server/offers/offer_service.h"
#include "server/service/audit_interceptor.h"
#include "server/service/grpc_services.h"
#include "server/service/manager.h"
#include "server/service/managers_source.h"

namespace fabric::service {

// How the server is secured, and how much load it takes before it sheds
// (RESOURCE_EXHAUSTED).
struct ServerOptions {
  // Transport security (tls.h): mutual TLS with these files, or plaintext
  // (insecure), which Start accepts only on a loopback address. The default
  // is plaintext, as the in-process tests run; fabric-manager sets it from
  // --tls-cert/--tls-key/--tls-ca/--insecure. The same certificate dials the
  // agents (AgentCredentials, agent_relay.h).
  security::TlsConfig tls = [] {
    security::TlsConfig t;
    t.insecure = true;
    return t;
  }();
  // Who may call what (policy.h), checked for every call by the
  // AuthProcessor (grpc_auth.h). Unset: Policy::Default(). Not used when
  // insecure (there are no identities).
  std::optional<security::Policy> policy;
  // Every mutation is written here (audit_interceptor.h), and every call
  // the policy denies. Null: no audit trail. Not owned; must outlive the
  // server.
  security::AuditLog* audit = nullptr;

  // Mutations in flight (admitted, not yet durable); the next one is
  // refused (admission.h). 0: no limit.
  int max_inflight = 0;
  // Threads for synchronous handlers (the reads); a call that finds none
  // free is refused with RESOURCE_EXHAUSTED by gRPC. 0: gRPC's default (no
  // limit). Every agent call (registration, report, config stream), open
  // Watch streams, every mutation and Ping are served on gRPC's callback
  // API and hold none of these threads: an open stream costs memory (about
  // 16 KiB of the manager's; fabric-stream-bench measures it), not a
  // thread.
  int max_threads = 0;
  // Memory gRPC may use for its buffers, in bytes. 0: gRPC's default.
  int64_t grpc_memory_bytes = 0;
  // Every connection is pinged after keepalive_time without traffic; one
  // whose peer does not answer within keepalive_timeout is closed, ending
  // its streams.
  absl::Duration keepalive_time = absl::Seconds(10);
  absl::Duration keepalive_timeout = absl::Seconds(10);

  // Who ListManagers lists (managers_source.h): with etcd, the
  // ha::ManagerRegistry. Null: this manager alone, as leader, with `store`
  // as its store and the bound address. Not owned; must outlive the server.
  ManagersSource* managers = nullptr;
  // This manager's store without credentials ("sqlite:PATH"), for the
  // lone manager's ListManagers.
  std::string store;
  // Whether the listening port may be bound beside another socket of this
  // user that allows it too (SO_REUSEPORT). Off: a port another process
  // holds is refused, never shared. HA managers (server/ha/ha_manager.h)
  // turn it on for their own standby->leader switch only, so that the port
  // never closes while they change servers; they check first that nobody
  // else holds it (ProbeListen).
  bool reuse_port = false;
  // The graces of offers (WatchOffers, server/offers/offer_book.h).
  offers::OfferBookOptions offers;
  // More server interceptors, each made once per Start and run after the
  // audit's: the HA leader's stale-read marker (ha/store_gate.h).
  std::vector<std::function<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>()>>
      interceptors;
};

// The credentials every manager listener uses (the leader's and a
// standby's): options.tls, with the AuthProcessor that applies the policy
// (options.policy, else the default) and audits refusals to options.audit.
std::shared_ptr<grpc::ServerCredentials> ListeningCredentials(
    const ServerOptions& options);

// A running gRPC server. Not copyable; Shutdown() is idempotent and also
// runs on destruction.
class GrpcServer {
 public:
  // Listens on `address` (HOST:PORT; port 0 picks a free one). `manager` is
  // not owned. UNAVAILABLE when the address cannot be bound;
  // INVALID_ARGUMENT for negative options; the errors of
  // security::CheckTransport for options.tls (plaintext off loopback,
  // missing or unreadable certificates).
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      FabricManager* manager, const std::string& address,
      const ServerOptions& options = {});
  ~GrpcServer();

  // The bound port.
  int port() const { return port_; }
  // A channel to this server that never leaves the process (grpc's
  // in-process transport): the REST gateway's (server/rest). Calls on it
  // carry no TLS identity; see security::VouchedCallerValue.
  std::shared_ptr<grpc::Channel> InProcessChannel() const { return inproc_; }
  // Stops accepting calls, ends streams, waits for calls in flight.
  void Shutdown();
  void Wait();

  const AdmissionControl& admission() const { return *admission_; }

 private:
  GrpcServer(FabricManager* manager, const AgentRelayOptions& relay)
      : fabric_(manager, relay), agent_(manager), hypervisor_(manager, relay) {}

  FabricManager* manager_ = nullptr;  // not owned
  std::unique_ptr<AdmissionControl> admission_;
  // ListManagers's source when ServerOptions::managers is null.
  std::unique_ptr<SingleManagerSource> self_;
  // Before fabric_ and server_: it outlives the streams on its hub.
  std::unique_ptr<offers::OfferService> offers_;
  FabricServiceImpl fabric_;
  AgentServiceImpl agent_;
  HypervisorServiceImpl hypervisor_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> inproc_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_SERVER_H_
