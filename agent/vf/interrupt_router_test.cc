#include "agent/vf/interrupt_router.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::vf {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

DeviceCounters Counters(const InterruptRouter& r, const std::string& d) {
  absl::StatusOr<DeviceCounters> c = r.counters(d);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.value_or(DeviceCounters{});
}

uint64_t Dropped(const DeviceCounters& c) {
  uint64_t n = 0;
  for (const auto& [reason, count] : c.dropped_by_reason) n += count;
  return n;
}

class InterruptRouterTest : public ::testing::Test {
 protected:
  InterruptRouterTest()
      : router_([this](const Injection& i) { seen_.push_back(i); }) {}

  void SetUp() override {
    ASSERT_TRUE(router_.AddVm("vm1").ok());
    ASSERT_TRUE(router_.AttachDevice("vf0", "vm1", Policy::kAuto, 4).ok());
  }

  // The sink runs under the router's lock, so no lock is needed here as
  // long as tests read seen_ from the calling thread only.
  std::vector<Injection> seen_;
  InterruptRouter router_;
};

TEST_F(InterruptRouterTest, RunningVmGetsDirectDeliveryWithoutExit) {
  ASSERT_TRUE(router_.SetVmRunning("vm1", 3).ok());
  DeliveryResult r = router_.Deliver("vf0", 2);
  EXPECT_EQ(r.delivery, Delivery::kDirect);
  EXPECT_EQ(r.reason, "posted");
  DeviceCounters c = Counters(router_, "vf0");
  EXPECT_EQ(c.delivered_direct, 1u);
  EXPECT_EQ(c.exits_avoided, 1u);
  EXPECT_EQ(c.exits, 0u);
  EXPECT_EQ(c.delivered_via_hypervisor, 0u);
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].vm, "vm1");
  EXPECT_EQ(seen_[0].core, 3);
  EXPECT_FALSE(seen_[0].at_entry);
  EXPECT_THAT(router_.Pending("vm1"), IsEmpty());
}

TEST_F(InterruptRouterTest, StoppedVmQueuesInHypervisorAndInjectsInOrder) {
  for (int v : {2, 0, 3}) {
    DeliveryResult r = router_.Deliver("vf0", v);
    EXPECT_EQ(r.delivery, Delivery::kViaHypervisor);
    EXPECT_EQ(r.reason, "queued");
  }
  EXPECT_THAT(router_.Pending("vm1"), ElementsAre(2, 0, 3));
  EXPECT_THAT(seen_, IsEmpty());
  DeviceCounters c = Counters(router_, "vf0");
  EXPECT_EQ(c.delivered_via_hypervisor, 3u);
  EXPECT_EQ(c.exits, 3u);
  EXPECT_EQ(c.injected_at_entry, 0u);

  ASSERT_TRUE(router_.SetVmRunning("vm1", 1).ok());
  EXPECT_THAT(router_.Pending("vm1"), IsEmpty());
  ASSERT_EQ(seen_.size(), 3u);
  EXPECT_EQ(seen_[0].vector, 2);
  EXPECT_EQ(seen_[1].vector, 0);
  EXPECT_EQ(seen_[2].vector, 3);
  for (const Injection& i : seen_) {
    EXPECT_TRUE(i.at_entry);
    EXPECT_EQ(i.core, 1);
  }
  c = Counters(router_, "vf0");
  EXPECT_EQ(c.injected_at_entry, 3u);
  EXPECT_EQ(c.exits_avoided, 0u);
  // Now running: direct.
  EXPECT_EQ(router_.Deliver("vf0", 1).delivery, Delivery::kDirect);
}

TEST_F(InterruptRouterTest, RepeatedVectorWhileQueuedIsCoalesced) {
  router_.Deliver("vf0", 1);
  router_.Deliver("vf0", 2);
  router_.Deliver("vf0", 1);
  EXPECT_THAT(router_.Pending("vm1"), ElementsAre(1, 2));
  DeviceCounters c = Counters(router_, "vf0");
  EXPECT_EQ(c.delivered_via_hypervisor, 3u);
  EXPECT_EQ(c.coalesced, 1u);
  ASSERT_TRUE(router_.SetVmRunning("vm1", 0).ok());
  ASSERT_TRUE(router_.SetVmStopped("vm1").ok());
  router_.Deliver("vf0", 1);  // queued again after injection
  EXPECT_THAT(router_.Pending("vm1"), ElementsAre(1));
  c = Counters(router_, "vf0");
  EXPECT_EQ(c.delivered_via_hypervisor,
            c.injected_at_entry + c.coalesced + router_.Pending("vm1").size());
}

TEST_F(InterruptRouterTest, DirectPolicyFallsBackToHypervisorWhenStopped) {
  ASSERT_TRUE(router_.AttachDevice("vf1", "vm1", Policy::kDirect, 2).ok());
  EXPECT_EQ(router_.Deliver("vf1", 0).delivery, Delivery::kViaHypervisor);
  ASSERT_TRUE(router_.SetVmRunning("vm1", 2).ok());
  EXPECT_EQ(router_.Deliver("vf1", 1).delivery, Delivery::kDirect);
  DeviceCounters c = Counters(router_, "vf1");
  EXPECT_EQ(c.delivered_direct, 1u);
  EXPECT_EQ(c.delivered_via_hypervisor, 1u);
  EXPECT_EQ(c.injected_at_entry, 1u);
  EXPECT_EQ(c.exits, 1u);
  EXPECT_EQ(c.exits_avoided, 1u);
}

TEST_F(InterruptRouterTest, HypervisorPolicyAlwaysExits) {
  ASSERT_TRUE(router_.AttachDevice("vf1", "vm1", Policy::kHypervisor, 2).ok());
  ASSERT_TRUE(router_.SetVmRunning("vm1", 5).ok());
  DeliveryResult r = router_.Deliver("vf1", 1);
  EXPECT_EQ(r.delivery, Delivery::kViaHypervisor);
  EXPECT_EQ(r.reason, "exit");
  EXPECT_THAT(router_.Pending("vm1"), IsEmpty());  // injected on re-entry
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_TRUE(seen_[0].at_entry);
  EXPECT_EQ(seen_[0].core, 5);
  ASSERT_TRUE(router_.SetVmStopped("vm1").ok());
  EXPECT_EQ(router_.Deliver("vf1", 0).reason, "queued");
  DeviceCounters c = Counters(router_, "vf1");
  EXPECT_EQ(c.exits, 2u);
  EXPECT_EQ(c.exits_avoided, 0u);
  EXPECT_EQ(c.delivered_direct, 0u);
  EXPECT_EQ(c.injected_at_entry, 1u);
}

TEST_F(InterruptRouterTest, HostOwnedDevicesDeliverDirectlyWithoutExits) {
  ASSERT_TRUE(router_.AttachDevice("hostvf", "", Policy::kAuto, 1).ok());
  DeliveryResult r = router_.Deliver("hostvf", 0);
  EXPECT_EQ(r.delivery, Delivery::kDirect);
  EXPECT_EQ(r.reason, "host");
  DeviceCounters c = Counters(router_, "hostvf");
  EXPECT_EQ(c.delivered_direct, 1u);
  EXPECT_EQ(c.exits_avoided, 0u);
  EXPECT_EQ(c.exits, 0u);
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].vm, "");
  EXPECT_EQ(seen_[0].core, -1);
  EXPECT_EQ(router_.AttachDevice("h2", "", Policy::kHypervisor, 1).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(InterruptRouterTest, DropsCarryReasons) {
  ASSERT_TRUE(router_.SetVmRunning("vm1", 0).ok());
  DeliveryResult r = router_.Deliver("nosuch", 0);
  EXPECT_EQ(r.delivery, Delivery::kDropped);
  EXPECT_EQ(r.reason, "unknown device");
  EXPECT_EQ(router_.dropped_unknown_device(), 1u);

  EXPECT_EQ(router_.Deliver("vf0", 4).reason, "vector out of range");
  EXPECT_EQ(router_.Deliver("vf0", -1).reason, "vector out of range");

  ASSERT_TRUE(router_.MaskVector("vf0", 1, true).ok());
  EXPECT_EQ(router_.Deliver("vf0", 1).reason, "vector masked");
  EXPECT_EQ(router_.Deliver("vf0", 0).delivery, Delivery::kDirect);
  ASSERT_TRUE(router_.MaskVector("vf0", 1, false).ok());
  EXPECT_EQ(router_.Deliver("vf0", 1).delivery, Delivery::kDirect);

  ASSERT_TRUE(router_.DetachDevice("vf0").ok());
  EXPECT_EQ(router_.Deliver("vf0", 0).reason, "device detached");

  DeviceCounters c = Counters(router_, "vf0");
  EXPECT_EQ(c.dropped_by_reason["vector out of range"], 2u);
  EXPECT_EQ(c.dropped_by_reason["vector masked"], 1u);
  EXPECT_EQ(c.dropped_by_reason["device detached"], 1u);
  EXPECT_EQ(c.delivered_direct, 2u);
  EXPECT_EQ(c.delivered_direct + c.delivered_via_hypervisor + Dropped(c), 6u);
}

TEST_F(InterruptRouterTest, RemovedVmDropsQueuedAndNewInterrupts) {
  router_.Deliver("vf0", 0);
  router_.Deliver("vf0", 1);
  ASSERT_TRUE(router_.RemoveVm("vm1").ok());
  DeliveryResult r = router_.Deliver("vf0", 2);
  EXPECT_EQ(r.delivery, Delivery::kDropped);
  EXPECT_EQ(r.reason, "vm removed");
  DeviceCounters c = Counters(router_, "vf0");
  EXPECT_EQ(c.dropped_by_reason["vm removed"], 3u);  // 2 queued + 1 new
  EXPECT_EQ(c.delivered_via_hypervisor, 2u);
  // A new VM of the same name does not inherit the old one's devices...
  ASSERT_TRUE(router_.AddVm("vm1").ok());
  ASSERT_TRUE(router_.SetVmRunning("vm1", 0).ok());
  EXPECT_EQ(router_.Deliver("vf0", 2).reason, "vm removed");
  EXPECT_THAT(seen_, IsEmpty());
  // ...until the device is attached to it again.
  ASSERT_TRUE(router_.DetachDevice("vf0").ok());
  ASSERT_TRUE(router_.AttachDevice("vf0", "vm1", Policy::kAuto, 4).ok());
  EXPECT_EQ(router_.Deliver("vf0", 2).delivery, Delivery::kDirect);
}

TEST_F(InterruptRouterTest, QueuedInterruptsSurviveDetachAndReattach) {
  router_.Deliver("vf0", 3);
  ASSERT_TRUE(router_.DetachDevice("vf0").ok());
  ASSERT_TRUE(router_.AttachDevice("vf0", "vm1", Policy::kAuto, 4).ok());
  router_.Deliver("vf0", 3);  // new attachment: queued, not coalesced
  EXPECT_THAT(router_.Pending("vm1"), ElementsAre(3, 3));
  ASSERT_TRUE(router_.SetVmRunning("vm1", 0).ok());
  ASSERT_TRUE(router_.SetVmStopped("vm1").ok());
  router_.Deliver("vf0", 3);  // the bit was cleared by the injection
  EXPECT_THAT(router_.Pending("vm1"), ElementsAre(3));
  DeviceCounters c = Counters(router_, "vf0");
  EXPECT_EQ(c.injected_at_entry, 2u);
  EXPECT_EQ(c.coalesced, 0u);
}

TEST_F(InterruptRouterTest, ManagementCallsValidate) {
  EXPECT_EQ(router_.AddVm("vm1").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(router_.AddVm("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router_.SetVmRunning("nosuch", 0).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(router_.SetVmRunning("vm1", -1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router_.SetVmStopped("nosuch").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(router_.RemoveVm("nosuch").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(router_.AttachDevice("vf0", "vm1", Policy::kAuto, 4).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(router_.AttachDevice("vf9", "nosuch", Policy::kAuto, 4).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(router_.AttachDevice("vf9", "vm1", Policy::kAuto, 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router_.AttachDevice("vf9", "vm1", Policy::kAuto, 2049).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router_.AttachDevice("", "vm1", Policy::kAuto, 1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router_.DetachDevice("vf9").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(router_.MaskVector("vf9", 0, true).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(router_.MaskVector("vf0", 4, true).code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(router_.counters("vf9").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(router_.Pending("nosuch"), IsEmpty());
}

TEST(InterruptRouterConcurrencyTest, CountersAddUpUnderContention) {
  std::atomic<uint64_t> sunk{0};
  InterruptRouter router([&sunk](const Injection&) { ++sunk; });
  ASSERT_TRUE(router.AddVm("vm").ok());
  ASSERT_TRUE(router.AttachDevice("auto", "vm", Policy::kAuto, 16).ok());
  ASSERT_TRUE(router.AttachDevice("direct", "vm", Policy::kDirect, 16).ok());
  ASSERT_TRUE(router.AttachDevice("hyp", "vm", Policy::kHypervisor, 16).ok());
  ASSERT_TRUE(router.MaskVector("auto", 15, true).ok());
  const std::vector<std::string> devices = {"auto", "direct", "hyp"};
  constexpr int kThreads = 4;
  constexpr int kCalls = 20000;
  std::atomic<bool> done{false};
  std::thread toggler([&] {
    int core = 0;
    while (!done.load()) {
      router.SetVmRunning("vm", core++ % 8).IgnoreError();
      router.SetVmStopped("vm").IgnoreError();
    }
  });
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        // Vector 16 is out of range; 15 is masked on "auto".
        router.Deliver(devices[(i + t) % 3], (i * 7 + t) % 17);
      }
    });
  }
  for (auto& s : senders) s.join();
  done = true;
  toggler.join();
  ASSERT_TRUE(router.SetVmRunning("vm", 0).ok());  // flush the queue

  uint64_t total = 0, direct = 0, via = 0, injected = 0, coalesced = 0,
           dropped = 0;
  for (const std::string& d : devices) {
    DeviceCounters c = Counters(router, d);
    total += c.delivered_direct + c.delivered_via_hypervisor + Dropped(c);
    direct += c.delivered_direct;
    via += c.delivered_via_hypervisor;
    injected += c.injected_at_entry;
    coalesced += c.coalesced;
    dropped += Dropped(c);
    EXPECT_EQ(c.exits, c.delivered_via_hypervisor) << d;
    EXPECT_EQ(c.exits_avoided, c.delivered_direct) << d;
    EXPECT_EQ(c.delivered_via_hypervisor, c.injected_at_entry + c.coalesced)
        << d;
  }
  EXPECT_EQ(total, uint64_t{kThreads} * kCalls);
  EXPECT_EQ(Counters(router, "hyp").delivered_direct, 0u);
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(sunk.load(), direct + injected);
  EXPECT_THAT(router.Pending("vm"), IsEmpty());
  (void)via;
  (void)coalesced;
}

}  // namespace
}  // namespace fabric::agent::vf
