#include "common/security/certificate.h"

#include <fstream>

#include "common/security/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::security {
namespace {

using ::testing::HasSubstr;

class CertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
  }
  std::unique_ptr<TestPki> pki_;
};

TEST_F(CertificateTest, ReadsTheIdentityACertificateNames) {
  absl::StatusOr<Identity> id =
      CertificateFileIdentity(pki_->Issue("node", "n1").cert_file);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->ToString(), "node/n1");
  id = CertificateFileIdentity(pki_->Issue("manager", "m1").cert_file);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->ToString(), "manager/m1");
}

TEST_F(CertificateTest, UnreadableFilesAndNonCertificatesAreNamed) {
  const std::string missing = pki_->dir() + "/missing.crt";
  EXPECT_EQ(CertificateFileIdentity(missing).status().code(),
            absl::StatusCode::kNotFound);
  const std::string junk = pki_->dir() + "/junk.crt";
  std::ofstream(junk) << "not a certificate\n";
  absl::StatusOr<Identity> id = CertificateFileIdentity(junk);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(id.status().message(), HasSubstr(junk));
  EXPECT_THAT(id.status().message(), HasSubstr("not a PEM certificate"));
  // A key is not a certificate either.
  id = CertificateFileIdentity(pki_->Issue("node", "n1").key_file);
  EXPECT_THAT(id.status().message(), HasSubstr("not a PEM certificate"));
  // The CA's certificate carries no fabric identity.
  id = CertificateFileIdentity(pki_->ca_file());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(id.status().message(), HasSubstr("names no fabric identity"));
}

TEST_F(CertificateTest, OwnIdentityMustBeOfTheKindAndName) {
  absl::StatusOr<Identity> m1 = RequireOwnIdentity(pki_->Issue("manager", "m1"),
                                                   PrincipalKind::kManager, "");
  ASSERT_TRUE(m1.ok()) << m1.status();
  EXPECT_EQ(m1->ToString(), "manager/m1");

  absl::StatusOr<Identity> wrong = RequireOwnIdentity(
      pki_->Issue("node", "n1"), PrincipalKind::kManager, "");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(wrong.status().message(),
              HasSubstr("names node/n1, not a manager "
                        "(spiffe://fabric.local/manager/NAME)"));

  wrong =
      RequireOwnIdentity(pki_->Issue("node", "n2"), PrincipalKind::kNode, "n1");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(wrong.status().message(), HasSubstr("--tls-cert: "));
  EXPECT_THAT(wrong.status().message(),
              HasSubstr("names node/n2, not node/n1"));
  EXPECT_THAT(wrong.status().message(), HasSubstr("issue DIR node n1"));

  TlsConfig missing{.cert_file = pki_->dir() + "/missing.crt"};
  wrong = RequireOwnIdentity(missing, PrincipalKind::kNode, "n1");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(wrong.status().message(), HasSubstr("--tls-cert: "));
  EXPECT_THAT(wrong.status().message(), HasSubstr("missing.crt"));
}

}  // namespace
}  // namespace fabric::security
