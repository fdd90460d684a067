// The plugin against the kubelet stand-in (tests/kubernetes), fed offer
// sets directly (no manager).
#include "device_plugin/plugin.h"

#include <memory>
#include <set>

#include "device_plugin/device_plugin_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/kubernetes/kubelet_stand_in.h"

namespace fabric::device_plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::FakeClaimer;
using testing::kMemoryResource;
using testing::kVfResource;
using testing::MemoryOffer;
using testing::SocketsIn;
using testing::VfOffer;

constexpr absl::Duration kWait = absl::Seconds(20);

std::vector<std::string> Health(const v1beta1::ListAndWatchResponse& list) {
  std::vector<std::string> out;
  for (const auto& d : list.devices()) out.push_back(d.id() + ":" + d.health());
  return out;
}

class PluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.empty());
    kubelet_ = std::make_unique<fabric::testing::KubeletStandIn>(dir_);
  }
  void TearDown() override {
    if (plugin_ != nullptr) plugin_->Stop();
    kubelet_.reset();
  }
  void Apply(std::initializer_list<fabric::v1::Offer> offers) {
    fabric::v1::OfferSet set;
    set.set_node("n1");
    for (const auto& o : offers) *set.add_offers() = o;
    table_.Apply(set);
  }
  void StartPlugin(std::function<void()> on_follow_start = nullptr) {
    PluginOptions options;
    options.on_follow_start = std::move(on_follow_start);
    options.registrar.kubelet_dir = dir_;
    options.registrar.retry_initial = absl::Milliseconds(10);
    options.registrar.retry_max = absl::Milliseconds(200);
    plugin_ = std::make_unique<Plugin>(options, &table_, &claimer_);
    ASSERT_TRUE(plugin_->Start().ok());
  }
  bool WaitForList(const std::string& resource,
                   std::vector<std::string> want) {
    return kubelet_->WaitForDevices(
        resource,
        [&](const v1beta1::ListAndWatchResponse& r) {
          return Health(r) == want;
        },
        kWait);
  }

  testing::SocketDir socket_dir_;
  const std::string dir_ = socket_dir_.path();
  DeviceTable table_;
  FakeClaimer claimer_;
  std::unique_ptr<fabric::testing::KubeletStandIn> kubelet_;
  std::unique_ptr<Plugin> plugin_;
};

TEST_F(PluginTest, RegistersEachResourceOnceAfterServingIt) {
  ASSERT_TRUE(kubelet_->Start().ok());
  Apply({VfOffer("vf-a"), MemoryOffer("mem-0"), MemoryOffer("mem-1")});
  StartPlugin();
  EXPECT_EQ(claimer_.recovers(), 1);
  ASSERT_TRUE(WaitForList(kVfResource, {"vf-a:Healthy"}));
  ASSERT_TRUE(
      WaitForList(kMemoryResource, {"mem-0:Healthy", "mem-1:Healthy"}));
  auto regs = kubelet_->registrations();
  ASSERT_EQ(regs.size(), 2u);
  std::set<std::string> names;
  for (const auto& r : regs) {
    names.insert(r.request.resource_name());
    EXPECT_TRUE(r.plugin_served) << r.error;
    EXPECT_EQ(r.request.version(), "v1beta1");
    EXPECT_EQ(r.request.endpoint(),
              SocketNameFor(r.request.resource_name()));
    EXPECT_TRUE(r.request.options().get_preferred_allocation_available());
    EXPECT_TRUE(r.options.get_preferred_allocation_available());
  }
  EXPECT_THAT(names, ElementsAre(kMemoryResource, kVfResource));
  EXPECT_THAT(SocketsIn(dir_),
              ElementsAre("kubelet.sock", SocketNameFor(kMemoryResource),
                          SocketNameFor(kVfResource)));
}

TEST_F(PluginTest, ARessourceThatAppearsLaterRegistersThen) {
  ASSERT_TRUE(kubelet_->Start().ok());
  Apply({VfOffer("vf-a")});
  StartPlugin();
  ASSERT_TRUE(kubelet_->WaitForRegistrations(1, kWait));
  Apply({VfOffer("vf-a"), MemoryOffer("mem-0")});
  ASSERT_TRUE(kubelet_->WaitForRegistrations(2, kWait));
  EXPECT_EQ(kubelet_->registrations()[1].request.resource_name(),
            kMemoryResource);
  EXPECT_TRUE(WaitForList(kMemoryResource, {"mem-0:Healthy"}));
}

// The offer feed starts as soon as Start returns: its first set can come
// before the thread that follows the table has looked at it, and must still
// be served (a fabric-device-plugin process once never registered at all).
TEST_F(PluginTest, OffersThatComeWhileTheFollowerStartsAreServed) {
  ASSERT_TRUE(kubelet_->Start().ok());
  StartPlugin([this] { Apply({VfOffer("vf-a")}); });
  EXPECT_TRUE(WaitForList(kVfResource, {"vf-a:Healthy"}));
}

TEST_F(PluginTest, RegistersAgainAfterTheKubeletRestarts) {
  ASSERT_TRUE(kubelet_->Start().ok());
  Apply({VfOffer("vf-a"), MemoryOffer("mem-0")});
  StartPlugin();
  ASSERT_TRUE(WaitForList(kVfResource, {"vf-a:Healthy"}));
  ASSERT_TRUE(WaitForList(kMemoryResource, {"mem-0:Healthy"}));
  ASSERT_TRUE(kubelet_->Restart().ok());  // deletes the plugin's sockets
  // Both resources again, each served on a fresh socket, each once.
  ASSERT_TRUE(WaitForList(kVfResource, {"vf-a:Healthy"}));
  ASSERT_TRUE(WaitForList(kMemoryResource, {"mem-0:Healthy"}));
  std::multiset<std::string> again;
  for (const auto& r : kubelet_->registrations()) {
    if (r.incarnation != 1) continue;
    EXPECT_TRUE(r.plugin_served) << r.error;
    again.insert(r.request.resource_name());
  }
  EXPECT_THAT(again, ElementsAre(kMemoryResource, kVfResource));
  EXPECT_GE(plugin_->registrar(kVfResource)->serves(), 2);
  // The new connections stream changes.
  Apply({MemoryOffer("mem-0")});
  EXPECT_TRUE(WaitForList(kVfResource, {}));
}

TEST_F(PluginTest, RegistersWhenTheKubeletComesUp) {
  Apply({VfOffer("vf-a")});
  StartPlugin();  // no kubelet.sock yet
  ASSERT_TRUE(kubelet_->Start().ok());
  ASSERT_TRUE(kubelet_->WaitForRegistrations(1, kWait));
  EXPECT_TRUE(kubelet_->registrations()[0].plugin_served);
  EXPECT_TRUE(WaitForList(kVfResource, {"vf-a:Healthy"}));
}

TEST_F(PluginTest, ListAndWatchFollowsTheOffers) {
  ASSERT_TRUE(kubelet_->Start().ok());
  Apply({VfOffer("vf-a"), VfOffer("vf-b")});
  StartPlugin();
  ASSERT_TRUE(WaitForList(kVfResource, {"vf-a:Healthy", "vf-b:Healthy"}));
  Apply({VfOffer("vf-b")});  // vf-a offered away
  ASSERT_TRUE(WaitForList(kVfResource, {"vf-b:Healthy"}));
  fabric::v1::Offer cut = VfOffer("vf-b");
  cut.set_healthy(false);
  cut.set_reason("the path to n2 is cut");
  Apply({cut});
  ASSERT_TRUE(WaitForList(kVfResource, {"vf-b:Unhealthy"}));
  Apply({VfOffer("vf-b")});
  ASSERT_TRUE(WaitForList(kVfResource, {"vf-b:Healthy"}));
}

TEST_F(PluginTest, PreferredAllocationAndAllocateThroughTheKubelet) {
  ASSERT_TRUE(kubelet_->Start().ok());
  Apply({VfOffer("vf-far", 3, 0.0), VfOffer("vf-busy", 1, 0.8),
         VfOffer("vf-idle", 1, 0.2)});
  StartPlugin();
  ASSERT_TRUE(kubelet_->WaitForDevices(
      kVfResource,
      [](const v1beta1::ListAndWatchResponse& r) {
        return r.devices_size() == 3;
      },
      kWait));
  v1beta1::PreferredAllocationRequest preq;
  auto* c = preq.add_container_requests();
  for (const char* id : {"vf-far", "vf-busy", "vf-idle"}) {
    c->add_available_deviceids(id);
  }
  c->set_allocation_size(2);
  auto pref = kubelet_->GetPreferredAllocation(kVfResource, preq);
  ASSERT_TRUE(pref.ok()) << pref.status();
  EXPECT_THAT(pref->container_responses(0).deviceids(),
              ElementsAre("vf-idle", "vf-busy"));

  v1beta1::AllocateRequest areq;
  areq.add_container_requests()->add_devices_ids("vf-nope");
  auto refused = kubelet_->Allocate(kVfResource, areq);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("vf-nope"));
  EXPECT_TRUE(claimer_.claims().empty());

  areq.mutable_container_requests(0)->set_devices_ids(0, "vf-idle");
  auto allocated = kubelet_->Allocate(kVfResource, areq);
  ASSERT_TRUE(allocated.ok()) << allocated.status();
  EXPECT_EQ(allocated->container_responses(0).cdi_devices(0).name(),
            "pciefabric.dev/test=vf-idle");
}

TEST_F(PluginTest, StopRemovesItsSocketsAndEndsTheStreams) {
  ASSERT_TRUE(kubelet_->Start().ok());
  Apply({VfOffer("vf-a"), MemoryOffer("mem-0")});
  StartPlugin();
  ASSERT_TRUE(WaitForList(kVfResource, {"vf-a:Healthy"}));
  ASSERT_TRUE(WaitForList(kMemoryResource, {"mem-0:Healthy"}));
  plugin_->Stop();
  EXPECT_THAT(SocketsIn(dir_), ElementsAre("kubelet.sock"));
  EXPECT_TRUE(kubelet_->WaitForStreamEnd(kVfResource, kWait));
  EXPECT_TRUE(kubelet_->WaitForStreamEnd(kMemoryResource, kWait));
}

TEST_F(PluginTest, StartRefusesAMissingKubeletDirectory) {
  PluginOptions options;
  options.registrar.kubelet_dir = dir_ + "/missing";
  Plugin plugin(options, &table_, &claimer_);
  absl::Status s = plugin.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--kubelet-dir"));
}

}  // namespace
}  // namespace fabric::device_plugin
