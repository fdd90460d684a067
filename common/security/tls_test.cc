#include "common/security/tls.h"

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/security/testing/health_client.h"
#include "common/security/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health_check.grpc.pb.h"

namespace fabric::security {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

class HealthService : public Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext*, const HealthCheckRequest*,
                     HealthCheckResponse* response) override {
    response->set_status(HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

// A Health server on a loopback port with the given credentials.
class Server {
 public:
  explicit Server(std::shared_ptr<grpc::ServerCredentials> creds) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", std::move(creds), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~Server() { server_->Shutdown(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  HealthService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<TestPki>> pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
  }
  std::unique_ptr<TestPki> pki_;
};

TEST_F(TlsTest, InsecureOnlyOnLoopback) {
  TlsConfig insecure;
  insecure.insecure = true;
  for (const char* address : {"127.0.0.1:7070", "127.9.8.7:1", "[::1]:7070",
                              "localhost:7070", "LOCALHOST:0"}) {
    EXPECT_TRUE(CheckTransport("prog", insecure, address).ok()) << address;
  }
  for (const char* address :
       {"10.0.0.1:7070", "0.0.0.0:7070", "[::]:7070", "example.org:7070"}) {
    absl::Status s = CheckTransport("prog", insecure, address);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << address;
    EXPECT_THAT(s.message(), HasSubstr("only on loopback"));
    EXPECT_THAT(s.message(), HasSubstr(address));
  }
  TlsConfig both = pki_->Issue("manager", "m1");
  both.insecure = true;
  absl::Status s = CheckTransport("prog", both, "127.0.0.1:1");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("choose one"));
}

TEST_F(TlsTest, CheckTransportNamesTheFlag) {
  TlsConfig good = pki_->Issue("manager", "m1");
  EXPECT_TRUE(CheckTransport("fabric-manager", good, "10.0.0.1:7070").ok());

  absl::Status none = CheckTransport("fabric-manager", TlsConfig(), "x:1");
  EXPECT_EQ(none.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(none.message(),
              HasSubstr("fabric-manager: --tls-cert: not given"));
  EXPECT_THAT(none.message(), HasSubstr("--insecure on a loopback address"));

  TlsConfig missing = good;
  missing.cert_file = pki_->dir() + "/nope.crt";
  absl::Status s = CheckTransport("p", missing, "x:1");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(),
              HasSubstr(absl::StrCat("--tls-cert: ", missing.cert_file,
                                     ": no such file")));

  TlsConfig no_ca = good;
  no_ca.ca_file = "";
  EXPECT_THAT(CheckTransport("p", no_ca, "x:1").message(),
              HasSubstr("--tls-ca: not given"));

  TlsConfig other = pki_->Issue("node", "n1");
  TlsConfig mismatch = good;
  mismatch.key_file = other.key_file;
  s = CheckTransport("p", mismatch, "x:1");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("--tls-key"));
  EXPECT_THAT(s.message(), HasSubstr("does not match"));

  TlsConfig not_pem = good;
  not_pem.cert_file = good.key_file;
  EXPECT_THAT(CheckTransport("p", not_pem, "x:1").message(),
              HasSubstr("not a PEM certificate"));

  TlsConfig expired = pki_->IssueExpired("manager", "old");
  s = CheckTransport("p", expired, "x:1");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("--tls-cert"));
  EXPECT_THAT(s.message(), HasSubstr("expired"));
}

TEST_F(TlsTest, MutualTlsWithPeerRequirement) {
  Server server(ServerCredentials(pki_->Issue("manager", "m1"), nullptr));
  TlsConfig alice = pki_->Issue("user", "alice", "viewer");

  std::string server_id;
  EXPECT_TRUE(
      HealthCheck(NewConnectionChannel(
                      server.address(),
                      ChannelCredentials(alice, PeerRequirement::AnyManager())),
                  &server_id)
          .ok());
  EXPECT_EQ(server_id, "spiffe://fabric.local/manager/m1");
  EXPECT_TRUE(HealthCheck(NewConnectionChannel(
                              server.address(),
                              ChannelCredentials(
                                  alice, {PrincipalKind::kManager, "m1"})))
                  .ok());

  // The wrong name, or the wrong kind: the handshake fails.
  for (const PeerRequirement& peer :
       {PeerRequirement{PrincipalKind::kManager, "m2"},
        PeerRequirement::Node("m1")}) {
    grpc::Status status = HealthCheck(NewConnectionChannel(
        server.address(), ChannelCredentials(alice, peer)));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << status.error_message();
  }
}

TEST_F(TlsTest, RefusesClientsWithoutAGoodCertificate) {
  Server server(ServerCredentials(pki_->Issue("node", "n1"), nullptr));
  PeerRequirement n1 = PeerRequirement::Node("n1");

  absl::StatusOr<std::unique_ptr<TestPki>> other = TestPki::Create();
  ASSERT_TRUE(other.ok()) << other.status();
  // Signed by another CA, trusting the server's CA: the server refuses it.
  TlsConfig foreign = (*other)->Issue("manager", "m1");
  foreign.ca_file = pki_->ca_file();
  EXPECT_EQ(HealthCheck(NewConnectionChannel(server.address(),
                                             ChannelCredentials(foreign, n1)))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);

  // Expired.
  TlsConfig expired = pki_->IssueExpired("manager", "m1");
  EXPECT_EQ(HealthCheck(NewConnectionChannel(server.address(),
                                             ChannelCredentials(expired, n1)))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);

  // Plaintext.
  TlsConfig plain;
  plain.insecure = true;
  EXPECT_EQ(HealthCheck(NewConnectionChannel(server.address(),
                                             ChannelCredentials(plain, n1)))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);

  // A client that trusts another CA refuses the server.
  TlsConfig distrust = pki_->Issue("manager", "m1");
  distrust.ca_file = (*other)->ca_file();
  EXPECT_EQ(HealthCheck(NewConnectionChannel(server.address(),
                                             ChannelCredentials(distrust, n1)))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, RotatedCertificateServesNewConnections) {
  TlsConfig m1 = pki_->Issue("manager", "m1");
  Server server(ServerCredentials(m1, nullptr));
  TlsConfig alice = pki_->Issue("user", "alice", "viewer");
  auto creds = ChannelCredentials(alice, PeerRequirement::AnyManager());

  std::shared_ptr<grpc::Channel> old_channel =
      NewConnectionChannel(server.address(), creds);
  std::string id;
  ASSERT_TRUE(HealthCheck(old_channel, &id).ok());
  ASSERT_EQ(id, "spiffe://fabric.local/manager/m1");

  // Rotate: m2's pair replaces m1's files (each by a rename).
  TlsConfig m2 = pki_->Issue("manager", "m2");
  std::filesystem::rename(m2.key_file, m1.key_file);
  std::filesystem::rename(m2.cert_file, m1.cert_file);

  // Wait until a new connection presents the new certificate.
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (id != "spiffe://fabric.local/manager/m2" && absl::Now() < deadline) {
    grpc::Status status =
        HealthCheck(NewConnectionChannel(server.address(), creds), &id);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(id, "spiffe://fabric.local/manager/m2");

  // The old connection keeps working, with what it was made with.
  ASSERT_TRUE(HealthCheck(old_channel, &id).ok());
  EXPECT_EQ(id, "spiffe://fabric.local/manager/m1");
}

}  // namespace
}  // namespace fabric::security
