#include "common/stub_cache.h"

#include <vector>

#include "fabric/agentproto/v1/node_agent_service.grpc.pb.h"
#include "gtest/gtest.h"

namespace fabric {
namespace {

TEST(StubCacheTest, OneStubPerAddress) {
  StubCache<agentproto::v1::NodeAgentService> stubs;
  agentproto::v1::NodeAgentService::Stub* a = stubs.Get("127.0.0.1:1");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(stubs.Get("127.0.0.1:1"), a);
  agentproto::v1::NodeAgentService::Stub* b = stubs.Get("127.0.0.1:2");
  ASSERT_NE(b, nullptr);
  EXPECT_NE(b, a);
}

TEST(StubCacheTest, OneStubPerAddressAndExpectedPeer) {
  std::vector<std::string> asked;
  StubCache<agentproto::v1::NodeAgentService> stubs(
      [&](const std::string& peer) {
        asked.push_back(peer);
        return grpc::InsecureChannelCredentials();
      });
  auto* n1 = stubs.Get("127.0.0.1:1", "n1");
  EXPECT_EQ(stubs.Get("127.0.0.1:1", "n1"), n1);
  auto* n2 = stubs.Get("127.0.0.1:1", "n2");
  EXPECT_NE(n2, n1);
  EXPECT_EQ(asked, (std::vector<std::string>{"n1", "n2"}));
}

}  // namespace
}  // namespace fabric
