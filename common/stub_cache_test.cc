#include "common/stub_cache.h"

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

}  // namespace
}  // namespace fabric
