#include "tests/kubernetes/lending_fabric.h"

#include <signal.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace fabric::k8stest {

using ::fabric::proctest::BinDir;
using ::fabric::proctest::Child;
using ::fabric::proctest::WaitFor;

namespace {
constexpr uint64_t kMmioBase = 0x300'0000'0000ull;  // one_pf.json's default
constexpr uint64_t kMmioSize = 64ull << 30;
}  // namespace

absl::Status LendingFabric::Start(const std::string& dir) {
  dir_ = dir;
  std::vector<std::string> flags = tls_.ManagerFlags();
  flags.insert(flags.end(), {"--heartbeat-timeout", "600ms",
                             "--heartbeat-interval", "100ms"});
  manager_ = std::make_unique<proctest::Manager>(
      proctest::StartManager(dir_ + "/fabric.db", dir_ + "/manager.log",
                             flags));
  if (manager_->port <= 0) {
    return absl::UnavailableError("the manager did not start");
  }
  address_ = absl::StrCat("127.0.0.1:", manager_->port);
  admin_ = client::FabricClient::Connect(address_, tls_.Admin(), {});
  v1::CreateFabricRequest req;
  v1::FabricSpec* spec = req.mutable_spec();
  spec->set_name(kFabric);
  spec->set_topology(v1::RING);
  spec->set_default_export_size(64 << 20);
  for (int i = 0; i < 3; ++i) {
    v1::NodeSpec* n = spec->add_nodes();
    n->set_name(absl::StrCat("n", i));
    if (n->name() == kLender) {
      n->set_mmio_base(kMmioBase);
      n->set_mmio_size(kMmioSize);
    }
  }
  if (absl::Status s = admin_->CreateFabric(req).status(); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("CreateFabric: ", s.message()));
  }
  agents_.resize(3);
  for (int i = 0; i < 3; ++i) StartAgent(i);
  for (int i = 0; i < 3; ++i) {
    if (!WaitNodeReady(absl::StrCat("n", i))) {
      return absl::DeadlineExceededError(absl::StrCat("n", i, " not READY"));
    }
  }
  if (!WaitFor(
          [&] {
            absl::StatusOr<std::vector<v1::VirtualFunction>> vfs = Vfs();
            return vfs.ok() && vfs->size() == 8 &&
                   vfs->back().health() == v1::VirtualFunction::HEALTHY;
          },
          absl::Seconds(10))) {
    return absl::DeadlineExceededError("n1's 8 VFs not healthy");
  }
  return absl::OkStatus();
}

std::string LendingFabric::ManagerLog() const {
  return proctest::ReadFile(dir_ + "/manager.log");
}

void LendingFabric::KillAgent(int i) {
  agents_[i]->Signal(SIGKILL);
  agents_[i]->Wait();
}

void LendingFabric::StartAgent(int i) {
  const std::string node = absl::StrCat("n", i);
  std::vector<std::string> argv = {BinDir() + "/fabric-agent", "--manager",
                                   address_,  "--node", node, "--backend",
                                   "sim",     "--sim-dir", dir_ + "/sim"};
  for (std::string& flag : tls_.AgentFlags(node)) argv.push_back(flag);
  if (node == kLender) {
    argv.push_back("--sim-hardware");
    argv.push_back(std::string(FABRIC_SOURCE_DIR) +
                   "/agent/hw/sim/examples/one_pf.json");
  }
  agents_[i] = std::make_unique<Child>(
      argv, absl::StrCat(dir_, "/agent-", i, ".log"));
}

bool LendingFabric::WaitNodeReady(const std::string& node) {
  return WaitFor(
      [&] {
        absl::StatusOr<v1::Node> n = admin_->GetNode(node);
        return n.ok() && n->agent_state() == v1::Node::READY &&
               n->applied_generation() == n->desired_generation();
      },
      absl::Seconds(10));
}

absl::StatusOr<std::vector<v1::VirtualFunction>> LendingFabric::Vfs() {
  v1::ListVirtualFunctionsRequest req;
  req.set_node(kLender);
  return admin_->ListVirtualFunctions(req);
}

std::vector<v1::Attachment> LendingFabric::LiveAttachments(
    const std::string& owner) {
  v1::ListAttachmentsRequest req;
  req.set_owner(owner);
  absl::StatusOr<std::vector<v1::Attachment>> all =
      admin_->ListAttachments(req);
  EXPECT_TRUE(all.ok()) << all.status();
  std::vector<v1::Attachment> out;
  if (!all.ok()) return out;
  for (const v1::Attachment& a : *all) {
    if (a.state() != v1::Attachment::DETACHED) out.push_back(a);
  }
  return out;
}

std::vector<v1::Allocation> LendingFabric::LiveAllocations(
    const std::string& owner) {
  v1::ListAllocationsRequest req;
  req.set_owner(owner);
  absl::StatusOr<std::vector<v1::Allocation>> all =
      admin_->ListAllocations(req);
  EXPECT_TRUE(all.ok()) << all.status();
  std::vector<v1::Allocation> out;
  if (!all.ok()) return out;
  for (const v1::Allocation& a : *all) {
    if (a.state() != v1::Allocation::RELEASED) out.push_back(a);
  }
  return out;
}

}  // namespace fabric::k8stest
