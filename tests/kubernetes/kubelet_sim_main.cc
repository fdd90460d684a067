// fabric-kubelet-sim: a simulated kubelet that runs one pod's life against
// a real fabric-device-plugin, for `deploy/dev.sh demo` and for trying the
// plugin by hand where no kubelet runs. It is the tests' kubelet stand-in
// (kubelet_stand_in.h) and PodResources server (pod_resources_server.h),
// both written from the kubelet's upstream protos, driven as the kubelet
// drives them:
//   1. serves Registration on <kubelet-dir>/kubelet.sock and PodResources
//      on --pod-resources-socket, and waits for the plugin to register the
//      VF resource and the memory resource;
//   2. waits until ListAndWatch lists enough Healthy devices, and asks
//      GetPreferredAllocation for --vfs VFs and --memory chunks;
//   3. admits the pod (PodResources lists it from now on) and calls
//      Allocate for each resource, printing the CDI device names, the
//      environment and each CDI spec file the plugin wrote;
//   4. when --end-pod-on FILE exists (at once without it), deletes the pod
//      and waits until the plugin has released every device (its CDI spec
//      files are gone).
// Exit 0 when all of it happened, 1 on any failure (the step is named), 2 on
// bad flags. Not a kubelet: it admits one pod and ends.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/args.h"
#include "common/status_line.h"
#include "device_plugin/cdi_spec.h"
#include "device_plugin/device_plugin_test_util.h"
#include "tests/kubernetes/kubelet_stand_in.h"
#include "tests/kubernetes/pod_resources_server.h"

namespace fabric::k8stest {
namespace {

using ::fabric::device_plugin::CdiSpecPath;
using ::fabric::device_plugin::kMemoryClass;
using ::fabric::device_plugin::kVfClass;
using ::fabric::device_plugin::testing::kMemoryResource;
using ::fabric::device_plugin::testing::kVfResource;
using ::fabric::testing::KubeletStandIn;

constexpr char kNamespace[] = "default";

struct Flags {
  std::string kubelet_dir;
  std::string pod_resources_socket;
  std::string cdi_dir = "/var/run/cdi";
  std::string vf_resource = kVfResource;
  int vfs = 1;
  int memory = 2;
  std::string pod = "demo-pod";
  std::string end_pod_on;
  absl::Duration timeout = absl::Seconds(30);
};

void Say(const std::string& line) { PrintLine(std::cout, "kubelet-sim: " + line); }

absl::Status Failed(absl::string_view step) {
  return absl::DeadlineExceededError(step);
}

std::vector<std::string> HealthyIds(const v1beta1::ListAndWatchResponse& l) {
  std::vector<std::string> ids;
  for (const auto& d : l.devices()) {
    if (d.health() == "Healthy") ids.push_back(d.id());
  }
  return ids;
}

// One resource's part of the pod: preferred devices, then Allocate.
absl::StatusOr<std::vector<std::string>> Claim(KubeletStandIn& kubelet,
                                               PodResourcesServer& pods,
                                               const Flags& f,
                                               const std::string& resource,
                                               absl::string_view device_class,
                                               int count) {
  if (!kubelet.WaitForDevices(
          resource,
          [&](const v1beta1::ListAndWatchResponse& l) {
            return static_cast<int>(HealthyIds(l).size()) >= count;
          },
          f.timeout)) {
    return Failed(absl::StrCat(resource, ": fewer than ", count,
                               " Healthy devices listed within ",
                               absl::FormatDuration(f.timeout)));
  }
  const std::vector<std::string> listed =
      HealthyIds(kubelet.Devices(resource));
  Say(absl::StrCat(resource, " lists ", listed.size(), " Healthy: ",
                   absl::StrJoin(listed, " ")));
  v1beta1::PreferredAllocationRequest pref;
  auto* c = pref.add_container_requests();
  for (const std::string& id : listed) c->add_available_deviceids(id);
  c->set_allocation_size(count);
  absl::StatusOr<v1beta1::PreferredAllocationResponse> p =
      kubelet.GetPreferredAllocation(resource, pref);
  if (!p.ok()) return p.status();
  if (p->container_responses_size() != 1 ||
      p->container_responses(0).deviceids_size() != count) {
    return absl::InternalError(absl::StrCat(
        "GetPreferredAllocation(", count, ") answered ", p->DebugString()));
  }
  std::vector<std::string> chosen(
      p->container_responses(0).deviceids().begin(),
      p->container_responses(0).deviceids().end());
  Say(absl::StrCat("GetPreferredAllocation(", count, ") prefers ",
                   absl::StrJoin(chosen, " "), " (nearest, least loaded)"));
  pods.SetPod(kNamespace, f.pod, resource, chosen);
  v1beta1::AllocateRequest req;
  auto* cr = req.add_container_requests();
  for (const std::string& id : chosen) cr->add_devices_ids(id);
  const absl::Time t0 = absl::Now();
  absl::StatusOr<v1beta1::AllocateResponse> r =
      kubelet.Allocate(resource, req);
  if (!r.ok()) return r.status();
  if (r->container_responses_size() != 1) {
    return absl::InternalError(
        absl::StrCat("Allocate answered ", r->container_responses_size(),
                     " container responses for one container"));
  }
  const v1beta1::ContainerAllocateResponse& resp = r->container_responses(0);
  std::vector<std::string> cdi;
  for (const auto& d : resp.cdi_devices()) cdi.push_back(d.name());
  Say(absl::StrCat("Allocate took ", absl::FormatDuration(absl::Now() - t0),
                   " (attached and READY): CDI devices ",
                   absl::StrJoin(cdi, " ")));
  const std::map<std::string, std::string> env(resp.envs().begin(),
                                               resp.envs().end());
  for (const auto& [key, value] : env) {
    Say(absl::StrCat("  env ", key, "=", value));
  }
  for (const std::string& id : chosen) {
    const std::string path = CdiSpecPath(f.cdi_dir, device_class, id);
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return absl::NotFoundError(absl::StrCat("no CDI spec ", path));
    Say(absl::StrCat("  CDI spec ", path, ": ", text.str()));
  }
  return chosen;
}

absl::Status Run(const Flags& f) {
  KubeletStandIn kubelet(f.kubelet_dir);
  PodResourcesServer pods(f.pod_resources_socket);
  if (absl::Status s = kubelet.Start(); !s.ok()) return s;
  if (absl::Status s = pods.Start(); !s.ok()) return s;
  Say(absl::StrCat("serving ", kubelet.socket_path(), " and ",
                   f.pod_resources_socket));
  auto registered = [&](const std::string& resource) {
    for (const auto& r : kubelet.registrations()) {
      if (r.request.resource_name() == resource && r.plugin_served) {
        return true;
      }
    }
    return false;
  };
  const absl::Time deadline = absl::Now() + f.timeout;
  for (const std::string& resource : {f.vf_resource,
                                      std::string(kMemoryResource)}) {
    while (!registered(resource)) {
      if (absl::Now() > deadline) {
        return Failed(absl::StrCat("the plugin did not register ", resource,
                                   " within ",
                                   absl::FormatDuration(f.timeout)));
      }
      kubelet.WaitForRegistrations(kubelet.registrations().size() + 1,
                                   absl::Milliseconds(100));
    }
    Say(absl::StrCat("the plugin registered ", resource,
                     " (its socket answered first)"));
  }

  std::vector<std::pair<std::string, std::vector<std::string>>> held;
  if (f.vfs > 0) {
    absl::StatusOr<std::vector<std::string>> ids =
        Claim(kubelet, pods, f, f.vf_resource, kVfClass, f.vfs);
    if (!ids.ok()) return ids.status();
    held.emplace_back(std::string(kVfClass), *ids);
  }
  if (f.memory > 0) {
    absl::StatusOr<std::vector<std::string>> ids =
        Claim(kubelet, pods, f, kMemoryResource, kMemoryClass, f.memory);
    if (!ids.ok()) return ids.status();
    held.emplace_back(std::string(kMemoryClass), *ids);
  }
  Say(absl::StrCat("pod ", kNamespace, "/", f.pod, " is running"));

  if (!f.end_pod_on.empty()) {
    while (!std::filesystem::exists(f.end_pod_on)) {
      if (absl::Now() > deadline + f.timeout) {
        return Failed(absl::StrCat(f.end_pod_on, " did not appear"));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  pods.RemovePod(kNamespace, f.pod);
  Say(absl::StrCat("pod ", kNamespace, "/", f.pod,
                   " deleted: PodResources no longer lists its devices"));
  const absl::Time release_deadline = absl::Now() + f.timeout;
  for (const auto& [device_class, ids] : held) {
    for (const std::string& id : ids) {
      const std::string path = CdiSpecPath(f.cdi_dir, device_class, id);
      while (std::filesystem::exists(path)) {
        if (absl::Now() > release_deadline) {
          return Failed(absl::StrCat("the plugin did not release ", id,
                                     " (", path, " is still there)"));
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
  }
  Say("the plugin released every device after its grace: CDI specs removed");
  pods.Stop();
  kubelet.Stop();
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  CLI::App app{
      "fabric-kubelet-sim: a simulated kubelet that runs one pod with remote "
      "VFs and remote memory against fabric-device-plugin"};
  Flags f;
  std::string timeout = "30s";
  app.add_option("--kubelet-dir", f.kubelet_dir,
                 "the device-plugin directory (kubelet.sock is served here)")
      ->required();
  app.add_option("--pod-resources-socket", f.pod_resources_socket,
                 "where the PodResources API is served")
      ->required();
  app.add_option("--cdi-dir", f.cdi_dir, "the plugin's CDI directory")
      ->capture_default_str();
  app.add_option("--vf-resource", f.vf_resource, "the VF resource to request")
      ->capture_default_str();
  app.add_option("--vfs", f.vfs, "VFs the pod requests")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  app.add_option("--memory", f.memory, "memory chunks the pod requests")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  app.add_option("--pod", f.pod, "the pod's name")->capture_default_str();
  app.add_option("--end-pod-on", f.end_pod_on,
                 "delete the pod once this file exists (default: at once)");
  app.add_option("--timeout", timeout, "how long each wait may take")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  absl::StatusOr<absl::Duration> t =
      client::ParseDurationFlag(timeout, "--timeout");
  if (!t.ok()) {
    std::cerr << "error: " << t.status().message() << "\n";
    return 2;
  }
  f.timeout = *t;
  if (absl::Status s = Run(f); !s.ok()) {
    std::cerr << "kubelet-sim: " << s << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace fabric::k8stest

int main(int argc, char** argv) { return fabric::k8stest::Main(argc, argv); }
