// The test transport: flags that name real certificate files, reused per
// identity, and channels that complete a mutual-TLS handshake with a server
// holding the expected identity (and only with it).
#include "tests/process/test_transport.h"

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::proctest {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

// A server whose service answers nothing (UNIMPLEMENTED): enough for a
// handshake.
class TlsServer {
 public:
  explicit TlsServer(const security::TlsConfig& tls) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0",
                             security::ServerCredentials(tls, nullptr), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~TlsServer() {
    if (server_ != nullptr) server_->Shutdown();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int port_ = 0;
  v1::FabricService::Service service_;
  std::unique_ptr<grpc::Server> server_;
};

// Whether the channel connects (handshake included) within `seconds`; a
// refused handshake is retried until then, so refusals wait less.
bool Connects(const std::shared_ptr<grpc::Channel>& channel, int seconds = 5) {
  return channel->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::seconds(seconds));
}

TEST(TransportTest, TlsFlagsNameExistingFilesOncePerIdentity) {
  Transport& t = Transport::Tls();
  ASSERT_TRUE(t.is_tls());
  const std::vector<std::string> flags = t.AgentFlags("n1");
  ASSERT_THAT(flags, SizeIs(6));
  EXPECT_EQ(flags[0], "--tls-cert");
  EXPECT_EQ(flags[2], "--tls-key");
  EXPECT_EQ(flags[4], "--tls-ca");
  for (int i = 1; i < 6; i += 2) {
    EXPECT_TRUE(std::filesystem::exists(flags[i])) << flags[i];
  }
  EXPECT_EQ(t.AgentFlags("n1"), flags);
  EXPECT_NE(t.AgentFlags("n2")[1], flags[1]);
  EXPECT_NE(t.ManagerFlags()[1], t.CtlFlags()[1]);
}

TEST(TransportTest, InsecureIsOneFlag) {
  Transport& t = Transport::Insecure();
  EXPECT_FALSE(t.is_tls());
  EXPECT_THAT(t.ManagerFlags(), ElementsAre("--insecure"));
  EXPECT_THAT(t.AgentFlags("n1"), ElementsAre("--insecure"));
  EXPECT_THAT(t.CtlFlags(), ElementsAre("--insecure"));
  EXPECT_TRUE(t.Admin().insecure);
}

TEST(TransportTest, DialManagerReachesAManagerOnly) {
  Transport& t = Transport::Tls();
  TlsServer manager(t.Manager());
  EXPECT_TRUE(Connects(t.DialManager(manager.address())));
  TlsServer node(t.Node("n1"));
  EXPECT_FALSE(Connects(t.DialManager(node.address()), 1));
}

TEST(TransportTest, DialAgentChecksTheNode) {
  Transport& t = Transport::Tls();
  TlsServer n1(t.Node("n1"));
  EXPECT_TRUE(Connects(t.DialAgent(n1.address(), "n1")));
  EXPECT_FALSE(Connects(t.DialAgent(n1.address(), "n2"), 1));
}

TEST(TransportTest, PlaintextMeetsPlaintext) {
  Transport& t = Transport::Insecure();
  TlsServer plain(t.Manager());
  EXPECT_TRUE(Connects(t.DialManager(plain.address())));
}

}  // namespace
}  // namespace fabric::proctest
