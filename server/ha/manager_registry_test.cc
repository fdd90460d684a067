#include "server/ha/manager_registry.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/ha/leader_election.h"
#include "tests/etcd/etcd_cluster.h"
#include "tests/process/process_util.h"

namespace fabric::ha {
namespace {

using etcdtest::EtcdCluster;
using proctest::WaitFor;
using service::ManagerRole;
using service::ManagerStatus;

constexpr char kPrefix[] = "/fabric-reg";

// One manager: its election and its record.
struct Manager {
  std::string address;
  std::unique_ptr<LeaderElection> election;
  std::unique_ptr<ManagerRegistry> registry;
};

class ManagerRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<EtcdCluster>> started =
        EtcdCluster::Start(1);
    ASSERT_TRUE(started.ok()) << started.status();
    etcd_ = *std::move(started);
    client_.endpoints = absl::StrSplit(etcd_->Endpoints(), ',');
  }

  std::unique_ptr<ManagerRegistry> Open() {
    RegistryOptions options;
    options.client = client_;
    options.prefix = kPrefix;
    options.refresh = absl::Milliseconds(50);
    absl::StatusOr<std::unique_ptr<ManagerRegistry>> r =
        ManagerRegistry::Open(options);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : nullptr;
  }

  // Starts a manager's election and joins its registry.
  Manager* Add(const std::string& address) {
    auto m = std::make_unique<Manager>();
    m->address = address;
    ElectionOptions options;
    options.client = client_;
    options.prefix = kPrefix;
    options.address = address;
    options.ttl = absl::Seconds(1);  // etcd raises it to 2 s
    absl::StatusOr<std::unique_ptr<LeaderElection>> e =
        LeaderElection::Start(options, {});
    EXPECT_TRUE(e.ok()) << e.status();
    if (!e.ok()) return nullptr;
    m->election = *std::move(e);
    m->registry = Open();
    if (m->registry == nullptr) return nullptr;
    LeaderElection* election = m->election.get();
    absl::Status joined = m->registry->Join(
        {.address = address,
         .store = etcd_->StoreUrl(kPrefix),
         .start_time = absl::FromUnixSeconds(1700000000),
         .version = "9.9"},
        [election] { return election->lease(); });
    EXPECT_TRUE(joined.ok()) << joined;
    if (!joined.ok()) return nullptr;
    managers_.push_back(std::move(m));
    return managers_.back().get();
  }

  // Adds 10.0.0.1:7070, waits until it leads, then adds 10.0.0.2:7070.
  void AddLeaderThenStandby() {
    Manager* a = Add("10.0.0.1:7070");
    ASSERT_NE(a, nullptr);
    ASSERT_TRUE(WaitFor([&] { return a->election->is_leader(); },
                        absl::Seconds(20)));
    ASSERT_NE(Add("10.0.0.2:7070"), nullptr);
  }

  // The list as `registry` reads it; empty on error (a test failure).
  std::vector<ManagerStatus> List(ManagerRegistry* registry) {
    absl::StatusOr<std::vector<ManagerStatus>> got = registry->ListManagers();
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : std::vector<ManagerStatus>{};
  }

  // "address:ROLE,..." for the list as `registry` reads it.
  std::string Roles(ManagerRegistry* registry) {
    std::string out;
    for (const ManagerStatus& m : List(registry)) {
      absl::StrAppend(&out, out.empty() ? "" : ",", m.address, ":",
                      m.role == ManagerRole::kLeader ? "LEADER" : "STANDBY");
    }
    return out;
  }

  std::unique_ptr<EtcdCluster> etcd_;
  store::EtcdClientOptions client_;
  std::vector<std::unique_ptr<Manager>> managers_;
};

TEST_F(ManagerRegistryTest, ListsEveryManagerWithItsRoleStoreAndLease) {
  ASSERT_NO_FATAL_FAILURE(AddLeaderThenStandby());
  Manager* b = managers_[1].get();
  // Any registry reads the same list, a reader that never joined too.
  std::unique_ptr<ManagerRegistry> reader = Open();
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(Roles(reader.get()), "10.0.0.1:7070:LEADER,10.0.0.2:7070:STANDBY");
  EXPECT_EQ(Roles(b->registry.get()), Roles(reader.get()));

  std::vector<ManagerStatus> list = List(reader.get());
  ASSERT_EQ(list.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(list[i].address);
    EXPECT_EQ(list[i].lease_id, managers_[i]->election->lease());
    EXPECT_GT(list[i].lease_ttl, absl::ZeroDuration());
    EXPECT_LE(list[i].lease_ttl, absl::Seconds(2));
    EXPECT_EQ(list[i].store, etcd_->StoreUrl(kPrefix));
    EXPECT_EQ(list[i].start_time, absl::FromUnixSeconds(1700000000));
    EXPECT_EQ(list[i].version, "9.9");
  }

  // The leader resigns on destruction and deletes its record: b leads.
  managers_[0].reset();
  EXPECT_TRUE(WaitFor(
      [&] { return Roles(reader.get()) == "10.0.0.2:7070:LEADER"; },
      absl::Seconds(20)))
      << Roles(reader.get());
}

TEST_F(ManagerRegistryTest, ADeadManagersRecordGoesWithItsLeaseAndComesBack) {
  ASSERT_NO_FATAL_FAILURE(AddLeaderThenStandby());
  Manager* a = managers_[0].get();
  Manager* b = managers_[1].get();
  const int64_t old_lease = a->election->lease();

  // As if a were stopped: its lease expires, its record with it.
  a->election->SetKeepAlivePausedForTesting(true);
  EXPECT_TRUE(WaitFor(
      [&] { return Roles(b->registry.get()) == "10.0.0.2:7070:LEADER"; },
      absl::Seconds(20)))
      << Roles(b->registry.get());

  // Awake again, a campaigns on a new lease and is recorded on it.
  a->election->SetKeepAlivePausedForTesting(false);
  EXPECT_TRUE(WaitFor(
      [&] {
        return Roles(b->registry.get()) ==
               "10.0.0.1:7070:STANDBY,10.0.0.2:7070:LEADER";
      },
      absl::Seconds(20)))
      << Roles(b->registry.get());
  std::vector<ManagerStatus> list = List(b->registry.get());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_NE(list[0].lease_id, old_lease);
  EXPECT_EQ(list[0].lease_id, a->election->lease());
}

TEST_F(ManagerRegistryTest, NoRecordsIsAnEmptyList) {
  std::unique_ptr<ManagerRegistry> reader = Open();
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<std::vector<ManagerStatus>> got = reader->ListManagers();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->empty());
}

TEST_F(ManagerRegistryTest, JoinRefusesBadInput) {
  std::unique_ptr<ManagerRegistry> r = Open();
  ASSERT_NE(r, nullptr);
  auto self = [](const char* address) {
    ManagerSelf s;
    s.address = address;
    return s;
  };
  auto no_lease = [] { return int64_t{0}; };
  auto some_lease = [] { return int64_t{12345}; };
  EXPECT_EQ(r->Join(self(""), some_lease).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->Join(self("a/b:1"), some_lease).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->Join(self("a:1"), no_lease).code(),
            absl::StatusCode::kInvalidArgument);
  // A lease etcd never granted: etcd refuses the put; nothing is recorded.
  EXPECT_EQ(r->Join(self("a:1"), some_lease).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(List(r.get()).empty());
}

TEST_F(ManagerRegistryTest, UnreachableEtcdIsUnavailable) {
  RegistryOptions options;
  options.client.endpoints = {"127.0.0.1:1"};
  options.client.rpc_timeout = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<ManagerRegistry>> r =
      ManagerRegistry::Open(options);
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<std::vector<ManagerStatus>> got = (*r)->ListManagers();
  EXPECT_TRUE(got.status().code() == absl::StatusCode::kUnavailable ||
              got.status().code() == absl::StatusCode::kDeadlineExceeded)
      << got.status();
  EXPECT_NE(got.status().message().find("/managers/"), std::string::npos);
}

}  // namespace
}  // namespace fabric::ha
