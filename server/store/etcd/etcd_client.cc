#include "server/store/etcd/etcd_client.h"

#include <arpa/inet.h>

#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/file_util.h"

namespace fabric::store {
namespace {

constexpr absl::string_view kScheme = "etcd://";

// "HOST:PORT" or "[V6]:PORT" -> host without brackets, and whether it is an
// IPv4 (4) / IPv6 (6) literal (0: a name).
absl::Status CheckEndpoint(absl::string_view url, absl::string_view ep,
                           std::string* host, int* family) {
  const size_t colon = ep.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--store ", url, ": endpoint \"", ep, "\" needs HOST:PORT"));
  }
  int port = 0;
  if (!absl::SimpleAtoi(ep.substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store ", url, ": endpoint \"", ep,
                     "\": the port must be 1..65535"));
  }
  absl::string_view h = ep.substr(0, colon);
  if (absl::ConsumePrefix(&h, "[") && !absl::ConsumeSuffix(&h, "]")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--store ", url, ": endpoint \"", ep, "\" has an unclosed '['"));
  }
  *host = std::string(h);
  in6_addr buf;
  *family = inet_pton(AF_INET, host->c_str(), &buf) == 1    ? 4
            : inet_pton(AF_INET6, host->c_str(), &buf) == 1 ? 6
                                                             : 0;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EtcdUrl> ParseEtcdUrl(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, kScheme)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--store ", url, ": an etcd store is etcd://HOST:PORT[,HOST:PORT...]"
                         "[/PREFIX]"));
  }
  EtcdUrl out;
  const size_t slash = rest.find('/');
  absl::string_view hosts = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    out.prefix = std::string(rest.substr(slash));
    if (out.prefix == "/") out.prefix.clear();
    if (!out.prefix.empty() && out.prefix.back() == '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          "--store ", url, ": the prefix must not end with '/'"));
    }
    if (out.prefix.find("//") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--store ", url, ": the prefix must not hold \"//\""));
    }
  }
  for (absl::string_view ep : absl::StrSplit(hosts, ',')) {
    if (ep.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--store ", url, ": an empty endpoint"));
    }
    std::string host;
    int family = 0;
    if (absl::Status s = CheckEndpoint(url, ep, &host, &family); !s.ok()) {
      return s;
    }
    out.endpoints.emplace_back(ep);
  }
  return out;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> DialEtcd(
    const EtcdClientOptions& options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("etcd: no endpoints");
  }
  // One channel over every member when all are literals of one family.
  int common = -1;
  for (const std::string& ep : options.endpoints) {
    std::string host;
    int family = 0;
    if (absl::Status s = CheckEndpoint(ep, ep, &host, &family); !s.ok()) {
      return s;
    }
    common = (common == -1 || common == family) ? family : 0;
  }
  std::string target = options.endpoints.front();
  if (common == 4 || common == 6) {
    target = absl::StrCat(common == 4 ? "ipv4:" : "ipv6:",
                          absl::StrJoin(options.endpoints, ","));
  }
  std::shared_ptr<grpc::ChannelCredentials> creds =
      grpc::InsecureChannelCredentials();
  if (!options.ca_file.empty() || !options.cert_file.empty() ||
      !options.key_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    struct File {
      const char* flag;
      const std::string& path;
      std::string* into;
    } files[] = {{"--etcd-ca", options.ca_file, &ssl.pem_root_certs},
                 {"--etcd-cert", options.cert_file, &ssl.pem_cert_chain},
                 {"--etcd-key", options.key_file, &ssl.pem_private_key}};
    for (const File& f : files) {
      if (f.path.empty()) continue;
      absl::StatusOr<std::string> pem = ReadFileToString(f.path);
      if (!pem.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat(f.flag, ": ", f.path, ": ", pem.status().message()));
      }
      *f.into = *std::move(pem);
    }
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  // etcd answers up to --max-request-bytes plus slack; ranges may be large.
  args.SetMaxReceiveMessageSize(-1);
  // Notice a dead member and move on; no more often than etcd's
  // --grpc-keepalive-min-time (5 s) allows.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 6000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 2000);
  // Reconnect to a member that is back within a second: gRPC's default
  // backoff grows to 120 s, far longer than a failover may take.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel(target, creds, args);
}

std::chrono::system_clock::time_point EtcdDeadline(
    const EtcdClientOptions& options) {
  return absl::ToChronoTime(absl::Now() + options.rpc_timeout);
}

}  // namespace fabric::store
