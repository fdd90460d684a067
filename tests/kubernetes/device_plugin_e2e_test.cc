// fabric-device-plugin end to end (issue 15): a real fabric-manager and
// three simulated agents on a ring, as processes over mutual TLS; n1 lends
// the VFs of agent/hw/sim/examples/one_pf.json and every node its export
// memory. The real fabric-device-plugin binary runs for n0 (and later n2)
// with the node's certificate, against the kubelet stand-in and a
// PodResources server. Every step waits for the state it needs.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/fabric_client.h"
#include "common/file_util.h"
#include "common/offer_label.h"
#include "device_plugin/cdi_spec.h"
#include "device_plugin/device_plugin_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/kubernetes/kubelet_stand_in.h"
#include "tests/kubernetes/lending_fabric.h"
#include "tests/kubernetes/pod_resources_server.h"
#include "tests/process/process_util.h"

namespace fabric::testing {
namespace {

using ::fabric::device_plugin::CdiDevice;
using ::fabric::device_plugin::CdiDeviceName;
using ::fabric::device_plugin::CdiSpecPath;
using ::fabric::device_plugin::ParseCdiSpec;
using ::fabric::device_plugin::testing::kMemoryResource;
using ::fabric::device_plugin::testing::kVfResource;
using ::fabric::device_plugin::testing::SocketDir;
using ::fabric::k8stest::LendingFabric;
using ::fabric::k8stest::PodResourcesServer;
using ::fabric::proctest::BinDir;
using ::fabric::proctest::Child;
using ::fabric::proctest::ReadFile;
using ::fabric::proctest::Scaled;
using ::fabric::proctest::TempDir;
using ::fabric::proctest::WaitFor;
using ::testing::ElementsAre;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAreArray;

constexpr uint64_t kChunk = 4 << 20;
constexpr char kVfEnv[] = "PCIDEVICE_PCIEFABRIC_DEV_VF_8086_154C";

using DeviceList = v1beta1::ListAndWatchResponse;

std::set<std::string> Ids(const DeviceList& list) {
  std::set<std::string> out;
  for (const auto& d : list.devices()) out.insert(d.id());
  return out;
}

// Every device of `list` whose id starts with `prefix` has `health`, and
// there is at least one.
bool AllWithPrefix(const DeviceList& list, const std::string& prefix,
                   const std::string& health) {
  int n = 0;
  for (const auto& d : list.devices()) {
    if (!absl::StartsWith(d.id(), prefix)) continue;
    if (d.health() != health) return false;
    ++n;
  }
  return n > 0;
}

// One node's plugin with its kubelet stand-in and PodResources server.
struct PluginNode {
  std::string node;
  std::string kubelet_dir;
  std::string cdi_dir;
  std::string log;
  std::vector<std::string> argv;
  std::unique_ptr<KubeletStandIn> kubelet;
  std::unique_ptr<PodResourcesServer> pods;
  std::unique_ptr<Child> plugin;

  void StartPlugin() { plugin = std::make_unique<Child>(argv, log); }
};

class DevicePluginE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(sockets_.path().empty());
    absl::Status started = fabric_.Start(dir_.path());
    ASSERT_TRUE(started.ok()) << started << fabric_.ManagerLog();
  }

  // The kubelet stand-in and PodResources server of `node`, serving; the
  // plugin's command line (started by the caller).
  std::unique_ptr<PluginNode> NewNode(const std::string& node) {
    auto p = std::make_unique<PluginNode>();
    p->node = node;
    p->kubelet_dir = sockets_.path() + "/" + node;
    p->cdi_dir = dir_.path() + "/cdi-" + node;
    p->log = dir_.path() + "/plugin-" + node + ".log";
    std::filesystem::create_directories(p->kubelet_dir);
    p->kubelet = std::make_unique<KubeletStandIn>(p->kubelet_dir);
    EXPECT_TRUE(p->kubelet->Start().ok());
    p->pods = std::make_unique<PodResourcesServer>(sockets_.path() + "/pr-" +
                                                   node + ".sock");
    EXPECT_TRUE(p->pods->Start().ok());
    p->argv = {BinDir() + "/fabric-device-plugin",
               "--manager", fabric_.address(),
               "--node", node,
               "--kubelet-dir", p->kubelet_dir,
               "--cdi-dir", p->cdi_dir,
               "--memory-chunk", "4Mi",
               "--pod-resources-socket", p->pods->socket_path(),
               "--release-grace", "2s",
               "--pod-resources-interval", "200ms"};
    for (std::string& flag : fabric_.tls().AgentFlags(node)) p->argv.push_back(flag);
    return p;
  }

  std::vector<v1::Attachment> LiveAttachments(const std::string& node) {
    return fabric_.LiveAttachments("node/" + node);
  }
  std::vector<v1::Allocation> LiveAllocations(const std::string& node) {
    return fabric_.LiveAllocations("node/" + node);
  }
  // The names of those claims.
  std::set<std::string> LiveClaims(const std::string& node) {
    std::set<std::string> out;
    for (const auto& a : LiveAttachments(node)) out.insert(a.name());
    for (const auto& a : LiveAllocations(node)) out.insert(a.name());
    return out;
  }

  // The CDI spec of a device, parsed as JSON and as our spec.
  CdiDevice Spec(const std::string& cdi_dir, absl::string_view device_class,
                 absl::string_view id) {
    absl::StatusOr<std::string> text =
        ReadFileToString(CdiSpecPath(cdi_dir, device_class, id));
    EXPECT_TRUE(text.ok()) << text.status();
    if (!text.ok()) return {};
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << *text;
    if (j.is_discarded()) return {};
    EXPECT_EQ(j["kind"], absl::StrCat("pciefabric.dev/", device_class));
    EXPECT_EQ(j["devices"][0]["name"], std::string(id)) << *text;
    absl::StatusOr<CdiDevice> spec = ParseCdiSpec("spec", *text);
    EXPECT_TRUE(spec.ok()) << spec.status();
    return spec.ok() ? *spec : CdiDevice{};
  }

  static v1beta1::AllocateRequest Request(
      const std::vector<std::string>& ids) {
    v1beta1::AllocateRequest req;
    auto* c = req.add_container_requests();
    for (const std::string& id : ids) c->add_devices_ids(id);
    return req;
  }

  // Cuts (or restores) both links of n1: its devices then cannot be reached
  // from n0 either way round the ring.
  void SetLenderLinks(bool up) {
    absl::StatusOr<std::vector<v1::Link>> links = fabric_.admin().ListLinks(LendingFabric::kFabric);
    ASSERT_TRUE(links.ok()) << links.status();
    int n = 0;
    for (const v1::Link& l : *links) {
      if (!absl::StrContains(l.a_bridge(), "n1") &&
          !absl::StrContains(l.b_bridge(), "n1")) {
        continue;
      }
      v1::SetLinkStateRequest req;
      req.set_name(l.name());
      req.set_up(up);
      absl::StatusOr<v1::Link> out = fabric_.admin().SetLinkState(req);
      ASSERT_TRUE(out.ok()) << out.status();
      ++n;
    }
    ASSERT_EQ(n, 2);
  }

  // Waits until `p`'s kubelet lists n1's VFs (exactly `vfs`, unless null)
  // and n1's memory chunks, at least one of each, all with `health`.
  bool WaitForLender(const PluginNode& p, const std::set<std::string>* vfs,
                     const std::string& health) {
    const absl::Duration wait = Scaled(absl::Seconds(20));
    const bool ok =
        p.kubelet->WaitForDevices(
            kVfResource,
            [&](const DeviceList& l) {
              return (vfs == nullptr || Ids(l) == *vfs) &&
                     AllWithPrefix(l, "vf-n1-", health);
            },
            wait) &&
        p.kubelet->WaitForDevices(
            kMemoryResource,
            [&](const DeviceList& l) {
              return AllWithPrefix(l, "mem-n1-", health);
            },
            wait);
    if (!ok) {
      ADD_FAILURE() << "not all " << health << ":\n"
                    << p.kubelet->Devices(kVfResource).DebugString()
                    << p.kubelet->Devices(kMemoryResource).DebugString()
                    << Logs(p);
    }
    return ok;
  }

  std::string Logs(const PluginNode& p) {
    return absl::StrCat("plugin ", p.node, ":\n", ReadFile(p.log),
                        "\nmanager:\n",
                        fabric_.ManagerLog());
  }

  TempDir dir_;
  SocketDir sockets_;  // short: unix socket paths
  LendingFabric fabric_;
};

TEST_F(DevicePluginE2eTest, PluginAgainstARealManager) {
  const absl::Duration wait = Scaled(absl::Seconds(20));
  std::unique_ptr<PluginNode> a = NewNode("n0");
  a->StartPlugin();
  KubeletStandIn& kubelet = *a->kubelet;

  // 1. One registration per resource, each after its socket served.
  ASSERT_TRUE(kubelet.WaitForRegistrations(2, wait)) << Logs(*a);
  {
    std::set<std::string> resources;
    for (const auto& r : kubelet.registrations()) {
      EXPECT_TRUE(r.plugin_served) << r.error;
      EXPECT_EQ(r.incarnation, 0);
      resources.insert(r.request.resource_name());
    }
    EXPECT_EQ(resources,
              (std::set<std::string>{kVfResource, kMemoryResource}));
  }

  // 2. ListAndWatch: n1's VFs and memory chunks (n0 is the only node
  // watching), all Healthy, as many as the windows allow: each VF of
  // one_pf.json takes two of n0's windows (two BARs) and two of n1's, each
  // chunk one of n0's, and a sim bridge has 8.
  ASSERT_TRUE(kubelet.WaitForDevices(
      kVfResource, [](const DeviceList& l) { return l.devices_size() > 0; },
      wait));
  ASSERT_TRUE(WaitForLender(*a, nullptr, "Healthy"));
  const std::set<std::string> all_vfs = Ids(kubelet.Devices(kVfResource));
  {
    const int chunks = kubelet.Devices(kMemoryResource).devices_size();
    EXPECT_GE(chunks, 2);
    EXPECT_LE(2 * all_vfs.size() + chunks, 8u);
    EXPECT_LE(2 * all_vfs.size(), 8u);
    absl::StatusOr<std::vector<v1::VirtualFunction>> vfs = fabric_.Vfs();
    ASSERT_TRUE(vfs.ok());
    EXPECT_GT(vfs->size(), all_vfs.size());  // n1 lends 8: not all fit
  }
  // n0 also borrows the memory n2 exports.
  EXPECT_TRUE(AllWithPrefix(kubelet.Devices(kVfResource), "vf-", "Healthy"));
  EXPECT_TRUE(
      AllWithPrefix(kubelet.Devices(kMemoryResource), "mem-", "Healthy"));

  // 3. Allocate 1 VF and 2 memory chunks (the pods list them, as the
  // kubelet would once it admitted them).
  const std::string vf = *all_vfs.begin();
  std::vector<std::string> mem;
  for (const std::string& id : Ids(kubelet.Devices(kMemoryResource))) {
    if (absl::StartsWith(id, "mem-n1-") && mem.size() < 2) mem.push_back(id);
  }
  ASSERT_THAT(mem, SizeIs(2));
  a->pods->SetPod("default", "p-vf", kVfResource, {vf});
  a->pods->SetPod("default", "p-mem", kMemoryResource, mem);
  absl::StatusOr<v1beta1::AllocateResponse> vf_resp =
      kubelet.Allocate(kVfResource, Request({vf}));
  ASSERT_TRUE(vf_resp.ok()) << vf_resp.status() << Logs(*a);
  absl::StatusOr<v1beta1::AllocateResponse> mem_resp =
      kubelet.Allocate(kMemoryResource, Request(mem));
  ASSERT_TRUE(mem_resp.ok()) << mem_resp.status() << Logs(*a);

  ASSERT_THAT(vf_resp->container_responses(), SizeIs(1));
  const v1beta1::ContainerAllocateResponse& vc =
      vf_resp->container_responses(0);
  ASSERT_THAT(vc.cdi_devices(), SizeIs(1));
  EXPECT_EQ(vc.cdi_devices(0).name(), CdiDeviceName("vf", vf));
  std::vector<v1::Attachment> attachments = LiveAttachments("n0");
  ASSERT_THAT(attachments, SizeIs(1));
  EXPECT_EQ(attachments[0].state(), v1::Attachment::READY);
  EXPECT_EQ(attachments[0].owner(), "node/n0");
  EXPECT_EQ(attachments[0].borrower(), "nodes/n0");
  ASSERT_EQ(vc.envs().count(kVfEnv), 1u);
  EXPECT_EQ(vc.envs().at(kVfEnv), attachments[0].shadow_device());
  EXPECT_EQ(Spec(a->cdi_dir, "vf", vf).claim, attachments[0].name());

  ASSERT_THAT(mem_resp->container_responses(), SizeIs(1));
  const v1beta1::ContainerAllocateResponse& mc =
      mem_resp->container_responses(0);
  std::vector<std::string> mem_cdi;
  for (const auto& d : mc.cdi_devices()) mem_cdi.push_back(d.name());
  EXPECT_THAT(mem_cdi, ElementsAre(CdiDeviceName("memory", mem[0]),
                                   CdiDeviceName("memory", mem[1])));
  std::vector<v1::Allocation> allocations = LiveAllocations("n0");
  ASSERT_THAT(allocations, SizeIs(2));
  std::map<std::string, std::string> claim_of;  // device id -> claim
  for (const std::string& id : mem) {
    CdiDevice spec = Spec(a->cdi_dir, "memory", id);
    claim_of[id] = spec.claim;
    const v1::Allocation* found = nullptr;
    for (const auto& al : allocations) {
      if (al.name() == spec.claim) found = &al;
    }
    ASSERT_NE(found, nullptr) << id << " names " << spec.claim;
    EXPECT_EQ(found->state(), v1::Allocation::READY);
    EXPECT_EQ(found->owner(), "node/n0");
    EXPECT_EQ(found->size(), kChunk);
    EXPECT_EQ(found->target(), "nodes/n1");
    // The claim names its offer, so the manager lists it held under the id
    // the plugin knows it by, whatever order the claims were read in.
    EXPECT_EQ(found->labels().count(std::string(kOfferLabel)), 1u);
    if (found->labels().count(std::string(kOfferLabel))) {
      EXPECT_EQ(found->labels().at(std::string(kOfferLabel)), id);
    }
    std::string env = "FABRIC_MEMORY_" + id;
    for (char& c : env) c = c == '-' ? '_' : absl::ascii_toupper(c);
    ASSERT_EQ(mc.envs().count(env), 1u) << env;
    EXPECT_EQ(mc.envs().at(env),
              absl::StrCat("0x", absl::Hex(found->borrower_addr()), ":",
                           kChunk));
    ASSERT_THAT(spec.env, SizeIs(1));
    EXPECT_EQ(spec.env[0].second, mc.envs().at(env));
  }
  claim_of[vf] = attachments[0].name();

  // 4. The kubelet retries the same requests: nothing is claimed twice.
  const std::set<std::string> claims = LiveClaims("n0");
  ASSERT_THAT(claims, SizeIs(3));
  absl::StatusOr<v1beta1::AllocateResponse> vf_again =
      kubelet.Allocate(kVfResource, Request({vf}));
  ASSERT_TRUE(vf_again.ok()) << vf_again.status();
  absl::StatusOr<v1beta1::AllocateResponse> mem_again =
      kubelet.Allocate(kMemoryResource, Request(mem));
  ASSERT_TRUE(mem_again.ok()) << mem_again.status();
  EXPECT_EQ(vf_again->container_responses(0).envs().at(kVfEnv),
            vc.envs().at(kVfEnv));
  EXPECT_EQ(LiveClaims("n0"), claims);

  // 5. The pods let go of the VF and of one chunk: after the grace both are
  // released; the chunk a pod still lists stays.
  a->pods->RemovePod("default", "p-vf");
  a->pods->SetPod("default", "p-mem", kMemoryResource, {mem[0]});
  // The plugin deletes a claim before its CDI spec (the spec is the record
  // Recover() reads), so the wait is for both, not for the claims alone.
  ASSERT_TRUE(WaitFor(
      [&] {
        return LiveClaims("n0") ==
                   std::set<std::string>{claim_of[mem[0]]} &&
               !std::filesystem::exists(CdiSpecPath(a->cdi_dir, "vf", vf)) &&
               !std::filesystem::exists(
                   CdiSpecPath(a->cdi_dir, "memory", mem[1]));
      },
      wait))
      << Logs(*a);
  EXPECT_TRUE(
      std::filesystem::exists(CdiSpecPath(a->cdi_dir, "memory", mem[0])));

  // 6. n1 cut off: its devices turn Unhealthy, then Healthy again.
  SetLenderLinks(false);
  ASSERT_TRUE(WaitForLender(*a, nullptr, "Unhealthy"));
  SetLenderLinks(true);
  ASSERT_TRUE(WaitForLender(*a, &all_vfs, "Healthy"));

  // 6b. The lender's agent dies: its devices turn Unhealthy; restarted,
  // Healthy again.
  fabric_.KillAgent(1);
  ASSERT_TRUE(WaitForLender(*a, nullptr, "Unhealthy"));
  fabric_.StartAgent(1);
  ASSERT_TRUE(fabric_.WaitNodeReady("n1"));
  ASSERT_TRUE(WaitForLender(*a, &all_vfs, "Healthy"));
  EXPECT_EQ(Ids(kubelet.Devices(kMemoryResource)).count(mem[0]), 1u);
  EXPECT_EQ(LiveClaims("n0"), std::set<std::string>{claim_of[mem[0]]});

  // 7. A kubelet restart (sockets deleted): the plugin registers again.
  const size_t before_restart = kubelet.registrations().size();
  ASSERT_TRUE(kubelet.Restart().ok());
  ASSERT_TRUE(kubelet.WaitForRegistrations(before_restart + 2, wait))
      << Logs(*a);
  {
    std::set<std::string> again;
    for (const auto& r : kubelet.registrations()) {
      if (r.incarnation == 1) {
        EXPECT_TRUE(r.plugin_served) << r.error;
        again.insert(r.request.resource_name());
      }
    }
    EXPECT_EQ(again, (std::set<std::string>{kVfResource, kMemoryResource}));
  }
  ASSERT_TRUE(kubelet.WaitForDevices(
      kVfResource, [&](const DeviceList& l) { return Ids(l) == all_vfs; },
      wait));

  // 8. The plugin claims a VF no pod lists, then dies (kill -9) and
  // restarts: it recovers its claims, frees the unlisted one, and the
  // kubelet's retry of the listed chunk claims nothing twice.
  const std::string vf2 = *std::next(all_vfs.begin());
  ASSERT_TRUE(kubelet.Allocate(kVfResource, Request({vf2})).ok());
  ASSERT_THAT(LiveClaims("n0"), SizeIs(2));
  const size_t before_kill = kubelet.registrations().size();
  a->plugin->Signal(SIGKILL);
  EXPECT_EQ(a->plugin->Wait(), 128 + SIGKILL);
  a->StartPlugin();
  ASSERT_TRUE(kubelet.WaitForRegistrations(before_kill + 2, wait))
      << Logs(*a);
  ASSERT_TRUE(WaitFor(
      [&] {
        return LiveClaims("n0") == std::set<std::string>{claim_of[mem[0]]};
      },
      wait))
      << Logs(*a);
  ASSERT_TRUE(kubelet.WaitForDevices(
      kMemoryResource,
      [&](const DeviceList& l) { return Ids(l).count(mem[0]) == 1; }, wait));
  absl::StatusOr<v1beta1::AllocateResponse> after_restart =
      kubelet.Allocate(kMemoryResource, Request({mem[0]}));
  ASSERT_TRUE(after_restart.ok()) << after_restart.status() << Logs(*a);
  EXPECT_EQ(LiveClaims("n0"), std::set<std::string>{claim_of[mem[0]]});
  EXPECT_EQ(Spec(a->cdi_dir, "memory", mem[0]).claim, claim_of[mem[0]]);

  // 9. n2's plugin watches too: the devices are shared out, never listed
  // by both nodes at once, and never more VFs than n1 has windows for.
  std::unique_ptr<PluginNode> b = NewNode("n2");
  b->StartPlugin();
  bool overlap = false;
  std::string overlap_what;
  auto disjoint = [&](const std::string& resource) {
    std::set<std::string> x = Ids(a->kubelet->Devices(resource));
    for (const std::string& id : Ids(b->kubelet->Devices(resource))) {
      if (x.count(id) != 0) {
        overlap = true;
        overlap_what = absl::StrCat(resource, " ", id);
      }
    }
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        disjoint(kVfResource);
        disjoint(kMemoryResource);
        const std::set<std::string> vfs_a =
            Ids(a->kubelet->Devices(kVfResource));
        const std::set<std::string> vfs_b =
            Ids(b->kubelet->Devices(kVfResource));
        // Rebalanced: n2 got its share of n1's VFs.
        return !vfs_b.empty() && vfs_b.size() + 1 >= vfs_a.size() &&
               2 * (vfs_a.size() + vfs_b.size()) <= 8 &&
               AllWithPrefix(b->kubelet->Devices(kVfResource), "vf-n1-",
                             "Healthy");
      },
      wait))
      << a->kubelet->Devices(kVfResource).DebugString()
      << b->kubelet->Devices(kVfResource).DebugString() << Logs(*b);
  EXPECT_FALSE(overlap) << overlap_what;
  ASSERT_TRUE(b->kubelet->WaitForDevices(
      kMemoryResource, [](const DeviceList& l) { return l.devices_size() > 0; },
      wait));
  disjoint(kMemoryResource);
  EXPECT_FALSE(overlap) << overlap_what;
  EXPECT_EQ(LiveClaims("n0"), std::set<std::string>{claim_of[mem[0]]});
  EXPECT_THAT(LiveClaims("n2"), SizeIs(0));
}

// fabric-kubelet-sim (the demo's simulated kubelet) runs one pod through
// the real plugin: the pod's claims are live while it runs and freed, CDI
// specs and all, after it is deleted.
TEST_F(DevicePluginE2eTest, KubeletSimRunsAPodAndThePluginFreesIt) {
  const std::string kubelet_dir = sockets_.path() + "/sim";
  const std::string pod_resources = sockets_.path() + "/sim-pr.sock";
  const std::string cdi_dir = dir_.path() + "/cdi-sim";
  const std::string end_pod = dir_.path() + "/end-pod";
  std::filesystem::create_directories(kubelet_dir);
  std::vector<std::string> argv = {BinDir() + "/fabric-device-plugin",
                                   "--manager", fabric_.address(),
                                   "--node", "n0",
                                   "--kubelet-dir", kubelet_dir,
                                   "--cdi-dir", cdi_dir,
                                   "--memory-chunk", "4Mi",
                                   "--pod-resources-socket", pod_resources,
                                   "--release-grace", "500ms",
                                   "--pod-resources-interval", "100ms"};
  for (std::string& flag : fabric_.tls().AgentFlags("n0")) {
    argv.push_back(flag);
  }
  const std::string sim_log = dir_.path() + "/kubelet-sim.log";
  Child sim({BinDir() + "/fabric-kubelet-sim", "--kubelet-dir", kubelet_dir,
             "--pod-resources-socket", pod_resources, "--cdi-dir", cdi_dir,
             "--vfs", "1", "--memory", "2", "--end-pod-on", end_pod,
             "--timeout", absl::StrCat(absl::ToInt64Seconds(
                                           Scaled(absl::Seconds(20))),
                                       "s")},
            sim_log);
  Child plugin(argv, dir_.path() + "/plugin-sim.log");
  const absl::Duration wait = Scaled(absl::Seconds(30));
  ASSERT_TRUE(WaitFor(
      [&] { return absl::StrContains(ReadFile(sim_log), "is running"); },
      wait))
      << ReadFile(sim_log) << ReadFile(dir_.path() + "/plugin-sim.log");
  EXPECT_THAT(LiveAttachments("n0"), SizeIs(1));
  EXPECT_THAT(LiveAllocations("n0"), SizeIs(2));
  int specs = 0;
  for (const auto& e : std::filesystem::directory_iterator(cdi_dir)) {
    specs += e.path().extension() == ".json";
  }
  EXPECT_EQ(specs, 3);

  { std::ofstream(end_pod) << "done\n"; }
  EXPECT_EQ(sim.Wait(), 0) << ReadFile(sim_log);
  EXPECT_THAT(ReadFile(sim_log), ::testing::HasSubstr("released every device"));
  EXPECT_TRUE(WaitFor([&] { return LiveClaims("n0").empty(); }, wait));
  specs = 0;
  for (const auto& e : std::filesystem::directory_iterator(cdi_dir)) {
    specs += e.path().extension() == ".json";
  }
  EXPECT_EQ(specs, 0);
}

}  // namespace
}  // namespace fabric::testing
