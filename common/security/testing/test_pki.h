// TestPki: a real CA and real certificates for tests, made by
// deploy/pki.sh (openssl) in a temporary directory that is removed when the
// TestPki is destroyed.
//
//   auto pki = TestPki::Create();              // CA in a fresh temp dir
//   TlsConfig m = pki->Issue("manager", "m1");
//   TlsConfig alice = pki->Issue("user", "alice", "scheduler");
//   TlsConfig n1 = pki->Issue("node", "n1");
//
// Test-only (target fabric_security_testing).
#ifndef FABRIC_COMMON_SECURITY_TESTING_TEST_PKI_H_
#define FABRIC_COMMON_SECURITY_TESTING_TEST_PKI_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/security/tls.h"

namespace fabric::security {

class TestPki {
 public:
  // Runs `pki.sh init` in a new temp dir. The script is found at
  // $FABRIC_SOURCE_DIR/deploy/pki.sh, else at the path compiled in from the
  // source tree.
  static absl::StatusOr<std::unique_ptr<TestPki>> Create();
  ~TestPki();  // removes the directory

  const std::string& dir() const { return dir_; }
  std::string ca_file() const;

  // Runs `pki.sh issue DIR KIND NAME [--role ROLE] [--days DAYS]` and
  // returns a TlsConfig naming the files it wrote. Aborts the test
  // (CHECK) when the script fails: a broken PKI is a broken test.
  TlsConfig Issue(const std::string& kind, const std::string& name,
                  const std::string& role = "", int days = 30);

  // An already-expired certificate for the same identity (openssl with a
  // validity window in the past), signed by this CA.
  TlsConfig IssueExpired(const std::string& kind, const std::string& name,
                         const std::string& role = "");

 private:
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_TESTING_TEST_PKI_H_
