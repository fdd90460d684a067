// The RPC edge end to end: a real server on 127.0.0.1:0, called through the
// generated stubs.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/client_callback.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health_check.grpc.pb.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;

// Long enough for a loaded machine or a sanitizer build; only a failing
// test waits this long.
constexpr absl::Duration kWait = absl::Seconds(30);

// The process's thread count (/proc/self/status), or -1.
int ProcessThreads() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t:"), absl::SkipEmpty());
    int threads = 0;
    if (f.size() >= 2 && f[0] == "Threads" && absl::SimpleAtoi(f[1], &threads))
      return threads;
  }
  return -1;
}

// The client side of a server stream, on the callback API so that a test
// can hold many streams open without a client thread each. Keeps what it
// reads. Thread-safe; cancels the stream and waits for its end on
// destruction.
template <typename Response>
class StreamReader final : public grpc::ClientReadReactor<Response> {
 public:
  ~StreamReader() override {
    ctx_.TryCancel();
    AwaitDone();
  }
  grpc::ClientContext* context() { return &ctx_; }
  // Call once the call is started on this reactor (stub->async()->...).
  void Start() {
    this->StartRead(&next_);
    this->StartCall();
  }
  // Waits until `n` messages were read; false if the stream ended first
  // or `timeout` passed.
  bool AwaitRead(size_t n, absl::Duration timeout = kWait) {
    absl::MutexLock l(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return read_.size() >= n || status_.has_value();
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return read_.size() >= n;
  }
  // The stream's status once it has ended, or nullopt after `timeout`.
  std::optional<grpc::Status> AwaitDone(absl::Duration timeout = kWait) {
    absl::MutexLock l(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return status_.has_value();
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return status_;
  }
  std::vector<Response> read() const {
    absl::MutexLock l(&mu_);
    return read_;
  }

 private:
  void OnReadDone(bool ok) override {
    if (!ok) return;
    {
      absl::MutexLock l(&mu_);
      read_.push_back(next_);
    }
    this->StartRead(&next_);
  }
  void OnDone(const grpc::Status& s) override {
    absl::MutexLock l(&mu_);
    status_ = s;
  }

  grpc::ClientContext ctx_;
  Response next_;  // only the read in flight writes it
  mutable absl::Mutex mu_;
  std::vector<Response> read_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> status_ ABSL_GUARDED_BY(mu_);
};

// Registers `node`'s agent through `agent`; its session (0 on failure,
// which is also reported).
int64_t RegisterAgent(agentproto::v1::AgentService::Stub* agent,
                      const std::string& node) {
  grpc::ClientContext ctx;
  agentproto::v1::RegisterNodeRequest reg;
  reg.set_node(node);
  reg.set_backend("test");
  reg.set_control_address("127.0.0.1:5000");
  agentproto::v1::RegisterNodeResponse resp;
  grpc::Status s = agent->RegisterNode(&ctx, reg, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.session();
}

class GrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *store::OpenSqliteStore({.path = ":memory:"});
    manager_ = *FabricManager::Open(store_.get(), Clock::Real());
    server_ = *GrpcServer::Start(manager_.get(), "127.0.0.1:0");
    channel_ =
        grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                            grpc::InsecureChannelCredentials());
    stub_ = v1::FabricService::NewStub(channel_);
    agent_ = agentproto::v1::AgentService::NewStub(channel_);
  }
  void TearDown() override {
    server_->Shutdown();
    manager_->Shutdown();
  }

  void CreateRing(int n, const std::string& name = "lab",
                  const std::string& prefix = "n") {
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_topology(v1::RING);
    for (int i = 0; i < n; ++i)
      req.mutable_spec()->add_nodes()->set_name(prefix + std::to_string(i));
    grpc::ClientContext ctx;
    v1::Fabric out;
    ASSERT_TRUE(stub_->CreateFabric(&ctx, req, &out).ok());
  }

  // Registers `node`'s agent; its session.
  int64_t Register(const std::string& node) {
    return RegisterAgent(agent_.get(), node);
  }

  // The address the manager keeps for `node`'s agent ("" once forgotten).
  std::string AgentAddress(const std::string& node) {
    grpc::ClientContext ctx;
    v1::GetNodeRequest req;
    req.set_name(node);
    v1::Node out;
    grpc::Status s = stub_->GetNode(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.agent_address();
  }

  std::unique_ptr<StreamReader<v1::WatchEvent>> OpenWatch(
      const v1::WatchRequest& req) {
    auto reader = std::make_unique<StreamReader<v1::WatchEvent>>();
    stub_->async()->Watch(reader->context(), &req, reader.get());
    reader->Start();
    return reader;
  }

  std::unique_ptr<StreamReader<agentproto::v1::DesiredConfig>> OpenConfig(
      const std::string& node, int64_t session) {
    auto reader =
        std::make_unique<StreamReader<agentproto::v1::DesiredConfig>>();
    agentproto::v1::StreamConfigRequest req;
    req.set_node(node);
    req.set_session(session);
    agent_->async()->StreamConfig(reader->context(), &req, reader.get());
    reader->Start();
    return reader;
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<FabricManager> manager_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::FabricService::Stub> stub_;
  std::unique_ptr<agentproto::v1::AgentService::Stub> agent_;
};

TEST_F(GrpcTest, AllocateOverTheWire) {
  CreateRing(4);
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower("nodes/n0");
  req.mutable_allocation()->set_target("n2");
  req.mutable_allocation()->set_size(2 << 20);
  req.set_request_id("wire-1");
  grpc::ClientContext ctx;
  v1::Allocation a;
  grpc::Status s = stub_->CreateAllocation(&ctx, req, &a);
  ASSERT_TRUE(s.ok()) << s.error_message();
  grpc::ClientContext ctx2;
  v1::GetAllocationRequest get;
  get.set_name(a.name());
  v1::Allocation got;
  ASSERT_TRUE(stub_->GetAllocation(&ctx2, get, &got).ok());
  EXPECT_EQ(got.borrower_addr(), a.borrower_addr());
  EXPECT_EQ(got.target(), "nodes/n2");
}

// Fabric and link mutations are served on the callback API too, admitted
// (and counted) like the allocation mutations.
TEST_F(GrpcTest, FabricAndLinkMutationsOverTheWire) {
  const uint64_t admitted = server_->admission().admitted();
  CreateRing(4);
  v1::CreateFabricRequest dup;
  dup.mutable_spec()->set_name("lab");
  dup.mutable_spec()->set_topology(v1::RING);
  for (const char* n : {"x0", "x1"})
    dup.mutable_spec()->add_nodes()->set_name(n);
  grpc::ClientContext ctx;
  v1::Fabric fabric;
  grpc::Status s = stub_->CreateFabric(&ctx, dup, &fabric);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("spec.name"));

  v1::SetLinkStateRequest down;
  down.set_name("links/n1--n2");
  down.set_up(false);
  grpc::ClientContext ctx2;
  v1::Link link;
  s = stub_->SetLinkState(&ctx2, down, &link);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(link.up());

  v1::DeleteFabricRequest del;
  del.set_name("lab");
  grpc::ClientContext ctx3;
  s = stub_->DeleteFabric(&ctx3, del, &fabric);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(fabric.name(), "fabrics/lab");
  EXPECT_EQ(server_->admission().admitted(), admitted + 4);
  EXPECT_EQ(server_->admission().inflight(), 0);
}

TEST_F(GrpcTest, ErrorsCarryCanonicalCodesAndFieldNames) {
  CreateRing(3);
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower("n0");
  req.mutable_allocation()->set_target("ghost");
  req.mutable_allocation()->set_size(4096);
  grpc::ClientContext ctx;
  v1::Allocation a;
  grpc::Status s = stub_->CreateAllocation(&ctx, req, &a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("allocation.target"));
  req.mutable_allocation()->set_target("n1");
  req.mutable_allocation()->set_size(5000);
  grpc::ClientContext ctx2;
  s = stub_->CreateAllocation(&ctx2, req, &a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("granularity"));
}

// A 10,000-character name gets the rule it broke, not gRPC's "metadata
// size exceeds limit": errors quote at most a short prefix of the input.
TEST_F(GrpcTest, LongInputIsQuotedShortlyInErrors) {
  const std::string huge(10000, 'x');
  {
    grpc::ClientContext ctx;
    v1::GetNodeRequest req;
    req.set_name(huge);
    v1::Node out;
    grpc::Status s = stub_->GetNode(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("10000 characters"));
    EXPECT_THAT(s.error_message(), HasSubstr("at most 253"));
    EXPECT_LT(s.error_message().size(), 300u);
  }
  {
    grpc::ClientContext ctx;
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name(huge);
    req.mutable_spec()->set_topology(v1::RING);
    v1::Fabric out;
    grpc::Status s = stub_->CreateFabric(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("must be 1-63 lowercase"));
    EXPECT_LT(s.error_message().size(), 400u);
  }
}

TEST_F(GrpcTest, HealthServiceAnswersServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(GrpcTest, WatchStreamsAllocationEvents) {
  CreateRing(3);
  grpc::ClientContext ctx;
  v1::WatchRequest req;
  req.add_collections("allocations");
  req.set_initial_state(true);
  auto reader = stub_->Watch(&ctx, req);
  v1::WatchEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.type(), v1::WatchEvent::SYNCED);
  v1::CreateAllocationRequest alloc;
  alloc.mutable_allocation()->set_borrower("n0");
  alloc.mutable_allocation()->set_target("n1");
  alloc.mutable_allocation()->set_size(1 << 20);
  grpc::ClientContext actx;
  v1::Allocation a;
  ASSERT_TRUE(stub_->CreateAllocation(&actx, alloc, &a).ok());
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.type(), v1::WatchEvent::ADDED);
  EXPECT_EQ(e.allocation().name(), a.name());
  ctx.TryCancel();
  while (reader->Read(&e)) {
  }
}

// Without initial_state: no snapshot and no SYNCED, only what happens
// after the call.
TEST_F(GrpcTest, WatchWithoutInitialStateStreamsOnlyNewEvents) {
  CreateRing(3);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchRequest req;
  req.add_collections("allocations");
  auto reader = stub_->Watch(&ctx, req);
  // The stream's initial metadata comes once the server has taken its
  // place in the event sequence: an allocation made after that is seen,
  // one made before the call reached the server would not be.
  reader->WaitForInitialMetadata();
  v1::CreateAllocationRequest alloc;
  alloc.mutable_allocation()->set_borrower("n0");
  alloc.mutable_allocation()->set_target("n1");
  alloc.mutable_allocation()->set_size(1 << 20);
  grpc::ClientContext actx;
  v1::Allocation a;
  ASSERT_TRUE(stub_->CreateAllocation(&actx, alloc, &a).ok());
  v1::WatchEvent e;
  ASSERT_TRUE(reader->Read(&e)) << reader->Finish().error_message();
  EXPECT_EQ(e.type(), v1::WatchEvent::ADDED);
  EXPECT_EQ(e.allocation().name(), a.name());
  ctx.TryCancel();
  while (reader->Read(&e)) {
  }
}

TEST_F(GrpcTest, AgentStreamCarriesWindowsAndReportMakesReady) {
  CreateRing(2);
  for (const char* n : {"n0", "n1"}) {
    grpc::ClientContext ctx;
    agentproto::v1::RegisterNodeRequest reg;
    reg.set_node(n);
    reg.set_backend("test");
    agentproto::v1::RegisterNodeResponse resp;
    ASSERT_TRUE(agent_->RegisterNode(&ctx, reg, &resp).ok());
  }
  v1::CreateAllocationRequest alloc;
  alloc.mutable_allocation()->set_borrower("n0");
  alloc.mutable_allocation()->set_target("n1");
  alloc.mutable_allocation()->set_size(1 << 20);
  grpc::ClientContext actx;
  v1::Allocation a;
  ASSERT_TRUE(stub_->CreateAllocation(&actx, alloc, &a).ok());
  for (const char* n : {"n0", "n1"}) {
    grpc::ClientContext ctx;
    agentproto::v1::StreamConfigRequest sreq;
    sreq.set_node(n);
    auto reader = agent_->StreamConfig(&ctx, sreq);
    agentproto::v1::DesiredConfig cfg;
    ASSERT_TRUE(reader->Read(&cfg));
    if (std::string(n) == "n0") {
      ASSERT_EQ(cfg.address_map().windows_size(), 1);
      EXPECT_EQ(cfg.address_map().windows(0).local_base(), a.borrower_addr());
    } else {
      ASSERT_EQ(cfg.address_map().inbound_size(), 1);
    }
    ctx.TryCancel();
    while (reader->Read(&cfg)) {
    }
    grpc::ClientContext rctx;
    agentproto::v1::ReportStatusRequest rep;
    rep.set_node(n);
    rep.set_applied_generation(cfg.generation());
    agentproto::v1::ReportStatusResponse rresp;
    ASSERT_TRUE(agent_->ReportStatus(&rctx, rep, &rresp).ok());
  }
  grpc::ClientContext gctx;
  v1::GetAllocationRequest get;
  get.set_name(a.name());
  v1::Allocation got;
  ASSERT_TRUE(stub_->GetAllocation(&gctx, get, &got).ok());
  EXPECT_EQ(got.state(), v1::Allocation::READY) << got.state_reason();
}

// Open streams cost memory, not a server thread each: the old synchronous
// handlers held one thread per stream (1,000 streams, 1,000 threads).
TEST_F(GrpcTest, OpenWatchStreamsCostNoThreadEach) {
  constexpr int kStreams = 1000;
  v1::WatchRequest req;
  req.set_initial_state(true);
  std::vector<std::unique_ptr<StreamReader<v1::WatchEvent>>> streams;
  for (int i = 0; i < kStreams; ++i) streams.push_back(OpenWatch(req));
  for (auto& s : streams) {
    ASSERT_TRUE(s->AwaitRead(1));  // SYNCED: the server serves it
    EXPECT_EQ(s->read()[0].type(), v1::WatchEvent::SYNCED);
  }
  const int threads = ProcessThreads();
  std::cout << "threads with " << kStreams << " open Watch streams: " << threads
            << std::endl;
  EXPECT_LT(threads, 100);
  // Every stream still gets what happens.
  CreateRing(3);
  for (auto& s : streams) {
    ASSERT_TRUE(s->AwaitRead(2));
    EXPECT_EQ(s->read()[1].type(), v1::WatchEvent::ADDED);
  }
  for (auto& s : streams) s->context()->TryCancel();
  for (auto& s : streams) ASSERT_TRUE(s->AwaitDone().has_value());
  const absl::Time deadline = absl::Now() + kWait;
  while (manager_->hub().has_watchers() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_FALSE(manager_->hub().has_watchers());
}

TEST_F(GrpcTest, OpenConfigStreamsCostNoThreadEach) {
  constexpr int kStreams = 1000;
  std::vector<std::unique_ptr<StreamReader<agentproto::v1::DesiredConfig>>>
      streams;
  for (int i = 0; i < kStreams; ++i) {
    const std::string node = absl::StrCat("a", i);
    streams.push_back(OpenConfig(node, Register(node)));
  }
  for (auto& s : streams) ASSERT_TRUE(s->AwaitRead(1));
  const int threads = ProcessThreads();
  std::cout << "threads with " << kStreams
            << " open StreamConfig streams: " << threads << std::endl;
  EXPECT_LT(threads, 100);
  // A new generation reaches every agent whose configuration it changes:
  // the ring's three.
  CreateRing(3, "lab", "a");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(streams[i]->AwaitRead(2));
    EXPECT_GT(streams[i]->read()[1].generation(),
              streams[i]->read()[0].generation());
    EXPECT_EQ(streams[i]->read()[1].fabric(), "fabrics/lab");
  }
  for (auto& s : streams) s->context()->TryCancel();
  for (auto& s : streams) ASSERT_TRUE(s->AwaitDone().has_value());
  // The others were sent nothing: their configuration (no fabric) is the
  // same at the new generation.
  for (int i = 3; i < kStreams; ++i) {
    EXPECT_EQ(streams[i]->read().size(), 1u) << "a" << i;
  }
  // Each stream's end was told to the manager: the agents' addresses are
  // forgotten.
  const absl::Time deadline = absl::Now() + kWait;
  while (!AgentAddress("a999").empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(AgentAddress("a999"), "");
}

// An agent's config stream sends only the generations that change its
// node's configuration: for an allocation between n0 and n3 on a ring of
// five, n4 (which only forwards) is sent nothing, yet the allocation turns
// READY once the two ends report, and n4 shows the new generation applied.
// A reader's stream (no session) still gets every generation.
TEST_F(GrpcTest, AgentStreamsSendOnlyTheGenerationsThatChangeTheirNode) {
  CreateRing(5);
  std::vector<std::unique_ptr<StreamReader<agentproto::v1::DesiredConfig>>>
      streams;
  for (int i = 0; i < 5; ++i) {
    const std::string node = absl::StrCat("n", i);
    streams.push_back(OpenConfig(node, Register(node)));
  }
  auto reader = OpenConfig("n4", 0);
  const auto report = [&](int i, int64_t generation) {
    grpc::ClientContext ctx;
    agentproto::v1::ReportStatusRequest rep;
    rep.set_node(absl::StrCat("n", i));
    rep.set_applied_generation(generation);
    agentproto::v1::ReportStatusResponse resp;
    ASSERT_TRUE(agent_->ReportStatus(&ctx, rep, &resp).ok());
  };
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(streams[i]->AwaitRead(1));
    report(i, streams[i]->read()[0].generation());
  }
  ASSERT_TRUE(reader->AwaitRead(1));

  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower("n0");
  req.mutable_allocation()->set_target("n3");
  req.mutable_allocation()->set_size(1 << 20);
  grpc::ClientContext actx;
  v1::Allocation a;
  ASSERT_TRUE(stub_->CreateAllocation(&actx, req, &a).ok());
  ASSERT_TRUE(streams[0]->AwaitRead(2));
  const int64_t generation = streams[0]->read()[1].generation();
  EXPECT_GT(generation, streams[0]->read()[0].generation());
  for (int i : {0, 3}) {
    ASSERT_TRUE(streams[i]->AwaitRead(2));
    EXPECT_EQ(streams[i]->read()[1].generation(), generation);
    report(i, generation);
  }
  ASSERT_TRUE(reader->AwaitRead(2));
  EXPECT_EQ(reader->read()[1].generation(), generation);

  const absl::Time deadline = absl::Now() + kWait;
  v1::Allocation got;
  do {
    grpc::ClientContext ctx;
    v1::GetAllocationRequest get;
    get.set_name(a.name());
    ASSERT_TRUE(stub_->GetAllocation(&ctx, get, &got).ok());
    if (got.state() == v1::Allocation::READY) break;
    absl::SleepFor(absl::Milliseconds(5));
  } while (absl::Now() < deadline);
  EXPECT_EQ(got.state(), v1::Allocation::READY) << got.state_reason();
  grpc::ClientContext nctx;
  v1::GetNodeRequest nreq;
  nreq.set_name("n4");
  v1::Node n4;
  ASSERT_TRUE(stub_->GetNode(&nctx, nreq, &n4).ok());
  EXPECT_EQ(n4.applied_generation(), generation);

  for (auto& s : streams) s->context()->TryCancel();
  reader->context()->TryCancel();
  for (auto& s : streams) ASSERT_TRUE(s->AwaitDone().has_value());
  ASSERT_TRUE(reader->AwaitDone().has_value());
  for (int i : {1, 2, 4}) {
    EXPECT_EQ(streams[i]->read().size(), 1u) << "n" << i;
  }
}

// A cancelled stream ends on the server at once, not at its next poll.
TEST_F(GrpcTest, CancelledWatchEndsPromptly) {
  std::vector<absl::Duration> took;
  for (int i = 0; i < 9; ++i) {
    v1::WatchRequest req;
    req.set_initial_state(true);
    auto s = OpenWatch(req);
    ASSERT_TRUE(s->AwaitRead(1));
    ASSERT_TRUE(manager_->hub().has_watchers());
    const absl::Time start = absl::Now();
    s->context()->TryCancel();
    while (manager_->hub().has_watchers() && absl::Now() < start + kWait) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    took.push_back(absl::Now() - start);
    ASSERT_FALSE(manager_->hub().has_watchers());
  }
  std::sort(took.begin(), took.end());
  // The old synchronous loop noticed on its 200 ms poll (median ~100 ms).
  EXPECT_LT(took[took.size() / 2], absl::Milliseconds(50));
}

// ConfigStreamOpened is matched by exactly one ConfigStreamClosed, as soon
// as the stream ends: the session's address is forgotten only when its
// last stream ends.
TEST_F(GrpcTest, EachConfigStreamIsClosedOnceWhenItEnds) {
  const int64_t session = Register("n0");
  auto first = OpenConfig("n0", session);
  auto second = OpenConfig("n0", session);
  ASSERT_TRUE(first->AwaitRead(1));
  ASSERT_TRUE(second->AwaitRead(1));
  first->context()->TryCancel();
  ASSERT_TRUE(first->AwaitDone().has_value());
  absl::SleepFor(absl::Milliseconds(300));  // longer than the old poll
  EXPECT_EQ(AgentAddress("n0"), "127.0.0.1:5000");
  const absl::Time start = absl::Now();
  second->context()->TryCancel();
  while (!AgentAddress("n0").empty() && absl::Now() < start + kWait) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(AgentAddress("n0"), "");
}

TEST_F(GrpcTest, ConfigStreamOfUnknownNodeOrFencedSessionIsRefused) {
  auto unknown = OpenConfig("ghost", 0);
  std::optional<grpc::Status> s = unknown->AwaitDone();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s->error_message(), HasSubstr("call RegisterNode first"));
  const int64_t old_session = Register("n0");
  Register("n0");
  auto fenced = OpenConfig("n0", old_session);
  s = fenced->AwaitDone();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->error_code(), grpc::StatusCode::ABORTED) << s->error_message();
  EXPECT_TRUE(fenced->read().empty());
}

TEST_F(GrpcTest, WatchOfUnknownCollectionIsRefused) {
  v1::WatchRequest req;
  req.add_collections("widgets");
  auto w = OpenWatch(req);
  std::optional<grpc::Status> s = w->AwaitDone();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s->error_message(), HasSubstr("unknown collection \"widgets\""));
}

TEST_F(GrpcTest, StreamsEndWithUnavailableAtShutdown) {
  v1::WatchRequest req;
  req.set_initial_state(true);
  auto watch = OpenWatch(req);
  auto config = OpenConfig("n0", Register("n0"));
  ASSERT_TRUE(watch->AwaitRead(1));
  ASSERT_TRUE(config->AwaitRead(1));
  const absl::Time start = absl::Now();
  server_->Shutdown();
  for (std::optional<grpc::Status> s :
       {watch->AwaitDone(), config->AwaitDone()}) {
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(s->error_message(), "the manager is shutting down");
  }
  // Ended by the hub, not by the server's 2 s grace period.
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

// A watcher that stops reading while events keep coming is told to list
// again once the events it has not read are gone from the buffer.
TEST_F(GrpcTest, WatchThatFallsBehindIsAborted) {
  // No BDP probing: the stream's flow-control window stays small, so the
  // server cannot write ahead of the reader.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto channel = grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(server_->port()),
      grpc::InsecureChannelCredentials(), args);
  auto stub = v1::FabricService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  v1::WatchRequest req;
  req.set_initial_state(true);
  auto reader = stub->Watch(&ctx, req);
  v1::WatchEvent e;
  ASSERT_TRUE(reader->Read(&e));
  ASSERT_EQ(e.type(), v1::WatchEvent::SYNCED);
  // 10,000 events more than the hub keeps (65,536), none read meanwhile:
  // ~2 MB more than the ~64 KiB window lets through.
  constexpr int kEvents = 65536 + 10000;
  const std::string description(200, 'x');
  for (int i = 0; i < kEvents; ++i) {
    v1::WatchEvent f;
    f.set_type(v1::WatchEvent::MODIFIED);
    f.mutable_fabric()->set_name("fabrics/f");
    f.mutable_fabric()->mutable_spec()->set_name(description);
    manager_->hub().Publish(std::move(f));
  }
  int64_t last = e.sequence();
  int read = 0;
  while (reader->Read(&e)) {
    EXPECT_EQ(e.sequence(), last + 1);  // in order, none skipped
    last = e.sequence();
    ++read;
  }
  EXPECT_LT(read, kEvents);
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(s.error_message(),
            "watch fell behind the event buffer; list again and start a new "
            "watch");
}

// Events the watch does not want are skipped however many come in a row.
TEST_F(GrpcTest, WatchFiltersLongRunsOfUnwantedEvents) {
  v1::WatchRequest req;
  req.add_collections("allocations");
  req.set_initial_state(true);
  auto w = OpenWatch(req);
  ASSERT_TRUE(w->AwaitRead(1));
  for (int i = 0; i < 1000; ++i) {
    v1::WatchEvent f;
    f.set_type(v1::WatchEvent::MODIFIED);
    f.mutable_fabric()->set_name("fabrics/f");
    manager_->hub().Publish(std::move(f));
  }
  v1::WatchEvent a;
  a.set_type(v1::WatchEvent::ADDED);
  a.mutable_allocation()->set_name("allocations/x");
  manager_->hub().Publish(a);
  ASSERT_TRUE(w->AwaitRead(2));
  EXPECT_EQ(w->read()[1].allocation().name(), "allocations/x");
  EXPECT_EQ(w->read()[1].sequence(), w->read()[0].sequence() + 1001);
}

// An agent's registration and reports hold no server thread: with the
// thread quota at one (--max-threads 1), gRPC refuses every synchronous call
// (its one thread polls and may not hand the call to another), yet agents
// still register and report. A fleet re-registering at once after a
// restart so queues on the manager's lock, not in a thread each.
TEST(GrpcThreadsTest, AgentCallsHoldNoServerThread) {
  std::unique_ptr<store::Store> store =
      *store::OpenSqliteStore({.path = ":memory:"});
  std::unique_ptr<FabricManager> manager =
      *FabricManager::Open(store.get(), Clock::Real());
  ServerOptions options;
  options.max_threads = 1;
  std::unique_ptr<GrpcServer> server =
      *GrpcServer::Start(manager.get(), "127.0.0.1:0", options);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()),
                          grpc::InsecureChannelCredentials());
  auto stub = v1::FabricService::NewStub(channel);
  auto agent = agentproto::v1::AgentService::NewStub(channel);

  // The quota bites: a synchronous read is refused.
  {
    grpc::ClientContext ctx;
    v1::ListFabricsRequest req;
    v1::ListFabricsResponse out;
    EXPECT_EQ(stub->ListFabrics(&ctx, req, &out).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  for (int i = 0; i < 8; ++i) {
    const std::string node = absl::StrCat("a", i);
    const int64_t session = RegisterAgent(agent.get(), node);
    ASSERT_GT(session, 0) << node;

    grpc::ClientContext ctx;
    agentproto::v1::ReportStatusRequest rep;
    rep.set_node(node);
    rep.set_session(session);
    agentproto::v1::ReportStatusResponse rresp;
    grpc::Status s = agent->ReportStatus(&ctx, rep, &rresp);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  // Refusals are still answered on the callback path: a bad node name.
  {
    grpc::ClientContext ctx;
    agentproto::v1::ReportStatusRequest rep;
    rep.set_node("no/such node");
    agentproto::v1::ReportStatusResponse out;
    grpc::Status s = agent->ReportStatus(&ctx, rep, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("node"));
  }
  server->Shutdown();
  manager->Shutdown();
}

}  // namespace
}  // namespace fabric::service
