#include "server/service/access_scope.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

security::Caller Authenticated(security::PrincipalKind kind,
                               const std::string& name, const std::string& role,
                               security::Scope scope) {
  security::Caller c;
  c.authenticated = true;
  c.identity.kind = kind;
  c.identity.name = name;
  c.role = role;
  c.scope = scope;
  return c;
}

security::Caller Node(const std::string& name) {
  return Authenticated(security::PrincipalKind::kNode, name, "node",
                       internal::SELF_NODE);
}
security::Caller User(const std::string& name, const std::string& role,
                      security::Scope scope) {
  return Authenticated(security::PrincipalKind::kUser, name, role, scope);
}

TEST(NodeBindingTest, ANodeReachesOnlyItsOwnNode) {
  EXPECT_TRUE(CheckNodeBinding(Node("n1"), "node", "n1").ok());
  EXPECT_TRUE(CheckNodeBinding(Node("n1"), "node", "nodes/n1").ok());
  absl::Status s = CheckNodeBinding(Node("n1"), "node", "n2");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(),
            "node: the certificate is for node/n1; the request names n2");
  EXPECT_EQ(CheckNodeBinding(Node("n1"), "node", "nodes/n2").message(),
            "node: the certificate is for node/n1; the request names n2");
  EXPECT_EQ(CheckNodeBinding(Node("n1"), "node", "").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(NodeBindingTest, OtherScopesAndInsecureCallersAreNotBound) {
  EXPECT_TRUE(CheckNodeBinding(security::Caller(), "node", "n2").ok());
  EXPECT_TRUE(
      CheckNodeBinding(User("alice", "admin", internal::ANY), "node", "n2")
          .ok());
  // SELF_NODE given to a user (a policy mistake) binds nothing: refused.
  absl::Status s = CheckNodeBinding(User("alice", "odd", internal::SELF_NODE),
                                    "node", "alice");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("user/alice, not a node"));
}

TEST(NodeBindingTest, UnadmittedCallersReachNothing) {
  security::Caller c;
  c.unadmitted = true;
  EXPECT_EQ(CheckNodeBinding(c, "node", "n1").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(OwnerForCreate(c, "allocation.owner", "").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckOwner(c, "allocations/a", "").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(OwnerFilter(c, "owner", "").status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(OwnerForCreateTest, TheOwnerIsTheCallerWhateverTheRole) {
  for (auto scope : {internal::ANY, internal::OWN}) {
    auto alice = User("alice", "scheduler", scope);
    EXPECT_EQ(*OwnerForCreate(alice, "allocation.owner", ""), "user/alice");
    EXPECT_EQ(*OwnerForCreate(alice, "allocation.owner", "user/alice"),
              "user/alice");
    absl::StatusOr<std::string> spoof =
        OwnerForCreate(alice, "allocation.owner", "user/bob");
    EXPECT_EQ(spoof.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(spoof.status().message(), HasSubstr("allocation.owner"));
  }
  EXPECT_EQ(*OwnerForCreate(Node("n1"), "attachment.owner", ""), "node/n1");
}

TEST(OwnerForCreateTest, InsecureCallersKeepTheFreeTextOwner) {
  EXPECT_EQ(*OwnerForCreate(security::Caller(), "allocation.owner", "team-a"),
            "team-a");
  EXPECT_EQ(*OwnerForCreate(security::Caller(), "allocation.owner", ""), "");
}

TEST(CheckOwnerTest, OwnScopeReachesOnlyItsOwnWithoutNamingTheOwner) {
  auto alice = User("alice", "scheduler", internal::OWN);
  EXPECT_TRUE(CheckOwner(alice, "allocations/a", "user/alice").ok());
  absl::Status s = CheckOwner(alice, "allocations/b", "user/bob");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("allocations/b"));
  EXPECT_THAT(s.message(), Not(HasSubstr("bob")));
  // Free-text owners from before identities are not the caller's either.
  EXPECT_FALSE(CheckOwner(alice, "allocations/c", "alice").ok());
  EXPECT_TRUE(CheckOwner(User("root", "admin", internal::ANY), "allocations/b",
                         "user/bob")
                  .ok());
  EXPECT_TRUE(CheckOwner(security::Caller(), "allocations/b", "user/bob").ok());
}

TEST(OwnerFilterTest, OwnScopeListsOnlyItsOwn) {
  auto alice = User("alice", "scheduler", internal::OWN);
  EXPECT_EQ(*OwnerFilter(alice, "owner", ""), "user/alice");
  EXPECT_EQ(*OwnerFilter(alice, "owner", "user/alice"), "user/alice");
  absl::StatusOr<std::string> other = OwnerFilter(alice, "owner", "user/bob");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.status().message(), HasSubstr("owner:"));
  EXPECT_EQ(*OwnerFilter(User("root", "admin", internal::ANY), "owner", ""),
            "");
  EXPECT_EQ(*OwnerFilter(security::Caller(), "owner", "team-a"), "team-a");
}

TEST(CheckOwnerTest, ANodeReachesOnlyItsOwnClaims) {
  // SELF_NODE holds a node's consumer (the device plugin) to its own too.
  EXPECT_TRUE(NeedsOwnerCheck(Node("n1")));
  EXPECT_TRUE(CheckOwner(Node("n1"), "attachments/a", "node/n1").ok());
  EXPECT_EQ(CheckOwner(Node("n1"), "attachments/b", "user/alice").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(*OwnerFilter(Node("n1"), "owner", ""), "node/n1");
  EXPECT_FALSE(OwnerFilter(Node("n1"), "owner", "node/n2").ok());
}

}  // namespace
}  // namespace fabric::service
