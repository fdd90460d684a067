// fabric-manager: parses flags and wires the store, the manager and the gRPC
// server together. All logic lives in server/service and server/core.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/fd_limit.h"
#include "common/host_port.h"
#include "common/listen_probe.h"
#include "common/mutex_mode.h"
#include "common/security/audit_log.h"
#include "common/status_line.h"
#include "common/security/certificate.h"
#include "common/security/policy.h"
#include "common/security/tls_flags.h"
#include "server/ha/run_ha.h"
#include "server/rest/rest_listener.h"
#include "common/metrics/registry.h"
#include "server/service/manager.h"
#include "server/service/manager_metrics.h"
#include "server/service/records.h"
#include "server/service/server.h"
#include "server/store/migrate.h"
#include "server/store/open_store.h"
#include "server/store/store_lock.h"

namespace {

bool ParseDurationFlag(const std::string& text, absl::Duration* out) {
  return absl::ParseDuration(text, out) && *out > absl::ZeroDuration();
}

}  // namespace

int main(int argc, char** argv) {
  fabric::DisableMutexDeadlockDetection();
  CLI::App app{"fabric-manager: the PCIe fabric control plane"};
  std::string db;
  std::string store_flag;
  std::string etcd_ca, etcd_cert, etcd_key;
  std::string migrate_from, migrate_to;
  std::string listen = "127.0.0.1:7070";
  std::string http_listen;
  std::string heartbeat_timeout = "3s";
  std::string lease_ttl = "2s";
  std::string heartbeat_interval = "1s";
  std::string request_retention = "24h";
  std::string offer_stream_grace = "30s";
  std::string offer_withdrawal_grace = "5s";
  int64_t max_request_ids = fabric::service::ManagerOptions().max_request_ids;
  std::string commit_gather = "auto";
  fabric::service::ServerOptions server_options;
  server_options.max_inflight = 1024;
  server_options.max_threads = 0;
  server_options.tls = {};
  std::string policy_file;
  std::string audit_log;
  app.add_option("--store", store_flag,
                 "sqlite:PATH (default sqlite:fabric.db) or "
                 "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]");
  app.add_option("--db", db,
                 "SQLite database file (WAL mode), created if absent; "
                 "shorthand for --store sqlite:PATH");
  app.add_option("--etcd-ca", etcd_ca, "CA file for etcd's client TLS");
  app.add_option("--etcd-cert", etcd_cert,
                 "client certificate for etcd (mutual TLS; with --etcd-key)");
  app.add_option("--etcd-key", etcd_key, "client key for etcd");
  app.add_option("--lease-ttl", lease_ttl,
                 "etcd store only: the leader's lease; a leader that stops "
                 "renewing it is replaced this long after its last renewal "
                 "(etcd grants whole seconds, at least 2 s with its default "
                 "election timeout)")
      ->capture_default_str();
  CLI::App* migrate = app.add_subcommand(
      "migrate", "copy a stopped manager's SQLite state into an empty etcd "
                 "prefix, and verify it");
  migrate->add_option("--from", migrate_from, "sqlite:PATH")->required();
  migrate->add_option("--to", migrate_to, "etcd://HOST:PORT[,...][/PREFIX]")
      ->required();
  app.add_option("--listen", listen, "gRPC listen address HOST:PORT")
      ->capture_default_str();
  app.add_option("--http-listen", http_listen,
                 "REST/JSON API, /openapi.json and /metrics on HOST:PORT "
                 "(off by default), with the gRPC listener's TLS, identities "
                 "and policy");
  app.add_option("--heartbeat-timeout", heartbeat_timeout,
                 "an agent silent this long is NOT_READY")
      ->capture_default_str();
  app.add_option("--heartbeat-interval", heartbeat_interval,
                 "how often agents are asked to report")
      ->capture_default_str();
  app.add_option("--request-retention", request_retention,
                 "how long request ids are remembered for retries; every id "
                 "costs memory (about 160 bytes) and a row until then")
      ->capture_default_str();
  app.add_option("--max-request-ids", max_request_ids,
                 "request ids remembered for retries at most; a retry is "
                 "recognized for --request-retention or until this many newer "
                 "ids were recorded, whichever comes first (each costs about "
                 "160 bytes of memory and a row)")
      ->capture_default_str();
  app.add_option("--commit-gather", commit_gather,
                 "how long a group commit may wait for more mutations once "
                 "commits hold more than one, as a fraction of the last "
                 "commit's duration (0 to 1, at most 5 ms; 0: never); auto: "
                 "0.5 on etcd, 0 on SQLite")
      ->capture_default_str();
  app.add_option("--offer-stream-grace", offer_stream_grace,
                 "how long a node's offers stay its own after its last "
                 "WatchOffers stream ends (README, \"Offers\")")
      ->capture_default_str();
  app.add_option("--offer-withdrawal-grace", offer_withdrawal_grace,
                 "how long a withdrawn offer stays claimable by its node "
                 "before another node is offered it")
      ->capture_default_str();
  app.add_option("--max-inflight", server_options.max_inflight,
                 "allocation mutations in flight before the next is refused "
                 "with RESOURCE_EXHAUSTED (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--max-threads", server_options.max_threads,
                 "threads for synchronous RPCs, the reads (agent calls, "
                 "mutations and Watch streams hold none); a call finding "
                 "none free is refused with RESOURCE_EXHAUSTED (0: no "
                 "limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  fabric::security::AddTlsFlags(app, &server_options.tls);
  app.add_option("--policy", policy_file,
                 "access policy file (deploy/policy/policy.textproto's format); "
                 "default: the compiled-in copy of deploy/policy/policy.textproto");
  app.add_option("--audit-log", audit_log,
                 "where every mutation and every denied call is written, one "
                 "JSON line each; default: DB.audit.log beside --db; \"none\" "
                 "writes no audit trail");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and succeeds; every usage error exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!db.empty() && !store_flag.empty()) {
    std::cerr << "error: give --store or --db, not both\n";
    return 2;
  }
  if (store_flag.empty()) {
    store_flag = "sqlite:" + (db.empty() ? std::string("fabric.db") : db);
  }
  if (migrate->parsed()) {
    auto from = fabric::store::ParseStoreFlag(migrate_from);
    auto to = fabric::store::ParseStoreFlag(migrate_to);
    absl::Status usage = !from.ok() ? from.status() : to.status();
    if (usage.ok()) {
      usage = fabric::store::SetEtcdTls(*to, etcd_ca, etcd_cert, etcd_key);
    }
    if (!usage.ok()) {
      std::cerr << "error: migrate " << usage.message() << "\n";
      return 2;
    }
    auto summary = fabric::store::MigrateStores(
        *from, *to, fabric::service::StoreTables());
    if (!summary.ok()) {
      std::cerr << "error: migrate: " << summary.status().message() << "\n";
      return 1;
    }
    std::cout << summary->ToString() << std::flush;
    return 0;
  }
  auto store_spec = fabric::store::ParseStoreFlag(store_flag);
  absl::Status store_usage = store_spec.status();
  if (store_usage.ok()) {
    store_usage =
        fabric::store::SetEtcdTls(*store_spec, etcd_ca, etcd_cert, etcd_key);
  }
  if (!store_usage.ok()) {
    std::cerr << "error: " << store_usage.message() << "\n";
    return 2;
  }
  const bool sqlite =
      store_spec->kind == fabric::store::StoreSpec::Kind::kSqlite;
  if (sqlite) db = store_spec->sqlite.path;

  // Lock-order cycle detection costs a graph update on every contended
  // lock; tests keep it, production runs without it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  fabric::service::ManagerOptions options;
  absl::Duration lease;
  if (!ParseDurationFlag(lease_ttl, &lease) || lease < absl::Seconds(1)) {
    std::cerr << "error: --lease-ttl: \"" << lease_ttl
              << "\" must be a duration of at least 1s, such as 2s\n";
    return 2;
  }
  if (!ParseDurationFlag(heartbeat_timeout, &options.heartbeat_timeout) ||
      !ParseDurationFlag(heartbeat_interval, &options.heartbeat_interval) ||
      !ParseDurationFlag(request_retention, &options.request_retention) ||
      !ParseDurationFlag(offer_stream_grace,
                         &server_options.offers.stream_grace) ||
      !ParseDurationFlag(offer_withdrawal_grace,
                         &server_options.offers.withdrawal_grace)) {
    std::cerr << "error: --heartbeat-timeout, --heartbeat-interval, "
                 "--request-retention, --offer-stream-grace and "
                 "--offer-withdrawal-grace take a positive duration such as "
                 "500ms, 3s or 1m\n";
    return 2;
  }
  options.max_request_ids = max_request_ids;
  if (commit_gather == "auto") {
    options.commit_gather.fraction =
        sqlite ? 0 : fabric::service::kEtcdCommitGather;
  } else if (!absl::SimpleAtod(commit_gather,
                               &options.commit_gather.fraction)) {
    std::cerr << "error: --commit-gather: \"" << commit_gather
              << "\" must be auto or a number from 0 to 1, such as 0.5\n";
    return 2;
  }
  if (absl::Status valid = fabric::service::ValidateManagerOptions(options);
      !valid.ok()) {
    // The option's name is the flag's, with dashes.
    std::string message(valid.message());
    const size_t colon = message.find(':');
    if (colon != std::string::npos) {
      std::string flag = message.substr(0, colon);
      std::replace(flag.begin(), flag.end(), '_', '-');
      message = "--" + flag + message.substr(colon);
    }
    std::cerr << "error: " << message << "\n";
    return 2;
  }

  // The listen address, checked before anything is opened: a flag that
  // cannot work is a usage error (exit 2) naming its cause.
  auto listen_address = fabric::ParseHostPort("--listen", listen);
  absl::Status can_listen = listen_address.ok()
                                ? fabric::ProbeListen("--listen", *listen_address)
                                : listen_address.status();
  if (!can_listen.ok()) {
    std::cerr << "error: " << can_listen.message() << "\n";
    return 2;
  }

  // Transport security, before the store is opened (a refused manager
  // leaves no trace): certificates whose identity is a manager's, or
  // --insecure on loopback only, with a warning.
  if (absl::Status transport = fabric::security::CheckTransport(
          "fabric-manager", server_options.tls, listen);
      !transport.ok()) {
    std::cerr << "error: " << transport.message() << "\n";
    return 2;
  }
  if (!http_listen.empty()) {
    auto http_address = fabric::ParseHostPort("--http-listen", http_listen);
    absl::Status can = http_address.ok()
                           ? fabric::ProbeListen("--http-listen", *http_address)
                           : http_address.status();
    if (can.ok()) {
      can = fabric::security::CheckTransport(
          "fabric-manager --http-listen", server_options.tls, http_listen,
          /*warn=*/false);
    }
    if (!can.ok()) {
      std::cerr << "error: " << can.message() << "\n";
      return 2;
    }
  }
  if (!server_options.tls.insecure) {
    auto identity = fabric::security::RequireOwnIdentity(
        server_options.tls, fabric::security::PrincipalKind::kManager, "");
    if (!identity.ok()) {
      std::cerr << "error: " << identity.status().message() << "\n";
      return 2;
    }
    std::cout << "fabric-manager: identity " << identity->ToString()
              << std::endl;
  }
  auto policy = policy_file.empty()
                    ? absl::StatusOr<fabric::security::Policy>(
                          fabric::security::Policy::Default())
                    : fabric::security::Policy::Load(policy_file);
  if (!policy.ok()) {
    std::cerr << "error: --policy: " << policy.status().message() << "\n";
    return 2;
  }
  server_options.policy = *std::move(policy);
  if (audit_log.empty() && !sqlite) audit_log = "fabric-manager.audit.log";
  if (audit_log.empty()) audit_log = db + ".audit.log";
  std::unique_ptr<fabric::security::AuditLog> audit;
  if (audit_log != "none") {
    auto opened = fabric::security::AuditLog::Open(audit_log);
    if (!opened.ok()) {
      std::cerr << "error: --audit-log: " << opened.status().message() << "\n";
      return 2;
    }
    audit = *std::move(opened);
    server_options.audit = audit.get();
  }

  // Every agent keeps a connection open (common/fd_limit.h).
  if (absl::StatusOr<fabric::OpenFileLimit> files =
          fabric::RaiseOpenFileLimit();
      !files.ok()) {
    std::cerr << "fabric-manager: WARNING: " << files.status().message()
              << "\n";
  } else if (files->after < 4096) {
    std::cerr << "fabric-manager: WARNING: the open-file limit is "
              << files->after
              << ": about that many agents and clients can connect at once; "
                 "raise it (systemd's LimitNOFILE, ulimit -n)\n";
  }

  // Block the stop signals before any thread starts; one thread waits for
  // them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // What ListManagers shows as this manager's store (no credentials: etcd's
  // TLS comes from flags, not the URL).
  server_options.store = store_spec->text;
  store_spec->sqlite.holder =
      absl::StrCat("fabric-manager listening on ", listen);
  auto store = fabric::store::OpenStore(*store_spec);
  if (!store.ok()) {
    std::cerr << "error: --store " << store_spec->text << ": "
              << store.status().message() << "\n";
    return 1;
  }
  // Metrics (/metrics on --http-listen): group commits as they happen,
  // every RPC (gRPC and REST) through the interceptor, the state at scrape
  // time from the sources set below.
  fabric::metrics::Registry registry;
  auto metrics = fabric::service::ManagerMetrics::Create(&registry);
  if (!metrics.ok()) {
    std::cerr << "error: metrics: " << metrics.status().message() << "\n";
    return 1;
  }
  options.commit_observer = metrics->get();
  server_options.interceptors.push_back(
      [m = metrics->get()] { return m->NewInterceptorFactory(); });

  // The REST listener, beside the gRPC one, calling whichever gRPC server
  // `channel` names.
  fabric::rest::RestListenerOptions rest_options;
  rest_options.handlers["/metrics"] = [&registry](
                                          const fabric::http::HttpRequest&) {
    return fabric::http::HttpResponse::Text(
        200, fabric::metrics::kContentType, registry.Render());
  };
  rest_options.listen = http_listen;
  rest_options.tls = server_options.tls;
  rest_options.policy = &*server_options.policy;
  rest_options.audit = server_options.audit;
  auto start_rest = [&](fabric::rest::ChannelSource channel)
      -> absl::StatusOr<std::unique_ptr<fabric::rest::RestListener>> {
    if (http_listen.empty()) return nullptr;
    auto rest = fabric::rest::RestListener::Start(rest_options,
                                                  std::move(channel));
    if (rest.ok()) {
      fabric::PrintLine(std::cout, "fabric-manager: REST on ",
                        http_listen.substr(0, http_listen.rfind(':') + 1),
                        (*rest)->port());
    }
    return rest;
  };
  if (!sqlite) {
    // Several managers may share this etcd prefix: elect one leader, and
    // serve as a standby until this one is it (server/ha).
    fabric::ha::HaOptions ha;
    ha.listen = listen_address->ToString();
    ha.election.client = store_spec->etcd.client;
    ha.election.prefix = store_spec->etcd.prefix;
    ha.election.ttl = lease;
    ha.manager = options;
    ha.server = server_options;
    std::cout << "fabric-manager: store " << store_spec->text
              << (server_options.tls.insecure ? ", plaintext" : ", mutual TLS")
              << ", audit " << audit_log << std::endl;
    // OpenStore made an EtcdStore for an etcd spec.
    return fabric::ha::RunHaManager(
        static_cast<fabric::store::EtcdStore*>(store->get()), ha,
        stop_signals,
        [&](fabric::ha::HaManager* manager)
            -> absl::StatusOr<std::function<void()>> {
          (*metrics)->SetSources(
              {.stats = [manager] { return manager->Stats(); },
               .shed = [manager] { return manager->ShedRequests(); },
               .leader = [manager] {
                 return manager->role() == fabric::ha::HaManager::Role::kLeader;
               }});
          auto rest = start_rest([manager] {
            return manager->InProcessChannel();
          });
          if (!rest.ok()) return rest.status();
          std::shared_ptr<fabric::rest::RestListener> shared =
              *std::move(rest);
          return [shared, m = metrics->get()] {
            if (shared != nullptr) shared->Shutdown();
            m->SetSources({});
          };
        });
  }
  auto manager = fabric::service::FabricManager::Open(
      store->get(), fabric::Clock::Real(), options);
  if (!manager.ok()) {
    std::cerr << "error: loading state from " << store_spec->text << ": "
              << manager.status().message() << "\n";
    return 1;
  }
  auto server = fabric::service::GrpcServer::Start(
      manager->get(), listen_address->ToString(), server_options);
  if (!server.ok()) {
    // Taken since the probe, most likely.
    std::cerr << "error: " << server.status().message() << "\n";
    return 2;
  }
  const std::string bound =
      fabric::HostPort{listen_address->host,
                       static_cast<uint16_t>((*server)->port())}
          .ToString();
  // A second manager on this SQLite file is told where this one listens.
  if (absl::Status s =
          sqlite ? fabric::store::DescribeStoreHolder(
                       db, absl::StrCat("fabric-manager listening on ", bound))
                 : absl::OkStatus();
      !s.ok()) {
    std::cerr << "warning: " << s.message() << "\n";
  }
  std::cout << "fabric-manager listening on " << bound << " ("
            << (sqlite ? "db " + db : "store " + store_spec->text)
            << (server_options.tls.insecure ? ", plaintext" : ", mutual TLS")
            << ", audit " << audit_log << ")" << std::endl;

  (*metrics)->SetSources(
      {.stats = [m = manager->get()]()
           -> std::optional<fabric::service::ManagerStats> {
         return m->Stats();
       },
       .shed = [s = server->get()] { return s->admission().rejected(); },
       .leader = [] { return true; }});
  auto rest = start_rest([server = server->get()] {
    return server->InProcessChannel();
  });
  if (!rest.ok()) {
    std::cerr << "error: " << rest.status().message() << "\n";
    return 2;
  }

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::cout << "fabric-manager: signal " << sig << ", shutting down"
              << std::endl;
    if (*rest != nullptr) (*rest)->Shutdown();
    (*manager)->Shutdown();
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.join();
  return 0;
}
