// VF lending end to end, as separate processes: fabric-manager and three
// simulated agents on a ring. n1 lends VFs of a simulated PF with 8 VFs
// (agent/hw/sim/examples/one_pf.json); n0 and n2 borrow them. Config space
// goes through the shadow devices, DMA lands in the borrowers' memory,
// interrupts are counted by delivery mode, a VF moves between borrowers,
// the lender's agent restarts, and a failed VF is reported. The borrower's
// agent serves its metrics (--http-listen), scraped over mutual TLS.
#include <grpcpp/create_channel.h>
#include <httplib.h>
#include <signal.h>

#include <regex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/discovery/pci_address.h"
#include "agent/hw/sim/sim_hardware.h"
#include "agent/hw/sim/sriov_device.h"
#include "agent/testing/scrape.h"
#include "fabric/agentproto/v1/node_agent_service.grpc.pb.h"
#include "fabric/hypervisor/v1/hypervisor.grpc.pb.h"
#include "fabric/v1/diagnostics.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/process/process_util.h"
#include "tests/process/test_transport.h"

namespace fabric::proctest {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMmioBase = 0x300'0000'0000ull;  // one_pf.json's default
constexpr uint64_t kMmioSize = 64ull << 30;
constexpr char kPf[] = "0000:3b:00.0";
constexpr uint32_t kVendor = 0x8086;    // one_pf.json vendorId 32902
constexpr uint32_t kVfDevice = 0x154c;  // vfDeviceId 5452

std::string Vf(int i) { return absl::StrCat("0000:3b:02.", i); }

class VfLendingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hardware_ = std::string(FABRIC_SOURCE_DIR) +
                "/agent/hw/sim/examples/one_pf.json";
    manager_flags_ = tls_.ManagerFlags();
    manager_flags_.insert(
        manager_flags_.end(),
        {"--heartbeat-timeout", "600ms", "--heartbeat-interval", "100ms"});
    manager_ = std::make_unique<Manager>(
        StartManager(dir_.path() + "/fabric.db", dir_.path() + "/manager.log",
                     manager_flags_));
    ASSERT_GT(manager_->port, 0) << ReadFile(dir_.path() + "/manager.log");
    address_ = absl::StrCat("127.0.0.1:", manager_->port);
    std::shared_ptr<grpc::Channel> channel = tls_.DialManager(address_);
    stub_ = v1::FabricService::NewStub(channel);
    hypervisor_ = hypervisor::v1::HypervisorService::NewStub(channel);
    v1::CreateFabricRequest req;
    v1::FabricSpec* spec = req.mutable_spec();
    spec->set_name("lab");
    spec->set_topology(v1::RING);
    spec->set_default_export_size(64 << 20);
    for (int i = 0; i < 3; ++i) {
      v1::NodeSpec* n = spec->add_nodes();
      n->set_name(absl::StrCat("n", i));
      if (i == 1) {
        n->set_mmio_base(kMmioBase);
        n->set_mmio_size(kMmioSize);
      }
    }
    grpc::ClientContext ctx;
    v1::Fabric f;
    grpc::Status s = stub_->CreateFabric(&ctx, req, &f);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (int i = 0; i < 3; ++i) agents_.push_back(StartAgent(i));
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(WaitNodeReady(absl::StrCat("n", i)));
    }
  }

  std::unique_ptr<Child> StartAgent(int i) {
    std::vector<std::string> argv = {
        BinDir() + "/fabric-agent", "--manager", address_, "--node",
        absl::StrCat("n", i), "--backend", "sim", "--sim-dir",
        dir_.path() + "/sim"};
    for (std::string& flag : tls_.AgentFlags(absl::StrCat("n", i))) {
      argv.push_back(flag);
    }
    if (i == 0) argv.insert(argv.end(), {"--http-listen", "127.0.0.1:0"});
    if (i == 1) {
      argv.push_back("--sim-hardware");
      argv.push_back(hardware_);
    }
    return std::make_unique<Child>(argv, AgentLog(i));
  }

  std::string AgentLog(int i) const {
    return absl::StrCat(dir_.path(), "/agent-", i, ".log");
  }

  // The port of n0's metrics, from "fabric-agent: metrics on HOST:PORT" in
  // its log; -1 if it never says.
  int MetricsPort() {
    static const std::regex kLine(
        "fabric-agent: metrics on 127\\.0\\.0\\.1:(\\d+)");
    int port = -1;
    WaitFor(
        [&] {
          const std::string log = ReadFile(AgentLog(0));
          std::smatch m;
          return std::regex_search(log, m, kLine) &&
                 absl::SimpleAtoi(m[1].str(), &port);
        },
        absl::Seconds(10));
    return port;
  }

  // GET /metrics from n0's agent as user/alice (any fabric certificate may
  // read it); the body is kept in last_scrape_.
  agent::testing::Samples Scrape(int port) {
    const security::TlsConfig reader = tls_.User("alice", "viewer");
    httplib::SSLClient client("127.0.0.1", port, reader.cert_file,
                              reader.key_file);
    client.set_ca_cert_path(reader.ca_file.c_str());
    client.enable_server_certificate_verification(true);
    auto res = client.Get("/metrics");
    if (!res) {
      ADD_FAILURE() << "GET /metrics: " << httplib::to_string(res.error());
      return {};
    }
    EXPECT_EQ(res->status, 200);
    last_scrape_ = res->body;
    absl::StatusOr<agent::testing::Samples> s =
        agent::testing::ParseSamples(res->body);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.value_or(agent::testing::Samples());
  }

  bool WaitNodeReady(const std::string& node) {
    return WaitFor(
        [&] {
          grpc::ClientContext ctx;
          v1::GetNodeRequest req;
          req.set_name(node);
          v1::Node n;
          return stub_->GetNode(&ctx, req, &n).ok() &&
                 n.agent_state() == v1::Node::READY &&
                 n.applied_generation() == n.desired_generation();
        },
        absl::Seconds(10));
  }

  std::vector<v1::VirtualFunction> ListVfs() {
    grpc::ClientContext ctx;
    v1::ListVirtualFunctionsRequest req;
    req.set_node("n1");
    v1::ListVirtualFunctionsResponse resp;
    grpc::Status s = stub_->ListVirtualFunctions(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.virtual_functions().begin(), resp.virtual_functions().end()};
  }

  grpc::Status Attach(const std::string& vf, const std::string& borrower,
                      const std::string& vm,
                      v1::Attachment::InterruptPolicy policy,
                      v1::Attachment* out, const std::string& request_id = "") {
    grpc::ClientContext ctx;
    v1::CreateAttachmentRequest req;
    req.mutable_attachment()->set_vf(absl::StrCat("n1/", vf));
    req.mutable_attachment()->set_borrower(borrower);
    req.mutable_attachment()->set_vm(vm);
    req.mutable_attachment()->set_interrupts(policy);
    req.set_request_id(request_id);
    return stub_->CreateAttachment(&ctx, req, out);
  }

  v1::Attachment Get(const std::string& name) {
    grpc::ClientContext ctx;
    v1::GetAttachmentRequest req;
    req.set_name(name);
    v1::Attachment a;
    grpc::Status s = stub_->GetAttachment(&ctx, req, &a);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return a;
  }

  bool WaitState(const std::string& name, v1::Attachment::State state) {
    if (WaitFor([&] { return Get(name).state() == state; },
                absl::Seconds(15))) {
      return true;
    }
    ADD_FAILURE() << name << " never became "
                  << v1::Attachment::State_Name(state) << ": "
                  << Get(name).state_reason();
    return false;
  }

  absl::StatusOr<v1::AccessShadowResponse> Shadow(
      const std::string& att, v1::AccessShadowRequest::Op op, uint32_t offset,
      uint32_t size, uint32_t value = 0) {
    grpc::ClientContext ctx;
    v1::AccessShadowRequest req;
    req.set_attachment(att);
    req.set_space(v1::AccessShadowRequest::CONFIG);
    req.set_op(op);
    req.set_offset(offset);
    req.set_size(size);
    req.set_value(value);
    v1::AccessShadowResponse resp;
    grpc::Status s = stub_->AccessShadow(&ctx, req, &resp);
    if (!s.ok()) return absl::InternalError(s.error_message());
    return resp;
  }

  v1::VerifyResult VerifyDma(const std::string& att) {
    grpc::ClientContext ctx;
    v1::VerifyAttachmentRequest req;
    req.set_name(att);
    v1::VerifyResult r;
    grpc::Status s = stub_->VerifyAttachment(&ctx, req, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return r;
  }

  v1::RaiseVfInterruptResponse Raise(const std::string& att, int count) {
    grpc::ClientContext ctx;
    v1::RaiseVfInterruptRequest req;
    req.set_attachment(att);
    req.set_vector(1);
    req.set_count(count);
    v1::RaiseVfInterruptResponse r;
    grpc::Status s = stub_->RaiseVfInterrupt(&ctx, req, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return r;
  }

  void SetVm(const std::string& node, const std::string& vm, bool running,
             hypervisor::v1::SetVmStateResponse* out = nullptr) {
    grpc::ClientContext ctx;
    hypervisor::v1::SetVmStateRequest req;
    req.set_node(node);
    req.set_vm(vm);
    req.set_running(running);
    req.set_core(3);
    hypervisor::v1::SetVmStateResponse r;
    grpc::Status s = hypervisor_->SetVmState(&ctx, req, &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
    if (out != nullptr) *out = r;
  }

  grpc::Status Detach(const std::string& att) {
    grpc::ClientContext ctx;
    v1::DeleteAttachmentRequest req;
    req.set_name(att);
    v1::Attachment out;
    return stub_->DeleteAttachment(&ctx, req, &out);
  }

  // The lender's devices, read directly from the simulator's files.
  std::unique_ptr<agent::hw::SimSriovHost> OpenLenderDevices() {
    auto hw = agent::hw::LoadSimHardware(hardware_);
    EXPECT_TRUE(hw.ok()) << hw.status();
    auto host =
        agent::hw::SimSriovHost::Open(dir_.path() + "/sim", "n1", *hw);
    EXPECT_TRUE(host.ok()) << host.status();
    return *std::move(host);
  }

  Transport& tls_ = Transport::Tls();
  TempDir dir_;
  std::string hardware_;
  std::vector<std::string> manager_flags_;
  std::unique_ptr<Manager> manager_;
  std::string address_;
  std::unique_ptr<v1::FabricService::Stub> stub_;
  std::unique_ptr<hypervisor::v1::HypervisorService::Stub> hypervisor_;
  std::vector<std::unique_ptr<Child>> agents_;
  std::string last_scrape_;
};

TEST_F(VfLendingTest, LendsVfsAcrossTheRing) {
  // 1. The pool: the lender's 8 VFs, free and, once probed, healthy.
  std::vector<v1::VirtualFunction> vfs;
  WaitFor(
      [&] {
        vfs = ListVfs();
        return vfs.size() == 8 &&
               vfs[7].health() == v1::VirtualFunction::HEALTHY;
      },
      absl::Seconds(5));
  ASSERT_EQ(vfs.size(), 8u);
  for (const auto& v : vfs) {
    EXPECT_EQ(v.state(), v1::VirtualFunction::FREE) << v.name();
    EXPECT_EQ(v.health(), v1::VirtualFunction::HEALTHY) << v.name();
    EXPECT_EQ(v.vendor_id(), kVendor);
    EXPECT_EQ(v.device_id(), kVfDevice);
    EXPECT_EQ(v.pf_address(), kPf);
  }
  EXPECT_EQ(vfs[0].name(), "nodes/n1/vfs/0000-3b-02.0");

  // 2. Bad input changes nothing.
  v1::Attachment a0, a1, scratch;
  grpc::Status s = Attach(kPf, "n0", "", v1::Attachment::AUTO, &scratch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("physical function"));
  s = Attach("0000:3b:07.7", "n0", "", v1::Attachment::AUTO, &scratch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  s = Attach(Vf(0), "n1", "", v1::Attachment::AUTO, &scratch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("its own VF"));
  s = Attach(Vf(0), "n0", "", v1::Attachment::HYPERVISOR, &scratch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // 3. Two borrowers, with request-id idempotency.
  s = Attach(Vf(0), "n0", "vm0", v1::Attachment::AUTO, &a0, "req-a0");
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::Attachment again;
  ASSERT_TRUE(
      Attach(Vf(0), "n0", "vm0", v1::Attachment::AUTO, &again, "req-a0").ok());
  EXPECT_EQ(again.name(), a0.name());
  s = Attach(Vf(0), "n2", "vm2", v1::Attachment::AUTO, &scratch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("already lent to nodes/n0"));
  s = Attach(Vf(1), "n2", "vm2", v1::Attachment::HYPERVISOR, &a1);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(WaitState(a0.name(), v1::Attachment::READY));
  ASSERT_TRUE(WaitState(a1.name(), v1::Attachment::READY));
  // Three kinds of windows: MMIO per VF BAR (n0 -> n1), DMA and MSI-X
  // (n1 -> n0).
  std::map<std::string, v1::AttachmentWindow> windows;
  const v1::Attachment ready = Get(a0.name());
  for (const auto& w : ready.windows()) windows[w.role()] = w;
  ASSERT_EQ(windows.size(), 4u);
  EXPECT_EQ(windows["mmio-bar0"].from_node(), "n0");
  EXPECT_EQ(windows["mmio-bar0"].to_node(), "n1");
  EXPECT_EQ(windows["mmio-bar0"].size(), 64u << 10);
  EXPECT_EQ(windows["mmio-bar3"].size(), 16u << 10);
  EXPECT_EQ(windows["dma"].from_node(), "n1");
  EXPECT_EQ(windows["msix"].to_node(), "n0");

  // 4. Config space through the shadow device.
  auto id = Shadow(a0.name(), v1::AccessShadowRequest::READ, 0x00, 4);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->value(), kVendor | kVfDevice << 16);
  // BAR0 reads the borrower's address: its MMIO window.
  auto bar0 = Shadow(a0.name(), v1::AccessShadowRequest::READ, 0x10, 4);
  ASSERT_TRUE(bar0.ok());
  EXPECT_EQ(bar0->value() & ~0xfu,
            static_cast<uint32_t>(windows["mmio-bar0"].local_addr()));
  // Protected registers: dropped, counted, and the real VF unchanged.
  std::unique_ptr<agent::hw::SimSriovHost> lender = OpenLenderDevices();
  auto vf0 = agent::discovery::ParsePciAddress(Vf(0));
  ASSERT_TRUE(vf0.ok());
  auto real_before = lender->ConfigSpace(*vf0);
  ASSERT_TRUE(real_before.ok());
  auto w = Shadow(a0.name(), v1::AccessShadowRequest::WRITE, 0x00, 2, 0x1234);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->outcome(), v1::AccessShadowResponse::DROPPED);
  EXPECT_THAT(w->reason(), HasSubstr("vendor id is read-only"));
  w = Shadow(a0.name(), v1::AccessShadowRequest::WRITE, 0x10, 4, 0xdead0000);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->outcome(),
            v1::AccessShadowResponse::EMULATED);  // the borrower's view only
  EXPECT_EQ(*lender->ConfigSpace(*vf0), *real_before);
  // A forwarded write reaches the real VF: bus mastering.
  w = Shadow(a0.name(), v1::AccessShadowRequest::WRITE, 0x04, 2, 0x0004);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->outcome(), v1::AccessShadowResponse::FORWARDED);
  EXPECT_EQ(*lender->ConfigRead(*vf0, 0x04, 2) & 0x4u, 0x4u);
  // The shadow never reaches another function: a direct VfAccess to the
  // lender, as node n0, for a VF not lent to n0 is refused.
  {
    auto chan = tls_.DialAs(
        [&] {
          grpc::ClientContext ctx;
          v1::GetNodeRequest req;
          req.set_name("n1");
          v1::Node n;
          EXPECT_TRUE(stub_->GetNode(&ctx, req, &n).ok());
          return n.agent_address();
        }(),
        tls_.Node("n0"), security::PeerRequirement::Node("n1"));
    auto agent = agentproto::v1::NodeAgentService::NewStub(chan);
    grpc::ClientContext ctx;
    agentproto::v1::VfAccessRequest req;
    req.set_borrower("nodes/n0");
    req.set_vf_address(Vf(1));  // lent to n2
    req.set_op(agentproto::v1::VfAccessRequest::CONFIG_READ);
    req.set_size(4);
    agentproto::v1::VfAccessResponse resp;
    EXPECT_EQ(agent->VfAccess(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  // CPU writes by the borrower through its MMIO window cross the fabric and
  // land in the real VF's BAR0, byte for byte.
  {
    grpc::ClientContext nctx;
    v1::GetNodeRequest nreq;
    nreq.set_name("n0");
    v1::Node n0;
    ASSERT_TRUE(stub_->GetNode(&nctx, nreq, &n0).ok());
    auto borrower = agentproto::v1::NodeAgentService::NewStub(
        tls_.DialAgent(n0.agent_address(), "n0"));
    const std::string pattern = "fabric mmio write \x01\x02\xfe\xff";
    constexpr uint64_t kOffset = 0x200;
    grpc::ClientContext ctx;
    agentproto::v1::HostWriteRequest req;
    req.set_addr(windows["mmio-bar0"].local_addr() + kOffset);
    req.set_data(pattern);
    v1::AccessResult landed;
    grpc::Status ws = borrower->HostWrite(&ctx, req, &landed);
    ASSERT_TRUE(ws.ok()) << ws.error_message();
    EXPECT_TRUE(landed.landed()) << landed.reason();
    EXPECT_EQ(landed.node(), "n1");
    EXPECT_EQ(landed.addr(), windows["mmio-bar0"].target_addr() + kOffset);
    std::string in_bar(pattern.size(), '\0');
    ASSERT_TRUE(lender
                    ->MmioRead(*vf0, 0, kOffset,
                               absl::MakeSpan(
                                   reinterpret_cast<uint8_t*>(in_bar.data()),
                                   in_bar.size()))
                    .ok());
    EXPECT_EQ(in_bar, pattern);
    // Past the window (and the BAR): no grant covers it, so the borrower's
    // agent refuses it before its bridge would fault it.
    grpc::ClientContext over_ctx;
    req.set_addr(windows["mmio-bar0"].local_addr() +
                 windows["mmio-bar0"].size() - 4);
    v1::AccessResult over;
    grpc::Status over_status = borrower->HostWrite(&over_ctx, req, &over);
    EXPECT_EQ(over_status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << over_status.error_message();
  }
  // The borrower reports its shadow's counters with its heartbeats.
  v1::Attachment counted;
  // A heartbeat between the two writes reports only the drop: wait for both.
  WaitFor(
      [&] {
        counted = Get(a0.name());
        return counted.counters().config_writes_dropped() >= 1 &&
               counted.counters().config_writes_emulated() >= 1;
      },
      absl::Seconds(5));
  EXPECT_EQ(counted.counters().config_writes_dropped(), 1u);
  EXPECT_EQ(counted.counters().config_writes_emulated(), 1u);
  EXPECT_EQ(counted.counters().config_dropped_by_reason().count(
                "vendor id is read-only"),
            1u);

  // 5. The borrowers' drivers start the devices; DMA lands in their memory.
  for (const auto& att : {a0.name(), a1.name()}) {
    auto setup = Shadow(att, v1::AccessShadowRequest::DRIVER_SETUP, 0, 0);
    ASSERT_TRUE(setup.ok()) << setup.status();
    EXPECT_EQ(setup->value(), 4u);  // MSI-X vectors
    v1::VerifyResult r = VerifyDma(att);
    EXPECT_TRUE(r.ok()) << r.summary();
    EXPECT_GT(r.bytes_verified(), 0u);
  }

  // 6. Interrupts by mode. vm0 (AUTO) not running: via the hypervisor,
  // queued; then it runs: direct, no exits.
  v1::RaiseVfInterruptResponse r = Raise(a0.name(), 5);
  EXPECT_EQ(r.delivered_via_hypervisor(), 5);
  EXPECT_EQ(r.delivered_direct(), 0);
  hypervisor::v1::SetVmStateResponse entered;
  SetVm("n0", "vm0", true, &entered);
  EXPECT_EQ(entered.injected(), 1);  // five messages, one vector: coalesced
  r = Raise(a0.name(), 10);
  EXPECT_EQ(r.delivered_direct(), 10);
  EXPECT_EQ(r.counters().exits_avoided(), 10u);
  EXPECT_EQ(r.counters().delivered_via_hypervisor(), 5u);
  // vm2 runs, but its policy is HYPERVISOR: an exit per interrupt.
  SetVm("n2", "vm2", true);
  r = Raise(a1.name(), 7);
  EXPECT_EQ(r.delivered_via_hypervisor(), 7);
  EXPECT_EQ(r.counters().exits(), 7u);
  EXPECT_EQ(r.counters().exits_avoided(), 0u);
  // The counters are in the attachment, through the manager.
  WaitFor([&] { return Get(a0.name()).counters().delivered_direct() == 10; },
          absl::Seconds(5));
  EXPECT_EQ(Get(a0.name()).counters().delivered_direct(), 10u);

  // 7. Detach from n0 and lend the same VF to n2.
  ASSERT_TRUE(Detach(a0.name()).ok());
  v1::Attachment moved;
  s = Attach(Vf(0), "n2", "vm2", v1::Attachment::DIRECT, &moved);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(WaitState(moved.name(), v1::Attachment::READY));
  ASSERT_TRUE(
      Shadow(moved.name(), v1::AccessShadowRequest::DRIVER_SETUP, 0, 0).ok());
  EXPECT_TRUE(VerifyDma(moved.name()).ok());
  r = Raise(moved.name(), 3);
  EXPECT_EQ(r.delivered_direct(), 3);  // vm2 is running

  // 8. The lender's agent dies and comes back: the lent state returns.
  auto agent_address = [&] {
    grpc::ClientContext ctx;
    v1::GetNodeRequest req;
    req.set_name("n1");
    v1::Node n;
    EXPECT_TRUE(stub_->GetNode(&ctx, req, &n).ok());
    return n.agent_address();
  };
  const std::string old_address = agent_address();
  agents_[1]->Signal(SIGKILL);
  agents_[1]->Wait();
  agents_[1] = StartAgent(1);
  // The old address is dropped once the killed agent's stream ends; the
  // new agent registers its own.
  std::string new_address;
  WaitFor(
      [&] {
        new_address = agent_address();
        return !new_address.empty() && new_address != old_address;
      },
      absl::Seconds(10));
  ASSERT_NE(new_address, old_address);
  ASSERT_NE(new_address, "");
  ASSERT_TRUE(WaitNodeReady("n1"));
  ASSERT_TRUE(WaitState(moved.name(), v1::Attachment::READY));
  ASSERT_TRUE(WaitState(a1.name(), v1::Attachment::READY));
  // Command is read from the real VF, through the new lender agent: bus
  // mastering is still on, and the borrower's MSI-X table still maps.
  auto after = Shadow(moved.name(), v1::AccessShadowRequest::READ, 0x04, 2);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->value() & 0x4u, 0x4u);  // a VF's MSE reads 0
  r = Raise(moved.name(), 2);
  EXPECT_EQ(r.delivered_direct(), 2);
  EXPECT_TRUE(VerifyDma(moved.name()).ok());
  EXPECT_TRUE(VerifyDma(a1.name()).ok());

  // 9. A VF that fails is reported, and the borrower sees it.
  auto vf1 = agent::discovery::ParsePciAddress(Vf(1));
  ASSERT_TRUE(lender->SetFunctionFailed(*vf1, true).ok());
  ASSERT_TRUE(WaitState(a1.name(), v1::Attachment::DEGRADED));
  v1::Attachment sick = Get(a1.name());
  EXPECT_EQ(sick.vf_health(), v1::VirtualFunction::UNHEALTHY);
  EXPECT_THAT(sick.state_reason(), HasSubstr("unhealthy"));
  {
    grpc::ClientContext ctx;
    v1::GetVirtualFunctionRequest req;
    req.set_name("nodes/n1/vfs/0000-3b-02.1");
    v1::VirtualFunction v;
    ASSERT_TRUE(stub_->GetVirtualFunction(&ctx, req, &v).ok());
    EXPECT_EQ(v.health(), v1::VirtualFunction::UNHEALTHY);
    EXPECT_THAT(v.health_reason(), HasSubstr("vendor id reads 0xffff"));
    EXPECT_EQ(v.state(), v1::VirtualFunction::LENT);
    EXPECT_EQ(v.borrower(), "nodes/n2");
  }
  ASSERT_TRUE(lender->SetFunctionFailed(*vf1, false).ok());
  ASSERT_TRUE(WaitState(a1.name(), v1::Attachment::READY));

  // 10. Detach everything: no window is left on any bridge.
  ASSERT_TRUE(Detach(moved.name()).ok());
  ASSERT_TRUE(Detach(a1.name()).ok());
  grpc::ClientContext ctx;
  v1::ListAddressMapsRequest req;
  v1::ListAddressMapsResponse maps;
  ASSERT_TRUE(stub_->ListAddressMaps(&ctx, req, &maps).ok());
  for (const auto& m : maps.address_maps()) {
    EXPECT_EQ(m.windows_size(), 0) << m.name();
    EXPECT_EQ(m.inbound_size(), 0) << m.name();
  }
  EXPECT_EQ(ListVfs()[0].state(), v1::VirtualFunction::FREE);

  // 11. The pool follows sriov_numvfs without restarting anything: a lent
  // VF that disappears is reported, then 4 VFs come back.
  v1::Attachment held;
  ASSERT_TRUE(Attach(Vf(2), "n0", "", v1::Attachment::AUTO, &held).ok());
  ASSERT_TRUE(WaitState(held.name(), v1::Attachment::READY));
  auto pf = agent::discovery::ParsePciAddress(kPf);
  ASSERT_TRUE(pf.ok());
  ASSERT_TRUE(lender->SetNumVfs(*pf, 0).ok());
  ASSERT_TRUE(WaitState(held.name(), v1::Attachment::DEGRADED));
  EXPECT_THAT(Get(held.name()).state_reason(), HasSubstr("disappeared"));
  std::vector<v1::VirtualFunction> left;
  WaitFor(
      [&] {
        left = ListVfs();
        return left.size() == 1;
      },
      absl::Seconds(5));
  ASSERT_EQ(left.size(), 1u);  // only the lent one, flagged
  EXPECT_EQ(left[0].state(), v1::VirtualFunction::LENT);
  EXPECT_EQ(left[0].health(), v1::VirtualFunction::UNHEALTHY);
  ASSERT_TRUE(Detach(held.name()).ok());
  ASSERT_TRUE(lender->SetNumVfs(*pf, 4).ok());
  WaitFor(
      [&] {
        left = ListVfs();
        return left.size() == 4;
      },
      absl::Seconds(5));
  EXPECT_EQ(left.size(), 4u);
}

TEST_F(VfLendingTest, TheBorrowersAgentServesItsMetricsOverTls) {
  using agent::testing::Value;
  const int port = MetricsPort();
  ASSERT_GT(port, 0) << ReadFile(AgentLog(0));

  // A VF of n1 lent to n0's vm0; its shadow device read and driven.
  v1::Attachment a;
  grpc::Status s = Attach(Vf(0), "n0", "vm0", v1::Attachment::AUTO, &a);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(WaitState(a.name(), v1::Attachment::READY));
  ASSERT_TRUE(Shadow(a.name(), v1::AccessShadowRequest::READ, 0x00, 4).ok());
  ASSERT_TRUE(
      Shadow(a.name(), v1::AccessShadowRequest::DRIVER_SETUP, 0, 0).ok());
  // vm0 not running: two messages for one vector, queued as one and
  // injected by the hypervisor when it runs; then four direct, each
  // avoiding an exit.
  Raise(a.name(), 2);
  SetVm("n0", "vm0", true);
  Raise(a.name(), 4);

  agent::testing::Samples m = Scrape(port);
  EXPECT_GT(Value(m, "fabric_agent_apply_duration_seconds_count"), 0)
      << last_scrape_;
  EXPECT_GT(Value(m, "fabric_agent_applied_generation"), 0);
  EXPECT_EQ(Value(m, "fabric_agent_interrupts_total{mode=\"direct\"}"), 4)
      << last_scrape_;
  EXPECT_EQ(Value(m, "fabric_agent_interrupts_total{mode=\"hypervisor\"}"), 1);
  EXPECT_EQ(Value(m, "fabric_agent_vm_exits_avoided_total"), 4);
  EXPECT_EQ(Value(m,
                  "fabric_agent_shadow_accesses_total{op=\"read\",rule="
                  "\"vendor_id\"}"),
            1);
  double rpcs = 0;
  for (const auto& [series, value] : m) {
    if (series.rfind("fabric_agent_rpcs_total{", 0) == 0) rpcs += value;
  }
  EXPECT_GT(rpcs, 0) << last_scrape_;  // AccessShadow, ShadowInterrupt, ...
  EXPECT_EQ(Value(m, "fabric_agent_reconnects_total"), 0);
  absl::StatusOr<int> parsed =
      agent::testing::CheckWithPrometheusClient(last_scrape_);
  if (!absl::IsUnimplemented(parsed.status())) {
    EXPECT_TRUE(parsed.ok()) << parsed.status();
  }

  // The manager restarts where the agents expect it: n0's session is
  // re-established, and counted.
  const int manager_port = manager_->port;
  manager_->child.Signal(SIGKILL);
  manager_->child.Wait();
  manager_ = std::make_unique<Manager>(StartManagerAt(
      BinDir() + "/fabric-manager", manager_port, dir_.path() + "/fabric.db",
      dir_.path() + "/manager-2.log", manager_flags_));
  ASSERT_GT(manager_->port, 0) << ReadFile(dir_.path() + "/manager-2.log");
  EXPECT_TRUE(WaitFor(
      [&] { return Value(Scrape(port), "fabric_agent_reconnects_total") >= 1; },
      absl::Seconds(15)))
      << last_scrape_;
  if (absl::IsUnimplemented(parsed.status())) {
    GTEST_SKIP() << "not checked by prometheus_client: "
                 << parsed.status().message();
  }
}

// --http-listen is checked before anything starts: a port in use is a usage
// error, and the running n0 is left alone.
TEST_F(VfLendingTest, AMetricsAddressInUseIsAUsageError) {
  const int port = MetricsPort();
  ASSERT_GT(port, 0);
  std::vector<std::string> argv = {BinDir() + "/fabric-agent", "--manager",
                                   address_, "--node", "n0"};
  argv.insert(argv.end(),
              {"--backend", "sim", "--sim-dir", dir_.path() + "/sim"});
  argv.insert(argv.end(), {"--http-listen", absl::StrCat("127.0.0.1:", port)});
  for (std::string& flag : tls_.AgentFlags("n0")) argv.push_back(flag);
  std::string out, err;
  EXPECT_EQ(RunCommand(argv, &out, &err), 2);
  EXPECT_THAT(err, HasSubstr("--http-listen")) << err;
  EXPECT_TRUE(WaitNodeReady("n0"));
}

}  // namespace
}  // namespace fabric::proctest
