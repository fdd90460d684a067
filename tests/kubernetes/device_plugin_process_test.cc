// fabric-device-plugin as a process: fed by a fake manager's WatchOffers,
// registered with the kubelet stand-in, stopped by SIGTERM.
#include <signal.h>

#include <string>
#include <vector>

#include "device_plugin/device_plugin_test_util.h"
#include "device_plugin/testing/fake_offer_manager.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/kubernetes/kubelet_stand_in.h"
#include "tests/process/process_util.h"

namespace fabric::testing {
namespace {

using ::fabric::device_plugin::testing::FakeOfferManager;
using ::fabric::device_plugin::testing::kMemoryResource;
using ::fabric::device_plugin::testing::kVfResource;
using ::fabric::device_plugin::testing::SocketsIn;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class DevicePluginProcessTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.empty()); }
  std::string Binary() const {
    return proctest::BinDir() + "/fabric-device-plugin";
  }

  device_plugin::testing::SocketDir socket_dir_;
  const std::string dir_ = socket_dir_.path();
};

TEST_F(DevicePluginProcessTest, ServesRegistersAndStopsCleanlyOnSigterm) {
  FakeOfferManager::Options offers;
  offers.offers = {device_plugin::testing::VfOffer("vf-a"),
                   device_plugin::testing::MemoryOffer("mem-0")};
  FakeOfferManager manager(offers);
  KubeletStandIn kubelet(dir_);
  ASSERT_TRUE(kubelet.Start().ok());
  const std::string log = dir_ + "/plugin.log";
  proctest::Child plugin(
      {Binary(), "--manager", manager.address(), "--node", "n1",
       "--kubelet-dir", dir_, "--cdi-dir", dir_ + "/cdi", "--memory-chunk",
       "2Mi", "--insecure"},
      log);
  auto one_healthy = [](const std::string& id) {
    return [id](const v1beta1::ListAndWatchResponse& r) {
      return r.devices_size() == 1 && r.devices(0).id() == id &&
             r.devices(0).health() == "Healthy";
    };
  };
  const absl::Duration wait = proctest::Scaled(absl::Seconds(20));
  ASSERT_TRUE(kubelet.WaitForDevices(kVfResource, one_healthy("vf-a"), wait))
      << proctest::ReadFile(log);
  ASSERT_TRUE(
      kubelet.WaitForDevices(kMemoryResource, one_healthy("mem-0"), wait))
      << proctest::ReadFile(log);
  ASSERT_FALSE(manager.requests().empty());
  EXPECT_EQ(manager.requests()[0].node(), "n1");
  EXPECT_EQ(manager.requests()[0].memory_chunk_bytes(), 2u << 20);
  EXPECT_EQ(kubelet.registrations().size(), 2u);

  plugin.Signal(SIGTERM);
  EXPECT_EQ(plugin.Wait(), 0) << proctest::ReadFile(log);
  EXPECT_THAT(SocketsIn(dir_), ElementsAre("kubelet.sock"));
  EXPECT_TRUE(kubelet.WaitForStreamEnd(kVfResource, wait));
}

TEST_F(DevicePluginProcessTest, RefusesBadFlags) {
  std::string err;
  EXPECT_EQ(proctest::RunCommand({Binary(), "--manager", "127.0.0.1:1",
                                  "--insecure"},
                                 nullptr, &err),
            2);
  EXPECT_THAT(err, HasSubstr("--node"));
  EXPECT_EQ(proctest::RunCommand({Binary(), "--node", "n1", "--manager",
                                  "127.0.0.1:1", "--insecure",
                                  "--memory-chunk", "3000"},
                                 nullptr, &err),
            2);
  EXPECT_THAT(err, HasSubstr("--memory-chunk"));
  EXPECT_EQ(proctest::RunCommand({Binary(), "--node", "n1", "--manager",
                                  "127.0.0.1:1", "--insecure",
                                  "--release-grace", "0s"},
                                 nullptr, &err),
            2);
  EXPECT_THAT(err, HasSubstr("--release-grace"));
  EXPECT_EQ(proctest::RunCommand({Binary(), "--node", "n1", "--manager",
                                  "127.0.0.1:1", "--insecure",
                                  "--pod-resources-interval", "soon"},
                                 nullptr, &err),
            2);
  EXPECT_THAT(err, HasSubstr("--pod-resources-interval"));
  EXPECT_EQ(proctest::RunCommand({Binary(), "--node", "n1", "--manager",
                                  "127.0.0.1:1"},
                                 nullptr, &err),
            2);
  EXPECT_THAT(err, HasSubstr("--tls-cert"));
}

}  // namespace
}  // namespace fabric::testing
