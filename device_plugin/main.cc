// fabric-device-plugin: parses flags and wires the offer feed, the device
// table, the claimer and the kubelet-facing plugin together (issue 15). All
// logic lives in device_plugin/.
#include <CLI/CLI.hpp>
#include <signal.h>

#include <iostream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/leader_channel.h"
#include "common/mutex_mode.h"
#include "common/security/tls_flags.h"
#include "common/units.h"
#include "client/args.h"
#include "client/fabric_client.h"
#include "device_plugin/claimer.h"
#include "device_plugin/claimer_impl.h"
#include "device_plugin/device_table.h"
#include "device_plugin/offer_feed.h"
#include "device_plugin/plugin.h"
#include "device_plugin/pod_resources_gc.h"

int main(int argc, char** argv) {
  fabric::DisableMutexDeadlockDetection();
  CLI::App app{
      "fabric-device-plugin: lends this node's pods remote VFs and remote "
      "memory through the kubelet's device plugin API"};
  std::string manager = "127.0.0.1:7070";
  std::string node;
  std::string kubelet_dir = "/var/lib/kubelet/device-plugins";
  std::string cdi_dir = "/var/run/cdi";
  std::string memory_chunk = "1Gi";
  std::string pod_resources_socket =
      "/var/lib/kubelet/pod-resources/kubelet.sock";
  std::string release_grace = "30s";
  std::string pod_resources_interval = "10s";
  app.add_option("--manager", manager,
                 "fabric-manager address HOST:PORT, or the managers of an HA "
                 "fabric HOST:PORT,HOST:PORT,... whose leader is followed")
      ->capture_default_str();
  app.add_option("--node", node, "this node's name in the fabric");
  app.add_option("--kubelet-dir", kubelet_dir,
                 "the kubelet's device-plugin directory (kubelet.sock and "
                 "the plugin's sockets)")
      ->capture_default_str();
  app.add_option("--cdi-dir", cdi_dir, "where CDI spec files are written")
      ->capture_default_str();
  app.add_option("--memory-chunk", memory_chunk,
                 "the size of one remote-memory device: a power of two from "
                 "4Ki to 1Ti")
      ->capture_default_str();
  app.add_option("--pod-resources-socket", pod_resources_socket,
                 "the kubelet's PodResources API socket (which devices pods "
                 "still hold)")
      ->capture_default_str();
  app.add_option("--release-grace", release_grace,
                 "a held device that no pod lists for this long is released")
      ->capture_default_str();
  app.add_option("--pod-resources-interval", pod_resources_interval,
                 "how often the PodResources API is asked which devices "
                 "pods hold")
      ->capture_default_str();
  fabric::security::TlsConfig tls;
  fabric::security::AddTlsFlags(app, &tls);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (node.empty()) {
    std::cerr << "error: --node is required (this node's name in the "
                 "fabric)\n";
    return 2;
  }
  auto managers = fabric::ParseManagerList("--manager", manager);
  if (!managers.ok()) {
    std::cerr << "error: " << managers.status().message() << "\n";
    return 2;
  }
  for (size_t i = 0; i < managers->size(); ++i) {
    absl::Status s = fabric::security::CheckTransport(
        "fabric-device-plugin", tls, (*managers)[i], /*warn=*/i == 0);
    if (!s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return 2;
    }
  }
  auto chunk = fabric::ParseSize(memory_chunk, "--memory-chunk");
  if (chunk.ok() && (*chunk < 4096 || *chunk > (uint64_t{1} << 40) ||
                     (*chunk & (*chunk - 1)) != 0)) {
    chunk = absl::InvalidArgumentError(absl::StrCat(
        "--memory-chunk: \"", memory_chunk,
        "\" is not a power of two from 4Ki to 1Ti"));
  }
  if (!chunk.ok()) {
    std::cerr << "error: " << chunk.status().message() << "\n";
    return 2;
  }

  auto grace = fabric::client::ParseDurationFlag(release_grace,
                                                "--release-grace");
  auto interval = fabric::client::ParseDurationFlag(
      pod_resources_interval, "--pod-resources-interval");
  for (const absl::Status& s : {grace.status(), interval.status()}) {
    if (!s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return 2;
    }
  }

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  fabric::device_plugin::ClaimerOptions claimer_options;
  claimer_options.node = node;
  claimer_options.cdi_dir = cdi_dir;
  // Claims are made under the node's identity ("node/<node>"): with mutual
  // TLS the node's certificate, which the manager makes the owner.
  std::shared_ptr<fabric::client::FabricClient> fabric_client =
      fabric::client::FabricClient::Connect(
          manager, tls, fabric::client::FabricClient::Options());
  std::unique_ptr<fabric::device_plugin::Claimer> claimer =
      fabric::device_plugin::NewFabricClaimer(
          claimer_options, fabric_client,
          fabric::device_plugin::DefaultOwner(node));
  // The kubelet never says when a pod is done with a device: what no pod
  // lists for the grace period is released.
  fabric::device_plugin::PodResourcesGcOptions gc_options;
  gc_options.socket = pod_resources_socket;
  gc_options.grace = *grace;
  gc_options.interval = *interval;
  fabric::device_plugin::PodResourcesGc gc(gc_options, claimer.get());

  fabric::device_plugin::DeviceTable table;
  fabric::device_plugin::PluginOptions plugin_options;
  plugin_options.registrar.kubelet_dir = kubelet_dir;
  fabric::device_plugin::Plugin plugin(plugin_options, &table, claimer.get());
  if (absl::Status s = plugin.Start(); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 2;
  }
  fabric::device_plugin::OfferFeedOptions feed_options;
  feed_options.managers = *managers;
  feed_options.tls = tls;
  feed_options.node = node;
  feed_options.memory_chunk_bytes = *chunk;
  fabric::device_plugin::OfferFeed feed(
      feed_options,
      [&table](const fabric::v1::OfferSet& set) { table.Apply(set); });
  feed.Start();
  gc.Start();
  std::cout << "fabric-device-plugin " << node << ": kubelet directory "
            << kubelet_dir << "; manager " << manager << std::endl;
  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::cout << "fabric-device-plugin " << node << ": signal " << sig
            << ", stopping" << std::endl;
  gc.Stop();
  feed.Stop();
  plugin.Stop();
  return 0;
}
