// fabric-agent: parses flags, builds the hardware backend and the inventory,
// and runs the Agent. All logic lives in agent/, agent/hw and
// agent/discovery.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <optional>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "agent/agent_identity.h"
#include "agent/agent_metrics.h"
#include "agent/discovery/inventory.h"
#include "agent/hw/linux/linux_bridge.h"
#include "agent/hw/linux/linux_sriov_functions.h"
#include "agent/hw/profile_limits.h"
#include "agent/hw/sim/sim_bridge.h"
#include "agent/hw/sim/sim_hardware.h"
#include "agent/hw/sim/sim_sriov_functions.h"
#include "agent/hw/sim/sriov_device.h"
#include "agent/hw/sim/sim_inventory.h"
#include "common/host_port.h"
#include "common/http/http_server.h"
#include "common/leader_channel.h"
#include "common/listen_probe.h"
#include "common/mutex_mode.h"
#include "common/security/policy.h"
#include "common/security/tls.h"
#include "common/security/tls_flags.h"
#include "common/status_line.h"

int main(int argc, char** argv) {
  fabric::DisableMutexDeadlockDetection();
  CLI::App app{
      "fabric-agent: applies the fabric manager's configuration to "
      "this node's PCIe bridge"};
  std::string manager = "127.0.0.1:7070";
  std::string node;
  std::string backend = "sim";
  std::string listen = "127.0.0.1:0";
  std::string sim_dir;
  std::string sim_profile = "sim";
  std::string sim_hardware;
  int sim_crash_after_writes = -1;
  std::string pci_dump;
  std::string sysfs_root;
  std::string debugfs_root = "/sys/kernel/debug";
  std::string ntb_device;
  std::vector<std::string> peers;
  std::string profile = "sim";
  std::string drift_interval = "1s";
  std::string apply_retry_initial = "100ms";
  std::string apply_retry_max = "5s";
  bool discover = false;
  std::string output = "table";
  app.add_option("--manager", manager,
                 "fabric-manager address HOST:PORT, or the managers of an HA "
                 "fabric HOST:PORT,HOST:PORT,... whose leader is followed")
      ->capture_default_str();
  app.add_option("--node", node, "this node's name in the fabric");
  app.add_option("--backend", backend, "hardware backend")
      ->check(CLI::IsMember({"sim", "linux"}))
      ->capture_default_str();
  app.add_option("--listen", listen,
                 "where the data-path service listens (port 0 picks one)")
      ->capture_default_str();
  std::string advertise;
  app.add_option("--advertise", advertise,
                 "the data-path address the manager and peers dial "
                 "(HOST:PORT); default: --listen when its host is specific, "
                 "else the address the manager sees this agent connect from");
  app.add_option("--sim-dir", sim_dir,
                 "sim: the simulator's shared directory (host memory files "
                 "and bridge state)");
  app.add_option("--sim-profile", sim_profile,
                 "sim: the simulated bridge's hardware profile")
      ->capture_default_str();
  app.add_option("--sim-hardware", sim_hardware,
                 "sim: the simulated host's hardware (bridge profile and "
                 "SR-IOV devices), protobuf JSON; see agent/hw/sim/examples");
  app.add_option("--sim-crash-after-writes", sim_crash_after_writes,
                 "sim, fault injection for tests: exit (code 86) once this "
                 "many register writes have landed, even mid-apply")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--pci-dump", pci_dump,
                 "discover from an lspci -xxxx dump instead of the live bus");
  app.add_option("--sysfs-root", sysfs_root,
                 "discover from (and drive) a sysfs tree under this root");
  app.add_option("--debugfs-root", debugfs_root,
                 "linux: where debugfs is mounted (ntb_tool lives below)")
      ->capture_default_str();
  app.add_option("--ntb-device", ntb_device,
                 "linux: the NTB device under ntb_tool/, e.g. 0000:03:00.1");
  app.add_option("--peer", peers,
                 "linux: BRIDGE=N maps a peer bridge to ntb_tool's peerN "
                 "(repeatable)");
  app.add_option("--profile", profile,
                 "linux: the bridge's hardware profile (limits)")
      ->capture_default_str();
  app.add_option("--drift-check-interval", drift_interval,
                 "how often the hardware is read back and repaired")
      ->capture_default_str();
  app.add_option("--apply-retry-initial", apply_retry_initial,
                 "after the hardware refuses entries, the first wait before "
                 "the generation is tried again (doubles each time)")
      ->capture_default_str();
  app.add_option("--apply-retry-max", apply_retry_max,
                 "the longest wait between attempts at a refused generation")
      ->capture_default_str();
  std::string http_listen;
  app.add_option("--http-listen", http_listen,
                 "serve Prometheus metrics (GET /metrics) on HOST:PORT, with "
                 "the data path's TLS (port 0 picks one); default: off");
  fabric::security::TlsConfig tls;
  fabric::security::AddTlsFlags(app, &tls);
  std::string policy_file;
  app.add_option("--policy", policy_file,
                 "the access policy (protobuf text, see "
                 "deploy/policy/policy.textproto); default: the compiled-in one");
  app.add_flag("--discover", discover, "print the PCIe inventory and exit");
  app.add_option("-o,--output", output, "--discover output: table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and succeeds; every usage error exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  if (!pci_dump.empty() && !sysfs_root.empty()) {
    std::cerr << "error: --pci-dump and --sysfs-root are alternatives; give "
                 "one\n";
    return 2;
  }
  fabric::agent::discovery::DiscoveryOptions disc;
  if (!pci_dump.empty()) {
    disc.source = fabric::agent::discovery::DiscoveryOptions::Source::kDumpFile;
    disc.path = pci_dump;
  } else if (!sysfs_root.empty()) {
    disc.source =
        fabric::agent::discovery::DiscoveryOptions::Source::kSysfsTree;
    disc.path = sysfs_root;
  }
  if (discover) {
    return fabric::agent::discovery::RunDiscover(disc, output == "json",
                                                 std::cout, std::cerr);
  }
  if (node.empty()) {
    std::cerr << "error: --node is required (this node's name in the "
                 "fabric)\n";
    return 2;
  }
  // One manager, or the managers of an HA fabric (their leader is
  // followed).
  auto manager_address = fabric::ParseManagerList("--manager", manager);
  auto listen_address = fabric::ParseHostPort("--listen", listen);
  absl::Status flags_ok = !manager_address.ok() ? manager_address.status()
                          : !listen_address.ok()
                              ? listen_address.status()
                              : fabric::ProbeListen("--listen", *listen_address);
  if (flags_ok.ok() && !advertise.empty()) {
    auto advertised = fabric::ParseHostPort("--advertise", advertise);
    if (!advertised.ok()) {
      flags_ok = advertised.status();
    } else if (advertised->port == 0 || advertised->host == "0.0.0.0" ||
               advertised->host == "::") {
      flags_ok = absl::InvalidArgumentError(absl::StrCat(
          "--advertise: \"", advertise,
          "\" is not an address others can dial; give this host's address "
          "and the data-path port"));
    }
  }
  if (flags_ok.ok()) {
    flags_ok = fabric::agent::CheckAgentSecurity(tls, node, listen, manager);
  }
  if (flags_ok.ok() && !http_listen.empty()) {
    auto http_address = fabric::ParseHostPort("--http-listen", http_listen);
    flags_ok = http_address.ok()
                   ? fabric::ProbeListen("--http-listen", *http_address)
                   : http_address.status();
    if (flags_ok.ok()) {
      flags_ok = fabric::security::CheckTransport(
          "fabric-agent --http-listen", tls, http_listen, /*warn=*/false);
    }
  }
  absl::StatusOr<fabric::security::Policy> policy =
      policy_file.empty() ? fabric::security::Policy::Default()
                          : fabric::security::Policy::Load(policy_file);
  if (flags_ok.ok() && !policy.ok()) {
    flags_ok = absl::Status(policy.status().code(),
                            absl::StrCat("--policy: ", policy.status().message()));
  }
  if (!flags_ok.ok()) {
    std::cerr << "error: " << flags_ok.message() << "\n";
    return 2;
  }
  fabric::agent::AgentOptions options;
  options.tls = tls;
  options.policy = *std::move(policy);
  options.manager_address = manager;
  options.node = node;
  options.backend = backend;
  options.listen = listen;
  options.advertise = advertise;
  if (!absl::ParseDuration(drift_interval, &options.drift_check_interval) ||
      options.drift_check_interval <= absl::ZeroDuration()) {
    std::cerr << "error: --drift-check-interval: \"" << drift_interval
              << "\" is not a positive duration such as 500ms or 2s\n";
    return 2;
  }
  if (!absl::ParseDuration(apply_retry_initial,
                           &options.apply_retry_initial) ||
      options.apply_retry_initial <= absl::ZeroDuration()) {
    std::cerr << "error: --apply-retry-initial: \"" << apply_retry_initial
              << "\" is not a positive duration such as 100ms\n";
    return 2;
  }
  if (!absl::ParseDuration(apply_retry_max, &options.apply_retry_max) ||
      options.apply_retry_max < options.apply_retry_initial) {
    std::cerr << "error: --apply-retry-max: \"" << apply_retry_max
              << "\" is not a duration of at least --apply-retry-initial ("
              << apply_retry_initial << ")\n";
    return 2;
  }

  // Declared before the bridge, which holds it: CPU writes through this
  // host's windows that land in another host's lent BARs reach its devices.
  std::unique_ptr<fabric::agent::hw::SimDevicesMmio> device_mmio;
  std::unique_ptr<fabric::agent::hw::BridgeHardware> bridge;
  std::optional<fabric::agent::hw::SimHardware> sim_devices_spec;
  std::unique_ptr<fabric::agent::hw::SimSriovHost> sim_devices;
  if (backend == "sim") {
    if (sim_dir.empty()) {
      std::cerr << "error: --backend sim needs --sim-dir (the simulator's "
                   "shared directory)\n";
      return 2;
    }
    if (!sim_hardware.empty()) {
      auto hw = fabric::agent::hw::LoadSimHardware(sim_hardware);
      if (!hw.ok()) {
        std::cerr << "error: --sim-hardware: " << hw.status().message() << "\n";
        return 2;
      }
      sim_profile = hw->bridge_profile;
      sim_devices_spec = *std::move(hw);
    }
    auto limits =
        fabric::agent::hw::LimitsForProfile("--sim-profile", sim_profile);
    if (!limits.ok()) {
      std::cerr << "error: " << limits.status().message() << "\n";
      return 2;
    }
    auto sim = fabric::agent::hw::SimBridge::Open(sim_dir, node, *limits);
    if (!sim.ok()) {
      std::cerr << "error: simulator: " << sim.status().message() << "\n";
      return 1;
    }
    if (sim_crash_after_writes >= 0) {
      (*sim)->CrashAfterWrites(sim_crash_after_writes);
    }
    device_mmio = std::make_unique<fabric::agent::hw::SimDevicesMmio>(sim_dir);
    (*sim)->SetDevices(device_mmio.get());
    bridge = *std::move(sim);
    if (sim_devices_spec.has_value()) {
      // After the bridge: device DMA walks the bridge state.
      auto host = fabric::agent::hw::SimSriovHost::Open(sim_dir, node,
                                                        *sim_devices_spec);
      if (!host.ok()) {
        std::cerr << "error: simulated devices: " << host.status().message()
                  << "\n";
        return 1;
      }
      sim_devices = *std::move(host);
    }
  } else {
    auto limits = fabric::agent::hw::LimitsForProfile("--profile", profile);
    if (!limits.ok()) {
      std::cerr << "error: " << limits.status().message() << "\n";
      return 2;
    }
    fabric::agent::hw::LinuxBridge::Options lo;
    lo.debugfs_root = debugfs_root;
    if (!sysfs_root.empty()) lo.sysfs_root = sysfs_root;
    lo.device = ntb_device;
    lo.name = node;
    for (const std::string& peer : peers) {
      std::vector<std::string> kv = absl::StrSplit(peer, '=');
      int index = 0;
      if (kv.size() != 2 || !absl::SimpleAtoi(kv[1], &index)) {
        std::cerr << "error: --peer: \"" << peer
                  << "\" is not BRIDGE=N (e.g. n2=0)\n";
        return 2;
      }
      lo.peer_index[kv[0]] = index;
    }
    auto linux_bridge = fabric::agent::hw::LinuxBridge::Open(lo, *limits);
    if (!linux_bridge.ok()) {
      std::cerr << "error: linux backend: " << linux_bridge.status().message()
                << "\n";
      return 1;
    }
    bridge = *std::move(linux_bridge);
  }

  fabric::v1::NodeInventory inventory;
  if (sim_devices != nullptr) {
    // The simulated host's PCIe functions are the simulated ones.
    auto inv = fabric::agent::hw::SimulatedInventory(*sim_devices);
    if (!inv.ok()) {
      std::cerr << "error: simulated inventory: " << inv.status().message()
                << "\n";
      return 1;
    }
    inventory = *std::move(inv);
  } else if (backend == "sim" &&
             disc.source ==
                 fabric::agent::discovery::DiscoveryOptions::Source::kLiveBus) {
    // A simulated node has only simulated hardware: the host's real PCI
    // bus is not its inventory (--pci-dump or --sysfs-root give it one).
    std::cerr << "fabric-agent " << node
              << ": simulated node without --sim-hardware, --pci-dump or "
                 "--sysfs-root: its inventory is empty"
              << std::endl;
  } else if (auto inv = fabric::agent::discovery::Discover(disc); inv.ok()) {
    inventory = *std::move(inv);
  } else {
    std::cerr << "fabric-agent " << node
              << ": PCIe discovery failed, registering without inventory: "
              << inv.status().message() << std::endl;
  }

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // The SR-IOV functions this node can lend: the simulated ones, or the
  // host's own through sysfs.
  std::unique_ptr<fabric::agent::hw::SriovFunctions> functions;
  if (sim_devices != nullptr) {
    functions = std::make_unique<fabric::agent::hw::SimSriovFunctions>(
        sim_devices.get());
  } else if (backend == "linux") {
    functions = std::make_unique<fabric::agent::hw::LinuxSriovFunctions>(
        sysfs_root.empty() ? "/sys" : sysfs_root);
  }
  // A fenced agent ends the program as a stop signal would, with
  // kExitFenced.
  std::atomic<bool> fenced{false};
  options.on_fenced = [&fenced](const std::string&) {
    fenced = true;
    kill(getpid(), SIGTERM);
  };
  fabric::agent::Agent agent(options, bridge.get(), std::move(inventory),
                             functions.get());
  if (absl::Status s = agent.Start(); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 2;  // --listen, taken since the probe
  }
  std::unique_ptr<fabric::http::HttpServer> metrics_server;
  if (!http_listen.empty()) {
    fabric::http::HttpServerOptions http_options;
    http_options.listen = http_listen;
    http_options.tls = tls;
    http_options.threads = 4;
    auto served =
        fabric::agent::ServeAgentMetrics(http_options, &agent.metrics());
    if (!served.ok()) {
      std::cerr << "error: " << served.status().message() << "\n";
      agent.Stop();
      return 2;  // --http-listen, taken since the probe
    }
    metrics_server = *std::move(served);
    fabric::PrintLine(std::cout, "fabric-agent: metrics on ",
                      http_listen.substr(0, http_listen.rfind(':') + 1),
                      metrics_server->port());
  }
  std::cout << "fabric-agent " << node << " (" << backend
            << ") serving its data path on "
            << listen.substr(0, listen.rfind(':')) << ":"
            << agent.control_port() << "; manager " << manager << std::endl;
  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::cout << "fabric-agent " << node << ": signal " << sig << ", stopping"
            << std::endl;
  if (metrics_server != nullptr) metrics_server->Shutdown();
  agent.Stop();
  return fenced ? fabric::agent::kExitFenced : 0;
}
