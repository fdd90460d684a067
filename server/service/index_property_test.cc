// Property test of the manager's indexes (lease indexes by fabric and node,
// committed counts, the lease expiry and heartbeat queues): random
// allocations, releases, link flaps, attachments, detachments, expiries
// and restarts, and after each step every index agrees with a scan
// (FabricManager::CheckIndexes), and what the views derive from them
// (lent bytes, allocation counts, lists by node, pages) agrees with sums
// over the full lists. Also: every node whose desired configuration a step
// changed was named by that step's generations (ManagerState::
// BumpGeneration(nodes)).
#include <map>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/service/manager.h"
#include "server/service/manager_test_util.h"

namespace fabric::service {
namespace {

constexpr int kNodes = 6;
constexpr char kFabric[] = "fabrics/p";

class IndexPropertyTest : public ManagerTest {
 protected:
  std::string Node(int i) { return absl::StrCat("n", i); }

  // Every agent registers (n1 lends VFs) and applies the current
  // generation, reporting every shadow device ready.
  void AgentsReport() {
    for (int i = 0; i < kNodes; ++i) {
      agentproto::v1::RegisterNodeRequest reg;
      reg.set_node(Node(i));
      if (i == 1) *reg.mutable_inventory() = LenderInventory();
      auto r = manager_->RegisterNode(reg);
      ASSERT_TRUE(r.ok()) << r.status();
    }
    auto all = AllAttachments();
    for (int i = 0; i < kNodes; ++i) {
      auto cfg = manager_->DesiredConfigFor(Node(i));
      ASSERT_TRUE(cfg.ok()) << cfg.status();
      agentproto::v1::ReportStatusRequest rep;
      rep.set_node(Node(i));
      rep.set_applied_generation(cfg->generation());
      for (const auto& a : all) {
        if (a.borrower() != NodeName(Node(i))) continue;
        auto* sh = rep.add_shadows();
        sh->set_attachment(a.name());
        sh->set_ready(true);
      }
      ASSERT_TRUE(manager_->ReportStatus(rep).ok());
    }
  }
  static std::string NodeName(const std::string& id) {
    return absl::StrCat("nodes/", id);
  }

  // Every page of a list, walked with `page_size`.
  template <typename Resp, typename Req, typename ListFn, typename ItemsFn>
  auto WalkPages(Req req, int page_size, ListFn list, ItemsFn items) {
    std::vector<std::decay_t<decltype(*items(Resp()).begin())>> out;
    req.set_page_size(page_size);
    do {
      absl::StatusOr<Resp> r = list(req);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) break;
      for (const auto& x : items(*r)) out.push_back(x);
      req.set_page_token(r->next_page_token());
    } while (!req.page_token().empty());
    return out;
  }
  std::vector<v1::Allocation> AllAllocations(v1::ListAllocationsRequest req = {},
                                             int page_size = 1000) {
    return WalkPages<v1::ListAllocationsResponse>(
        req, page_size,
        [&](const auto& r) { return manager_->ListAllocations(r); },
        [](const auto& r) { return r.allocations(); });
  }
  std::vector<v1::Attachment> AllAttachments(v1::ListAttachmentsRequest req = {},
                                             int page_size = 1000) {
    return WalkPages<v1::ListAttachmentsResponse>(
        req, page_size,
        [&](const auto& r) { return manager_->ListAttachments(r); },
        [](const auto& r) { return r.attachments(); });
  }

  template <typename Items>
  static std::vector<std::string> Names(const Items& items) {
    std::vector<std::string> out;
    for (const auto& x : items) out.push_back(x.name());
    return out;
  }

  // The indexes agree with scans, and the views with sums over the lists.
  void CheckAll(int step) {
    SCOPED_TRACE(absl::StrCat("after step ", step));
    ASSERT_TRUE(manager_->CheckIndexes().ok()) << manager_->CheckIndexes();
    ASSERT_TRUE(manager_->CheckInvariants().ok())
        << manager_->CheckInvariants();
    const std::vector<v1::Allocation> allocations = AllAllocations();
    const std::vector<v1::Attachment> attachments = AllAttachments();
    // Small pages walk the same list.
    EXPECT_EQ(Names(AllAllocations({}, 3)), Names(allocations));
    EXPECT_EQ(Names(AllAttachments({}, 1)), Names(attachments));
    auto fabric = manager_->GetFabric(kFabric);
    ASSERT_TRUE(fabric.ok());
    EXPECT_EQ(fabric->allocation_count(),
              static_cast<int>(allocations.size()));
    std::map<std::string, uint64_t> lent;
    for (const auto& a : allocations) lent[a.target()] += a.size();
    v1::ListNodesRequest ln;
    const auto nodes = WalkPages<v1::ListNodesResponse>(
        ln, 4, [&](const auto& r) { return manager_->ListNodes(r); },
        [](const auto& r) { return r.nodes(); });
    ASSERT_EQ(nodes.size(), static_cast<size_t>(kNodes));
    for (const auto& n : nodes) {
      EXPECT_EQ(n.lent_bytes(), lent[n.name()]) << n.name();
      std::vector<std::string> want;
      for (const auto& a : allocations) {
        if (a.borrower() == n.name() || a.target() == n.name()) {
          want.push_back(a.name());
        }
      }
      v1::ListAllocationsRequest by_node;
      by_node.set_node(n.name());
      EXPECT_EQ(Names(AllAllocations(by_node, 2)), want) << n.name();
      want.clear();
      for (const auto& a : attachments) {
        if (a.lender() == n.name() || a.borrower() == n.name()) {
          want.push_back(a.name());
        }
      }
      v1::ListAttachmentsRequest att_by_node;
      att_by_node.set_node(n.name());
      EXPECT_EQ(Names(AllAttachments(att_by_node, 2)), want) << n.name();
    }
    // The VFs lent are those attached.
    v1::ListVirtualFunctionsRequest lv;
    auto vfs = manager_->ListVirtualFunctions(lv);
    ASSERT_TRUE(vfs.ok());
    size_t lent_vfs = 0;
    for (const auto& v : vfs->virtual_functions()) {
      lent_vfs += v.state() == v1::VirtualFunction::LENT;
    }
    EXPECT_EQ(lent_vfs, attachments.size());
  }

  // What each node is wanted to hold now (ConfigContent), and the
  // generation.
  std::map<std::string, std::string> Wanted(int64_t* generation) {
    std::map<std::string, std::string> out;
    for (int i = 0; i < kNodes; ++i) {
      auto cfg = manager_->DesiredConfigFor(Node(i));
      EXPECT_TRUE(cfg.ok()) << cfg.status();
      if (!cfg.ok()) continue;
      *generation = cfg->generation();
      out[Node(i)] = ConfigContent(&*cfg);
    }
    return out;
  }

  // Every node whose configuration changed since `before` (of generation
  // `generation`) was named by a generation since (ConfigChangedAt): a
  // commit that names too few leaves an agent with an old configuration.
  // Counts in *unnamed the nodes that were not named while the generation
  // moved on (what the targeted generations save).
  void CheckChangesNamed(const std::map<std::string, std::string>& before,
                         int64_t generation, int step, int* unnamed) {
    int64_t now = 0;
    const std::map<std::string, std::string> after = Wanted(&now);
    for (const auto& [node, content] : after) {
      if (manager_->ConfigChangedAt(node) > generation) continue;
      EXPECT_EQ(content, before.at(node))
          << "step " << step << ": the configuration of " << node
          << " changed in a generation that did not name it";
      if (now > generation) ++*unnamed;
    }
  }
};

TEST_F(IndexPropertyTest, IndexesAgreeWithScansAfterRandomOperations) {
  v1::CreateFabricRequest fabric = RingRequest("p", kNodes);
  fabric.mutable_spec()->mutable_nodes(1)->set_mmio_base(kMmio);
  fabric.mutable_spec()->mutable_nodes(1)->set_mmio_size(1ull << 30);
  ASSERT_TRUE(manager_->CreateFabric(fabric).ok());
  AgentsReport();
  auto listed = manager_->ListLinks({});
  ASSERT_TRUE(listed.ok());
  std::vector<std::string> links;
  for (const auto& l : listed->links()) links.push_back(l.name());

  absl::BitGen gen;
  std::map<std::string, int> done;  // operation -> successes
  int unnamed = 0;
  for (int step = 0; step < 400; ++step) {
    int64_t generation = 0;
    const std::map<std::string, std::string> wanted = Wanted(&generation);
    // The first two steps attach and detach, while every link is up and
    // every agent ready: a random walk could meet neither (links down and
    // agents silent refuse every attach; it did, 2 runs in 400).
    const int op = step == 0   ? 63
                   : step == 1 ? 73
                               : absl::Uniform(gen, 0, 100);
    if (op < 35) {  // allocate, some with a lease
      const int from = absl::Uniform(gen, 0, kNodes);
      const int to = (from + absl::Uniform(gen, 1, kNodes)) % kNodes;
      auto req = AllocRequest(Node(from), Node(to),
                              uint64_t{1} << absl::Uniform(gen, 20, 23));
      if (absl::Bernoulli(gen, 0.4)) {
        req.mutable_allocation()->mutable_ttl()->set_seconds(
            absl::Uniform(gen, 1, 30));
      }
      done["allocate"] += manager_->CreateAllocation(req).ok();
    } else if (op < 55) {  // release
      auto all = AllAllocations();
      if (all.empty()) continue;
      v1::DeleteAllocationRequest del;
      del.set_name(all[absl::Uniform<size_t>(gen, 0, all.size())].name());
      done["release"] += manager_->DeleteAllocation(del).ok();
    } else if (op < 63) {  // link flap
      v1::SetLinkStateRequest set;
      set.set_name(links[absl::Uniform<size_t>(gen, 0, links.size())]);
      set.set_up(absl::Bernoulli(gen, 0.5));
      done["link"] += manager_->SetLinkState(set).ok();
    } else if (op < 73) {  // attach
      const std::string vf =
          absl::StrCat("n1/0000:3b:02.", absl::Uniform(gen, 0, 4));
      int to = absl::Uniform(gen, 0, kNodes - 1);
      if (to >= 1) ++to;  // not the lender
      done["attach"] += manager_->CreateAttachment(AttachRequest(vf, Node(to))).ok();
    } else if (op < 80) {  // detach
      auto all = AllAttachments();
      if (all.empty()) continue;
      v1::DeleteAttachmentRequest del;
      del.set_name(all[absl::Uniform<size_t>(gen, 0, all.size())].name());
      done["detach"] += manager_->DeleteAttachment(del).ok();
    } else if (op < 90) {  // time passes: leases expire, agents go silent
      clock_.Advance(absl::Seconds(absl::Uniform(gen, 0, 8)));
      manager_->Sweep();
      ++done["sweep"];
    } else if (op < 96) {  // agents report (and register again)
      AgentsReport();
      ++done["report"];
    } else {  // restart on the same store
      Reopen();
      ++done["restart"];
    }
    CheckAll(step);
    if (HasFatalFailure()) return;
    CheckChangesNamed(wanted, generation, step, &unnamed);
  }
  EXPECT_GT(unnamed, 0) << "no generation left a node out";
  // The random walk did each kind of operation.
  for (const char* op : {"allocate", "release", "link", "attach", "detach",
                         "sweep", "report", "restart"}) {
    EXPECT_GT(done[op], 0) << op;
  }
}

TEST_F(IndexPropertyTest, ExpiredLeasesAreReleasedAndOthersKept) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("p", 4)).ok());
  auto req = AllocRequest("n0", "n1", 1 << 20);
  req.mutable_allocation()->mutable_ttl()->set_seconds(10);
  auto short_lease = manager_->CreateAllocation(req);
  ASSERT_TRUE(short_lease.ok());
  req.mutable_allocation()->mutable_ttl()->set_seconds(100);
  auto long_lease = manager_->CreateAllocation(req);
  ASSERT_TRUE(long_lease.ok());
  auto forever = manager_->CreateAllocation(AllocRequest("n2", "n3", 1 << 20));
  ASSERT_TRUE(forever.ok());

  clock_.Advance(absl::Seconds(9));
  manager_->Sweep();
  EXPECT_EQ(AllAllocations().size(), 3u);
  clock_.Advance(absl::Seconds(1));  // expire_time == now: due
  manager_->Sweep();
  EXPECT_EQ(Names(AllAllocations()).size(), 2u);
  EXPECT_FALSE(manager_->GetAllocation(short_lease->name()).ok());
  ASSERT_TRUE(manager_->CheckIndexes().ok()) << manager_->CheckIndexes();

  // A restart restores the timer of the lease that is left.
  Reopen();
  ASSERT_TRUE(manager_->CheckIndexes().ok()) << manager_->CheckIndexes();
  clock_.Advance(absl::Seconds(100));
  manager_->Sweep();
  EXPECT_EQ(Names(AllAllocations()),
            std::vector<std::string>{forever->name()});
}

TEST_F(IndexPropertyTest, ALeaseWhoseReleaseFailsIsRetriedNextSweep) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("p", 4)).ok());
  auto req = AllocRequest("n0", "n1", 1 << 20);
  req.mutable_allocation()->mutable_ttl()->set_seconds(5);
  ASSERT_TRUE(manager_->CreateAllocation(req).ok());
  clock_.Advance(absl::Seconds(6));
  store_->FailWrites(absl::UnavailableError("disk gone"));
  manager_->Sweep();
  EXPECT_EQ(AllAllocations().size(), 1u);
  ASSERT_TRUE(manager_->CheckIndexes().ok()) << manager_->CheckIndexes();
  store_->Heal();
  manager_->Sweep();
  EXPECT_TRUE(AllAllocations().empty());
}

}  // namespace
}  // namespace fabric::service
