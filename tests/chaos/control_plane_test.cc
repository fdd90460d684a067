// The chaos control planes against the real binaries (and, for etcd, a real
// 3-member etcd cluster): who leads, kills and restarts of each victim, and
// the durable state loaded from a copy.
#include "tests/chaos/control_plane.h"

#include <grpcpp/client_context.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/chaos/ops.h"
#include "tests/process/process_util.h"

namespace fabric::chaos {
namespace {

using proctest::TempDir;
using proctest::WaitFor;

// Whether `conn` reaches a manager that serves (after following the
// leader).
bool ServedBy(ManagerConnection& conn) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(1));
  v1::ListFabricsRequest req;
  v1::ListFabricsResponse resp;
  return conn.stub()->ListFabrics(&ctx, req, &resp).ok();
}

// A ring of three and one allocation on it (PENDING: there are no agents);
// returns the allocation's name, "" on failure.
std::string MakeState(ManagerConnection& conn) {
  v1::CreateFabricRequest fabric;
  fabric.mutable_spec()->set_name("cp");
  fabric.mutable_spec()->set_topology(v1::RING);
  fabric.mutable_spec()->set_default_export_size(256 << 20);
  for (const char* n : {"a", "b", "c"}) {
    fabric.mutable_spec()->add_nodes()->set_name(n);
  }
  fabric.set_request_id("cp-fabric");
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(10));
  v1::Fabric made;
  grpc::Status s = conn.stub()->CreateFabric(&ctx, fabric, &made);
  EXPECT_TRUE(s.ok()) << ErrorText(s);
  v1::CreateAllocationRequest alloc;
  alloc.mutable_allocation()->set_borrower("a");
  alloc.mutable_allocation()->set_target("b");
  alloc.mutable_allocation()->set_size(2 << 20);
  alloc.set_request_id("cp-alloc");
  grpc::ClientContext ctx2;
  SetDeadline(&ctx2, absl::Seconds(10));
  v1::Allocation out;
  s = conn.stub()->CreateAllocation(&ctx2, alloc, &out);
  EXPECT_TRUE(s.ok()) << ErrorText(s);
  return out.name();
}

// The manager that leads now, as a new connection finds it ("" if none
// within `timeout`).
std::string WaitLeader(const std::vector<std::string>& managers,
                       absl::Duration timeout) {
  std::string leader;
  WaitFor(
      [&] {
        ManagerConnection conn(managers);
        if (!ServedBy(conn)) return false;
        leader = conn.target();
        return true;
      },
      timeout, absl::Milliseconds(50));
  return leader;
}

TEST(SqliteControlPlaneTest, KillsAndRestartsTheManagerOnItsPort) {
  TempDir dir;
  auto cp = ControlPlane::Start(StoreKind::kSqlite, proctest::BinDir(),
                                dir.path());
  ASSERT_TRUE(cp.ok()) << cp.status();
  const std::vector<std::string> managers = (*cp)->managers();
  ASSERT_EQ(managers.size(), 1u);
  EXPECT_FALSE((*cp)->fails_over());
  EXPECT_EQ((*cp)->store_members(), 0);
  EXPECT_EQ((*cp)->Kill(Victim::kStandby, -1).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*cp)->Kill(Victim::kStoreMember, 0).code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE((*cp)->Kill(Victim::kLeader, -1).ok());
  EXPECT_EQ((*cp)->killed(), "manager " + managers[0]);
  ASSERT_TRUE((*cp)->RestartKilled().ok());
  EXPECT_EQ((*cp)->managers(), managers);
  EXPECT_EQ(WaitLeader(managers, absl::Seconds(10)), managers[0]);
  EXPECT_TRUE((*cp)->ReapUnexpected().empty());

  auto durable = (*cp)->LoadDurable(dir.path() + "/copy.db");
  ASSERT_TRUE(durable.ok()) << durable.status();
  EXPECT_TRUE(durable->invariants.ok()) << durable->invariants;
  EXPECT_TRUE(durable->resources.empty());
}

TEST(EtcdControlPlaneTest, TheStandbyTakesOverAndEveryVictimComesBack) {
  TempDir dir;
  auto cp =
      ControlPlane::Start(StoreKind::kEtcd, proctest::BinDir(), dir.path());
  ASSERT_TRUE(cp.ok()) << cp.status();
  const std::vector<std::string> managers = (*cp)->managers();
  ASSERT_EQ(managers.size(), 2u);
  EXPECT_TRUE((*cp)->fails_over());
  EXPECT_EQ((*cp)->store_members(), 3);
  // The first manager leads; a connection that starts at the standby is
  // sent there.
  ASSERT_EQ(WaitLeader({managers[1], managers[0]}, absl::Seconds(10)),
            managers[0]);
  ManagerConnection conn({managers[1], managers[0]});
  const std::string allocation = MakeState(conn);
  ASSERT_FALSE(allocation.empty());

  // The leader: the standby takes over (after the lease's 2 s).
  ASSERT_TRUE((*cp)->Kill(Victim::kLeader, -1).ok());
  EXPECT_NE((*cp)->killed().find(managers[0]), std::string::npos)
      << (*cp)->killed();
  EXPECT_EQ((*cp)->Kill(Victim::kStandby, -1).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(WaitLeader(managers, absl::Seconds(15)), managers[1]);
  ASSERT_TRUE((*cp)->RestartKilled().ok());

  // The standby (the restarted first manager); the leader stays.
  ASSERT_TRUE((*cp)->Kill(Victim::kStandby, -1).ok());
  EXPECT_NE((*cp)->killed().find(managers[0]), std::string::npos)
      << (*cp)->killed();
  ASSERT_TRUE((*cp)->RestartKilled().ok());
  EXPECT_EQ(WaitLeader(managers, absl::Seconds(15)), managers[1]);

  // An etcd member, out of range and then one that is there.
  EXPECT_EQ((*cp)->Kill(Victim::kStoreMember, 3).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE((*cp)->Kill(Victim::kStoreMember, 2).ok());
  EXPECT_NE((*cp)->killed().find("etcd member 2"), std::string::npos);
  ASSERT_TRUE((*cp)->RestartKilled().ok());
  EXPECT_EQ((*cp)->RestartKilled().code(),
            absl::StatusCode::kFailedPrecondition);

  EXPECT_FALSE(WaitLeader(managers, absl::Seconds(15)).empty());
  EXPECT_TRUE((*cp)->ReapUnexpected().empty());
  EXPECT_EQ((*cp)->managers(), managers);

  // The durable state of the prefix, loaded from a copy.
  auto durable = (*cp)->LoadDurable(dir.path() + "/copy.db");
  ASSERT_TRUE(durable.ok()) << durable.status();
  EXPECT_TRUE(durable->invariants.ok()) << durable->invariants;
  EXPECT_EQ(durable->resources, std::set<std::string>{allocation});
}

}  // namespace
}  // namespace fabric::chaos
