#include "server/service/manager_certificate.h"

#include <fstream>

#include "common/security/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;

TEST(ManagerCertificateTest, TheManagersCertificateMustNameAManager) {
  auto pki = *security::TestPki::Create();
  absl::StatusOr<security::Identity> m1 =
      ManagerIdentity(pki->Issue("manager", "m1"));
  ASSERT_TRUE(m1.ok()) << m1.status();
  EXPECT_EQ(m1->ToString(), "manager/m1");

  const security::TlsConfig node = pki->Issue("node", "n1");
  EXPECT_EQ(CertificateFileIdentity(node.cert_file)->ToString(), "node/n1");
  absl::StatusOr<security::Identity> n1 = ManagerIdentity(node);
  EXPECT_EQ(n1.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(n1.status().message(), HasSubstr("--tls-cert: "));
  EXPECT_THAT(n1.status().message(),
              HasSubstr("names node/n1, not a manager "
                        "(spiffe://fabric.local/manager/NAME)"));
}

TEST(ManagerCertificateTest, UnreadableFilesAndNonCertificatesAreNamed) {
  auto pki = *security::TestPki::Create();
  const std::string missing = pki->dir() + "/missing.crt";
  EXPECT_EQ(CertificateFileIdentity(missing).status().code(),
            absl::StatusCode::kNotFound);
  const std::string junk = pki->dir() + "/junk.crt";
  std::ofstream(junk) << "not a certificate\n";
  absl::StatusOr<security::Identity> id = CertificateFileIdentity(junk);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(id.status().message(), HasSubstr(junk));
  // The CA's certificate carries no fabric identity.
  id = CertificateFileIdentity(pki->ca_file());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(id.status().message(), HasSubstr("names no fabric identity"));
}

}  // namespace
}  // namespace fabric::service
