// FabricClaimer (device_plugin/claimer_impl.h) against a real manager and
// three simulated agents on a ring, as processes over mutual TLS: n1 lends
// the VFs of agent/hw/sim/examples/one_pf.json and its export memory, n0 is
// the plugin's node. The offers are built from ListVirtualFunctions and the
// lender, as the manager's WatchOffers would hand them.
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/fabric_client.h"
#include "common/file_util.h"
#include "common/offer_label.h"
#include "device_plugin/cdi_spec.h"
#include "device_plugin/claimer_impl.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/kubernetes/lending_fabric.h"

namespace fabric::device_plugin {
namespace {

using ::fabric::proctest::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kChunk = 4 << 20;
constexpr char kVfResource[] = "pciefabric.dev/vf-8086-154c";
constexpr char kVfEnv[] = "PCIDEVICE_PCIEFABRIC_DEV_VF_8086_154C";
constexpr char kMemResource[] = "pciefabric.dev/remote-memory";
constexpr char kOwner[] = "user/dp-n0";

class ClaimerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cdi_dir_ = dir_.path() + "/cdi";
    absl::Status started = fabric_.Start(dir_.path());
    ASSERT_TRUE(started.ok()) << started << fabric_.ManagerLog();
    // The plugin's identity: its claims are owned by user/dp-n0.
    plugin_client_ = std::shared_ptr<client::FabricClient>(
        client::FabricClient::Connect(
            fabric_.address(), fabric_.tls().User("dp-n0", "admin"), {}));
  }

  absl::StatusOr<std::vector<v1::VirtualFunction>> Vfs() {
    return fabric_.Vfs();
  }

  std::unique_ptr<FabricClaimer> NewClaimer() {
    ClaimerOptions options;
    options.node = "n0";
    options.cdi_dir = cdi_dir_;
    return std::make_unique<FabricClaimer>(options, plugin_client_, kOwner);
  }

  // The offer of VF i of n1, as WatchOffers would give it.
  Device VfDevice(int i, int64_t epoch = 1) {
    absl::StatusOr<std::vector<v1::VirtualFunction>> vfs = Vfs();
    EXPECT_TRUE(vfs.ok()) << vfs.status();
    const v1::VirtualFunction& vf = vfs->at(i);
    Device d;
    std::string address = vf.address();
    for (char& c : address) {
      if (c == ':') c = '-';
    }
    d.id = absl::StrCat("vf-n1-", address);
    d.resource = kVfResource;
    d.offer.set_id(d.id);
    d.offer.mutable_vf()->set_vf(vf.name());
    d.offer.mutable_vf()->set_vendor_id(vf.vendor_id());
    d.offer.mutable_vf()->set_device_id(vf.device_id());
    d.offer.set_lender("n1");
    d.offer.set_healthy(true);
    d.offer.set_epoch(epoch);
    return d;
  }

  // Chunk i of n1's export memory.
  static Device MemDevice(int i, int64_t epoch = 1) {
    Device d;
    d.id = absl::StrCat("mem-n1-", i);
    d.resource = kMemResource;
    d.offer.set_id(d.id);
    d.offer.mutable_memory()->set_size(kChunk);
    d.offer.set_lender("n1");
    d.offer.set_healthy(true);
    d.offer.set_epoch(epoch);
    return d;
  }

  // The plugin's live attachments and allocations.
  std::vector<v1::Attachment> LiveAttachments() {
    return fabric_.LiveAttachments(kOwner);
  }
  std::vector<v1::Allocation> LiveAllocations() {
    return fabric_.LiveAllocations(kOwner);
  }

  // The CDI spec of a device, parsed, checked against the CDI layout.
  CdiDevice Spec(absl::string_view device_class, absl::string_view id) {
    absl::StatusOr<std::string> text =
        ReadFileToString(CdiSpecPath(cdi_dir_, device_class, id));
    EXPECT_TRUE(text.ok()) << text.status();
    if (!text.ok()) return {};
    nlohmann::json j = nlohmann::json::parse(*text);
    EXPECT_EQ(j["cdiVersion"], "0.6.0");
    EXPECT_EQ(j["kind"], CdiKind(device_class));
    absl::StatusOr<CdiDevice> spec = ParseCdiSpec("spec", *text);
    EXPECT_TRUE(spec.ok()) << spec.status();
    return spec.ok() ? *spec : CdiDevice{};
  }

  TempDir dir_;
  k8stest::LendingFabric fabric_;
  std::string cdi_dir_;
  std::shared_ptr<client::FabricClient> plugin_client_;
};

TEST_F(ClaimerTest, ClaimsOneAndTwoVfsReadyWithCdiSpecs) {
  std::unique_ptr<FabricClaimer> claimer = NewClaimer();
  const Device vf0 = VfDevice(0);
  absl::StatusOr<ClaimedDevices> one = claimer->Claim(kVfResource, {vf0});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_THAT(one->cdi_devices, ElementsAre(CdiDeviceName("vf", vf0.id)));
  // READY before Claim returned: read once, no waiting.
  std::vector<v1::Attachment> live = LiveAttachments();
  ASSERT_THAT(live, SizeIs(1));
  EXPECT_EQ(live[0].state(), v1::Attachment::READY);
  EXPECT_EQ(live[0].borrower(), "nodes/n0");
  EXPECT_EQ(live[0].owner(), kOwner);
  EXPECT_EQ(one->envs.at(kVfEnv), live[0].shadow_device());
  CdiDevice spec = Spec("vf", vf0.id);
  EXPECT_EQ(spec.device_id, vf0.id);
  EXPECT_EQ(spec.claim, live[0].name());
  ASSERT_THAT(spec.env, SizeIs(1));
  EXPECT_EQ(spec.env[0].second, live[0].shadow_device());

  const Device vf1 = VfDevice(1), vf2 = VfDevice(2);
  absl::StatusOr<ClaimedDevices> two = claimer->Claim(kVfResource, {vf1, vf2});
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_THAT(two->cdi_devices, ElementsAre(CdiDeviceName("vf", vf1.id),
                                            CdiDeviceName("vf", vf2.id)));
  std::vector<std::string> shadows = absl::StrSplit(two->envs.at(kVfEnv), ',');
  EXPECT_THAT(shadows, SizeIs(2));
  std::set<std::string> ready_shadows;
  for (const v1::Attachment& a : LiveAttachments()) {
    EXPECT_EQ(a.state(), v1::Attachment::READY) << a.name();
    ready_shadows.insert(a.shadow_device());
  }
  EXPECT_EQ(ready_shadows.size(), 3u);
  for (const std::string& s : shadows) EXPECT_EQ(ready_shadows.count(s), 1u);
  EXPECT_THAT(claimer->HeldDeviceIds(),
              UnorderedElementsAre(vf0.id, vf1.id, vf2.id));
}

TEST_F(ClaimerTest, ClaimsMemoryChunksReady) {
  std::unique_ptr<FabricClaimer> claimer = NewClaimer();
  absl::StatusOr<ClaimedDevices> got =
      claimer->Claim(kMemResource, {MemDevice(0), MemDevice(1)});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(got->cdi_devices,
              ElementsAre(CdiDeviceName("memory", "mem-n1-0"),
                          CdiDeviceName("memory", "mem-n1-1")));
  std::vector<v1::Allocation> live = LiveAllocations();
  ASSERT_THAT(live, SizeIs(2));
  std::set<std::string> values;
  for (const v1::Allocation& a : live) {
    EXPECT_EQ(a.state(), v1::Allocation::READY) << a.name();
    EXPECT_EQ(a.size(), kChunk);
    EXPECT_EQ(a.target(), "nodes/n1");
    values.insert(absl::StrCat("0x", absl::Hex(a.borrower_addr()), ":", kChunk));
  }
  // Each claim names the offer it took (common/offer_label.h), as its
  // spec does.
  for (const v1::Allocation& a : live) {
    auto label = a.labels().find(std::string(kOfferLabel));
    ASSERT_NE(label, a.labels().end()) << a.name();
    EXPECT_EQ(Spec("memory", label->second).claim, a.name());
  }
  EXPECT_EQ(values.count(got->envs.at("FABRIC_MEMORY_MEM_N1_0")), 1u);
  EXPECT_EQ(values.count(got->envs.at("FABRIC_MEMORY_MEM_N1_1")), 1u);
  EXPECT_EQ(Spec("memory", "mem-n1-1").env[0].second,
            got->envs.at("FABRIC_MEMORY_MEM_N1_1"));
}

TEST_F(ClaimerTest, RepeatedClaimClaimsNothingTwice) {
  const Device vf = VfDevice(0), mem = MemDevice(0);
  std::unique_ptr<FabricClaimer> claimer = NewClaimer();
  ASSERT_TRUE(claimer->Claim(kVfResource, {vf}).ok());
  ASSERT_TRUE(claimer->Claim(kMemResource, {mem}).ok());
  const std::vector<v1::Attachment> first = LiveAttachments();
  const std::vector<v1::Allocation> first_mem = LiveAllocations();
  // The kubelet retries: the same claimer, then a fresh one (a restarted
  // plugin that has not recovered): the request ids make them the same
  // claims.
  absl::StatusOr<ClaimedDevices> again = claimer->Claim(kVfResource, {vf});
  ASSERT_TRUE(again.ok()) << again.status();
  std::unique_ptr<FabricClaimer> fresh = NewClaimer();
  ASSERT_TRUE(fresh->Claim(kVfResource, {vf}).ok());
  ASSERT_TRUE(fresh->Claim(kMemResource, {mem}).ok());
  std::vector<v1::Attachment> now = LiveAttachments();
  ASSERT_THAT(now, SizeIs(1));
  EXPECT_EQ(now[0].name(), first[0].name());
  std::vector<v1::Allocation> now_mem = LiveAllocations();
  ASSERT_THAT(now_mem, SizeIs(1));
  EXPECT_EQ(now_mem[0].name(), first_mem[0].name());
}

TEST_F(ClaimerTest, ReleaseFreesAndRemovesTheSpec) {
  std::unique_ptr<FabricClaimer> claimer = NewClaimer();
  const Device vf = VfDevice(3);
  ASSERT_TRUE(claimer->Claim(kVfResource, {vf}).ok());
  ASSERT_TRUE(claimer->Claim(kMemResource, {MemDevice(2)}).ok());
  ASSERT_TRUE(claimer->Release(vf.id).ok());
  ASSERT_TRUE(claimer->Release("mem-n1-2").ok());
  EXPECT_TRUE(claimer->Release("never-held").ok());
  EXPECT_THAT(LiveAttachments(), IsEmpty());
  EXPECT_THAT(LiveAllocations(), IsEmpty());
  EXPECT_THAT(claimer->HeldDeviceIds(), IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(CdiSpecPath(cdi_dir_, "vf", vf.id)));
  EXPECT_FALSE(
      std::filesystem::exists(CdiSpecPath(cdi_dir_, "memory", "mem-n1-2")));
  absl::StatusOr<std::vector<v1::VirtualFunction>> vfs = Vfs();
  ASSERT_TRUE(vfs.ok());
  EXPECT_EQ(vfs->at(3).state(), v1::VirtualFunction::FREE);
  // Freed, the device is offered under a new epoch and claimed anew.
  absl::StatusOr<ClaimedDevices> again =
      claimer->Claim(kVfResource, {VfDevice(3, /*epoch=*/2)});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(LiveAttachments(), SizeIs(1));
}

TEST_F(ClaimerTest, FailedClaimReleasesWhatItClaimed) {
  std::unique_ptr<FabricClaimer> claimer = NewClaimer();
  Device missing = VfDevice(0);
  missing.id = "vf-n1-missing";
  missing.offer.mutable_vf()->set_vf("nodes/n1/vfs/0000-3b-07.7");
  absl::StatusOr<ClaimedDevices> got =
      claimer->Claim(kVfResource, {VfDevice(4), missing});
  EXPECT_TRUE(absl::IsNotFound(got.status())) << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("vf-n1-missing"));
  EXPECT_THAT(LiveAttachments(), IsEmpty());
  EXPECT_THAT(claimer->HeldDeviceIds(), IsEmpty());
  EXPECT_THAT(std::filesystem::exists(cdi_dir_)
                  ? std::filesystem::directory_iterator(cdi_dir_) ==
                        std::filesystem::directory_iterator()
                  : true,
              true);
}

// The manager answers a request id it has seen with the claim it made then,
// even once deleted: a claim rolled back or released must not be "made
// again" under the same id, or the kubelet's retry gets the dead claim.
TEST_F(ClaimerTest, AClaimAfterItsRollbackOrReleaseIsMadeAfresh) {
  std::unique_ptr<FabricClaimer> claimer = NewClaimer();
  Device missing = VfDevice(0);
  missing.id = "vf-n1-missing";
  missing.offer.mutable_vf()->set_vf("nodes/n1/vfs/0000-3b-07.7");
  ASSERT_TRUE(absl::IsNotFound(
      claimer->Claim(kVfResource, {VfDevice(5), missing}).status()));
  ASSERT_THAT(LiveAttachments(), IsEmpty());

  // The kubelet retries with the device that exists, same offer epoch.
  absl::StatusOr<ClaimedDevices> retried =
      claimer->Claim(kVfResource, {VfDevice(5)});
  ASSERT_TRUE(retried.ok()) << retried.status();
  std::vector<v1::Attachment> live = LiveAttachments();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].state(), v1::Attachment::READY);

  // Released by the pod-resources GC, then claimed again under that epoch.
  ASSERT_TRUE(claimer->Release(VfDevice(5).id).ok());
  ASSERT_THAT(LiveAttachments(), IsEmpty());
  absl::StatusOr<ClaimedDevices> again =
      claimer->Claim(kVfResource, {VfDevice(5)});
  ASSERT_TRUE(again.ok()) << again.status();
  live = LiveAttachments();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].state(), v1::Attachment::READY);
}

TEST_F(ClaimerTest, RecoverFindsTheHeldDevices) {
  const Device vf = VfDevice(5), mem = MemDevice(3);
  {
    std::unique_ptr<FabricClaimer> before = NewClaimer();
    ASSERT_TRUE(before->Claim(kVfResource, {vf}).ok());
    ASSERT_TRUE(before->Claim(kMemResource, {mem}).ok());
  }
  // A stray spec of ours (a device freed while the plugin was down).
  CdiDevice stray;
  stray.device_class = "memory";
  stray.device_id = "mem-n1-9";
  stray.claim = "allocations/999";
  ASSERT_TRUE(WriteCdiSpec(cdi_dir_, stray).ok());

  std::unique_ptr<FabricClaimer> after = NewClaimer();
  EXPECT_THAT(after->HeldDeviceIds(), IsEmpty());
  ASSERT_TRUE(after->Recover().ok());
  EXPECT_THAT(after->HeldDeviceIds(), UnorderedElementsAre(vf.id, mem.id));
  EXPECT_FALSE(
      std::filesystem::exists(CdiSpecPath(cdi_dir_, "memory", "mem-n1-9")));
  EXPECT_EQ(Spec("vf", vf.id).claim, LiveAttachments()[0].name());
  // The recovered claims are the held ones: a retried claim reuses them.
  ASSERT_TRUE(after->Claim(kVfResource, {vf}).ok());
  EXPECT_THAT(LiveAttachments(), SizeIs(1));

  // With the CDI directory lost too, the ids come from the manager alone.
  std::filesystem::remove_all(cdi_dir_);
  std::unique_ptr<FabricClaimer> bare = NewClaimer();
  ASSERT_TRUE(bare->Recover().ok());
  EXPECT_THAT(bare->HeldDeviceIds(), UnorderedElementsAre(vf.id, mem.id));
  EXPECT_TRUE(std::filesystem::exists(CdiSpecPath(cdi_dir_, "vf", vf.id)));
  // And everything frees.
  ASSERT_TRUE(bare->Release(vf.id).ok());
  ASSERT_TRUE(bare->Release(mem.id).ok());
  EXPECT_THAT(LiveAttachments(), IsEmpty());
  EXPECT_THAT(LiveAllocations(), IsEmpty());
}

}  // namespace
}  // namespace fabric::device_plugin
