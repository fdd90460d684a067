#include "common/security/policy.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/agentproto/v1/node_agent_service.pb.h"
#include "fabric/hypervisor/v1/hypervisor.pb.h"
#include "fabric/v1/fabric_service.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::security {
namespace {

using ::testing::HasSubstr;

constexpr char kFabric[] = "/fabric.v1.FabricService/";
constexpr char kAgent[] = "/fabric.agentproto.v1.AgentService/";
constexpr char kNodeAgent[] = "/fabric.agentproto.v1.NodeAgentService/";
constexpr char kHypervisor[] = "/fabric.hypervisor.v1.HypervisorService/";

Identity User(const std::string& name, const std::string& cert_role = "") {
  return Identity{PrincipalKind::kUser, name, cert_role};
}
Identity Node(const std::string& name) {
  return Identity{PrincipalKind::kNode, name, ""};
}
Identity Manager(const std::string& name) {
  return Identity{PrincipalKind::kManager, name, ""};
}

// "allowed SCOPE" or "denied", for readable expectations.
std::string Outcome(const Policy& policy, const Identity& who,
                    const std::string& method) {
  Decision d = policy.Check(who, method);
  if (!d.allowed) return "denied";
  return absl::StrCat("allowed ", internal::Scope_Name(d.scope));
}

TEST(DefaultPolicyTest, TheFileInDeployIsTheCompiledInCopy) {
  absl::StatusOr<std::string> file = ReadFileToString(
      std::string(FABRIC_SOURCE_DIR) + "/deploy/policy/policy.textproto");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file, Policy::DefaultPolicyText());
  absl::StatusOr<Policy> loaded =
      Policy::Load(std::string(FABRIC_SOURCE_DIR) + "/deploy/policy/policy.textproto");
  EXPECT_TRUE(loaded.ok()) << loaded.status();
}

// Every method the default policy names exists in the fabric's protos, and
// every pattern matches at least one method (grpc.* services are gRPC's).
TEST(DefaultPolicyTest, EveryMethodItNamesExists) {
  // Link in the descriptors of the services' files.
  std::vector<const google::protobuf::FileDescriptor*> files = {
      fabric::v1::PingRequest::descriptor()->file(),
      fabric::agentproto::v1::RegisterNodeRequest::descriptor()->file(),
      fabric::agentproto::v1::HostWriteRequest::descriptor()->file(),
      fabric::hypervisor::v1::SetVmStateRequest::descriptor()->file()};
  std::vector<std::string> methods;
  for (const google::protobuf::FileDescriptor* file : files) {
    for (int s = 0; s < file->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        methods.push_back(absl::StrCat("/", service->full_name(), "/",
                                       service->method(m)->name()));
      }
    }
  }
  internal::PolicyFile policy;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      std::string(Policy::DefaultPolicyText()), &policy));
  for (const internal::Role& role : policy.role()) {
    for (const internal::Rule& rule : role.allow()) {
      if (rule.method() == "*" || absl::StartsWith(rule.method(), "/grpc.")) {
        continue;
      }
      bool prefix = absl::EndsWith(rule.method(), "*");
      std::string pattern = absl::StrReplaceAll(rule.method(), {{"*", ""}});
      int matches = 0;
      for (const std::string& m : methods) {
        if (prefix ? absl::StartsWith(m, pattern) : m == pattern) ++matches;
      }
      EXPECT_GT(matches, 0) << role.name() << ": " << rule.method()
                            << " names no method of the fabric's protos";
    }
  }
}

TEST(DefaultPolicyTest, Admin) {
  Policy p = Policy::Default();
  Identity root = User("root", "admin");
  for (const std::string& m :
       {absl::StrCat(kFabric, "DeleteFabric"),
        absl::StrCat(kFabric, "CreateAllocation"),
        std::string("/fabric.hypervisor.v1.HypervisorService/SetVmState"),
        std::string("/grpc.reflection.v1alpha.ServerReflection/"
                    "ServerReflectionInfo")}) {
    EXPECT_EQ(Outcome(p, root, m), "allowed ANY") << m;
  }
  // The manager alone calls the agents' NodeAgentService, and each node
  // alone speaks the agent protocol for itself: not even an admin may.
  for (const std::string& m :
       {absl::StrCat(kNodeAgent, "HostWrite"),
        absl::StrCat(kNodeAgent, "HostRead"),
        absl::StrCat(kNodeAgent, "VfAccess"),
        absl::StrCat(kAgent, "RegisterNode"), std::string("/x.Y/Z")}) {
    EXPECT_EQ(Outcome(p, root, m), "denied") << m;
  }
}

TEST(DefaultPolicyTest, Operator) {
  Policy p = Policy::Default();
  Identity op = User("olga", "operator");
  for (const char* m :
       {"CreateFabric", "DeleteFabric", "SetLinkState", "GetLink",
        "ListAllocations", "GetAddressMap", "Watch", "Ping"}) {
    EXPECT_EQ(Outcome(p, op, absl::StrCat(kFabric, m)), "allowed ANY") << m;
  }
  EXPECT_EQ(Outcome(p, op,
                    "/grpc.reflection.v1alpha.ServerReflection/"
                    "ServerReflectionInfo"),
            "allowed ANY");
  for (const char* m : {"CreateAllocation", "DeleteAllocation",
                        "VerifyAllocation", "CreateAttachment"}) {
    EXPECT_EQ(Outcome(p, op, absl::StrCat(kFabric, m)), "denied") << m;
  }
  EXPECT_EQ(Outcome(p, op, absl::StrCat(kNodeAgent, "HostRead")), "denied");
}

TEST(DefaultPolicyTest, Scheduler) {
  Policy p = Policy::Default();
  Identity s = User("sched", "scheduler");
  for (const char* m :
       {"CreateAllocation", "GetAllocation", "ListAllocations",
        "DeleteAllocation", "VerifyAllocation", "CreateAttachment",
        "DeleteAttachment", "AccessShadow", "RaiseVfInterrupt", "Watch"}) {
    EXPECT_EQ(Outcome(p, s, absl::StrCat(kFabric, m)), "allowed OWN") << m;
  }
  for (const char* m : {"GetFabric", "ListNodes", "ListVirtualFunctions",
                        "ListProfiles", "Ping"}) {
    EXPECT_EQ(Outcome(p, s, absl::StrCat(kFabric, m)), "allowed ANY") << m;
  }
  for (const char* m :
       {"CreateFabric", "DeleteFabric", "SetLinkState", "GetLink"}) {
    EXPECT_EQ(Outcome(p, s, absl::StrCat(kFabric, m)), "denied") << m;
  }
  EXPECT_EQ(Outcome(p, s, absl::StrCat(kAgent, "RegisterNode")), "denied");
}

TEST(DefaultPolicyTest, Viewer) {
  Policy p = Policy::Default();
  Identity v = User("vera", "viewer");
  for (const char* m : {"GetFabric", "ListAllocations", "GetAttachment",
                        "ListProfiles", "Watch", "Ping"}) {
    EXPECT_EQ(Outcome(p, v, absl::StrCat(kFabric, m)), "allowed ANY") << m;
  }
  EXPECT_EQ(Outcome(p, v, "/grpc.health.v1.Health/Check"), "allowed ANY");
  for (const char* m :
       {"VerifyAllocation", "VerifyAttachment", "CreateAllocation",
        "DeleteAllocation", "AccessShadow", "SetLinkState", "CreateFabric"}) {
    Decision d = p.Check(v, absl::StrCat(kFabric, m));
    EXPECT_FALSE(d.allowed) << m;
    EXPECT_EQ(d.role, "viewer");
  }
  Decision d = p.Check(v, absl::StrCat(kFabric, "CreateAllocation"));
  EXPECT_EQ(d.reason,
            "user/vera (role viewer) may not call "
            "/fabric.v1.FabricService/CreateAllocation");
}

TEST(DefaultPolicyTest, Node) {
  Policy p = Policy::Default();
  Identity n1 = Node("n1");
  for (const char* m : {"RegisterNode", "StreamConfig", "ReportStatus"}) {
    EXPECT_EQ(Outcome(p, n1, absl::StrCat(kAgent, m)), "allowed SELF_NODE");
  }
  EXPECT_EQ(Outcome(p, n1, absl::StrCat(kNodeAgent, "VfAccess")),
            "allowed SELF_NODE");
  EXPECT_EQ(Outcome(p, n1, absl::StrCat(kHypervisor, "SetVmState")),
            "allowed SELF_NODE");
  for (const char* m : {"HostRead", "HostWrite", "AccessShadow",
                        "ShadowInterrupt", "SetVmState"}) {
    EXPECT_EQ(Outcome(p, n1, absl::StrCat(kNodeAgent, m)), "denied") << m;
  }
  // Its device plugin: offers, and claims bound to its node (issue 15).
  for (const char* m :
       {"WatchOffers", "CreateAllocation", "GetAllocation", "ListAllocations",
        "DeleteAllocation", "CreateAttachment", "GetAttachment",
        "ListAttachments", "DeleteAttachment", "Watch"}) {
    EXPECT_EQ(Outcome(p, n1, absl::StrCat(kFabric, m)), "allowed SELF_NODE")
        << m;
  }
  for (const char* m : {"ListNodes", "DeleteFabric", "SetLinkState",
                        "VerifyAllocation", "AccessShadow"}) {
    EXPECT_EQ(Outcome(p, n1, absl::StrCat(kFabric, m)), "denied") << m;
  }
  EXPECT_EQ(Outcome(p, n1, absl::StrCat(kFabric, "Ping")), "allowed ANY");
}

TEST(DefaultPolicyTest, Manager) {
  Policy p = Policy::Default();
  Identity m1 = Manager("m1");
  for (const char* m : {"HostRead", "HostWrite", "VfAccess", "AccessShadow",
                        "ShadowInterrupt", "SetVmState"}) {
    EXPECT_EQ(Outcome(p, m1, absl::StrCat(kNodeAgent, m)), "allowed ANY") << m;
  }
  EXPECT_EQ(Outcome(p, m1, absl::StrCat(kAgent, "RegisterNode")), "denied");
  EXPECT_EQ(Outcome(p, m1, absl::StrCat(kFabric, "CreateAllocation")),
            "denied");
  // Only the manager reaches HostRead/HostWrite.
  for (const Identity& who :
       {User("a", "admin"), User("o", "operator"), User("s", "scheduler"),
        User("v", "viewer"), Node("n1")}) {
    EXPECT_EQ(Outcome(p, who, absl::StrCat(kNodeAgent, "HostWrite")), "denied")
        << who.ToString();
  }
}

TEST(DefaultPolicyTest, EachRoleHasOneScope) {
  Policy p = Policy::Default();
  EXPECT_EQ(p.RoleScope("scheduler"), internal::OWN);
  EXPECT_EQ(p.RoleScope("node"), internal::SELF_NODE);
  for (const char* role : {"admin", "operator", "viewer", "manager", "none"}) {
    EXPECT_EQ(p.RoleScope(role), internal::ANY) << role;
  }
  absl::StatusOr<Policy> mixed = Policy::Parse(R"pb(
    role {
      name: "odd"
      allow { method: "/a.B/C" scope: OWN }
      allow { method: "/a.B/D" scope: SELF_NODE }
    }
  )pb");
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mixed.status().message(), HasSubstr("mixes OWN and SELF_NODE"));
}

TEST(DefaultPolicyTest, UnknownMethodsAndRolelessUsersAreDenied) {
  Policy p = Policy::Default();
  for (const Identity& who : {User("o", "operator"), User("s", "scheduler"),
                              User("v", "viewer"), Node("n1"), Manager("m1")}) {
    EXPECT_EQ(Outcome(p, who, absl::StrCat(kFabric, "NewMethod")), "denied");
    EXPECT_EQ(Outcome(p, who, "/other.Service/Get"), "denied");
  }
  for (const Identity& who :
       {User("nobody"), User("fake", "node"), User("fake", "manager"),
        User("fake", "authenticated"), User("fake", "superuser")}) {
    Decision d = p.Check(who, absl::StrCat(kFabric, "Ping"));
    EXPECT_FALSE(d.allowed) << who.cert_role;
    EXPECT_EQ(d.role, "") << who.cert_role;
    EXPECT_THAT(d.reason, HasSubstr("has no role")) << who.cert_role;
    EXPECT_THAT(d.reason, HasSubstr(who.ToString()));
  }
}

TEST(PolicyTest, RolesOfIdentities) {
  absl::StatusOr<Policy> p = Policy::Parse(R"pb(
    role { name: "viewer" }
    role { name: "admin" }
    role { name: "node" }
    binding { identity: "user/alice" role: "admin" }
    binding { identity: "node/n1" role: "node" }
  )pb");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->RoleOf(User("alice")), "admin");
  EXPECT_EQ(p->RoleOf(User("alice", "viewer")), "admin");  // binding wins
  EXPECT_EQ(p->RoleOf(User("bob", "viewer")), "viewer");
  EXPECT_EQ(p->RoleOf(User("bob")), "");
  EXPECT_EQ(p->RoleOf(User("bob", "node")), "");
  EXPECT_EQ(p->RoleOf(Node("n1")), "node");
  EXPECT_EQ(p->RoleOf(Node("n2")), "node");
  EXPECT_EQ(p->RoleOf(Manager("m1")), "manager");
}

TEST(PolicyTest, FirstMatchingRuleDecidesTheScope) {
  absl::StatusOr<Policy> p = Policy::Parse(R"pb(
    role {
      name: "r"
      allow { method: "/a.S/Get" scope: OWN }
      allow { method: "/a.S/*" scope: ANY }
    }
    role {
      name: "authenticated"
      allow { method: "/b.S/Ping" scope: SELF_NODE }
    }
  )pb");
  ASSERT_TRUE(p.ok()) << p.status();
  Identity u = User("u", "r");
  EXPECT_EQ(Outcome(*p, u, "/a.S/Get"), "allowed OWN");
  EXPECT_EQ(Outcome(*p, u, "/a.S/List"), "allowed ANY");
  EXPECT_EQ(Outcome(*p, u, "/b.S/Ping"), "allowed SELF_NODE");
  EXPECT_EQ(Outcome(*p, u, "/a.T/Get"), "denied");
  EXPECT_EQ(Outcome(*p, u, "/a.SS/Get"), "denied");
}

// Allows (the per-call check of a caller whose role is known) decides as
// Check does for that role: its rules, then "authenticated"'s, which apply
// to any role (a node's is "node" even where the policy does not define
// it). Without a role, nothing.
TEST(PolicyTest, AllowsAgreesWithCheck) {
  absl::StatusOr<Policy> p = Policy::Parse(R"pb(
    role {
      name: "r"
      allow { method: "/a.S/Get" scope: OWN }
      allow { method: "/a.S/*" scope: ANY }
    }
    role {
      name: "authenticated"
      allow { method: "/b.S/Ping" }
    }
  )pb");
  ASSERT_TRUE(p.ok()) << p.status();
  const Identity u = User("u", "r");
  for (const char* method :
       {"/a.S/Get", "/a.S/List", "/b.S/Ping", "/a.T/Get", "/a.SS/Get", ""}) {
    EXPECT_EQ(p->Allows("r", method), p->Check(u, method).allowed) << method;
  }
  EXPECT_FALSE(p->Allows("", "/b.S/Ping"));
  EXPECT_FALSE(p->Allows("undefined", "/a.S/Get"));
  EXPECT_TRUE(p->Allows("undefined", "/b.S/Ping"));  // "authenticated"
}

TEST(PolicyTest, InvalidPolicies) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c : {
           Case{"role { name: \"a\" }\nrole { nme: \"b\" }", "line 2"},
           Case{"role { allow { method: \"*\" } }", "role[0].name is empty"},
           Case{"role { name: \"a\" } role { name: \"a\" }",
                "\"a\" is defined twice"},
           Case{"role { name: \"a\" allow { method: \"Get\" } }",
                "allow.method \"Get\""},
           Case{"role { name: \"a\" allow { method: \"/a.S/G*t\" } }",
                "'*' may only end"},
           Case{"role { name: \"a\" allow { method: \"/a.S\" } }",
                "neither a full method"},
           Case{"role { name: \"a\" allow { method: \"/a.S/M/x\" } }",
                "neither a full method"},
           Case{"role { name: \"a\" } binding { identity: \"alice\" "
                "role: \"a\" }",
                "binding[0].identity"},
           Case{"role { name: \"a\" } binding { identity: \"user/alice\" "
                "role: \"b\" }",
                "role \"b\" is not defined"},
           Case{"role { name: \"node\" } binding { identity: \"user/alice\" "
                "role: \"node\" }",
                "a user may not hold the role \"node\""},
           Case{"role { name: \"a\" } binding { identity: \"node/n1\" "
                "role: \"a\" }",
                "a node's role is always \"node\""},
           Case{"role { name: \"a\" } binding { identity: \"user/x\" "
                "role: \"a\" } binding { identity: \"user/x\" role: \"a\" }",
                "bound twice"},
       }) {
    absl::StatusOr<Policy> p = Policy::Parse(c.text);
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(p.status().message(), HasSubstr(c.error)) << c.text;
  }
}

TEST(PolicyTest, LoadNamesThePath) {
  absl::StatusOr<Policy> p = Policy::Load("/nonexistent/policy.textproto");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(p.status().message(), HasSubstr("/nonexistent/policy.textproto"));
}

}  // namespace
}  // namespace fabric::security
