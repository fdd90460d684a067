#include "common/security/key_pair_snapshot.h"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/security/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::security {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Read(const std::string& path) {
  absl::StatusOr<std::string> s = ReadFileToString(path);
  return s.ok() ? *s : "";
}

// Copies `from` over `to` by rename, as pki.sh does.
void Replace(const std::string& from, const std::string& to) {
  const std::string tmp = to + ".new";
  std::filesystem::copy_file(from, tmp,
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_EQ(std::rename(tmp.c_str(), to.c_str()), 0);
}

// Polls (with a deadline) until the snapshot at `path` holds `cert`.
bool WaitForSnapshotOf(const std::string& path, const std::string& cert) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (absl::StrContains(Read(path), cert)) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

TEST(KeyPairSnapshotTest, MatchesTellsAPairFromAMix) {
  auto pki = *TestPki::Create();
  TlsConfig a = pki->Issue("node", "a");
  TlsConfig b = pki->Issue("node", "b");
  EXPECT_TRUE(KeyPairSnapshot::Matches(Read(a.cert_file), Read(a.key_file)));
  EXPECT_FALSE(KeyPairSnapshot::Matches(Read(a.cert_file), Read(b.key_file)));
  EXPECT_FALSE(KeyPairSnapshot::Matches("junk", Read(a.key_file)));
}

TEST(KeyPairSnapshotTest, HoldsBothPrivatelyAndTheSamePathPerPair) {
  auto pki = *TestPki::Create();
  TlsConfig a = pki->Issue("node", "a");
  absl::StatusOr<std::string> path =
      KeyPairSnapshot::PathFor(a.cert_file, a.key_file);
  ASSERT_TRUE(path.ok()) << path.status();
  const std::string pem = Read(*path);
  EXPECT_THAT(pem, HasSubstr(Read(a.cert_file)));
  EXPECT_THAT(pem, HasSubstr(Read(a.key_file)));
  struct stat st;
  ASSERT_EQ(stat(path->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(*KeyPairSnapshot::PathFor(a.cert_file, a.key_file), *path);
}

TEST(KeyPairSnapshotTest, AHalfRotatedPairKeepsTheOldSnapshotUntilBothChange) {
  auto pki = *TestPki::Create();
  TlsConfig live = pki->Issue("node", "live");
  const std::string old_cert = Read(live.cert_file);
  // The next pair, issued elsewhere.
  TlsConfig next = pki->Issue("node", "next");
  absl::StatusOr<std::string> path =
      KeyPairSnapshot::PathFor(live.cert_file, live.key_file);
  ASSERT_TRUE(path.ok()) << path.status();

  // The key first: the files on disk are a mix, the snapshot stays whole.
  Replace(next.key_file, live.key_file);
  for (int i = 0; i < 5; ++i) {
    absl::SleepFor(KeyPairSnapshot::kPollInterval);
    const std::string pem = Read(*path);
    ASSERT_TRUE(absl::StrContains(pem, old_cert));
    ASSERT_THAT(pem, Not(HasSubstr(Read(next.key_file))));
  }
  // Then the certificate: the new pair is taken as one.
  Replace(next.cert_file, live.cert_file);
  ASSERT_TRUE(WaitForSnapshotOf(*path, Read(next.cert_file)));
  EXPECT_THAT(Read(*path), HasSubstr(Read(next.key_file)));
}

}  // namespace
}  // namespace fabric::security
