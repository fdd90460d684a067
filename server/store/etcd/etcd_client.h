// How the manager reaches etcd: the endpoints of one cluster, its client TLS,
// and a gRPC channel to them. Shared by the etcd store (etcd_store.h) and
// the leader election (server/ha/leader_election.h).
#ifndef FABRIC_SERVER_STORE_ETCD_ETCD_CLIENT_H_
#define FABRIC_SERVER_STORE_ETCD_ETCD_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fabric::store {

struct EtcdClientOptions {
  // "HOST:PORT" of each member; at least one.
  std::vector<std::string> endpoints;
  // Client TLS (etcd's --trusted-ca-file / --cert-file / --key-file on its
  // side). All empty: plaintext. ca_file alone: server-authenticated TLS;
  // with cert_file and key_file: mutual TLS.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // Deadline of each unary call to etcd.
  absl::Duration rpc_timeout = absl::Seconds(5);
};

// The parts of `--store etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`.
struct EtcdUrl {
  std::vector<std::string> endpoints;
  // "" or "/..." without a trailing '/'; every key the manager writes starts
  // with it, so several fabrics can share one etcd cluster.
  std::string prefix;
};

// Parses an etcd:// store URL.
// Errors: INVALID_ARGUMENT naming `--store` and what is wrong (no endpoint,
// an endpoint without a port or with a port outside 1..65535, a prefix with
// "//" or a trailing '/').
absl::StatusOr<EtcdUrl> ParseEtcdUrl(absl::string_view url);

// A channel to the cluster. With several endpoints that are all IP
// literals, one channel spans them ("ipv4:a:p,b:q" / "ipv6:"): gRPC moves to
// the next member when the one it uses fails. Otherwise (host names), the
// first endpoint only. Errors: INVALID_ARGUMENT for no endpoints,
// FAILED_PRECONDITION naming the TLS flag whose file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> DialEtcd(
    const EtcdClientOptions& options);

// The deadline for one call made now under `options`.
std::chrono::system_clock::time_point EtcdDeadline(
    const EtcdClientOptions& options);

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_ETCD_ETCD_CLIENT_H_
