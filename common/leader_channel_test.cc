#include "common/leader_channel.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A manager that either serves Ping or answers as a standby naming
// `leader`.
class FakeManager : public v1::FabricService::Service {
 public:
  explicit FakeManager(bool standby) : standby_(standby) {}

  void set_leader(std::optional<std::string> leader) { leader_ = leader; }
  int calls() const { return calls_; }

  grpc::Status Ping(grpc::ServerContext* ctx, const v1::PingRequest*,
                    v1::PingResponse*) override {
    ++calls_;
    if (!standby_) return grpc::Status::OK;
    if (leader_.has_value()) ctx->AddTrailingMetadata(kLeaderMetadataKey, *leader_);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, StandbyMessage(leader_));
  }

 private:
  const bool standby_;
  std::optional<std::string> leader_;
  std::atomic<int> calls_{0};
};

struct Running {
  explicit Running(bool standby) : service(standby) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
  }
  std::string target() const { return absl::StrCat("127.0.0.1:", port); }

  FakeManager service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

LeaderChannel::Dial Insecure() {
  return [](const std::string& target) {
    return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  };
}

grpc::Status Ping(LeaderChannel& leader, bool retry_safe,
                  LeaderChannel::Endpoint* last = nullptr) {
  return leader.Call(
      [](const LeaderChannel::Endpoint& e, grpc::ClientContext& ctx) {
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
        v1::PingResponse resp;
        return v1::FabricService::NewStub(e.channel)->Ping(
            &ctx, v1::PingRequest(), &resp);
      },
      retry_safe, last);
}

TEST(StandbyMessageTest, NamesTheLeaderOrNone) {
  EXPECT_EQ(StandbyMessage("m2:7070"),
            "this manager is a standby; the leader is m2:7070");
  EXPECT_EQ(StandbyMessage(std::nullopt),
            "this manager is a standby; no leader is elected yet");
  EXPECT_TRUE(IsStandbyAnswer(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, StandbyMessage("a:1"))));
  EXPECT_FALSE(IsStandbyAnswer(
      grpc::Status(grpc::StatusCode::INTERNAL, StandbyMessage("a:1"))));
  EXPECT_FALSE(IsStandbyAnswer(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent n1 unreachable")));
}

TEST(ParseManagerListTest, ListsAndErrors) {
  auto list = ParseManagerList("--server", "a:1, b:2,a:1,[::1]:3");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(*list, ElementsAre("a:1", "b:2", "[::1]:3"));
  EXPECT_THAT(ParseManagerList("--server", "").status().message(),
              HasSubstr("--server: the address is empty"));
  EXPECT_THAT(ParseManagerList("--server", "a:1,,b:2").status().message(),
              HasSubstr("empty entry"));
  EXPECT_THAT(ParseManagerList("--server", "a:1,b").status().message(),
              HasSubstr("has no port"));
  EXPECT_EQ(ParseManagerList("--server", "a:0").status().message(),
            "--server: port 0 cannot be connected to; use 1-65535");
  EXPECT_THAT(ParseManagerList("--server", "a:1,b:0").status().message(),
              HasSubstr("--server: b:0: port 0"));
}

TEST(LeaderChannelTest, StandbyNamingTheLeaderIsFollowedAndTheCallRetried) {
  Running standby(/*standby=*/true);
  Running leader(/*standby=*/false);
  standby.service.set_leader(leader.target());
  LeaderChannel channel({standby.target()}, Insecure());

  LeaderChannel::Endpoint last;
  grpc::Status s = Ping(channel, /*retry_safe=*/true, &last);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(last.target, leader.target());
  EXPECT_EQ(leader.service.calls(), 1);
  // The learned leader is current from now on; the standby is not asked
  // again.
  EXPECT_EQ(channel.Current().target, leader.target());
  EXPECT_THAT(channel.targets(),
              ElementsAre(standby.target(), leader.target()));
  EXPECT_TRUE(Ping(channel, true).ok());
  EXPECT_EQ(standby.service.calls(), 1);
  EXPECT_EQ(leader.service.calls(), 2);
}

TEST(LeaderChannelTest, UnsafeCallIsNotRetriedButTheNextCallGoesToTheLeader) {
  Running standby(/*standby=*/true);
  Running leader(/*standby=*/false);
  standby.service.set_leader(leader.target());
  LeaderChannel channel({standby.target(), leader.target()}, Insecure());

  grpc::Status s = Ping(channel, /*retry_safe=*/false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(),
            "this manager is a standby; the leader is " + leader.target());
  EXPECT_EQ(leader.service.calls(), 0);
  EXPECT_EQ(channel.Current().target, leader.target());
  EXPECT_TRUE(Ping(channel, /*retry_safe=*/false).ok());
  EXPECT_EQ(leader.service.calls(), 1);
}

TEST(LeaderChannelTest, StandbyWithoutLeaderMovesToTheNextAddress) {
  Running standby(/*standby=*/true);  // names no leader
  Running leader(/*standby=*/false);
  LeaderChannel channel({standby.target(), leader.target()}, Insecure());
  EXPECT_TRUE(Ping(channel, true).ok());
  EXPECT_EQ(standby.service.calls(), 1);
  EXPECT_EQ(leader.service.calls(), 1);
}

TEST(LeaderChannelTest, UnreachableManagerMovesToTheNextAddress) {
  Running leader(/*standby=*/false);
  std::string dead;
  {
    Running gone(/*standby=*/false);
    dead = gone.target();
    gone.server->Shutdown();
  }
  LeaderChannel channel({dead, leader.target()}, Insecure());
  EXPECT_TRUE(Ping(channel, true).ok());
  EXPECT_EQ(channel.Current().target, leader.target());
}

TEST(LeaderChannelTest, AllStandbysWithoutLeaderEndWithTheStandbyAnswer) {
  Running a(/*standby=*/true);
  Running b(/*standby=*/true);
  LeaderChannel channel({a.target(), b.target()}, Insecure());
  grpc::Status s = Ping(channel, true);
  EXPECT_TRUE(IsStandbyAnswer(s)) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("no leader is elected yet"));
  // Bounded: each address once, and one more.
  EXPECT_LE(a.service.calls() + b.service.calls(), 3);
}

TEST(LeaderChannelTest, OtherUnavailableIsReturnedAsIs) {
  class Failing : public v1::FabricService::Service {
    grpc::Status Ping(grpc::ServerContext*, const v1::PingRequest*,
                      v1::PingResponse*) override {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent n1 unreachable");
    }
  } failing;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&failing);
  auto server = builder.BuildAndStart();
  Running other(/*standby=*/false);
  const std::string target = absl::StrCat("127.0.0.1:", port);
  LeaderChannel channel({target, other.target()}, Insecure());
  grpc::Status s = Ping(channel, true);
  EXPECT_EQ(s.error_message(), "agent n1 unreachable");
  EXPECT_EQ(channel.Current().target, target);
  EXPECT_EQ(other.service.calls(), 0);
}

// A manager whose Ping answers by `answer`, given the call's number (1 for
// the first call).
class Scripted : public v1::FabricService::Service {
 public:
  using Answer = std::function<grpc::Status(grpc::ServerContext*, int call)>;
  explicit Scripted(Answer answer) : answer_(std::move(answer)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~Scripted() override { server_->Shutdown(); }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  int calls() const { return calls_; }

  grpc::Status Ping(grpc::ServerContext* ctx, const v1::PingRequest*,
                    v1::PingResponse*) override {
    return answer_(ctx, ++calls_);
  }

 private:
  const Answer answer_;
  std::atomic<int> calls_{0};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

grpc::Status PingWithin(LeaderChannel& leader, absl::Duration attempt,
                        absl::Duration call) {
  const absl::Time deadline = absl::Now() + call;
  return leader.Call(
      [&](const LeaderChannel::Endpoint& e, grpc::ClientContext& ctx) {
        ctx.set_deadline(
            absl::ToChronoTime(std::min(deadline, absl::Now() + attempt)));
        v1::PingResponse resp;
        return v1::FabricService::NewStub(e.channel)->Ping(
            &ctx, v1::PingRequest(), &resp);
      },
      /*retry_safe=*/true, nullptr, deadline);
}

TEST(LeaderChannelTest, ManagerNamingItselfIsTriedAgainNotLeft) {
  // Between standby and leader: its standby server still answers, naming
  // the manager itself (its election is won).
  std::string self;
  Scripted switching([&](grpc::ServerContext* ctx, int call) {
    if (call > 1) return grpc::Status::OK;
    ctx->AddTrailingMetadata(kLeaderMetadataKey, self);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, StandbyMessage(self));
  });
  self = switching.target();
  Running other(/*standby=*/true);  // names no leader
  LeaderChannel channel({switching.target(), other.target()}, Insecure());
  LeaderChannel::Endpoint last;
  EXPECT_TRUE(Ping(channel, /*retry_safe=*/true, &last).ok());
  EXPECT_EQ(last.target, switching.target());
  EXPECT_EQ(switching.calls(), 2);
  EXPECT_EQ(other.service.calls(), 0);
  EXPECT_EQ(channel.Current().target, switching.target());
}

TEST(LeaderChannelTest, CancelledByAServerShuttingDownIsRetried) {
  Scripted cancelling([](grpc::ServerContext*, int call) {
    return call == 1 ? grpc::Status(grpc::StatusCode::CANCELLED, "shutdown")
                     : grpc::Status::OK;
  });
  LeaderChannel channel({cancelling.target()}, Insecure());
  EXPECT_TRUE(Ping(channel, /*retry_safe=*/true).ok());
  EXPECT_EQ(cancelling.calls(), 2);
  // Not when the call may not be repeated.
  Scripted again([](grpc::ServerContext*, int) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "shutdown");
  });
  LeaderChannel once({again.target()}, Insecure());
  EXPECT_EQ(Ping(once, /*retry_safe=*/false).error_code(),
            grpc::StatusCode::CANCELLED);
  EXPECT_EQ(again.calls(), 1);
}

TEST(LeaderChannelTest, PausedManagerIsLeftAtTheAttemptsDeadline) {
  // A paused leader: it accepts the call and answers nothing.
  absl::Notification resume;
  Scripted paused([&](grpc::ServerContext*, int) {
    resume.WaitForNotification();
    return grpc::Status::OK;
  });
  Running leader(/*standby=*/false);
  LeaderChannel channel({paused.target(), leader.target()}, Insecure());
  const absl::Time start = absl::Now();
  grpc::Status s = PingWithin(channel, absl::Milliseconds(200),
                              absl::Seconds(30));
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(leader.service.calls(), 1);
  EXPECT_EQ(channel.Current().target, leader.target());
  // At the call's own deadline, the call ends there.
  LeaderChannel stuck({paused.target()}, Insecure());
  EXPECT_EQ(PingWithin(stuck, absl::Seconds(30), absl::Milliseconds(200))
                .error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  resume.Notify();
}

TEST(LeaderChannelTest, ObserveLeavesAManagerThatAnsweredNothing) {
  Running a(/*standby=*/false);
  Running b(/*standby=*/false);
  LeaderChannel channel({a.target(), b.target()}, Insecure());
  grpc::ClientContext ctx;
  LeaderChannel::Endpoint next = channel.Observe(
      channel.Current(),
      grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"),
      ctx);
  EXPECT_EQ(next.target, b.target());
}

TEST(LeaderChannelTest, OthersNameAsLeaderAsksTheOtherManagers) {
  Running slow(/*standby=*/false);  // the one whose call passed its deadline
  Running naming_slow(/*standby=*/true);
  naming_slow.service.set_leader(slow.target());
  Running naming_none(/*standby=*/true);
  Running naming_other(/*standby=*/true);
  naming_other.service.set_leader("127.0.0.1:1");
  Running leading(/*standby=*/false);
  const auto probe = [](const LeaderChannel::Endpoint& e,
                        grpc::ClientContext& ctx) {
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::PingResponse resp;
    return v1::FabricService::NewStub(e.channel)->Ping(&ctx, v1::PingRequest(),
                                                       &resp);
  };
  const auto others_name_slow = [&](std::vector<std::string> others) {
    others.insert(others.begin(), slow.target());
    LeaderChannel channel(others, Insecure());
    const bool named = channel.OthersNameAsLeader(channel.Current(), probe);
    // It asks; it does not move.
    EXPECT_EQ(channel.Current().target, slow.target());
    return named;
  };
  // A standby still names it (its lease is held): it leads, only slowly.
  EXPECT_TRUE(others_name_slow({naming_slow.target()}));
  // One that names no leader, or cannot be reached, says nothing: the next
  // one is asked.
  EXPECT_TRUE(others_name_slow(
      {"127.0.0.1:1", naming_none.target(), naming_slow.target()}));
  // Another leads: named by a standby, or answering as the leader.
  EXPECT_FALSE(others_name_slow({naming_other.target(), naming_slow.target()}));
  EXPECT_FALSE(others_name_slow({leading.target(), naming_slow.target()}));
  // Nobody says.
  EXPECT_FALSE(others_name_slow({naming_none.target(), "127.0.0.1:1"}));
  EXPECT_FALSE(others_name_slow({}));
  // The slow manager itself was never asked.
  EXPECT_EQ(slow.service.calls(), 0);
}

}  // namespace
}  // namespace fabric
