// The startup checks of fabric-agent, with real certificates from
// deploy/pki.sh (TestPki).
#include "agent/agent_identity.h"

#include <memory>

#include "common/security/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent {
namespace {

using ::testing::HasSubstr;

class AgentIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = security::TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
  }
  std::unique_ptr<security::TestPki> pki_;
};

TEST_F(AgentIdentityTest, TheAgentsOwnNodeCertificateIsAccepted) {
  EXPECT_TRUE(CheckCertificateNode(pki_->Issue("node", "n1"), "n1").ok());
  EXPECT_TRUE(CheckAgentSecurity(pki_->Issue("node", "n1"), "n1",
                                 "0.0.0.0:7071", "10.0.0.1:7070")
                  .ok());
}

TEST_F(AgentIdentityTest, AnotherNodesCertificateIsRefusedNamingItsNode) {
  absl::Status s = CheckCertificateNode(pki_->Issue("node", "n2"), "n1");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("names node/n2, not node/n1"));
  s = CheckAgentSecurity(pki_->Issue("node", "n2"), "n1", "127.0.0.1:0",
                         "127.0.0.1:7070");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("names node/n2"));
}

TEST_F(AgentIdentityTest, AManagerOrUserCertificateIsRefused) {
  absl::Status s = CheckCertificateNode(pki_->Issue("manager", "n1"), "n1");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("names manager/n1, not node/n1"));
  s = CheckCertificateNode(pki_->Issue("user", "n1", "admin"), "n1");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("names user/n1"));
}

TEST(AgentSecurityTest, NeitherCertificatesNorInsecureIsRefused) {
  security::TlsConfig none;
  absl::Status s =
      CheckAgentSecurity(none, "n1", "127.0.0.1:0", "127.0.0.1:7070");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("--insecure"));
}

TEST(AgentSecurityTest, InsecureOnlyOnLoopback) {
  security::TlsConfig insecure;
  insecure.insecure = true;
  EXPECT_TRUE(
      CheckAgentSecurity(insecure, "n1", "127.0.0.1:0", "127.0.0.1:7070").ok());
  // No certificate to check.
  EXPECT_TRUE(CheckCertificateNode(insecure, "n1").ok());
  EXPECT_FALSE(
      CheckAgentSecurity(insecure, "n1", "0.0.0.0:7071", "127.0.0.1:7070")
          .ok());
  EXPECT_FALSE(
      CheckAgentSecurity(insecure, "n1", "127.0.0.1:0", "10.0.0.1:7070").ok());
}

}  // namespace
}  // namespace fabric::agent
