// fabricctl over mutual TLS, with real certificates (TestPki): it reaches a
// server that presents a manager certificate, with its files given by flags
// or by FABRIC_TLS_* variables, and refuses a server that is not a manager
// or that speaks plaintext.
#include "common/security/tls.h"

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli.h"
#include "client/fabric_client.h"
#include "common/security/testing/test_pki.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A manager as fabricctl sees it: one fabric, "f1".
class OneFabricService final : public v1::FabricService::Service {
 public:
  grpc::Status ListFabrics(grpc::ServerContext*, const v1::ListFabricsRequest*,
                           v1::ListFabricsResponse* response) override {
    response->add_fabrics()->set_name("fabrics/f1");
    return grpc::Status::OK;
  }
};

struct Result {
  int code;
  std::string out;
  std::string err;
};

class FabricctlTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<security::TestPki>> pki =
        security::TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = pki->release();
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  // Serves OneFabricService on 127.0.0.1:0 with `tls` (the server's side).
  void Serve(const security::TlsConfig& tls) {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0",
                             security::ServerCredentials(tls, nullptr), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    server_flag_ = absl::StrCat("--server=127.0.0.1:", port);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  static std::vector<std::string> TlsFlags(const security::TlsConfig& tls) {
    return {"--tls-cert", tls.cert_file, "--tls-key",
            tls.key_file, "--tls-ca",    tls.ca_file};
  }

  Result Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"fabricctl", server_flag_, "--timeout", "5s"});
    std::ostringstream out, err;
    int code = RunFabricctl(args, out, err);
    return {code, out.str(), err.str()};
  }

  static security::TestPki* pki_;
  OneFabricService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string server_flag_;
};

security::TestPki* FabricctlTlsTest::pki_ = nullptr;

TEST_F(FabricctlTlsTest, ReachesAManagerWithCertificatesFromFlags) {
  Serve(pki_->Issue("manager", "m1"));
  std::vector<std::string> args =
      TlsFlags(pki_->Issue("user", "alice", "admin"));
  args.insert(args.end(), {"get", "fabrics"});
  Result r = Run(args);
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("f1"));
}

TEST_F(FabricctlTlsTest, ReachesAManagerWithCertificatesFromEnvironment) {
  Serve(pki_->Issue("manager", "m1"));
  const security::TlsConfig alice = pki_->Issue("user", "alice", "admin");
  ASSERT_EQ(setenv("FABRIC_TLS_CERT", alice.cert_file.c_str(), 1), 0);
  ASSERT_EQ(setenv("FABRIC_TLS_KEY", alice.key_file.c_str(), 1), 0);
  ASSERT_EQ(setenv("FABRIC_TLS_CA", alice.ca_file.c_str(), 1), 0);
  Result r = Run({"get", "fabrics"});
  // The flag wins over its variable: a key that does not exist is used.
  Result flag = Run({"--tls-key", "/nonexistent/alice.key", "get", "fabrics"});
  unsetenv("FABRIC_TLS_CERT");
  unsetenv("FABRIC_TLS_KEY");
  unsetenv("FABRIC_TLS_CA");
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("f1"));
  EXPECT_EQ(flag.code, kExitUsage) << flag.err;
  EXPECT_THAT(flag.err, HasSubstr("/nonexistent/alice.key"));
}

TEST_F(FabricctlTlsTest, FabricClientOverTls) {
  Serve(pki_->Issue("manager", "m1"));
  std::unique_ptr<FabricClient> client =
      FabricClient::Connect(server_flag_.substr(server_flag_.find('=') + 1),
                            pki_->Issue("user", "sched", "scheduler"), {});
  absl::StatusOr<std::vector<v1::Fabric>> fabrics = client->ListFabrics();
  ASSERT_TRUE(fabrics.ok()) << fabrics.status();
  ASSERT_EQ(fabrics->size(), 1u);
  EXPECT_EQ((*fabrics)[0].name(), "fabrics/f1");
}

// A server whose certificate names a node, not a manager, is refused in the
// handshake: the call fails and nothing is printed.
TEST_F(FabricctlTlsTest, RefusesAServerThatIsNotAManager) {
  Serve(pki_->Issue("node", "n1"));
  std::vector<std::string> args =
      TlsFlags(pki_->Issue("user", "alice", "admin"));
  args.insert(args.end(), {"get", "fabrics"});
  Result r = Run(args);
  EXPECT_EQ(r.code, kExitError) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("f1")));
}

TEST_F(FabricctlTlsTest, PlaintextDoesNotReachATlsServer) {
  Serve(pki_->Issue("manager", "m1"));
  Result r = Run({"--insecure", "get", "fabrics"});
  EXPECT_EQ(r.code, kExitError) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("f1")));
}

}  // namespace
}  // namespace fabric::client
