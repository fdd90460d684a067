// WatchOffers end to end: a real manager and server on 127.0.0.1:0, agents
// played through the manager's agent calls (as the service tests do),
// streams and claims through the generated stubs.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/offers/offer_book.h"
#include "server/service/manager_test_util.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"

namespace fabric::offers {
namespace {

using ::testing::HasSubstr;
using service::kMmio;
using service::LenderInventory;

constexpr absl::Duration kWait = absl::Seconds(30);
constexpr uint64_t kChunk = uint64_t{64} << 20;
// VFs offered to a node watching alone: the pools share its 8 windows
// (sim profile), and each VF (two BARs) takes two, each chunk one; so two
// VFs and four chunks (server/offers/offer_book.h, "Windows").
constexpr size_t kAloneVfs = 2;

// The offer sets one WatchOffers stream receives, read on a thread.
class OfferStream {
 public:
  OfferStream(v1::FabricService::Stub* stub, const std::string& node,
              uint64_t chunk = kChunk) {
    v1::WatchOffersRequest req;
    req.set_node(node);
    req.set_memory_chunk_bytes(chunk);
    reader_ = stub->WatchOffers(&ctx_, req);
    thread_ = std::thread([this] {
      v1::OfferSet set;
      while (reader_->Read(&set)) {
        absl::MutexLock l(&mu_);
        sets_.push_back(set);
      }
      grpc::Status s = reader_->Finish();
      absl::MutexLock l(&mu_);
      status_ = s;
    });
  }
  ~OfferStream() {
    ctx_.TryCancel();
    thread_.join();
  }
  // Waits for a set that satisfies `pred`; returns it (empty on timeout or
  // the stream's end).
  v1::OfferSet Await(std::function<bool(const v1::OfferSet&)> pred) {
    absl::MutexLock l(&mu_);
    v1::OfferSet found;
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (!sets_.empty() && pred(sets_.back())) {
        found = sets_.back();
        return true;
      }
      return status_.has_value();
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), kWait);
    return found;
  }
  std::optional<grpc::Status> AwaitEnd() {
    absl::MutexLock l(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return status_.has_value();
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), kWait);
    return status_;
  }
  v1::OfferSet Last() {
    absl::MutexLock l(&mu_);
    return sets_.empty() ? v1::OfferSet() : sets_.back();
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::OfferSet>> reader_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<v1::OfferSet> sets_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> status_ ABSL_GUARDED_BY(mu_);
};

std::set<std::string> VfIds(const v1::OfferSet& set, bool held = false) {
  std::set<std::string> ids;
  for (const v1::Offer& o : set.offers()) {
    if (o.has_vf() && o.held() == held) ids.insert(o.id());
  }
  return ids;
}

// A ring n0..n3; n1 lends four VFs (0000:3b:02.0-3).
class OffersGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *store::OpenSqliteStore({.path = ":memory:"});
    manager_ = *service::FabricManager::Open(store_.get(), Clock::Real());
    service::ServerOptions options;
    options.offers.withdrawal_grace = absl::Milliseconds(300);
    options.offers.stream_grace = absl::Milliseconds(300);
    server_ = *service::GrpcServer::Start(manager_.get(), "127.0.0.1:0",
                                          options);
    stub_ = v1::FabricService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()),
        grpc::InsecureChannelCredentials()));
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name("lab");
    req.mutable_spec()->set_topology(v1::RING);
    for (int i = 0; i < 4; ++i) {
      v1::NodeSpec* n = req.mutable_spec()->add_nodes();
      n->set_name(absl::StrCat("n", i));
      if (i == 1) {
        n->set_mmio_base(kMmio);
        n->set_mmio_size(1ull << 30);
      }
    }
    ASSERT_TRUE(manager_->CreateFabric(req).ok());
    for (int i = 0; i < 4; ++i) {
      agentproto::v1::RegisterNodeRequest reg;
      reg.set_node(absl::StrCat("n", i));
      if (i == 1) *reg.mutable_inventory() = LenderInventory();
      ASSERT_TRUE(manager_->RegisterNode(reg).ok());
    }
    Report();
  }
  void TearDown() override {
    server_->Shutdown();
    manager_->Shutdown();
  }

  // Every agent applies the current generation.
  void Report() {
    for (int i = 0; i < 4; ++i) {
      const std::string node = absl::StrCat("n", i);
      auto cfg = manager_->DesiredConfigFor(node);
      ASSERT_TRUE(cfg.ok());
      agentproto::v1::ReportStatusRequest rep;
      rep.set_node(node);
      rep.set_applied_generation(cfg->generation());
      ASSERT_TRUE(manager_->ReportStatus(rep).ok());
    }
  }

  grpc::Status Attach(const std::string& vf, const std::string& borrower,
                      v1::Attachment* out) {
    v1::CreateAttachmentRequest req;
    req.mutable_attachment()->set_vf(vf);
    req.mutable_attachment()->set_borrower(borrower);
    // Insecure server: the owner is what the request says.
    req.mutable_attachment()->set_owner(ConsumerOwner(borrower));
    grpc::ClientContext ctx;
    return stub_->CreateAttachment(&ctx, req, out);
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<service::FabricManager> manager_;
  std::unique_ptr<service::GrpcServer> server_;
  std::unique_ptr<v1::FabricService::Stub> stub_;
};

TEST_F(OffersGrpcTest, RefusesBadRequests) {
  OfferStream bad_chunk(stub_.get(), "n0", 3000);
  std::optional<grpc::Status> s = bad_chunk.AwaitEnd();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s->error_message(), HasSubstr("memory_chunk_bytes"));
  OfferStream unknown(stub_.get(), "n9");
  s = unknown.AwaitEnd();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(OffersGrpcTest, OffersAreSplitClaimedAndNeverShared) {
  OfferStream n0(stub_.get(), "nodes/n0");
  v1::OfferSet first = n0.Await(
      [](const v1::OfferSet& s) { return VfIds(s).size() == kAloneVfs; });
  ASSERT_EQ(VfIds(first).size(), kAloneVfs);
  EXPECT_EQ(first.node(), "n0");
  EXPECT_GE(first.generation(), 1);
  bool memory = false;
  for (const v1::Offer& o : first.offers()) {
    EXPECT_TRUE(o.healthy()) << o.id();
    EXPECT_GT(o.epoch(), 0) << o.id();
    if (o.has_vf()) {
      EXPECT_EQ(o.lender(), "n1");
      EXPECT_EQ(o.hops(), 1);
    }
    if (o.has_memory()) {
      memory = true;
      EXPECT_EQ(o.memory().size(), kChunk);
    }
  }
  EXPECT_TRUE(memory);
  EXPECT_EQ(first.offers_size(), static_cast<int>(kAloneVfs) + 4);  // chunks

  // n2 watches too: each has two VFs (n1 has windows for four lent at
  // once), never the same one.
  OfferStream n2(stub_.get(), "n2");
  auto two = [](const v1::OfferSet& s) { return VfIds(s).size() == 2; };
  v1::OfferSet a = n0.Await(two);
  v1::OfferSet b = n2.Await(two);
  ASSERT_EQ(VfIds(a).size(), 2u);
  ASSERT_EQ(VfIds(b).size(), 2u);
  a = n0.Last();
  for (const std::string& id : VfIds(b)) EXPECT_FALSE(VfIds(a).count(id));

  // n2's consumer may not claim n0's VF; n0's may.
  const v1::Offer* mine = nullptr;
  for (const v1::Offer& o : a.offers()) {
    if (o.has_vf()) mine = &o;
  }
  ASSERT_NE(mine, nullptr);
  v1::Attachment att;
  grpc::Status refused = Attach(mine->vf().vf(), "n2", &att);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("node n0"));
  EXPECT_THAT(refused.error_message(), HasSubstr(mine->id()));
  ASSERT_TRUE(Attach(mine->vf().vf(), "n0", &att).ok());
  const std::string held_id = mine->id();
  v1::OfferSet held = n0.Await([&](const v1::OfferSet& s) {
    return VfIds(s, /*held=*/true).count(held_id) > 0;
  });
  ASSERT_EQ(VfIds(held, true).size(), 1u);
  for (const v1::Offer& o : held.offers()) {
    if (o.held()) EXPECT_EQ(o.attachment(), att.name());
  }
}

// Once no node watches (the last stream's grace over), the service stops
// following the fabric; the next stream reads it afresh, and so sees what
// changed in between.
TEST_F(OffersGrpcTest, ANewStreamAfterNobodyWatchedReadsTheFabricAfresh) {
  v1::OfferSet first;
  {
    OfferStream n0(stub_.get(), "n0");
    first = n0.Await(
        [](const v1::OfferSet& s) { return VfIds(s).size() == kAloneVfs; });
    ASSERT_EQ(VfIds(first).size(), kAloneVfs);
  }
  // The stream ended; after its grace the service lets go of the hub (no
  // Watch streams run here, so nothing else subscribes).
  const absl::Time deadline = absl::Now() + kWait;
  while (manager_->hub().has_watchers() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_FALSE(manager_->hub().has_watchers());
  // Meanwhile n2's consumer takes one of the VFs n0 was offered (offered
  // to nobody now, so allowed).
  std::string vf;
  for (const v1::Offer& o : first.offers()) {
    if (o.has_vf()) vf = o.vf().vf();
  }
  ASSERT_FALSE(vf.empty());
  v1::Attachment att;
  ASSERT_TRUE(Attach(vf, "n2", &att).ok());
  OfferStream again(stub_.get(), "n0");
  v1::OfferSet next = again.Await(
      [](const v1::OfferSet& s) { return VfIds(s).size() == kAloneVfs; });
  ASSERT_EQ(VfIds(next).size(), kAloneVfs);
  for (const v1::Offer& o : next.offers()) {
    if (o.has_vf()) EXPECT_NE(o.vf().vf(), vf) << "offered a lent VF";
  }
}

TEST_F(OffersGrpcTest, CutPathMakesOffersUnhealthyAndBackAgain) {
  OfferStream n0(stub_.get(), "n0");
  ASSERT_EQ(VfIds(n0.Await([](const v1::OfferSet& s) {
              return VfIds(s).size() == kAloneVfs;
            })).size(),
            kAloneVfs);
  // Cut both of n1's links: n1 is alone.
  std::vector<std::string> cut;
  {
    grpc::ClientContext ctx;
    v1::ListLinksRequest req;
    v1::ListLinksResponse links;
    ASSERT_TRUE(stub_->ListLinks(&ctx, req, &links).ok());
    for (const v1::Link& l : links.links()) {
      if (l.a_bridge() == "bridges/n1" || l.b_bridge() == "bridges/n1") {
        cut.push_back(l.name());
      }
    }
  }
  ASSERT_EQ(cut.size(), 2u);
  auto set_links = [&](bool up) {
    for (const std::string& name : cut) {
      v1::SetLinkStateRequest req;
      req.set_name(name);
      req.set_up(up);
      grpc::ClientContext ctx;
      v1::Link out;
      ASSERT_TRUE(stub_->SetLinkState(&ctx, req, &out).ok()) << name;
    }
  };
  auto vfs_healthy = [](bool healthy) {
    return [healthy](const v1::OfferSet& s) {
      int n = 0;
      for (const v1::Offer& o : s.offers()) {
        if (o.has_vf() && o.healthy() == healthy) ++n;
      }
      return n == static_cast<int>(kAloneVfs);
    };
  };
  set_links(false);
  v1::OfferSet down = n0.Await(vfs_healthy(false));
  ASSERT_EQ(down.offers_size() > 0, true);
  for (const v1::Offer& o : down.offers()) {
    if (o.has_vf()) EXPECT_THAT(o.reason(), HasSubstr("path from n0 to n1"));
  }
  set_links(true);
  EXPECT_TRUE(vfs_healthy(true)(n0.Await(vfs_healthy(true))));
}

}  // namespace
}  // namespace fabric::offers
