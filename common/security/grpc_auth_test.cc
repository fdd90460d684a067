#include "common/security/grpc_auth.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/security/audit_log.h"
#include "common/security/testing/health_client.h"
#include "common/security/testing/test_pki.h"
#include "common/security/tls.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health_check.grpc.pb.h"

namespace fabric::security {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

constexpr char kCheck[] = "/grpc.health.v1.Health/Check";
constexpr char kUnlisted[] = "/grpc.health.v1.Health/Unlisted";

constexpr char kPolicy[] = R"pb(
  role {
    name: "viewer"
    allow { method: "/grpc.health.v1.Health/Check" scope: OWN }
  }
  role { name: "scheduler" }
)pb";

// Records the Caller of every call that reaches it.
class RecordingHealth : public Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext* context, const HealthCheckRequest*,
                     HealthCheckResponse* response) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    last_ = CallerOf(*context);
    identity_values_ =
        context->auth_context()->FindPropertyValues(kIdentityProperty).size();
    response->set_status(HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  Caller last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }
  size_t identity_values() {
    absl::MutexLock lock(&mu_);
    return identity_values_;
  }

 private:
  absl::Mutex mu_;
  size_t identity_values_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  Caller last_ ABSL_GUARDED_BY(mu_);
};

class GrpcAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<TestPki>> pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    absl::StatusOr<std::unique_ptr<AuditLog>> audit =
        AuditLog::Open(audit_path());
    ASSERT_TRUE(audit.ok()) << audit.status();
    audit_ = std::move(*audit);
    absl::StatusOr<Policy> policy = Policy::Parse(kPolicy);
    ASSERT_TRUE(policy.ok()) << policy.status();
    policy_ = *policy;
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  std::string audit_path() const { return pki_->dir() + "/audit.log"; }

  // Starts the server with `creds`; returns its address.
  std::string Start(std::shared_ptr<grpc::ServerCredentials> creds) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", std::move(creds), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    return absl::StrCat("127.0.0.1:", port);
  }
  std::string StartWithProcessor() {
    return Start(ServerCredentials(
        pki_->Issue("manager", "m1"),
        std::make_shared<AuthProcessor>(policy_, audit_.get())));
  }

  grpc::Status Call(const std::string& address, const TlsConfig& client) {
    return HealthCheck(NewConnectionChannel(
        address, ChannelCredentials(client, PeerRequirement::AnyManager())));
  }

  // A certificate signed by the test CA, with `san` (an openssl
  // subjectAltName value, or "" for none) instead of a fabric identity.
  TlsConfig IssueWithoutIdentity(const std::string& name,
                                 const std::string& san) {
    const std::string base = absl::StrCat(pki_->dir(), "/", name);
    {
      std::ofstream ext(base + ".ext");
      ext << "extendedKeyUsage = clientAuth\n";
      if (!san.empty()) ext << "subjectAltName = " << san << "\n";
    }
    const std::string cmd = absl::StrCat(
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout ",
        base, ".key -out ", base, ".csr -subj /CN=", name,
        " 2>/dev/null && openssl x509 -req -in ", base, ".csr -CA ",
        pki_->ca_file(), " -CAkey ", pki_->dir(), "/ca.key -CAcreateserial ",
        "-days 1 -extfile ", base, ".ext -out ", base, ".crt 2>/dev/null");
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    TlsConfig tls;
    tls.cert_file = base + ".crt";
    tls.key_file = base + ".key";
    tls.ca_file = pki_->ca_file();
    return tls;
  }

  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<AuditLog> audit_;
  Policy policy_ = Policy::Default();
  RecordingHealth service_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(GrpcAuthTest, AdmittedCallSeesItsCaller) {
  std::string address = StartWithProcessor();
  grpc::Status status = Call(address, pki_->Issue("user", "alice", "viewer"));
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(service_.calls(), 1);
  Caller caller = service_.last();
  EXPECT_TRUE(caller.authenticated);
  EXPECT_FALSE(caller.unadmitted);
  EXPECT_EQ(caller.identity.ToString(), "user/alice");
  EXPECT_EQ(caller.role, "viewer");
  EXPECT_EQ(caller.scope, internal::OWN);
  EXPECT_EQ(caller.OwnerName(), "user/alice");
  // Admitted calls are not audited here (handlers audit mutations).
  absl::StatusOr<std::vector<AuditEvent>> events = AuditLog::Read(audit_path());
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_TRUE(events->empty());
}

// gRPC hands the processor the connection's AuthContext: what it adds
// must not pile up call after call (it did: every lookup then walked a list
// as long as the connection's call count, and the first call's values won).
TEST_F(GrpcAuthTest, CallsOnOneConnectionAddNothingPerCall) {
  std::string address = StartWithProcessor();
  std::shared_ptr<grpc::Channel> channel = NewConnectionChannel(
      address, ChannelCredentials(pki_->Issue("user", "alice", "viewer"),
                                  PeerRequirement::AnyManager()));
  for (int i = 0; i < 20; ++i) {
    grpc::Status status = HealthCheck(channel);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(service_.identity_values(), 1u) << "call " << i;
  }
  EXPECT_EQ(service_.last().identity.ToString(), "user/alice");
  EXPECT_EQ(service_.last().scope, internal::OWN);
}

// Once a connection's first call resolved the caller's role, later calls
// on it skip the certificate but never the policy: a method the role may
// not call is still refused, and audited with the caller and role.
TEST_F(GrpcAuthTest, EveryCallOnAnAdmittedConnectionIsChecked) {
  std::string address = StartWithProcessor();
  std::shared_ptr<grpc::Channel> channel = NewConnectionChannel(
      address, ChannelCredentials(pki_->Issue("user", "alice", "viewer"),
                                  PeerRequirement::AnyManager()));
  grpc::Status status = HealthCheck(channel);
  ASSERT_TRUE(status.ok()) << status.error_message();
  grpc::GenericStub generic(channel);
  for (int i = 0; i < 2; ++i) {
    // A method the policy does not give viewers (one the server does not
    // even implement: the check comes first).
    grpc::ClientContext ctx;
    grpc::CompletionQueue cq;
    grpc::ByteBuffer request, response;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
        generic.PrepareUnaryCall(&ctx, kUnlisted, request, &cq);
    call->StartCall();
    call->Finish(&response, &status, nullptr);
    void* tag = nullptr;
    bool ok = false;
    ASSERT_TRUE(cq.Next(&tag, &ok));
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << "call " << i;
    EXPECT_THAT(status.error_message(), HasSubstr("user/alice (role viewer)"));
    EXPECT_TRUE(HealthCheck(channel).ok()) << "call " << i;
  }
  EXPECT_EQ(service_.calls(), 3);
  absl::StatusOr<std::vector<AuditEvent>> events = AuditLog::Read(audit_path());
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].identity, "user/alice");
  EXPECT_EQ((*events)[1].role, "viewer");
  EXPECT_EQ((*events)[1].method, kUnlisted);
  EXPECT_EQ((*events)[1].code, "PERMISSION_DENIED");
}

TEST_F(GrpcAuthTest, DeniedBeforeTheHandlerAndAudited) {
  std::string address = StartWithProcessor();
  grpc::Status status = Call(address, pki_->Issue("user", "bob", "scheduler"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("user/bob"));
  EXPECT_THAT(status.error_message(), HasSubstr("role scheduler"));
  EXPECT_THAT(status.error_message(), HasSubstr(kCheck));
  // A user without a role, and a node: denied too.
  EXPECT_EQ(Call(address, pki_->Issue("user", "carol")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Call(address, pki_->Issue("node", "n1")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(service_.calls(), 0);

  absl::StatusOr<std::vector<AuditEvent>> events = AuditLog::Read(audit_path());
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 3u);
  const AuditEvent& e = (*events)[0];
  EXPECT_EQ(e.identity, "user/bob");
  EXPECT_EQ(e.role, "scheduler");
  EXPECT_EQ(e.method, kCheck);
  EXPECT_EQ(e.code, "PERMISSION_DENIED");
  EXPECT_EQ(e.request_id, "");
  EXPECT_EQ(e.message, status.error_message());
  EXPECT_EQ((*events)[1].identity, "user/carol");
  EXPECT_EQ((*events)[1].role, "");
  EXPECT_EQ((*events)[2].role, "node");
}

TEST_F(GrpcAuthTest, NoFabricIdentityIsUnauthenticated) {
  std::string address = StartWithProcessor();
  for (const char* san : {"", "URI:spiffe://example.org/user/alice",
                          "URI:spiffe://fabric.local/user/alice, "
                          "URI:spiffe://fabric.local/user/bob"}) {
    grpc::Status status = Call(address, IssueWithoutIdentity("plain", san));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << san << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(kCheck));
  }
  EXPECT_EQ(service_.calls(), 0);
  absl::StatusOr<std::vector<AuditEvent>> events = AuditLog::Read(audit_path());
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].identity, "");
  EXPECT_EQ((*events)[0].code, "UNAUTHENTICATED");
}

TEST_F(GrpcAuthTest, ForeignAndExpiredCertificatesFailTheHandshake) {
  std::string address = StartWithProcessor();
  absl::StatusOr<std::unique_ptr<TestPki>> other = TestPki::Create();
  ASSERT_TRUE(other.ok()) << other.status();
  TlsConfig foreign = (*other)->Issue("user", "alice", "admin");
  foreign.ca_file = pki_->ca_file();
  EXPECT_EQ(Call(address, foreign).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(
      Call(address, pki_->IssueExpired("user", "alice", "viewer")).error_code(),
      grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(service_.calls(), 0);
}

TEST_F(GrpcAuthTest, TlsServerWithoutProcessorLeavesCallersUnadmitted) {
  std::string address =
      Start(ServerCredentials(pki_->Issue("manager", "m1"), nullptr));
  ASSERT_TRUE(Call(address, pki_->Issue("user", "alice", "admin")).ok());
  Caller caller = service_.last();
  EXPECT_TRUE(caller.unadmitted);
  EXPECT_FALSE(caller.authenticated);
  EXPECT_EQ(caller.OwnerName(), "");
}

TEST_F(GrpcAuthTest, InsecureServerCallersAreUnauthenticatedWithScopeAny) {
  TlsConfig insecure;
  insecure.insecure = true;
  std::string address = Start(ServerCredentials(
      insecure, std::make_shared<AuthProcessor>(policy_, audit_.get())));
  ASSERT_TRUE(Call(address, insecure).ok());
  Caller caller = service_.last();
  EXPECT_FALSE(caller.authenticated);
  EXPECT_FALSE(caller.unadmitted);
  EXPECT_EQ(caller.scope, internal::ANY);
}

}  // namespace
}  // namespace fabric::security
