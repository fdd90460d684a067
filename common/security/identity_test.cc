#include "common/security/identity.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::security {
namespace {

using ::testing::HasSubstr;

TEST(IdentityTest, FormsOfAnIdentity) {
  Identity n1{PrincipalKind::kNode, "n1", ""};
  EXPECT_EQ(n1.ToString(), "node/n1");
  EXPECT_EQ(n1.SpiffeId(), "spiffe://fabric.local/node/n1");
  EXPECT_EQ(PrincipalKindName(PrincipalKind::kManager), "manager");
  EXPECT_EQ(PrincipalKindName(PrincipalKind::kUser), "user");
}

TEST(IdentityTest, EqualityIgnoresTheCertificateRole) {
  Identity a{PrincipalKind::kUser, "alice", "admin"};
  Identity b{PrincipalKind::kUser, "alice", "viewer"};
  Identity c{PrincipalKind::kNode, "alice", ""};
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a == c);
}

TEST(IdentityTest, ParsesEachKind) {
  for (const char* uri :
       {"spiffe://fabric.local/node/n1", "spiffe://fabric.local/manager/m1",
        "spiffe://fabric.local/user/alice"}) {
    absl::StatusOr<Identity> id = ParseSpiffeId(uri);
    ASSERT_TRUE(id.ok()) << uri << ": " << id.status();
    EXPECT_EQ(id->SpiffeId(), uri);
    absl::StatusOr<Identity> again = ParseIdentity(id->ToString());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, *id);
  }
  absl::StatusOr<Identity> id =
      ParseSpiffeId("spiffe://fabric.local/user/a.b_c-9");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->kind, PrincipalKind::kUser);
  EXPECT_EQ(id->name, "a.b_c-9");
}

TEST(IdentityTest, RefusesOtherUris) {
  struct Case {
    const char* uri;
    const char* why;
  };
  for (const Case& c : {
           Case{"https://fabric.local/node/n1", "scheme"},
           Case{"spiffe://example.org/node/n1", "trust domain"},
           Case{"spiffe://fabric.local", "KIND/NAME"},
           Case{"spiffe://fabric.local/node", "KIND/NAME"},
           Case{"spiffe://fabric.local/robot/r1", "kind \"robot\""},
           Case{"spiffe://fabric.local/node/N1", "[a-z0-9._-]"},
           Case{"spiffe://fabric.local/node/", "1-63"},
           Case{"spiffe://fabric.local/node/n1/extra", "[a-z0-9._-]"},
           Case{"spiffe://fabric.local/user/-x", "letter or digit"},
       }) {
    absl::StatusOr<Identity> id = ParseSpiffeId(c.uri);
    ASSERT_FALSE(id.ok()) << c.uri;
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(id.status().message(), HasSubstr(c.uri));
    EXPECT_THAT(id.status().message(), HasSubstr(c.why)) << c.uri;
  }
}

TEST(IdentityTest, NameRule) {
  EXPECT_TRUE(ValidatePrincipalName("name", "a").ok());
  EXPECT_TRUE(ValidatePrincipalName("name", "0node").ok());
  EXPECT_TRUE(ValidatePrincipalName("name", std::string(63, 'x')).ok());
  absl::Status s = ValidatePrincipalName("--node", std::string(64, 'x'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--node"));
  EXPECT_THAT(s.message(), HasSubstr("1-63"));
  for (const char* bad : {"", ".x", "_x", "x y", "x/y", "Alice", "x:y"}) {
    EXPECT_FALSE(ValidatePrincipalName("name", bad).ok()) << bad;
  }
}

TEST(IdentityTest, ParseIdentityNamesTheText) {
  for (const char* bad : {"alice", "robot/r1", "user/", "user/Alice", ""}) {
    absl::StatusOr<Identity> id = ParseIdentity(bad);
    ASSERT_FALSE(id.ok()) << bad;
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(id.status().message(),
                HasSubstr(absl::StrCat("\"", bad, "\"")));
  }
}

}  // namespace
}  // namespace fabric::security
