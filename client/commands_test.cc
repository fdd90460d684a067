// The commands end to end: a real in-process fabric-manager (SQLite in
// memory) on 127.0.0.1:0, called through FabricClient and Commands, and
// through RunFabricctl for exit codes.
#include "client/commands.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/client_interceptor.h>

#include <algorithm>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "client/cli.h"
#include "client/fabric_client.h"
#include "common/security/audit_log.h"
#include "fabric/v1/fabric_service.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"
#include "google/protobuf/util/json_util.h"

namespace fabric::client {
namespace {

// The in-process server listens on loopback, in plaintext.
const security::TlsConfig kLoopbackPlaintext{.insecure = true};

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// The node agents' NodeAgentService, as the manager calls it for VF
// lending and verification: one fake serves every node. A lent VF's DMA
// lands in the borrower's memory through the attachment's dma window (found
// with `lookup`); its MSI-X messages are delivered directly while the VM
// runs and through the hypervisor otherwise, and queued ones are injected
// when the VM starts. A host write in an allocation's borrower window (found
// with `allocation_at`) lands in its target's memory, where a host read
// finds it.
class FakeNodeAgent final : public agentproto::v1::NodeAgentService::Service {
 public:
  // Returns the attachment that lends `vf_address` to `borrower`.
  using Lookup = std::function<absl::StatusOr<v1::Attachment>(
      const std::string& borrower, const std::string& vf_address)>;
  // Returns the allocation whose borrower window holds `addr` (the fake
  // does not know which node it serves: tests give one borrower windows
  // that do not overlap).
  using AllocationAt =
      std::function<absl::StatusOr<v1::Allocation>(uint64_t addr)>;
  static constexpr uint32_t kIds = 0x154c8086;  // device 154c, vendor 8086
  static constexpr int kVectors = 4;

  FakeNodeAgent(Lookup lookup, AllocationAt allocation_at)
      : lookup_(std::move(lookup)), allocation_at_(std::move(allocation_at)) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    address_ = absl::StrCat("127.0.0.1:", port);
  }
  ~FakeNodeAgent() override { server_->Shutdown(); }

  const std::string& address() const { return address_; }
  // DMA faults at the lender's bridge instead of landing.
  void BreakDma() {
    absl::MutexLock l(&mu_);
    dma_broken_ = true;
  }
  // Host writes to allocations of `target` ("nodes/x") fail as an agent
  // that does not answer would (UNAVAILABLE).
  void FailWritesTo(const std::string& target) {
    absl::MutexLock l(&mu_);
    unreachable_target_ = target;
  }

  grpc::Status VfAccess(grpc::ServerContext*,
                        const agentproto::v1::VfAccessRequest* req,
                        agentproto::v1::VfAccessResponse* out) override {
    absl::StatusOr<v1::Attachment> a =
        lookup_(req->borrower(), req->vf_address());
    if (!a.ok()) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          std::string(a.status().message()));
    }
    auto window = [&](const std::string& role) {
      for (const v1::AttachmentWindow& w : a->windows()) {
        if (w.role() == role) return w;
      }
      return v1::AttachmentWindow();
    };
    const std::string borrower(absl::StripPrefix(a->borrower(), "nodes/"));
    absl::MutexLock l(&mu_);
    v1::AccessResult* access = out->mutable_access();
    if (req->op() == agentproto::v1::VfAccessRequest::DMA) {
      v1::AttachmentWindow dma = window("dma");
      if (dma_broken_) {
        access->set_fault_bridge("bridges/n1");
        access->set_fault_addr(req->addr());
        access->set_reason("no matching entry");
        return grpc::Status::OK;
      }
      const uint64_t addr =
          dma.target_addr() + (req->addr() - dma.local_addr());
      memory_[addr] = req->data();
      access->set_landed(true);
      access->set_node(borrower);
      access->set_addr(addr);
      return grpc::Status::OK;
    }
    if (req->op() == agentproto::v1::VfAccessRequest::RAISE_MSIX) {
      out->set_outcome(agentproto::v1::VfAccessResponse::DELIVERED);
      out->set_msi_data(static_cast<uint32_t>(req->vector()));
      access->set_landed(true);
      access->set_node(borrower);
      access->set_addr(window("msix").target_addr() + 4 * req->vector());
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "op");
  }

  grpc::Status HostWrite(grpc::ServerContext*,
                         const agentproto::v1::HostWriteRequest* req,
                         v1::AccessResult* out) override {
    absl::StatusOr<v1::Allocation> a = allocation_at_(req->addr());
    if (!a.ok()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          std::string(a.status().message()));
    }
    absl::MutexLock l(&mu_);
    if (a->target() == unreachable_target_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "connection reset (injected)");
    }
    const uint64_t addr = a->target_addr() + (req->addr() - a->borrower_addr());
    memory_[addr] = req->data();
    out->set_landed(true);
    out->set_node(std::string(absl::StripPrefix(a->target(), "nodes/")));
    out->set_addr(addr);
    return grpc::Status::OK;
  }

  grpc::Status HostRead(grpc::ServerContext*,
                        const agentproto::v1::HostReadRequest* req,
                        agentproto::v1::HostReadResponse* out) override {
    absl::MutexLock l(&mu_);
    out->set_data(memory_[req->addr()].substr(0, req->length()));
    return grpc::Status::OK;
  }

  grpc::Status AccessShadow(grpc::ServerContext*,
                            const v1::AccessShadowRequest* req,
                            v1::AccessShadowResponse* out) override {
    absl::MutexLock l(&mu_);
    switch (req->op()) {
      case v1::AccessShadowRequest::READ: {
        uint32_t v = req->offset() < 4 ? kIds >> (8 * req->offset()) : 0;
        if (req->size() < 4) v &= (1u << (8 * req->size())) - 1;
        out->set_value(v);
        break;
      }
      case v1::AccessShadowRequest::WRITE:
        if (req->offset() < 4) {
          out->set_outcome(v1::AccessShadowResponse::DROPPED);
          out->set_reason("vendor id is read-only");
          ++counters_.mutable_config_dropped_by_reason()->operator[](
              "vendor id is read-only");
          counters_.set_config_writes_dropped(
              counters_.config_writes_dropped() + 1);
        } else {
          out->set_outcome(v1::AccessShadowResponse::FORWARDED);
          counters_.set_config_writes_forwarded(
              counters_.config_writes_forwarded() + 1);
        }
        break;
      case v1::AccessShadowRequest::DRIVER_SETUP:
        out->set_value(kVectors);
        break;
      default:
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "op");
    }
    return grpc::Status::OK;
  }

  grpc::Status ShadowInterrupt(
      grpc::ServerContext*, const agentproto::v1::ShadowInterruptRequest* req,
      agentproto::v1::ShadowInterruptResponse* out) override {
    absl::MutexLock l(&mu_);
    if (req->data() >= kVectors) {
      out->set_delivery(agentproto::v1::ShadowInterruptResponse::DROPPED);
      ++(*counters_.mutable_dropped_by_reason())["no such vector"];
    } else if (vm_running_) {
      out->set_delivery(agentproto::v1::ShadowInterruptResponse::DIRECT);
      counters_.set_delivered_direct(counters_.delivered_direct() + 1);
      counters_.set_exits_avoided(counters_.exits_avoided() + 1);
    } else {
      out->set_delivery(agentproto::v1::ShadowInterruptResponse::HYPERVISOR);
      counters_.set_delivered_via_hypervisor(
          counters_.delivered_via_hypervisor() + 1);
      ++queued_;
    }
    *out->mutable_counters() = counters_;
    return grpc::Status::OK;
  }

  grpc::Status SetVmState(grpc::ServerContext*,
                          const hypervisor::v1::SetVmStateRequest* req,
                          hypervisor::v1::SetVmStateResponse* out) override {
    absl::MutexLock l(&mu_);
    vm_running_ = req->running();
    if (vm_running_) {
      out->set_injected(queued_);
      counters_.set_injected_at_entry(counters_.injected_at_entry() + queued_);
      queued_ = 0;
    }
    return grpc::Status::OK;
  }

 private:
  const Lookup lookup_;
  const AllocationAt allocation_at_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  absl::Mutex mu_;
  std::map<uint64_t, std::string> memory_ ABSL_GUARDED_BY(mu_);
  v1::VfCounters counters_ ABSL_GUARDED_BY(mu_);
  bool vm_running_ ABSL_GUARDED_BY(mu_) = true;
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  bool dma_broken_ ABSL_GUARDED_BY(mu_) = false;
  std::string unreachable_target_ ABSL_GUARDED_BY(mu_);
};

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *store::OpenSqliteStore({.path = ":memory:"});
    manager_ = *service::FabricManager::Open(store_.get(), Clock::Real());
    std::string dir =
        (std::filesystem::temp_directory_path() / "fabricctl-XXXXXX").string();
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    audit_ = *security::AuditLog::Open(dir_ + "/audit.log");
    service::ServerOptions server_options;
    server_options.audit = audit_.get();
    server_ = *service::GrpcServer::Start(manager_.get(), "127.0.0.1:0",
                                          server_options);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
    FabricClient::Options options;
    options.timeout = absl::Seconds(5);
    client_ = FabricClient::Connect(address_, kLoopbackPlaintext, options);
  }
  void TearDown() override {
    StopAgents();
    if (server_ != nullptr) server_->Shutdown();
    if (manager_ != nullptr) manager_->Shutdown();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // A Commands writing to out_ (cleared first).
  Commands Cmd(OutputFormat format = OutputFormat::kTable) {
    out_.str("");
    Commands::Options options;
    options.format = format;
    options.poll_interval = absl::Milliseconds(50);
    return Commands(client_.get(), &out_, options);
  }

  void CreateRing(const std::string& name,
                  const std::vector<std::string>& nodes) {
    ASSERT_TRUE(Cmd().CreateFabric(RingSpec(name, nodes, "", 0)).ok());
  }

  // Plays the node agents: registers `nodes` (with inventories_[node] and
  // the fake node agent's address, when there are) and keeps reporting their
  // desired generation as applied, their VFs healthy and, while
  // shadows_ready_, the shadow device of every attachment they borrow as
  // ready, until StopAgents().
  void StartAgents(const std::vector<std::string>& nodes) {
    agents_ = std::thread([this, nodes] {
      auto channel =
          grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
      auto stub = agentproto::v1::AgentService::NewStub(channel);
      auto fabric = v1::FabricService::NewStub(channel);
      std::map<std::string, int64_t> applied;
      for (const std::string& n : nodes) {
        grpc::ClientContext ctx;
        agentproto::v1::RegisterNodeRequest req;
        req.set_node(n);
        req.set_backend("sim");
        if (inventories_.count(n)) *req.mutable_inventory() = inventories_[n];
        if (node_agent_ != nullptr) {
          req.set_control_address(node_agent_->address());
        }
        agentproto::v1::RegisterNodeResponse resp;
        stub->RegisterNode(&ctx, req, &resp);
        applied[n] = resp.node().desired_generation();
      }
      while (!stop_agents_) {
        for (const std::string& n : nodes) {
          grpc::ClientContext ctx;
          agentproto::v1::ReportStatusRequest req;
          req.set_node(n);
          req.set_applied_generation(applied[n]);
          for (const v1::PciFunction& f : inventories_[n].functions()) {
            if (f.kind() != v1::PciFunction::SRIOV_VF) continue;
            agentproto::v1::VfHealthReport* h = req.add_vf_health();
            h->set_vf_address(f.address());
            h->set_healthy(true);
          }
          if (shadows_ready_) {
            grpc::ClientContext list_ctx;
            v1::ListAttachmentsRequest list;
            list.set_node(n);
            v1::ListAttachmentsResponse borrowed;
            (void)fabric->ListAttachments(&list_ctx, list, &borrowed);
            for (const v1::Attachment& a : borrowed.attachments()) {
              if (a.borrower() != "nodes/" + n) continue;
              agentproto::v1::ShadowStatus* sh = req.add_shadows();
              sh->set_attachment(a.name());
              sh->set_ready(true);
            }
          }
          agentproto::v1::ReportStatusResponse resp;
          if (stub->ReportStatus(&ctx, req, &resp).ok()) {
            applied[n] = resp.desired_generation();
          }
        }
        // The fake agents' heartbeat period (real time on purpose: the
        // manager under test expects periodic reports).
        absl::SleepFor(absl::Milliseconds(20));
      }
    });
  }
  void StopAgents() {
    stop_agents_ = true;
    if (agents_.joinable()) agents_.join();
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<service::FabricManager> manager_;
  std::string dir_;  // the audit log's
  std::unique_ptr<security::AuditLog> audit_;
  std::unique_ptr<service::GrpcServer> server_;
  std::string address_;
  std::unique_ptr<FabricClient> client_;
  std::ostringstream out_;
  // A ring n1, n2, n3 where n1 has a device range and lends two VFs,
  // 0000:3b:00.4 and 0000:3b:00.5 (8086:154c; BAR0 64 KiB, BAR3 16 KiB),
  // served by a fake node agent; the agents run.
  void CreateVfFabric() {
    v1::FabricSpec spec = RingSpec("r1", {"n1", "n2", "n3"}, "", 0);
    constexpr uint64_t kMmioBase = 0x38'0000'0000;
    spec.mutable_nodes(0)->set_mmio_base(kMmioBase);
    spec.mutable_nodes(0)->set_mmio_size(256 << 20);
    absl::Status s = Cmd().CreateFabric(spec);
    ASSERT_TRUE(s.ok()) << s;
    v1::NodeInventory& inv = inventories_["n1"];
    v1::PciFunction* pf = inv.add_functions();
    pf->set_address("0000:3b:00.0");
    pf->set_vendor_id(0x8086);
    pf->set_device_id(0x1572);
    pf->set_kind(v1::PciFunction::SRIOV_PF);
    for (int i = 0; i < 2; ++i) {
      v1::PciFunction* vf = inv.add_functions();
      vf->set_address(absl::StrCat("0000:3b:00.", 4 + i));
      vf->set_pf_address("0000:3b:00.0");
      vf->set_vendor_id(0x8086);
      vf->set_device_id(0x154c);
      vf->set_kind(v1::PciFunction::SRIOV_VF);
      for (uint64_t size : {64 << 10, 0, 0, 16 << 10}) vf->add_bar_sizes(size);
      const uint64_t base = kMmioBase + i * 0x20000;
      for (uint64_t addr : {base, uint64_t{0}, uint64_t{0}, base + 0x10000}) {
        vf->add_bar_addresses(addr);
      }
    }
    node_agent_ = std::make_unique<FakeNodeAgent>(
        [this](const std::string& borrower,
               const std::string& vf) -> absl::StatusOr<v1::Attachment> {
          v1::ListAttachmentsRequest req;
          req.set_node(borrower);
          absl::StatusOr<std::vector<v1::Attachment>> all =
              client_->ListAttachments(req);
          if (!all.ok()) return all.status();
          for (const v1::Attachment& a : *all) {
            if (a.vf_address() == vf) return a;
          }
          return absl::NotFoundError(
              absl::StrCat(vf, " is not lent to ", borrower));
        },
        [this](uint64_t addr) -> absl::StatusOr<v1::Allocation> {
          absl::StatusOr<std::vector<v1::Allocation>> all =
              client_->ListAllocations({});
          if (!all.ok()) return all.status();
          for (const v1::Allocation& a : *all) {
            if (addr >= a.borrower_addr() &&
                addr - a.borrower_addr() < a.size()) {
              return a;
            }
          }
          return absl::NotFoundError(
              absl::StrCat("no allocation's window holds ", addr));
        });
    StartAgents({"n1", "n2", "n3"});
    // The agents are READY once they have registered, and the VFs HEALTHY
    // once the lender has reported on them (its first ReportStatus).
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      absl::StatusOr<v1::Node> n2 = client_->GetNode("nodes/n2");
      absl::StatusOr<v1::Node> n1 = client_->GetNode("nodes/n1");
      auto vfs = client_->ListVirtualFunctions({});
      const bool healthy =
          vfs.ok() && vfs->size() == 2 &&
          std::all_of(vfs->begin(), vfs->end(), [](const auto& v) {
            return v.health() == v1::VirtualFunction::HEALTHY;
          });
      if (n1.ok() && n2.ok() && n1->agent_state() == v1::Node::READY &&
          n2->agent_state() == v1::Node::READY && healthy) {
        return;
      }
      // Polls the state it needs: VF health has no Watch event to wait on.
      absl::SleepFor(absl::Milliseconds(10));
    }
    FAIL() << "the agents did not become READY with healthy VFs";
  }

  // Attaches VF 0000:3b:00.4 of n1 to n2 (vm1) and waits until READY;
  // returns the attachment's name.
  std::string AttachReady() {
    AttachOptions opts;
    opts.vf = "n1/0000:3b:00.4";
    opts.borrower = "n2";
    opts.vm = "vm1";
    opts.wait = true;
    opts.wait_timeout = absl::Seconds(10);
    absl::Status s = Cmd().Attach(opts);
    EXPECT_TRUE(s.ok()) << s;
    return out_.str().substr(0, out_.str().find(' '));
  }

  // Lends `size` bytes of `target` to `borrower`, waits until READY and
  // returns the allocation's name.
  std::string AllocReady(const std::string& borrower, const std::string& target,
                         uint64_t size = 1 << 20) {
    AllocOptions opts;
    opts.borrower = borrower;
    opts.target = target;
    opts.size = size;
    opts.wait = true;
    opts.wait_timeout = absl::Seconds(10);
    absl::Status s = Cmd().Alloc(opts);
    EXPECT_TRUE(s.ok()) << s;
    return out_.str().substr(0, out_.str().find(' '));
  }

  std::map<std::string, v1::NodeInventory> inventories_;
  std::unique_ptr<FakeNodeAgent> node_agent_;
  std::atomic<bool> shadows_ready_{true};
  std::thread agents_;
  std::atomic<bool> stop_agents_{false};
};

TEST_F(CommandsTest, CreateRingThenGetAndDescribe) {
  absl::Status s = Cmd().CreateFabric(RingSpec("r1", {"a", "b", "c"}, "", 0));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(), StartsWith("fabric/r1 created (3 nodes, 3 links"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kFabric, "", "").ok());
  EXPECT_THAT(out_.str(), StartsWith("NAME   TOPOLOGY   NODES"));
  EXPECT_THAT(out_.str(), HasSubstr("\nr1     RING       3 "));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kNode, "", "r1").ok());
  EXPECT_THAT(out_.str(), HasSubstr("\nb      r1       server"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kLink, "", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("up"));

  ASSERT_TRUE(Cmd().Describe(ResourceKind::kNode, "a").ok());
  EXPECT_THAT(out_.str(), HasSubstr("Fabric:               fabrics/r1\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Agent:                UNREGISTERED\n"));

  ASSERT_TRUE(Cmd().Describe(ResourceKind::kBridge, "bridges/a").ok());
  EXPECT_THAT(out_.str(), HasSubstr("Ports:\n"));
  EXPECT_THAT(out_.str(), ContainsRegex("Map entries used: +[0-9]+/[0-9]+"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kMap, "a", "").ok());
  EXPECT_THAT(out_.str(), StartsWith("bridges/a/addressMap"));
  EXPECT_THAT(out_.str(), HasSubstr("CLAIM"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kMap, "", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("bridges/c/addressMap"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kProfile, "", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("sim"));

  absl::Status missing = Cmd().Get(ResourceKind::kNode, "ghost", "");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), StartsWith("get nodes/ghost: "));
}

TEST_F(CommandsTest, GetManagersShowsTheLoneManagerAsLeader) {
  ASSERT_TRUE(Cmd().Get(ResourceKind::kManager, "", "").ok());
  EXPECT_THAT(out_.str(), ContainsRegex("^ADDRESS +ROLE +STORE +LEASE +TTL\n"));
  // No store named by the test's server, and no lease without etcd.
  EXPECT_THAT(out_.str(), ContainsRegex(address_ + " +LEADER +- +- +-\n"));

  ASSERT_TRUE(Cmd(OutputFormat::kJson).Get(ResourceKind::kManager, "", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("\"address\": \"" + address_ + "\""));
  EXPECT_THAT(out_.str(), HasSubstr("\"role\": \"LEADER\""));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kManager, address_, "").ok());
  EXPECT_THAT(out_.str(), HasSubstr(address_));
  absl::Status missing = Cmd().Get(ResourceKind::kManager, "10.9.9.9:1", "");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()),
              HasSubstr("no such manager; known: " + address_));
  EXPECT_TRUE(Cmd().Describe(ResourceKind::kManager, address_).ok());
}

TEST_F(CommandsTest, FabricNameOrNodeTakenHintsAtTheFabricThatHasIt) {
  CreateRing("lab", {"n1", "n2", "n3"});
  absl::Status s = Cmd().CreateFabric(RingSpec("lab", {"x", "y"}, "", 0));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(StatusHint(s), HasSubstr("'fabricctl describe fabric lab'"));

  // r2 does not exist; n1 belongs to lab.
  s = Cmd().CreateFabric(RingSpec("r2", {"b1", "b2", "n1"}, "", 0));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl describe fabric lab"));
  EXPECT_THAT(StatusHint(s), HasSubstr("node n1"));
  EXPECT_THAT(StatusHint(s), Not(HasSubstr("r2")));

  const std::string path =
      WriteFile("r2.json", R"({"name": "r2", "topology": "RING",
                     "nodes": [{"name": "b1"}, {"name": "n2"}]})");
  s = Cmd().Apply(path);
  std::remove(path.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("already belongs to fabric"));
  EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl describe fabric lab"));
  EXPECT_THAT(StatusHint(s), HasSubstr("node n2"));
}

TEST_F(CommandsTest, JsonListsAreArraysAndSingleResourcesObjects) {
  CreateRing("r1", {"a", "b", "c"});
  ASSERT_TRUE(Cmd(OutputFormat::kJson).Get(ResourceKind::kNode, "", "").ok());
  EXPECT_THAT(out_.str(), StartsWith("[\n  {"));
  ASSERT_TRUE(Cmd(OutputFormat::kJson).Get(ResourceKind::kNode, "a", "").ok());
  EXPECT_THAT(out_.str(), StartsWith("{"));
  EXPECT_THAT(out_.str(), HasSubstr("\"name\": \"nodes/a\""));
}

TEST_F(CommandsTest, ListsFollowPageTokens) {
  CreateRing("r1", {"a", "b", "c", "d", "e"});
  FabricClient::Options options;
  options.page_size = 2;
  std::unique_ptr<FabricClient> paged =
      FabricClient::Connect(address_, kLoopbackPlaintext, options);
  absl::StatusOr<std::vector<v1::Node>> nodes = paged->ListNodes("");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  EXPECT_EQ(nodes->size(), 5u);
}

// Counts the calls of one method made through a channel.
class CallCounter
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  CallCounter(std::string method, std::shared_ptr<std::atomic<int>> calls)
      : method_(std::move(method)), calls_(std::move(calls)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    if (info->method() != method_) return nullptr;
    return new Counting(calls_.get());
  }

 private:
  class Counting : public grpc::experimental::Interceptor {
   public:
    explicit Counting(std::atomic<int>* calls) : calls_(calls) {}
    void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
      if (m->QueryInterceptionHookPoint(
              grpc::experimental::InterceptionHookPoints::
                  PRE_SEND_INITIAL_METADATA)) {
        ++*calls_;
      }
      m->Proceed();
    }

   private:
    std::atomic<int>* const calls_;
  };
  const std::string method_;
  const std::shared_ptr<std::atomic<int>> calls_;
};

// The names of a table's rows (its first column), header left out.
std::vector<std::string> RowNames(const std::string& table) {
  std::vector<std::string> names;
  std::istringstream in(table);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) names.push_back(line.substr(0, line.find(' ')));
  return names;
}

TEST_F(CommandsTest, GetAllocationsStreamsPagesAndPrintsEveryRowOnceInOrder) {
  // 2,500 allocations: three pages of the server's largest (1,000). Each of
  // 100 ring nodes borrows 25 MiB-sized ones from its neighbour (a sim
  // bridge has 8 windows and 32 LUT entries of 1 MiB).
  constexpr int kNodes = 100, kEach = 25, kTotal = kNodes * kEach;
  std::vector<std::string> nodes;
  for (int i = 0; i < kNodes; ++i) nodes.push_back(absl::StrCat("n", i));
  CreateRing("r1", nodes);
  std::vector<std::thread> creators;
  std::atomic<int> failed{0};
  for (int t = 0; t < 4; ++t) {
    creators.emplace_back([&, t] {
      for (int i = t; i < kNodes; i += 4) {
        for (int k = 0; k < kEach; ++k) {
          v1::CreateAllocationRequest req;
          req.mutable_allocation()->set_borrower("nodes/" + nodes[i]);
          req.mutable_allocation()->set_target("nodes/" +
                                               nodes[(i + 1) % kNodes]);
          req.mutable_allocation()->set_size(1 << 20);
          req.set_request_id(NewRequestId());
          if (!client_->CreateAllocation(req).ok()) ++failed;
        }
      }
    });
  }
  for (std::thread& t : creators) t.join();
  ASSERT_EQ(failed, 0);
  absl::StatusOr<std::vector<v1::Allocation>> all =
      client_->ListAllocations({});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), static_cast<size_t>(kTotal));
  std::vector<std::string> expected;
  for (const v1::Allocation& a : *all) expected.push_back(ShortName(a.name()));

  // A client whose ListAllocations calls are counted.
  auto calls = std::make_shared<std::atomic<int>>(0);
  std::vector<std::unique_ptr<
      grpc::experimental::ClientInterceptorFactoryInterface>>
      counters;
  counters.push_back(std::make_unique<CallCounter>(
      "/fabric.v1.FabricService/ListAllocations", calls));
  std::shared_ptr<grpc::Channel> channel =
      grpc::experimental::CreateCustomChannelWithInterceptors(
          address_, grpc::InsecureChannelCredentials(),
          grpc::ChannelArguments(), std::move(counters));
  FabricClient counted(v1::FabricService::NewStub(channel),
                       hypervisor::v1::HypervisorService::NewStub(channel),
                       address_, FabricClient::Options(), channel);
  std::ostringstream table;
  Commands cmds(&counted, &table, {});
  absl::Status s = cmds.Get(ResourceKind::kAllocation, "", "");
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(*calls, 3);
  EXPECT_THAT(table.str(), StartsWith("NAME "));
  EXPECT_EQ(RowNames(table.str()), expected);

  // -o json: one array of them all, in order.
  std::ostringstream json;
  Commands::Options json_options;
  json_options.format = OutputFormat::kJson;
  ASSERT_TRUE(Commands(&counted, &json, json_options)
                  .Get(ResourceKind::kAllocation, "", "")
                  .ok());
  EXPECT_EQ(*calls, 6);
  v1::ListAllocationsResponse parsed;
  auto parse = google::protobuf::util::JsonStringToMessage(
      absl::StrCat("{\"allocations\": ", json.str(), "}"), &parsed);
  ASSERT_TRUE(parse.ok()) << parse.message();
  ASSERT_EQ(parsed.allocations_size(), kTotal);
  for (int i = 0; i < kTotal; ++i) {
    EXPECT_EQ(ShortName(parsed.allocations(i).name()), expected[i]) << i;
  }

  // --limit stops the list after that many, in order.
  std::ostringstream out, err;
  ASSERT_EQ(RunFabricctl({"fabricctl", "--insecure", "--server=" + address_,
                          "get", "allocations", "--limit", "1500"},
                         out, err),
            kExitOk)
      << err.str();
  EXPECT_EQ(RowNames(out.str()),
            std::vector<std::string>(expected.begin(), expected.begin() + 1500));
}

TEST_F(CommandsTest, ApplyCreatesThenReportsUnchangedThenRefusesChange) {
  std::string spec = R"({"name": "lab", "topology": "RING",
                         "nodes": [{"name": "a"}, {"name": "b"},
                                   {"name": "c"}]})";
  std::string path = WriteFile("lab.json", spec);
  absl::Status s = Cmd().Apply(path);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), "fabric/lab created\n");

  s = Cmd().Apply(path);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), "fabric/lab unchanged\n");

  std::string changed = WriteFile(
      "lab2.json", R"({"name": "lab", "topology": "RING",
                       "nodes": [{"name": "a"}, {"name": "b"},
                                 {"name": "c"}, {"name": "d"}]})");
  s = Cmd().Apply(changed);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("not supported yet"));
  EXPECT_THAT(StatusHint(s), HasSubstr("delete fabric lab"));
  std::remove(path.c_str());
  std::remove(changed.c_str());
}

TEST_F(CommandsTest, AllocGetAndRelease) {
  CreateRing("r1", {"a", "b", "c", "d"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "c";
  opts.size = 4 << 20;
  opts.owner = "job-7";
  opts.labels = {{"team", "ml"}};
  opts.ttl = absl::Hours(1);
  absl::Status s = Cmd().Alloc(opts);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(),
              ContainsRegex("^allocations/[a-z0-9-]+ borrower a sees 4 MiB "
                            "of c at 0x[0-9a-f_]+ \\(PENDING\\)\n$"));
  std::string name = out_.str().substr(0, out_.str().find(' '));

  ASSERT_TRUE(Cmd().Describe(ResourceKind::kAllocation, name).ok());
  EXPECT_THAT(out_.str(), HasSubstr("Owner:                job-7\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Labels:               team=ml\n"));
  EXPECT_THAT(out_.str(), HasSubstr("TTL:                  3600s\n"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kAllocation, "", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("job-7"));

  // The short id is accepted.
  s = Cmd().Release(ShortName(name), "");
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), name + " released\n");
}

TEST_F(CommandsTest, AuditPrintsTheManagersRecordsFiltered) {
  CreateRing("r1", {"a", "b", "c"});
  const std::string server = "--server=" + address_;
  std::ostringstream out, err;
  // A refused mutation, then one that succeeds.
  EXPECT_NE(RunFabricctl({"fabricctl", "--insecure", server, "release",
                          "allocations/nope", "--request-id", "r-gone"},
                         out, err),
            0);
  ASSERT_EQ(RunFabricctl({"fabricctl", "--insecure", server, "link", "down",
                          "a", "b"},
                         out, err),
            0)
      << err.str();

  auto audit = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"fabricctl", "--insecure", server,
                                     "audit"};
    argv.insert(argv.end(), args.begin(), args.end());
    out.str("");
    err.str("");
    return RunFabricctl(argv, out, err);
  };
  ASSERT_EQ(audit({}), 0) << err.str();
  EXPECT_THAT(out.str(), ContainsRegex("^TIME +IDENTITY +ROLE +METHOD +"
                                       "REQUEST-ID +CODE +MESSAGE\n"));
  EXPECT_THAT(out.str(), HasSubstr("CreateFabric"));
  EXPECT_THAT(out.str(), ContainsRegex("DeleteAllocation +r-gone +NOT_FOUND"));
  EXPECT_THAT(out.str(), HasSubstr("SetLinkState"));
  // Oldest first.
  EXPECT_LT(out.str().find("CreateFabric"), out.str().find("SetLinkState"));

  ASSERT_EQ(audit({"--code", "error", "-o", "json"}), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("\"requestId\": \"r-gone\""));
  EXPECT_THAT(out.str(), Not(HasSubstr("SetLinkState")));
  ASSERT_EQ(audit({"--method", "SetLinkState", "--since", "1h"}), 0);
  EXPECT_THAT(out.str(), HasSubstr("SetLinkState"));
  EXPECT_THAT(out.str(), Not(HasSubstr("CreateFabric")));
  ASSERT_EQ(audit({"--since", "2999-01-01T00:00:00Z"}), 0);
  EXPECT_EQ(out.str(), "No resources found.\n");
  ASSERT_EQ(audit({"--limit", "1"}), 0);
  EXPECT_THAT(out.str(), HasSubstr("CreateFabric"));
  EXPECT_THAT(out.str(), Not(HasSubstr("SetLinkState")));

  // Bad flags are usage errors naming the flag; a bad code is the server's
  // INVALID_ARGUMENT naming the field.
  EXPECT_EQ(audit({"--since", "yesterday"}), kExitUsage);
  EXPECT_THAT(err.str(), HasSubstr("--since"));
  EXPECT_NE(audit({"--code", "DENIED"}), 0);
  EXPECT_THAT(err.str(), HasSubstr("code"));
}

TEST_F(CommandsTest, GetAllocationsByNode) {
  CreateRing("r1", {"a", "b", "c", "d"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  opts.owner = "borrows-from-b";
  ASSERT_TRUE(Cmd().Alloc(opts).ok());
  opts.borrower = "c";
  opts.target = "d";
  opts.owner = "borrows-from-d";
  ASSERT_TRUE(Cmd().Alloc(opts).ok());

  // The node is the borrower or the target.
  for (const char* node : {"a", "nodes/b"}) {
    absl::Status s = Cmd().Get(ResourceKind::kAllocation, "", "", node);
    ASSERT_TRUE(s.ok()) << node << ": " << s;
    EXPECT_THAT(out_.str(), HasSubstr("borrows-from-b")) << node;
    EXPECT_THAT(out_.str(), Not(HasSubstr("borrows-from-d"))) << node;
  }
  std::ostringstream out, err;
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", "--server=" + address_,
                          "get", "allocations", "--node", "d"},
                         out, err),
            kExitOk)
      << err.str();
  EXPECT_THAT(out.str(), HasSubstr("borrows-from-d"));
  EXPECT_THAT(out.str(), Not(HasSubstr("borrows-from-b")));

  absl::Status s = Cmd().Get(ResourceKind::kAllocation, "", "", "ghost");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), StartsWith("list allocations: "));
}

TEST_F(CommandsTest, AllocWithSameRequestIdIsIdempotent) {
  CreateRing("r1", {"a", "b", "c"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  opts.request_id = "fixed-id";
  ASSERT_TRUE(Cmd().Alloc(opts).ok());
  std::string first = out_.str();
  ASSERT_TRUE(Cmd().Alloc(opts).ok());
  EXPECT_EQ(out_.str().substr(0, out_.str().find(' ')),
            first.substr(0, first.find(' ')));
}

TEST_F(CommandsTest, ReleaseWithSameRequestIdIsIdempotent) {
  CreateRing("r1", {"a", "b", "c"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  ASSERT_TRUE(Cmd().Alloc(opts).ok());
  const std::string id = ShortName(out_.str().substr(0, out_.str().find(' ')));
  const std::string server = "--server=" + address_;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::ostringstream out, err;
    ASSERT_EQ(RunFabricctl({"fabricctl", "--insecure", server, "release", id,
                            "--request-id", "release-once"},
                           out, err),
              kExitOk)
        << "attempt " << attempt << ": " << err.str();
    EXPECT_EQ(out.str(), "allocations/" + id + " released\n");
  }
  // A new request id is a new request: the allocation is gone.
  std::ostringstream out, err;
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", server, "release", id},
                         out, err),
            kExitError);
  EXPECT_THAT(err.str(), HasSubstr("error: release allocations/" + id));
}

TEST_F(CommandsTest, AllocReplayOfAReleasedAllocationSaysSo) {
  CreateRing("r1", {"a", "b", "c"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  opts.request_id = "job-42";
  ASSERT_TRUE(Cmd().Alloc(opts).ok());
  const std::string name = out_.str().substr(0, out_.str().find(' '));
  ASSERT_TRUE(Cmd().Release(name, "").ok());

  // The manager replays the request id with the allocation as created.
  absl::Status s = Cmd().Alloc(opts);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(),
              HasSubstr("allocation " + name +
                        " was created by this request id and has since been "
                        "released"));
  EXPECT_THAT(StatusHint(s), HasSubstr("--request-id"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("PENDING")));

  std::ostringstream out, err;
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", "--server=" + address_,
                          "alloc", "mem", "--from", "a", "--to", "b", "--size",
                          "4096", "--request-id", "job-42"},
                         out, err),
            kExitError);
  EXPECT_EQ(out.str(), "");
  EXPECT_THAT(err.str(), HasSubstr("has since been released"));
}

TEST_F(CommandsTest, AllocWaitTimesOutWithStateAndReason) {
  CreateRing("r1", {"a", "b", "c"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  opts.wait = true;
  opts.wait_timeout = absl::Milliseconds(300);
  absl::Status s = Cmd().Alloc(opts);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("exists but is not READY after 300ms"));
  EXPECT_THAT(s.message(), HasSubstr("state PENDING"));
  EXPECT_THAT(s.message(), HasSubstr("have not applied generation"));
  EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl release alloc"));
  // The summary line was printed before waiting.
  EXPECT_THAT(out_.str(), HasSubstr("(PENDING)"));
}

TEST_F(CommandsTest, AllocWaitSucceedsOnceAgentsApply) {
  CreateRing("r1", {"a", "b", "c"});
  StartAgents({"a", "b", "c"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  opts.wait = true;
  opts.wait_timeout = absl::Seconds(10);
  absl::Status s = Cmd().Alloc(opts);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(), HasSubstr(" is READY\n"));
}

TEST_F(CommandsTest, LinkDownAcceptsEitherOrder) {
  CreateRing("r1", {"a", "b", "c"});
  // Declared as a--b; named the other way round here.
  absl::Status s = Cmd().SetLink("b", "a", false);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(), StartsWith("link/a--b down"));
  EXPECT_THAT(out_.str(), HasSubstr("address maps recomputed"));
  ASSERT_TRUE(Cmd().Get(ResourceKind::kLink, "b--a", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("down"));
  ASSERT_TRUE(Cmd().SetLink("a", "b", true).ok());
  EXPECT_THAT(out_.str(), StartsWith("link/a--b up"));

  s = Cmd().SetLink("a", "ghost", false);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("no link between a and ghost"));
}

TEST_F(CommandsTest, DeleteFabricNeedsForceWithAllocations) {
  CreateRing("r1", {"a", "b", "c"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  ASSERT_TRUE(Cmd().Alloc(opts).ok());
  absl::Status s = Cmd().DeleteFabric("r1", false);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(StatusHint(s), HasSubstr("--force"));
  s = Cmd().DeleteFabric("r1", true);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), "fabric/r1 deleted\n");
}

TEST_F(CommandsTest, CliExitCodesAgainstARealServer) {
  std::ostringstream out, err;
  std::string server = "--server=" + address_;
  EXPECT_EQ(
      RunFabricctl({"fabricctl", "--insecure", server, "create", "star", "s1",
                    "--hub", "m", "--nodes", "a,b", "--export", "64MiB"},
                   out, err),
      kExitOk)
      << err.str();
  EXPECT_THAT(out.str(), HasSubstr("fabric/s1 created (3 nodes"));

  out.str("");
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", server, "create", "star",
                          "s1", "--hub", "m", "--nodes", "a,b"},
                         out, err),
            kExitError);
  EXPECT_THAT(err.str(), HasSubstr("error: create fabric/s1: "));

  out.str("");
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", "get", "fabrics", "-o",
                          "json", server},
                         out, err),
            kExitOk);
  EXPECT_THAT(out.str(), StartsWith("[\n"));
  EXPECT_THAT(out.str(), HasSubstr("\"hub\": \"m\""));
  EXPECT_THAT(out.str(), HasSubstr("\"defaultExportSize\": \"67108864\""));
}

TEST_F(CommandsTest, GetAndDescribeVfs) {
  CreateVfFabric();
  ASSERT_TRUE(Cmd().Get(ResourceKind::kVf, "", "").ok());
  EXPECT_EQ(out_.str(),
            "NAME              NODE   ADDRESS        PF             "
            "VENDOR:DEVICE   STATE   HEALTH\n"
            "n1/0000:3b:00.4   n1     0000:3b:00.4   0000:3b:00.0   "
            "8086:154c       FREE    HEALTHY\n"
            "n1/0000:3b:00.5   n1     0000:3b:00.5   0000:3b:00.0   "
            "8086:154c       FREE    HEALTHY\n");

  ASSERT_TRUE(Cmd().Get(ResourceKind::kVf, "", "r1", "n2").ok());
  EXPECT_EQ(out_.str(), "No resources found.\n");
  ASSERT_TRUE(Cmd().Get(ResourceKind::kVf, "", "", "nodes/n1").ok());
  EXPECT_THAT(out_.str(), HasSubstr("n1/0000:3b:00.5"));

  // Both name forms, passed on to the server.
  ASSERT_TRUE(Cmd().Get(ResourceKind::kVf, "n1/0000:3b:00.5", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("\nn1/0000:3b:00.5 "));
  EXPECT_THAT(out_.str(), Not(HasSubstr("00.4")));
  absl::Status s =
      Cmd().Describe(ResourceKind::kVf, "nodes/n1/vfs/0000-3b-00.4");
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(),
              HasSubstr("Name:                 nodes/n1/vfs/0000-3b-00.4\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Vendor:device:        8086:154c\n"));
  EXPECT_THAT(out_.str(), HasSubstr("BARs:                 bar0 64 KiB, "
                                    "bar3 16 KiB\n"));

  ASSERT_TRUE(Cmd(OutputFormat::kJson).Get(ResourceKind::kVf, "", "").ok());
  EXPECT_THAT(out_.str(), StartsWith("[\n  {"));
  EXPECT_THAT(out_.str(), HasSubstr("\"deviceId\": 5452"));

  s = Cmd().Get(ResourceKind::kVf, "n1/0000:3b:00.7", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), StartsWith("get vf n1/0000:3b:00.7: "));
  EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl get vfs"));
}

TEST_F(CommandsTest, AttachWaitDescribeAndDetach) {
  CreateVfFabric();
  AttachOptions opts;
  opts.vf = "n1/0000:3b:00.4";
  opts.borrower = "n2";
  opts.vm = "vm1";
  opts.interrupts = v1::Attachment::DIRECT;
  opts.dma_size = 2 << 20;
  opts.owner = "job-9";
  opts.wait = true;
  opts.wait_timeout = absl::Seconds(10);
  absl::Status s = Cmd().Attach(opts);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(),
              ContainsRegex("^attachments/att-[0-9a-f]+ VF n1/0000:3b:00.4 "
                            "lent to n2, vm vm1, interrupts DIRECT "
                            "\\((PENDING|READY)\\)\n"));
  EXPECT_THAT(out_.str(), HasSubstr(" is READY\n"));
  const std::string name = out_.str().substr(0, out_.str().find(' '));
  const std::string id = ShortName(name);

  ASSERT_TRUE(Cmd().Get(ResourceKind::kVf, "", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("LENT to n2   HEALTHY\n"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kAttachment, "", "", "n2").ok());
  EXPECT_THAT(out_.str(), StartsWith("NAME "));
  EXPECT_THAT(out_.str(), ContainsRegex("\n" + id +
                                        " +n1/0000:3b:00.4 +n2 +vm1 +DIRECT "
                                        "+READY +HEALTHY\n"));
  ASSERT_TRUE(Cmd().Get(ResourceKind::kAttachment, "", "", "n3").ok());
  EXPECT_EQ(out_.str(), "No resources found.\n");

  ASSERT_TRUE(Cmd().Describe(ResourceKind::kAttachment, id).ok());
  std::string d = out_.str();
  EXPECT_THAT(d, HasSubstr("Name:                 " + name + "\n"));
  EXPECT_THAT(d,
              HasSubstr("VF:                   nodes/n1/vfs/0000-3b-00.4\n"));
  EXPECT_THAT(d, HasSubstr("DMA size:             2 MiB\n"));
  EXPECT_THAT(d, HasSubstr("Owner:                job-9\n"));
  EXPECT_THAT(d, HasSubstr("Shadow device:        shadow-" + id + "\n"));
  EXPECT_THAT(d, HasSubstr("Windows (4):\n"));
  EXPECT_THAT(d, ContainsRegex("\n  mmio-bar0 +n2 -> n1 +0x[0-9a-f_]+ +"
                               "0x38_0000_0000 +0x[0-9a-f_]+ +64 KiB"));
  EXPECT_THAT(d, ContainsRegex("\n  mmio-bar3 +n2 -> n1 .* 16 KiB"));
  EXPECT_THAT(d, ContainsRegex("\n  dma +n1 -> n2 .* 2 MiB"));
  EXPECT_THAT(d, ContainsRegex("\n  msix +n1 -> n2 "));
  EXPECT_THAT(d, HasSubstr("Interrupt delivery:\n"));

  // The VF is taken.
  opts.borrower = "n3";
  opts.wait = false;
  s = Cmd().Attach(opts);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              StartsWith("attach VF n1/0000:3b:00.4 to n3: "));
  EXPECT_THAT(s.message(), HasSubstr("already lent"));
  EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl get attachments"));

  s = Cmd().Detach(id, "");
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), "attachment/" + id + " detached\n");
  ASSERT_TRUE(Cmd().Get(ResourceKind::kVf, "n1/0000:3b:00.4", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("FREE"));
  s = Cmd().Describe(ResourceKind::kAttachment, id);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl get attachments"));
}

TEST_F(CommandsTest, AttachWithSameRequestIdIsIdempotent) {
  CreateVfFabric();
  AttachOptions opts;
  opts.vf = "nodes/n1/vfs/0000-3b-00.5";
  opts.borrower = "nodes/n3";
  opts.request_id = "attach-once";
  ASSERT_TRUE(Cmd().Attach(opts).ok());
  std::string first = out_.str();
  absl::Status s = Cmd().Attach(opts);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str().substr(0, out_.str().find(' ')),
            first.substr(0, first.find(' ')));
  ASSERT_TRUE(client_->ListAttachments({}).ok());
  EXPECT_EQ(client_->ListAttachments({})->size(), 1u);
}

TEST_F(CommandsTest, AttachWaitTimesOutWithStateAndReason) {
  shadows_ready_ = false;
  CreateVfFabric();
  AttachOptions opts;
  opts.vf = "n1/0000:3b:00.4";
  opts.borrower = "n2";
  opts.wait = true;
  opts.wait_timeout = absl::Milliseconds(300);
  absl::Status s = Cmd().Attach(opts);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("exists but is not READY after 300ms: "
                                     "state PENDING ("));
  EXPECT_THAT(s.message(), HasSubstr("shadow device on n2"));
  EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl vf detach att-"));
  EXPECT_THAT(out_.str(), HasSubstr("(PENDING)\n"));

  // Operations that need READY say what it waits for.
  const std::string name = out_.str().substr(0, out_.str().find(' '));
  s = Cmd().VerifyAttachment(name, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), StartsWith("verify " + name + ": "));
  EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl describe attachment att-"));
}

TEST_F(CommandsTest, ShadowConfigSetupVerifyInterruptsAndVm) {
  CreateVfFabric();
  const std::string name = AttachReady();
  const std::string id = ShortName(name);

  ShadowAccessOptions read;
  read.attachment = id;
  absl::Status s = Cmd().ShadowConfig(read);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), "config 0x000 (4 bytes) = 0x154c8086\n");
  read.offset = 2;
  read.size = 2;
  ASSERT_TRUE(Cmd().ShadowConfig(read).ok());
  EXPECT_EQ(out_.str(), "config 0x002 (2 bytes) = 0x154c\n");

  ShadowAccessOptions write;
  write.attachment = name;
  write.write = true;
  write.size = 2;
  write.value = 0x1234;
  ASSERT_TRUE(Cmd().ShadowConfig(write).ok());
  EXPECT_EQ(out_.str(),
            "config 0x000 (2 bytes) <- 0x1234: dropped: vendor id is "
            "read-only\n");
  write.offset = 4;
  write.value = 6;
  ASSERT_TRUE(Cmd().ShadowConfig(write).ok());
  EXPECT_EQ(out_.str(), "config 0x004 (2 bytes) <- 0x0006: forwarded\n");
  ASSERT_TRUE(Cmd(OutputFormat::kJson).ShadowConfig(write).ok());
  EXPECT_THAT(out_.str(), HasSubstr("\"outcome\": \"FORWARDED\""));

  // Checked before any RPC.
  write.offset = 3;
  s = Cmd().ShadowConfig(write);
  EXPECT_TRUE(IsUsageError(s));
  EXPECT_EQ(out_.str(), "");

  ASSERT_TRUE(Cmd().ShadowSetup(id).ok());
  EXPECT_EQ(out_.str(), "shadow device of attachment/" + id +
                            " set up: 4 MSI-X vectors at its doorbell\n");

  s = Cmd().VerifyAttachment(id, 4096);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(), StartsWith("OK    " + name + "  "));

  // The VM runs: direct delivery; vector 9 does not exist.
  ASSERT_TRUE(Cmd().RaiseInterrupt(id, 1, 3).ok());
  EXPECT_EQ(out_.str(),
            "raised 3: 3 direct, 0 via hypervisor, 0 dropped, 0 pending in "
            "VF\n"
            "shadow device totals: 3 direct, 0 via hypervisor, 3 exits "
            "avoided, 0 exits, 0 injected at entry, 0 coalesced, 0 dropped\n");
  ASSERT_TRUE(Cmd().RaiseInterrupt(id, 9, 1).ok());
  EXPECT_THAT(out_.str(), StartsWith("raised 1: 0 direct, 0 via hypervisor, "
                                     "1 dropped, 0 pending in VF\n"));
  EXPECT_THAT(out_.str(), HasSubstr("1 dropped (no such vector: 1)\n"));

  // Stopped, its interrupts go through the hypervisor and are injected when
  // it starts again.
  s = Cmd().SetVmState("n2", "vm1", false, 0);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), "vm vm1 on n2 stopped\n");
  ASSERT_TRUE(Cmd().RaiseInterrupt(id, 0, 2).ok());
  EXPECT_THAT(out_.str(), StartsWith("raised 2: 0 direct, 2 via hypervisor"));
  ASSERT_TRUE(Cmd().SetVmState("nodes/n2", "vm1", true, 3).ok());
  EXPECT_EQ(out_.str(),
            "vm vm1 on n2 running on core 3 (injected 2 queued interrupts)\n");
  ASSERT_TRUE(Cmd(OutputFormat::kJson).SetVmState("n2", "vm1", true, 3).ok());
  EXPECT_THAT(out_.str(), HasSubstr("\"injected\": \"0\""));

  ASSERT_TRUE(Cmd(OutputFormat::kJson).RaiseInterrupt(id, 0, 1).ok());
  EXPECT_THAT(out_.str(), StartsWith("{"));
  EXPECT_THAT(out_.str(), HasSubstr("\"deliveredDirect\": \"1\""));
  EXPECT_THAT(out_.str(), HasSubstr("\"injectedAtEntry\": \"2\""));

  // The counters reach the attachment through the agents' reports; the
  // fake reports none, so describe shows the section with zeros.
  ASSERT_TRUE(Cmd().Describe(ResourceKind::kAttachment, id).ok());
  EXPECT_THAT(out_.str(), HasSubstr("Config space:\n  Reads:"));
}

TEST_F(CommandsTest, VerifyAttachmentFailureIsReportedAndFails) {
  CreateVfFabric();
  const std::string name = AttachReady();
  node_agent_->BreakDma();
  absl::Status s = Cmd().VerifyAttachment(name, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), name + " failed verification");
  EXPECT_THAT(out_.str(), StartsWith("FAIL  " + name + "  "));
  EXPECT_THAT(out_.str(), HasSubstr("no matching entry"));
  ASSERT_FALSE(Cmd(OutputFormat::kJson).VerifyAttachment(name, 0).ok());
  EXPECT_THAT(out_.str(), HasSubstr("\"ok\": false"));
}

TEST_F(CommandsTest, UnavailableFromTheManagerGetsNoManagerRunningHint) {
  CreateVfFabric();
  const std::string name = AllocReady("n2", "n3");
  node_agent_->FailWritesTo("nodes/n3");
  std::ostringstream out, err;
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", "--server=" + address_,
                          "verify", ShortName(name)},
                         out, err),
            kExitError);
  // The manager answered: it could not reach an agent.
  EXPECT_THAT(err.str(), HasSubstr("error: verify " + name +
                                   ": the agent of nodes/n2 at "));
  EXPECT_THAT(err.str(), HasSubstr("connection reset (injected)"));
  EXPECT_THAT(err.str(), Not(HasSubstr("is fabric-manager running")));
  EXPECT_THAT(err.str(), Not(HasSubstr("--server")));

  // Once the manager is gone, the hint is the one that fits.
  server_->Shutdown();
  out.str("");
  err.str("");
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", "--server=" + address_,
                          "--timeout", "2s", "get", "fabrics"},
                         out, err),
            kExitError);
  EXPECT_THAT(err.str(), HasSubstr("hint: is fabric-manager running at " +
                                   address_ + "?"));
}

TEST_F(CommandsTest, VerifyAllGoesOnPastAFailureAndReportsEach) {
  CreateVfFabric();
  const std::string good = AllocReady("n2", "n3");
  const std::string bad = AllocReady("n2", "n1");
  node_agent_->FailWritesTo("nodes/n1");

  absl::Status s = Cmd().Verify("", true);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(s.message(), "1 allocation(s) failed verification");
  EXPECT_THAT(out_.str(), HasSubstr("OK    " + good + "  "));
  EXPECT_THAT(out_.str(),
              ContainsRegex("(^|\n)FAIL  " + bad +
                            "  the agent of nodes/n2 at [^\n]* did not take "
                            "the write: connection reset \\(injected\\)\n"));
  EXPECT_THAT(out_.str(), HasSubstr("\n1 of 2 READY allocation(s) verified\n"));

  ASSERT_FALSE(Cmd(OutputFormat::kJson).Verify("", true).ok());
  EXPECT_THAT(out_.str(), StartsWith("["));
  EXPECT_THAT(out_.str(),
              HasSubstr("\"allocation\":\"" + bad + "\",\"ok\":false"));
  EXPECT_THAT(out_.str(),
              HasSubstr("\"allocation\":\"" + good + "\",\"ok\":true"));

  std::ostringstream out, err;
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", "--server=" + address_,
                          "verify", "--all"},
                         out, err),
            kExitError);
  EXPECT_THAT(out.str(), HasSubstr("FAIL  " + bad));
  EXPECT_THAT(out.str(), HasSubstr("OK    " + good));
  EXPECT_EQ(err.str(), "error: 1 allocation(s) failed verification\n");
}

TEST_F(CommandsTest, VfOperationsOnAMissingAttachmentHint) {
  CreateVfFabric();
  ShadowAccessOptions read;
  read.attachment = "att-000000000000";
  for (absl::Status s :
       {Cmd().ShadowConfig(read), Cmd().ShadowSetup("att-000000000000"),
        Cmd().RaiseInterrupt("att-000000000000", 0, 1),
        Cmd().Detach("att-000000000000", "")}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
    EXPECT_THAT(s.message(), HasSubstr("attachments/att-000000000000"));
    EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl get attachments"));
  }
  absl::Status s = Cmd().SetVmState("ghost", "vm1", true, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), StartsWith("start vm vm1 on ghost: "));
  EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl get nodes"));
}

TEST_F(CommandsTest, VfCommandsThroughTheCli) {
  CreateVfFabric();
  std::ostringstream out, err;
  const std::string server = "--server=" + address_;
  ASSERT_EQ(
      RunFabricctl({"fabricctl", "--insecure", server, "vf", "attach", "--vf",
                    "n1/0000:3b:00.5", "--to", "n3", "--interrupts",
                    "hypervisor", "--vm", "vm7", "--dma-size", "1MiB", "--wait",
                    "--wait-timeout", "10s"},
                   out, err),
      kExitOk)
      << err.str();
  EXPECT_THAT(out.str(),
              HasSubstr("lent to n3, vm vm7, interrupts HYPERVISOR"));
  const std::string id = ShortName(out.str().substr(0, out.str().find(' ')));

  out.str("");
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", server, "get", "att", id},
                         out, err),
            kExitOk);
  EXPECT_THAT(out.str(), HasSubstr("HYPERVISOR"));

  out.str("");
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", server, "vf", "config", id,
                          "read", "0x2", "--size", "2"},
                         out, err),
            kExitOk)
      << err.str();
  EXPECT_EQ(out.str(), "config 0x002 (2 bytes) = 0x154c\n");

  out.str("");
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", server, "vf", "verify", id,
                          "--probe-size", "4KiB"},
                         out, err),
            kExitOk)
      << err.str();
  EXPECT_THAT(out.str(), StartsWith("OK    attachments/" + id));

  out.str("");
  EXPECT_EQ(RunFabricctl({"fabricctl", "--insecure", server, "-o", "json", "vf",
                          "interrupt", id, "--count", "2"},
                         out, err),
            kExitOk)
      << err.str();
  EXPECT_THAT(out.str(), HasSubstr("\"deliveredDirect\": \"2\""));

  out.str("");
  err.str("");
  EXPECT_EQ(
      RunFabricctl({"fabricctl", "--insecure", server, "vf", "detach", id}, out,
                   err),
      kExitOk);
  EXPECT_EQ(out.str(), "attachment/" + id + " detached\n");
  EXPECT_EQ(
      RunFabricctl({"fabricctl", "--insecure", server, "vf", "detach", id}, out,
                   err),
      kExitError);
  EXPECT_THAT(err.str(), HasSubstr("error: detach attachments/" + id + ": "));
  EXPECT_THAT(err.str(), HasSubstr("hint: 'fabricctl get attachments'"));
}

}  // namespace
}  // namespace fabric::client
