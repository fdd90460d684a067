// FabricClient against an in-process fake FabricService on 127.0.0.1:0:
// deadlines, which calls are retried on UNAVAILABLE and how often, paging,
// awaiting a resource, and how an unreachable server is told apart from a
// server that answered UNAVAILABLE.
#include "client/fabric_client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::client {
namespace {

// The in-process server listens on loopback, in plaintext.
const security::TlsConfig kLoopbackPlaintext{.insecure = true};

using ::testing::ElementsAre;
using ::testing::AnyOf;
using ::testing::HasSubstr;

// A FabricService whose answers the test scripts. Every call is counted by
// method; unscripted methods are UNIMPLEMENTED (the generated default).
class FakeFabricService final : public v1::FabricService::Service {
 public:
  // GetFabric fails with `get_fabric_failures` in order, then answers.
  std::vector<grpc::Status> get_fabric_failures;
  // Ping blocks until released (deadline tests) when set.
  bool ping_hangs = false;
  // Pages of ListNodes, keyed by page token ("" first); the next token of
  // page i is in next_tokens.
  std::map<std::string, std::vector<std::string>> node_pages;
  std::map<std::string, std::string> next_tokens;
  // GetAllocation answers these states in order (the last one repeats).
  std::vector<v1::Allocation::State> allocation_states;
  // Events Watch sends before ending its stream.
  std::vector<v1::WatchEvent> watch_events;
  // Watch sends its initial metadata (the stream is open) only after a
  // GetAllocation or 300 ms, whichever comes first, and records "Watch
  // open" then; GetAllocation records itself.
  bool watch_opens_late = false;
  // Watch never opens: it answers nothing until the client cancels (a
  // paused manager).
  bool watch_never_opens = false;
  // What RaiseVfInterrupt, SetVmState and AccessShadow answer.
  grpc::Status relay_status = grpc::Status::OK;

  grpc::Status GetFabric(grpc::ServerContext*, const v1::GetFabricRequest* r,
                         v1::Fabric* out) override {
    const int n = Count("GetFabric");
    if (n < static_cast<int>(get_fabric_failures.size())) {
      return get_fabric_failures[n];
    }
    out->set_name(r->name());
    return grpc::Status::OK;
  }

  grpc::Status Ping(grpc::ServerContext*, const v1::PingRequest*,
                    v1::PingResponse*) override {
    Count("Ping");
    if (ping_hangs) release_.WaitForNotificationWithTimeout(absl::Seconds(30));
    return grpc::Status::OK;
  }

  grpc::Status ListNodes(grpc::ServerContext*, const v1::ListNodesRequest* r,
                         v1::ListNodesResponse* out) override {
    Count("ListNodes");
    Record(absl::StrCat("ListNodes fabric=", r->fabric(),
                        " size=", r->page_size(), " token=", r->page_token()));
    auto page = node_pages.find(r->page_token());
    if (page == node_pages.end()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad token");
    }
    for (const std::string& name : page->second) {
      out->add_nodes()->set_name(name);
    }
    out->set_next_page_token(next_tokens[r->page_token()]);
    return grpc::Status::OK;
  }

  grpc::Status ListProfiles(grpc::ServerContext*,
                            const v1::ListProfilesRequest*,
                            v1::ListProfilesResponse* out) override {
    Count("ListProfiles");
    out->add_profiles()->set_name("sim");
    out->add_profiles()->set_name("plx");
    return grpc::Status::OK;
  }

  grpc::Status GetAllocation(grpc::ServerContext*,
                             const v1::GetAllocationRequest* r,
                             v1::Allocation* out) override {
    const int n = Count("GetAllocation");
    if (watch_opens_late) {
      Record("GetAllocation");
      if (!got_.HasBeenNotified()) got_.Notify();
    }
    if (allocation_states.empty()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat(r->name(), " not found"));
    }
    out->set_name(r->name());
    out->set_state(
        allocation_states[std::min<size_t>(n, allocation_states.size() - 1)]);
    return grpc::Status::OK;
  }

  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* r,
                     grpc::ServerWriter<v1::WatchEvent>* writer) override {
    Count("Watch");
    Record(absl::StrCat("Watch ", absl::StrJoin(r->collections(), ",")));
    while (watch_never_opens && !ctx->IsCancelled()) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    if (watch_opens_late) {
      got_.WaitForNotificationWithTimeout(absl::Milliseconds(300));
      Record("Watch open");
      writer->SendInitialMetadata();
    }
    for (const v1::WatchEvent& e : watch_events) writer->Write(e);
    return grpc::Status::OK;
  }

  grpc::Status RaiseVfInterrupt(grpc::ServerContext*,
                                const v1::RaiseVfInterruptRequest*,
                                v1::RaiseVfInterruptResponse*) override {
    Count("RaiseVfInterrupt");
    return relay_status;
  }
  // HypervisorService.SetVmState, served by FakeHypervisorService below
  // and counted here with the rest.
  grpc::Status SetVmState() {
    Count("SetVmState");
    return relay_status;
  }
  grpc::Status AccessShadow(grpc::ServerContext*,
                            const v1::AccessShadowRequest*,
                            v1::AccessShadowResponse*) override {
    Count("AccessShadow");
    return relay_status;
  }

  int calls(const std::string& method) const {
    absl::MutexLock l(&mu_);
    auto it = calls_.find(method);
    return it == calls_.end() ? 0 : it->second;
  }
  std::vector<std::string> requests() const {
    absl::MutexLock l(&mu_);
    return requests_;
  }
  void Release() { release_.Notify(); }

 private:
  // Returns how many calls of `method` came before this one.
  int Count(const std::string& method) {
    absl::MutexLock l(&mu_);
    return calls_[method]++;
  }
  void Record(std::string request) {
    absl::MutexLock l(&mu_);
    requests_.push_back(std::move(request));
  }

  mutable absl::Mutex mu_;
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> requests_ ABSL_GUARDED_BY(mu_);
  absl::Notification release_;
  absl::Notification got_;  // a GetAllocation came (watch_opens_late)
};

// The HypervisorService the client reaches on the same channel.
class FakeHypervisorService final
    : public hypervisor::v1::HypervisorService::Service {
 public:
  explicit FakeHypervisorService(FakeFabricService* fabric) : fabric_(fabric) {}
  grpc::Status SetVmState(grpc::ServerContext*,
                          const hypervisor::v1::SetVmStateRequest*,
                          hypervisor::v1::SetVmStateResponse*) override {
    return fabric_->SetVmState();
  }

 private:
  FakeFabricService* const fabric_;  // not owned
};

grpc::Status Unavailable() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "store write failed");
}

class FabricClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    builder.RegisterService(&hypervisor_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port);
    options_.retry_backoff = absl::Milliseconds(1);
  }
  void TearDown() override {
    service_.Release();
    server_->Shutdown();
  }

  std::unique_ptr<FabricClient> Client() {
    return FabricClient::Connect(address_, kLoopbackPlaintext, options_);
  }

  FakeFabricService service_;
  FakeHypervisorService hypervisor_{&service_};
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  FabricClient::Options options_;
};

TEST_F(FabricClientTest, CallsTheServerAndReturnsItsAnswer) {
  std::unique_ptr<FabricClient> client = Client();
  EXPECT_EQ(client->target(), address_);
  absl::StatusOr<v1::Fabric> f = client->GetFabric("fabrics/f");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->name(), "fabrics/f");
  EXPECT_TRUE(client->Ping().ok());
}

TEST_F(FabricClientTest, ErrorsKeepCodeAndMessageAndAreNotRetried) {
  service_.get_fabric_failures = {
      grpc::Status(grpc::StatusCode::NOT_FOUND, "fabrics/f not found")};
  absl::Status s = Client()->GetFabric("fabrics/f").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "fabrics/f not found");
  EXPECT_FALSE(IsServerUnreachable(s));
  EXPECT_EQ(service_.calls("GetFabric"), 1);
}

TEST_F(FabricClientTest, UnavailableIsRetriedUpToMaxAttempts) {
  service_.get_fabric_failures = {Unavailable(), Unavailable()};
  absl::StatusOr<v1::Fabric> f = Client()->GetFabric("fabrics/f");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(service_.calls("GetFabric"), 3);
}

TEST_F(FabricClientTest, UnavailableFromTheServerIsNotUnreachable) {
  service_.get_fabric_failures = {Unavailable(), Unavailable(), Unavailable()};
  options_.max_attempts = 2;
  absl::Status s = Client()->GetFabric("fabrics/f").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "store write failed");
  EXPECT_FALSE(IsServerUnreachable(s));
  EXPECT_EQ(service_.calls("GetFabric"), 2);
}

TEST_F(FabricClientTest, NoServerIsUnreachable) {
  options_.max_attempts = 2;
  std::unique_ptr<FabricClient> client = FabricClient::Connect(
      "127.0.0.1:1", kLoopbackPlaintext, options_);  // Nothing listens.
  absl::Status s = client->Ping();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsServerUnreachable(s));
  // The mark survives copies, and only UNAVAILABLE carries it.
  absl::Status copy = s;
  EXPECT_TRUE(IsServerUnreachable(copy));
  EXPECT_FALSE(IsServerUnreachable(absl::NotFoundError("x")));
}

TEST_F(FabricClientTest, CallsPastTheTimeoutAreDeadlineExceededNotRetried) {
  service_.ping_hangs = true;
  options_.timeout = absl::Milliseconds(200);
  absl::Status s = Client()->Ping();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(service_.calls("Ping"), 1);
}

TEST_F(FabricClientTest, CallsThatWouldRepeatAnEffectAreMadeOnce) {
  service_.relay_status = Unavailable();
  std::unique_ptr<FabricClient> client = Client();
  EXPECT_EQ(client->RaiseVfInterrupt({}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(client->SetVmState({}).status().code(),
            absl::StatusCode::kUnavailable);
  v1::AccessShadowRequest write;
  write.set_op(v1::AccessShadowRequest::WRITE);
  EXPECT_EQ(client->AccessShadow(write).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(service_.calls("RaiseVfInterrupt"), 1);
  EXPECT_EQ(service_.calls("SetVmState"), 1);
  EXPECT_EQ(service_.calls("AccessShadow"), 1);

  // Shadow reads are retried.
  v1::AccessShadowRequest read;
  read.set_op(v1::AccessShadowRequest::READ);
  EXPECT_EQ(client->AccessShadow(read).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(service_.calls("AccessShadow"), 1 + 3);
}

TEST_F(FabricClientTest, ListFollowsPageTokensToTheEnd) {
  service_.node_pages = {
      {"", {"nodes/a", "nodes/b"}}, {"p2", {"nodes/c"}}, {"p3", {}}};
  service_.next_tokens = {{"", "p2"}, {"p2", "p3"}, {"p3", ""}};
  options_.page_size = 2;
  absl::StatusOr<std::vector<v1::Node>> nodes =
      Client()->ListNodes("fabrics/f");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  std::vector<std::string> names;
  for (const v1::Node& n : *nodes) names.push_back(n.name());
  EXPECT_THAT(names, ElementsAre("nodes/a", "nodes/b", "nodes/c"));
  EXPECT_THAT(service_.requests(),
              ElementsAre("ListNodes fabric=fabrics/f size=2 token=",
                          "ListNodes fabric=fabrics/f size=2 token=p2",
                          "ListNodes fabric=fabrics/f size=2 token=p3"));
}

TEST_F(FabricClientTest, ListStopsOnARepeatedPageToken) {
  service_.node_pages = {{"", {"nodes/a"}}, {"p2", {"nodes/b"}}};
  service_.next_tokens = {{"", "p2"}, {"p2", "p2"}};
  absl::Status s = Client()->ListNodes("").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("same next_page_token twice"));
  EXPECT_EQ(service_.calls("ListNodes"), 2);
}

TEST_F(FabricClientTest, ListPassesAPageErrorOn) {
  service_.node_pages = {{"", {"nodes/a"}}};
  service_.next_tokens = {{"", "gone"}};
  absl::Status s = Client()->ListNodes("").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "bad token");
}

TEST_F(FabricClientTest, ListProfilesIsOneCall) {
  absl::StatusOr<std::vector<v1::HardwareProfile>> p = Client()->ListProfiles();
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[1].name(), "plx");
  EXPECT_EQ(service_.calls("ListProfiles"), 1);
}

v1::WatchEvent AllocationEvent(const std::string& name,
                               v1::Allocation::State state) {
  v1::WatchEvent e;
  e.set_type(v1::WatchEvent::MODIFIED);
  e.mutable_allocation()->set_name(name);
  e.mutable_allocation()->set_state(state);
  return e;
}

TEST_F(FabricClientTest, AwaitAllocationFollowsTheWatchStream) {
  service_.allocation_states = {v1::Allocation::PENDING};
  service_.watch_events = {
      AllocationEvent("allocations/other", v1::Allocation::READY),
      AllocationEvent("allocations/a", v1::Allocation::READY)};
  // A poll far beyond the deadline: only the stream can settle it.
  absl::StatusOr<v1::Allocation> a = Client()->AwaitAllocation(
      "allocations/a", absl::Now() + absl::Seconds(30), absl::Hours(1));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->name(), "allocations/a");
  EXPECT_EQ(a->state(), v1::Allocation::READY);
  EXPECT_EQ(service_.calls("GetAllocation"), 1);
  EXPECT_THAT(service_.requests(), ElementsAre("Watch allocations"));
}

// A change between the first read and the stream's start would be seen
// only by the next poll (a second by default): the read waits until the
// stream is open.
TEST_F(FabricClientTest, AwaitAllocationReadsOnlyOnceTheStreamIsOpen) {
  service_.watch_opens_late = true;
  service_.allocation_states = {v1::Allocation::READY};
  absl::StatusOr<v1::Allocation> a = Client()->AwaitAllocation(
      "allocations/a", absl::Now() + absl::Seconds(30), absl::Hours(1));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->state(), v1::Allocation::READY);
  EXPECT_THAT(service_.requests(),
              ElementsAre("Watch allocations", "Watch open", "GetAllocation"));
}

// A stream that never opens (a paused manager) holds the first read back
// for one poll, not until the deadline: the reads settle it.
TEST_F(FabricClientTest, AwaitAllocationReadsAfterAPollWhenTheStreamNeverOpens) {
  service_.watch_never_opens = true;
  service_.allocation_states = {v1::Allocation::READY};
  // A deadline far beyond the test's timeout: waiting for it would fail.
  absl::StatusOr<v1::Allocation> a = Client()->AwaitAllocation(
      "allocations/a", absl::Now() + absl::Hours(1), absl::Milliseconds(50));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->state(), v1::Allocation::READY);
  EXPECT_EQ(service_.calls("GetAllocation"), 1);
}

TEST_F(FabricClientTest, AwaitAllocationPollsWhenTheStreamSaysNothing) {
  service_.allocation_states = {v1::Allocation::PENDING,
                                v1::Allocation::PENDING,
                                v1::Allocation::RELEASED};
  absl::StatusOr<v1::Allocation> a = Client()->AwaitAllocation(
      "allocations/a", absl::Now() + absl::Seconds(30), absl::Milliseconds(1));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->state(), v1::Allocation::RELEASED);
  EXPECT_EQ(service_.calls("GetAllocation"), 3);
}

TEST_F(FabricClientTest, AwaitAllocationReturnsTheLastStateAtTheDeadline) {
  service_.allocation_states = {v1::Allocation::PENDING};
  absl::StatusOr<v1::Allocation> a = Client()->AwaitAllocation(
      "allocations/a", absl::Now() + absl::Milliseconds(100),
      absl::Milliseconds(10));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->state(), v1::Allocation::PENDING);
}

TEST_F(FabricClientTest, AwaitAllocationPassesGetErrorsOn) {
  absl::Status s =
      Client()
          ->AwaitAllocation("allocations/a", absl::Now() + absl::Seconds(30))
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "allocations/a not found");
}

}  // namespace
}  // namespace fabric::client

namespace fabric::client {
namespace {

// A standby manager (server/ha/standby_server.h): refuses every call, naming
// `leader`.
class StandbyFabricService final : public v1::FabricService::Service {
 public:
  explicit StandbyFabricService(std::string leader)
      : leader_(std::move(leader)) {}
  int calls() const { return calls_; }

  grpc::Status GetFabric(grpc::ServerContext* ctx, const v1::GetFabricRequest*,
                         v1::Fabric*) override {
    return Refuse(ctx);
  }
  grpc::Status RaiseVfInterrupt(grpc::ServerContext* ctx,
                                const v1::RaiseVfInterruptRequest*,
                                v1::RaiseVfInterruptResponse*) override {
    return Refuse(ctx);
  }

 private:
  grpc::Status Refuse(grpc::ServerContext* ctx) {
    ++calls_;
    ctx->AddTrailingMetadata(kLeaderMetadataKey, leader_);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, StandbyMessage(leader_));
  }

  const std::string leader_;
  std::atomic<int> calls_{0};
};

class FabricClientHaTest : public FabricClientTest {
 protected:
  void SetUp() override {
    FabricClientTest::SetUp();
    standby_ = std::make_unique<StandbyFabricService>(address_);
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(standby_.get());
    standby_server_ = builder.BuildAndStart();
    ASSERT_NE(standby_server_, nullptr);
    standby_address_ = absl::StrCat("127.0.0.1:", port);
  }
  void TearDown() override {
    standby_server_->Shutdown();
    FabricClientTest::TearDown();
  }

  std::unique_ptr<StandbyFabricService> standby_;
  std::unique_ptr<grpc::Server> standby_server_;
  std::string standby_address_;
};

TEST_F(FabricClientHaTest, FollowsTheLeaderTheStandbyNames) {
  // The leader is not even in the list: the standby's answer is enough.
  std::unique_ptr<FabricClient> client =
      FabricClient::Connect(standby_address_ + ",127.0.0.1:1",
                            kLoopbackPlaintext, options_);
  absl::StatusOr<v1::Fabric> f = client->GetFabric("fabrics/f");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(standby_->calls(), 1);
  EXPECT_EQ(service_.calls("GetFabric"), 1);
  // From now on the leader is asked first.
  ASSERT_TRUE(client->GetFabric("fabrics/f").ok());
  EXPECT_EQ(standby_->calls(), 1);
  EXPECT_EQ(service_.calls("GetFabric"), 2);
}

TEST_F(FabricClientHaTest, CallsMadeOnceAreNotRepeatedOnTheLeader) {
  std::unique_ptr<FabricClient> client = FabricClient::Connect(
      standby_address_ + "," + address_, kLoopbackPlaintext, options_);
  v1::RaiseVfInterruptRequest req;
  absl::Status s = client->RaiseVfInterrupt(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), StandbyMessage(address_));
  EXPECT_FALSE(IsServerUnreachable(s));
  EXPECT_EQ(service_.calls("RaiseVfInterrupt"), 0);
  // The next call goes to the leader.
  EXPECT_TRUE(client->RaiseVfInterrupt(req).ok());
  EXPECT_EQ(service_.calls("RaiseVfInterrupt"), 1);
  EXPECT_EQ(standby_->calls(), 1);
}

TEST_F(FabricClientHaTest, AnUnreachableManagerIsSkipped) {
  std::unique_ptr<FabricClient> client = FabricClient::Connect(
      "127.0.0.1:1," + address_, kLoopbackPlaintext, options_);
  EXPECT_TRUE(client->GetFabric("fabrics/f").ok());
  EXPECT_EQ(service_.calls("GetFabric"), 1);
}


TEST_F(FabricClientHaTest, RidesThroughAFailoverUntilTheLeaderAnswers) {
  // The "leader" answers only after more refusals than max_attempts (no
  // leader elected yet), with the old leader out of reach meanwhile.
  constexpr int kRefusals = 8;
  for (int i = 0; i < kRefusals; ++i) {
    service_.get_fabric_failures.push_back(grpc::Status(
        grpc::StatusCode::UNAVAILABLE, StandbyMessage(std::nullopt)));
  }
  std::unique_ptr<FabricClient> client = FabricClient::Connect(
      "127.0.0.1:1," + address_, kLoopbackPlaintext, options_);
  absl::StatusOr<v1::Fabric> f = client->GetFabric("fabrics/f");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(service_.calls("GetFabric"), kRefusals + 1);
}

TEST_F(FabricClientHaTest, NoLeaderUntilTheDeadlineNamesEveryManagerTried) {
  for (int i = 0; i < 1000; ++i) {
    service_.get_fabric_failures.push_back(grpc::Status(
        grpc::StatusCode::UNAVAILABLE, StandbyMessage(std::nullopt)));
  }
  options_.timeout = absl::Milliseconds(300);
  options_.max_retry_backoff = absl::Milliseconds(20);
  std::unique_ptr<FabricClient> client = FabricClient::Connect(
      "127.0.0.1:1," + address_, kLoopbackPlaintext, options_);
  absl::Status s = client->GetFabric("fabrics/f").status();
  // The last standby's answer, or the deadline itself when a slow machine
  // (ASan) spends it inside the last attempt: either way it names both.
  EXPECT_THAT(s.code(), AnyOf(absl::StatusCode::kUnavailable,
                              absl::StatusCode::kDeadlineExceeded))
      << s;
  EXPECT_THAT(s.message(), HasSubstr("127.0.0.1:1, " + address_)) << s;
  EXPECT_GT(service_.calls("GetFabric"), options_.max_attempts);
}

TEST_F(FabricClientHaTest, TheLeadersOwnUnavailableKeepsMaxAttempts) {
  for (int i = 0; i < 1000; ++i) {
    service_.get_fabric_failures.push_back(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent out of reach"));
  }
  std::unique_ptr<FabricClient> client = FabricClient::Connect(
      standby_address_ + "," + address_, kLoopbackPlaintext, options_);
  absl::Status s = client->GetFabric("fabrics/f").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "agent out of reach");
  EXPECT_EQ(service_.calls("GetFabric"), options_.max_attempts);
}

// A paused leader (SIGSTOP): it takes calls and answers none.
class PausedFabricService final : public v1::FabricService::Service {
 public:
  grpc::Status GetFabric(grpc::ServerContext* ctx, const v1::GetFabricRequest*,
                         v1::Fabric*) override {
    ++calls;
    while (!ctx->IsCancelled() &&
           !released.WaitForNotificationWithTimeout(absl::Milliseconds(10))) {
    }
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};
  absl::Notification released;
};

TEST_F(FabricClientHaTest, APausedLeaderIsLeftAtTheAttemptsDeadline) {
  PausedFabricService paused;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&paused);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  options_.timeout = absl::Seconds(30);
  options_.attempt_timeout = absl::Milliseconds(200);
  std::unique_ptr<FabricClient> client = FabricClient::Connect(
      absl::StrCat("127.0.0.1:", port, ",", address_), kLoopbackPlaintext,
      options_);
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::Fabric> f = client->GetFabric("fabrics/f");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(paused.calls, 1);
  EXPECT_EQ(service_.calls("GetFabric"), 1);
  paused.released.Notify();
  server->Shutdown();
}

TEST_F(FabricClientHaTest, CancelledByAServerShuttingDownIsRetried) {
  // What a standby's server ends its calls with as it hands the port over.
  service_.get_fabric_failures.push_back(
      grpc::Status(grpc::StatusCode::CANCELLED, "Cancelled"));
  std::unique_ptr<FabricClient> client = FabricClient::Connect(
      "127.0.0.1:1," + address_, kLoopbackPlaintext, options_);
  absl::StatusOr<v1::Fabric> f = client->GetFabric("fabrics/f");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(service_.calls("GetFabric"), 2);
}

}  // namespace
}  // namespace fabric::client
