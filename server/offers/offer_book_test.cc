#include "server/offers/offer_book.h"

#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::offers {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kChunk = 64 * kMiB;

// A ring n1..nN (link i joins n_i and n_{i+1}); lenders lend VFs and
// memory. Builds FabricViews the way OfferService does from the manager.
class World {
 public:
  explicit World(int nodes) : n_(nodes), link_up_(nodes, true) {
    for (int i = 1; i <= n_; ++i) up_[Name(i)] = true;
  }
  static std::string Name(int i) { return absl::StrCat("n", i); }

  void AddVfs(int lender, int count, int windows = 1) {
    for (int k = 0; k < count; ++k) {
      VfInfo vf;
      vf.lender = Name(lender);
      vf.address = absl::StrCat("0000:3b:02.", vfs_.size());
      vf.name = absl::StrCat("nodes/", vf.lender, "/vfs/", vf.address);
      vf.vendor_id = 0x8086;
      vf.device_id = 0x154c;
      vf.windows = windows;
      vfs_.push_back(vf);
    }
  }
  void AddMemory(int lender, uint64_t size) {
    MemoryInfo m;
    m.lender = Name(lender);
    m.export_base = uint64_t{1} << 32;
    m.export_size = size;
    memory_.push_back(m);
  }

  FabricView View() {
    FabricView v;
    for (int i = 1; i <= n_; ++i) {
      auto w = node_windows_.find(Name(i));
      v.nodes.push_back({Name(i), "f", up_[Name(i)],
                         w == node_windows_.end() ? windows_ : w->second});
    }
    v.vfs = vfs_;
    v.memory = memory_;
    for (MemoryInfo& m : v.memory) {
      for (const MemoryClaim& c : claims_) {
        if (c.lender == m.lender) m.used.push_back(used_.at(c.allocation));
      }
    }
    v.claims = claims_;
    // The ring's links that are up: link i joins n_{i+1} and the next node
    // (n1 after nN).
    for (int link = 0; link < n_; ++link) {
      if (!link_up_[link]) continue;
      const std::string a = Name(link + 1), b = Name((link + 1) % n_ + 1);
      v.adjacent[a].push_back(b);
      v.adjacent[b].push_back(a);
    }
    v.generation = ++generation_;
    v.freed_vfs = std::move(freed_vfs_);
    v.freed_lenders = std::move(freed_lenders_);
    freed_vfs_.clear();
    freed_lenders_.clear();
    return v;
  }

  // Claims and releases as the manager would record them.
  void Attach(size_t vf, const std::string& borrower, std::string owner) {
    vfs_[vf].borrower = borrower;
    vfs_[vf].attachment = absl::StrCat("attachments/a", ++names_);
    vfs_[vf].owner = std::move(owner);
  }
  void Detach(size_t vf) {
    freed_vfs_.insert(vfs_[vf].name);
    vfs_[vf].borrower.clear();
    vfs_[vf].attachment.clear();
    vfs_[vf].owner.clear();
  }
  std::string Allocate(const std::string& borrower, int lender,
                       std::string label = "") {
    // First fit at chunk-aligned addresses, as the manager would here.
    const MemoryInfo* m = nullptr;
    for (const MemoryInfo& x : memory_) {
      if (x.lender == Name(lender)) m = &x;
    }
    uint64_t addr = m->export_base;
    for (bool moved = true; moved;) {
      moved = false;
      for (const MemoryClaim& c : claims_) {
        if (c.lender == m->lender && used_.at(c.allocation).first == addr) {
          addr += kChunk;
          moved = true;
        }
      }
    }
    MemoryClaim c;
    c.allocation = absl::StrCat("allocations/m", ++names_);
    c.borrower = borrower;
    c.lender = Name(lender);
    c.owner = ConsumerOwner(borrower);
    c.size = kChunk;
    c.offer_label = std::move(label);
    used_[c.allocation] = {addr, kChunk};
    claims_.push_back(c);
    return c.allocation;
  }
  void Free(const std::string& allocation) {
    for (auto it = claims_.begin(); it != claims_.end(); ++it) {
      if (it->allocation == allocation) {
        freed_lenders_.insert(it->lender);
        claims_.erase(it);
        break;
      }
    }
    used_.erase(allocation);
  }

  int n_;
  std::vector<bool> link_up_;
  std::map<std::string, bool> up_;
  std::vector<VfInfo> vfs_;
  std::vector<MemoryInfo> memory_;
  std::vector<MemoryClaim> claims_;
  std::map<std::string, std::pair<uint64_t, uint64_t>> used_;
  int windows_ = 8;
  std::map<std::string, int> node_windows_;  // overrides windows_
  int64_t generation_ = int64_t{7} << 32;
  int names_ = 0;
  std::set<std::string> freed_vfs_;
  std::set<std::string> freed_lenders_;
};

std::vector<std::string> Ids(const v1::OfferSet& set, bool held = false) {
  std::vector<std::string> ids;
  for (const v1::Offer& o : set.offers()) {
    if (o.held() == held) ids.push_back(o.id());
  }
  return ids;
}

std::optional<v1::Offer> Find(const v1::OfferSet& set, const std::string& id) {
  for (const v1::Offer& o : set.offers()) {
    if (o.id() == id) return o;
  }
  return std::nullopt;
}

class OfferBookTest : public ::testing::Test {
 protected:
  OfferBookTest() : world_(6), book_(Options()) {}
  static OfferBookOptions Options() {
    OfferBookOptions o;
    o.withdrawal_grace = absl::Seconds(5);
    o.stream_grace = absl::Seconds(30);
    return o;
  }
  void Refresh() { book_.SetView(world_.View(), now_); }
  void Advance(absl::Duration d) {
    now_ += d;
    book_.Tick(now_);
  }
  std::string Vf(size_t i) {
    return VfOfferId(world_.vfs_[i].lender, world_.vfs_[i].address);
  }

  World world_;
  OfferBook book_;
  absl::Time now_ = absl::FromUnixSeconds(1000);
};

TEST(OfferIdTest, ShortIdsAreReadableLongOnesHashedAndStable) {
  EXPECT_EQ(VfOfferId("n3", "0000:3b:02.0"), "vf-n3-0000-3b-02.0");
  EXPECT_EQ(MemoryOfferId("N3", 7), "mem-n3-7");
  const std::string lender(80, 'x');
  const std::string a = VfOfferId(lender, "0000:3b:02.0");
  const std::string b = VfOfferId(lender, "0000:3b:02.1");
  EXPECT_LE(a.size(), 63u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, VfOfferId(lender, "0000:3b:02.0"));
  for (char c : a) {
    EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '-')
        << a;
  }
}

TEST_F(OfferBookTest, WatchValidatesItsRequest) {
  Refresh();
  EXPECT_EQ(book_.Watch("n1", 3000, now_).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(book_.Watch("n1", uint64_t{2} << 40, now_).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(book_.Watch("n9", 0, now_).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(book_.Watch("nodes/n1", kChunk, now_).ok());
  absl::Status mixed = book_.Watch("n2", 2 * kChunk, now_);
  EXPECT_EQ(mixed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(mixed.message(), HasSubstr("n1"));
}

TEST_F(OfferBookTest, OneWatcherGetsEveryReachableVfButTheLenderNone) {
  world_.AddVfs(3, 4);
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  ASSERT_TRUE(book_.Watch("n3", kChunk, now_).ok());
  EXPECT_THAT(Ids(book_.OffersFor("n1")),
              UnorderedElementsAreArray({Vf(0), Vf(1), Vf(2), Vf(3)}));
  EXPECT_THAT(Ids(book_.OffersFor("n3")), IsEmpty());
  const std::optional<v1::Offer> o = Find(book_.OffersFor("n1"), Vf(0));
  ASSERT_TRUE(o.has_value());
  EXPECT_TRUE(o->healthy());
  EXPECT_EQ(o->hops(), 2);
  EXPECT_EQ(o->lender(), "n3");
  EXPECT_EQ(o->vf().vf(), "nodes/n3/vfs/0000:3b:02.0");
  EXPECT_EQ(o->vf().vendor_id(), 0x8086u);
}

TEST_F(OfferBookTest, NewWatcherGetsItsShareOnlyAfterTheWithdrawalGrace) {
  world_.AddVfs(3, 4);
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  ASSERT_TRUE(book_.Watch("n4", kChunk, now_).ok());
  // Withdrawn from n1 at once, not yet n4's.
  EXPECT_EQ(Ids(book_.OffersFor("n1")).size(), 2u);
  EXPECT_THAT(Ids(book_.OffersFor("n4")), IsEmpty());
  std::string withdrawn;
  for (size_t i = 0; i < 4; ++i) {
    if (book_.InGraceOf(Vf(i)) == "n1") withdrawn = Vf(i);
  }
  ASSERT_FALSE(withdrawn.empty());
  Advance(absl::Seconds(4));
  EXPECT_THAT(Ids(book_.OffersFor("n4")), IsEmpty());
  Advance(absl::Seconds(1));
  EXPECT_EQ(Ids(book_.OffersFor("n1")).size(), 2u);
  EXPECT_EQ(Ids(book_.OffersFor("n4")).size(), 2u);
  EXPECT_EQ(book_.OfferedTo(withdrawn), "n4");
}

TEST_F(OfferBookTest, NearestWatcherGetsTheDevice) {
  world_.AddVfs(3, 1);
  world_.AddVfs(6, 1);
  Refresh();
  ASSERT_TRUE(book_.Watch("n2", kChunk, now_).ok());
  ASSERT_TRUE(book_.Watch("n5", kChunk, now_).ok());
  EXPECT_EQ(book_.InGraceOf(Vf(1)), "n2");  // n6 is nearer to n5
  Advance(absl::Seconds(5));
  EXPECT_EQ(book_.OfferedTo(Vf(0)), "n2");  // n3 is 1 hop from n2, 2 from n5
  EXPECT_EQ(book_.OfferedTo(Vf(1)), "n5");
}

TEST_F(OfferBookTest, ClaimsOfAnotherNodesOfferAreRefused) {
  world_.AddVfs(3, 4);
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  ASSERT_TRUE(book_.Watch("n4", kChunk, now_).ok());
  Advance(absl::Seconds(5));
  std::string of_n1, of_n4;
  size_t vf_n1 = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (book_.OfferedTo(Vf(i)) == "n1") of_n1 = Vf(i), vf_n1 = i;
    if (book_.OfferedTo(Vf(i)) == "n4") of_n4 = Vf(i);
  }
  const std::string vf = world_.vfs_[vf_n1].name;
  EXPECT_TRUE(book_.CheckVfClaim("n1", vf, /*consumer=*/true).ok());
  absl::Status s = book_.CheckVfClaim("n4", vf, true);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("node n1"));
  EXPECT_THAT(s.message(), HasSubstr(of_n1));
  // A scheduler's claim, even for n1 itself, of an offered VF: refused.
  EXPECT_EQ(book_.CheckVfClaim("n1", vf, false).code(),
            absl::StatusCode::kFailedPrecondition);
  // Nobody watches n6's VF: anyone may claim it.
  world_.AddVfs(6, 1);
  world_.link_up_[4] = world_.link_up_[5] = false;  // n6 cut off
  Refresh();
  EXPECT_TRUE(book_.CheckVfClaim("n2", world_.vfs_[4].name, false).ok());
}

TEST_F(OfferBookTest, FirstNodeMayClaimInsideTheWithdrawalGrace) {
  world_.AddVfs(3, 2);
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  ASSERT_TRUE(book_.Watch("n2", kChunk, now_).ok());
  size_t withdrawn = 2;
  for (size_t i = 0; i < 2; ++i) {
    if (book_.InGraceOf(Vf(i)) == "n1") withdrawn = i;
  }
  ASSERT_LT(withdrawn, 2u);
  const std::string name = world_.vfs_[withdrawn].name;
  EXPECT_EQ(book_.CheckVfClaim("n2", name, true).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(book_.CheckVfClaim("n1", name, true).ok());
  world_.Attach(withdrawn, "n1", "node/n1");
  Refresh();
  const std::optional<v1::Offer> held = Find(book_.OffersFor("n1"), Vf(withdrawn));
  ASSERT_TRUE(held.has_value());
  EXPECT_TRUE(held->held());
  EXPECT_EQ(held->attachment(), world_.vfs_[withdrawn].attachment);
  Advance(absl::Seconds(10));
  EXPECT_FALSE(Find(book_.OffersFor("n2"), Vf(withdrawn)).has_value());
}

TEST_F(OfferBookTest, HealthFollowsLenderPathAndVf) {
  world_.AddVfs(3, 2);
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  world_.link_up_[1] = false;  // n2-n3: n1 reaches n3 the long way round
  Refresh();
  EXPECT_EQ(Find(book_.OffersFor("n1"), Vf(0))->hops(), 4);
  world_.link_up_[4] = false;  // n5-n6: now cut off
  Refresh();
  const std::optional<v1::Offer> cut = Find(book_.OffersFor("n1"), Vf(0));
  ASSERT_TRUE(cut.has_value());
  EXPECT_FALSE(cut->healthy());
  EXPECT_THAT(cut->reason(), HasSubstr("path from n1 to n3 is cut"));
  world_.link_up_[1] = world_.link_up_[4] = true;
  world_.up_["n3"] = false;
  Refresh();
  EXPECT_THAT(Find(book_.OffersFor("n1"), Vf(0))->reason(),
              HasSubstr("lender n3 is down"));
  world_.up_["n3"] = true;
  world_.vfs_[1].healthy = false;
  world_.vfs_[1].health_reason = "vendor id reads 0xffff";
  Refresh();
  EXPECT_TRUE(Find(book_.OffersFor("n1"), Vf(0))->healthy());
  EXPECT_THAT(Find(book_.OffersFor("n1"), Vf(1))->reason(),
              HasSubstr("VF unhealthy: vendor id reads 0xffff"));
}

TEST_F(OfferBookTest, EpochChangesWhenFreedAgainAndNeverRepeats) {
  world_.AddVfs(3, 1);
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  const int64_t first = Find(book_.OffersFor("n1"), Vf(0))->epoch();
  Refresh();
  EXPECT_EQ(Find(book_.OffersFor("n1"), Vf(0))->epoch(), first);
  world_.Attach(0, "n1", "node/n1");
  Refresh();
  EXPECT_EQ(Find(book_.OffersFor("n1"), Vf(0))->epoch(), first);  // held
  world_.Detach(0);
  Refresh();
  const int64_t second = Find(book_.OffersFor("n1"), Vf(0))->epoch();
  EXPECT_GT(second, first);
  // Claimed and released between two views: the freed event still counts.
  world_.Attach(0, "n1", "node/n1");
  world_.Detach(0);
  Refresh();
  EXPECT_GT(Find(book_.OffersFor("n1"), Vf(0))->epoch(), second);
  // A new manager (a new book) reads a later generation: a later epoch.
  OfferBook restarted(Options());
  FabricView v = world_.View();
  restarted.SetView(v, now_);
  ASSERT_TRUE(restarted.Watch("n1", kChunk, now_).ok());
  EXPECT_GT(Find(restarted.OffersFor("n1"), Vf(0))->epoch(), second);
}

TEST_F(OfferBookTest, StreamEndKeepsOffersForTheGraceThenFreesThem) {
  world_.AddVfs(3, 2);
  Refresh();
  ASSERT_TRUE(book_.Watch("n2", kChunk, now_).ok());
  ASSERT_TRUE(book_.Watch("n4", kChunk, now_).ok());
  Advance(absl::Seconds(5));
  book_.Unwatch("n2", now_);
  std::string kept;
  for (size_t i = 0; i < 2; ++i) {
    if (book_.OfferedTo(Vf(i)) == "n2") kept = Vf(i);
  }
  ASSERT_FALSE(kept.empty());
  Advance(absl::Seconds(29));
  EXPECT_EQ(book_.OfferedTo(kept), "n2");
  // Back within the grace: the same offers.
  ASSERT_TRUE(book_.Watch("n2", kChunk, now_).ok());
  EXPECT_EQ(book_.OfferedTo(kept), "n2");
  book_.Unwatch("n2", now_);
  Advance(absl::Seconds(30));
  EXPECT_EQ(book_.OfferedTo(kept), "n4");
}

TEST_F(OfferBookTest, MemoryChunksAreLimitedByWindowsAndHeldByLabel) {
  world_.AddMemory(3, 8 * kChunk);
  world_.windows_ = 3;
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  std::vector<std::string> ids = Ids(book_.OffersFor("n1"));
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(Find(book_.OffersFor("n1"), ids[0])->memory().size(), kChunk);
  // The consumer claims mem-n3-2 by label: that id becomes held.
  ASSERT_TRUE(book_.CheckMemoryClaim("n1", "n3", kChunk, true).ok());
  const std::string a = world_.Allocate("n1", 3, MemoryOfferId("n3", 2));
  world_.windows_ = 2;
  Refresh();
  const std::optional<v1::Offer> held = Find(book_.OffersFor("n1"), MemoryOfferId("n3", 2));
  ASSERT_TRUE(held.has_value());
  EXPECT_TRUE(held->held());
  EXPECT_EQ(held->allocation(), a);
  EXPECT_EQ(Ids(book_.OffersFor("n1")).size(), 2u);
  // Another node's consumer may still claim the unoffered chunks; once
  // every free chunk is offered elsewhere it may not.
  EXPECT_TRUE(book_.CheckMemoryClaim("n2", "n3", kChunk, true).ok());
  world_.windows_ = 8;
  Refresh();
  absl::Status s = book_.CheckMemoryClaim("n2", "n3", kChunk, true);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("node n1"));
  world_.Free(a);
  Refresh();
  EXPECT_EQ(Ids(book_.OffersFor("n1"), /*held=*/true).size(), 0u);
  EXPECT_EQ(Ids(book_.OffersFor("n1")).size(), 8u);
}

TEST_F(OfferBookTest, ClaimsSeenTogetherEachKeepTheOfferTheirLabelNames) {
  world_.AddMemory(3, 8 * kChunk);
  world_.windows_ = 3;
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  const std::vector<std::string> offered = Ids(book_.OffersFor("n1"));
  ASSERT_EQ(offered.size(), 3u);
  // Two claims in one view, the one read first naming no offer: it must
  // not take the offer the second one names, though that is n1's lowest.
  const std::string first = world_.Allocate("n1", 3);
  const std::string second =
      world_.Allocate("n1", 3, MemoryOfferId("n3", 0));
  Refresh();
  const v1::OfferSet set = book_.OffersFor("n1");
  const std::optional<v1::Offer> named = Find(set, MemoryOfferId("n3", 0));
  ASSERT_TRUE(named.has_value());
  EXPECT_TRUE(named->held());
  EXPECT_EQ(named->allocation(), second);
  std::vector<std::string> held_by_first;
  for (const v1::Offer& o : set.offers()) {
    if (o.held() && o.allocation() == first) held_by_first.push_back(o.id());
  }
  EXPECT_EQ(held_by_first.size(), 1u);

  // A new book (a manager restart or takeover) lists the named claim under
  // the same id.
  OfferBook restarted(Options());
  restarted.SetView(world_.View(), now_);
  ASSERT_TRUE(restarted.Watch("n1", kChunk, now_).ok());
  const std::optional<v1::Offer> again =
      Find(restarted.OffersFor("n1"), MemoryOfferId("n3", 0));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->allocation(), second);
}

TEST_F(OfferBookTest, AnotherNodesClaimTakesAChunkOfferedToNobody) {
  world_.AddMemory(3, 8 * kChunk);
  world_.node_windows_["n1"] = 3;
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  const std::vector<std::string> before = Ids(book_.OffersFor("n1"));
  ASSERT_EQ(before.size(), 3u);
  // n2 watches nothing: its consumer's claim takes an unoffered chunk, and
  // n1's offers keep their ids.
  ASSERT_TRUE(book_.CheckMemoryClaim("n2", "n3", kChunk, true).ok());
  const std::string a = world_.Allocate("n2", 3);
  Refresh();
  EXPECT_EQ(Ids(book_.OffersFor("n1")), before);
  const std::optional<v1::Offer> held =
      Find(book_.OffersFor("n2"), MemoryOfferId("n3", 3));
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->allocation(), a);
}

TEST_F(OfferBookTest, VfOffersFitTheLendersWindowsAndTheBorrowers) {
  // Each attachment takes two windows of its lender: 8 windows lend 4.
  world_.AddVfs(3, 6);
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  EXPECT_EQ(Ids(book_.OffersFor("n1")).size(), 4u);
  // A second watcher shares those 4; the lender has no windows for more.
  ASSERT_TRUE(book_.Watch("n5", kChunk, now_).ok());
  Advance(absl::Seconds(5));
  EXPECT_EQ(Ids(book_.OffersFor("n1")).size(), 2u);
  EXPECT_EQ(Ids(book_.OffersFor("n5")).size(), 2u);
  // And a borrower's bridge: VFs of three BARs take three windows each.
  OfferBook book(Options());
  World world(6);
  world.AddVfs(3, 4, /*windows=*/3);
  world.node_windows_["n1"] = 7;
  book.SetView(world.View(), now_);
  ASSERT_TRUE(book.Watch("n1", kChunk, now_).ok());
  EXPECT_EQ(Ids(book.OffersFor("n1")).size(), 2u);
}

TEST_F(OfferBookTest, PoolsShareTheBorrowersWindows) {
  world_.AddVfs(3, 4);
  world_.AddMemory(5, 8 * kChunk);
  world_.node_windows_["n1"] = 5;
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  int vfs = 0, chunks = 0;
  const v1::OfferSet set = book_.OffersFor("n1");
  for (const v1::Offer& o : set.offers()) {
    (o.has_vf() ? vfs : chunks) += 1;
  }
  EXPECT_EQ(vfs + chunks, 5);
  EXPECT_GE(vfs, 2);
  EXPECT_GE(chunks, 2);
}

TEST_F(OfferBookTest, OffersOverFreeWindowsAreWithdrawnToNobody) {
  world_.AddVfs(3, 4);
  Refresh();
  ASSERT_TRUE(book_.Watch("n1", kChunk, now_).ok());
  ASSERT_EQ(Ids(book_.OffersFor("n1")).size(), 4u);
  // Someone else's claims take half of n3's windows: two offers go, to
  // nobody, and are offered to no other node inside the grace.
  world_.node_windows_["n3"] = 4;
  Refresh();
  EXPECT_EQ(Ids(book_.OffersFor("n1")).size(), 2u);
  std::vector<std::string> withdrawn;
  for (size_t i = 0; i < 4; ++i) {
    if (book_.InGraceOf(Vf(i)) == "n1") withdrawn.push_back(Vf(i));
  }
  ASSERT_EQ(withdrawn.size(), 2u);
  ASSERT_TRUE(book_.Watch("n5", kChunk, now_).ok());
  world_.node_windows_["n3"] = 8;
  Refresh();
  Advance(absl::Seconds(4));
  for (const std::string& id : withdrawn) {
    EXPECT_EQ(book_.OfferedTo(id), "") << id;
    EXPECT_EQ(book_.InGraceOf(id), "n1") << id;
  }
  EXPECT_THAT(Ids(book_.OffersFor("n5")), IsEmpty());
  // After it, with the windows back, all four are offered again, shared.
  Advance(absl::Seconds(1));
  for (const std::string& id : withdrawn) {
    EXPECT_NE(book_.OfferedTo(id), "") << id;
  }
  EXPECT_EQ(Ids(book_.OffersFor("n1")).size(), 2u);
  EXPECT_EQ(Ids(book_.OffersFor("n5")).size(), 2u);
}

// Over random sequences of watch, unwatch, claim, release, link and lender
// changes, and of free windows: no device is ever in two nodes' offer
// sets, the offers never need more windows than a bridge has free, and an
// offer taken from a watching node reaches another node only after the
// withdrawal grace.
TEST(OfferBookPropertyTest, NeverOfferedTwiceNorBeforeTheGrace) {
  const absl::Duration grace = absl::Seconds(5);
  for (int seed = 1; seed <= 40; ++seed) {
    std::mt19937 rng(seed);
    World world(6);
    world.AddVfs(3, 5);
    world.AddVfs(6, 3, /*windows=*/2);
    world.AddMemory(3, 6 * kChunk);
    world.AddMemory(6, 4 * kChunk);
    OfferBookOptions options;
    options.withdrawal_grace = grace;
    options.stream_grace = absl::Seconds(8);
    OfferBook book(options);
    absl::Time now = absl::FromUnixSeconds(1000);
    book.SetView(world.View(), now);
    std::map<std::string, int> streams;
    std::vector<std::string> allocations;
    // id -> (node, when) it last left a watching node's set while free.
    std::map<std::string, std::pair<std::string, absl::Time>> left;
    std::map<std::string, std::set<std::string>> before;  // node -> ids
    auto pick = [&](int n) { return static_cast<int>(rng() % n); };
    for (int step = 0; step < 300; ++step) {
      const std::string node = World::Name(1 + pick(6));
      const int action = pick(9);
      switch (action) {
        case 0:
          if (book.Watch(node, kChunk, now).ok()) ++streams[node];
          break;
        case 1:
          if (streams[node] > 0) {
            --streams[node];
            book.Unwatch(node, now);
          }
          break;
        case 2: {  // a consumer claims one of its offers (or any VF)
          const size_t vf = pick(static_cast<int>(world.vfs_.size()));
          const bool consumer = pick(4) != 0;
          if (world.vfs_[vf].borrower.empty() &&
              world.vfs_[vf].lender != node &&
              book.CheckVfClaim(node, world.vfs_[vf].name, consumer).ok()) {
            const std::string id =
                VfOfferId(world.vfs_[vf].lender, world.vfs_[vf].address);
            for (const auto& [other, ids] : before) {
              if (other != node && ids.count(id)) {
                ADD_FAILURE() << "seed " << seed << ": " << node
                              << " claimed " << id << " offered to " << other;
              }
            }
            world.Attach(vf, node, consumer ? ConsumerOwner(node) : "user/s");
            book.SetView(world.View(), now);
          }
          break;
        }
        case 3: {
          const int lender = pick(2) == 0 ? 3 : 6;
          if (World::Name(lender) != node &&
              book.CheckMemoryClaim(node, World::Name(lender), kChunk, true)
                  .ok()) {
            allocations.push_back(world.Allocate(node, lender));
            book.SetView(world.View(), now);
          }
          break;
        }
        case 4: {  // a release
          const size_t vf = pick(static_cast<int>(world.vfs_.size()));
          if (!world.vfs_[vf].borrower.empty()) world.Detach(vf);
          if (!allocations.empty() && pick(2) == 0) {
            const size_t i = pick(static_cast<int>(allocations.size()));
            world.Free(allocations[i]);
            allocations.erase(allocations.begin() + i);
          }
          book.SetView(world.View(), now);
          break;
        }
        case 5: {
          const int link = pick(6);
          world.link_up_[link] = !world.link_up_[link];
          book.SetView(world.View(), now);
          break;
        }
        case 6:
          world.up_[node] = !world.up_[node];
          book.SetView(world.View(), now);
          break;
        case 7:  // claims by others take windows, or free them
          world.node_windows_[node] = pick(9);
          book.SetView(world.View(), now);
          break;
        default:
          now += absl::Milliseconds(pick(3000));
          book.Tick(now);
      }
      // Every node's set, as its stream would send it.
      std::map<std::string, std::string> owner_of;  // id -> node
      std::map<std::string, std::set<std::string>> after;
      std::map<std::string, int> windows;  // what claiming every offer takes
      for (int i = 1; i <= 6; ++i) {
        const std::string n = World::Name(i);
        const v1::OfferSet set = book.OffersFor(n);
        for (const v1::Offer& o : set.offers()) {
          if (o.held()) continue;
          if (!o.has_vf()) {
            ++windows[n];
            continue;
          }
          for (const VfInfo& vf : world.vfs_) {
            if (vf.name == o.vf().vf()) windows[n] += vf.windows;
          }
          windows[o.lender()] += 2;
        }
      }
      for (int i = 1; i <= 6; ++i) {
        const std::string n = World::Name(i);
        const auto w = world.node_windows_.find(n);
        ASSERT_LE(windows[n], w == world.node_windows_.end() ? world.windows_
                                                             : w->second)
            << "seed " << seed << " step " << step << ": " << n;
      }
      for (int i = 1; i <= 6; ++i) {
        const std::string n = World::Name(i);
        const v1::OfferSet set = book.OffersFor(n);
        for (const v1::Offer& o : set.offers()) {
          auto [it, fresh] = owner_of.emplace(o.id(), n);
          ASSERT_TRUE(fresh) << "seed " << seed << " step " << step << ": "
                             << o.id() << " offered to " << it->second
                             << " and " << n;
          if (!o.held()) after[n].insert(o.id());
        }
      }
      for (const auto& [n, ids] : before) {
        for (const std::string& id : ids) {
          // Taken from a watching node while still free: withdrawn. (A
          // memory id that merely ceased to exist, the lender's free
          // memory having shrunk, is not an offer any more.)
          if (after[n].count(id) || streams[n] == 0 || owner_of.count(id)) {
            continue;
          }
          bool free = book.InGraceOf(id) == n;
          for (const VfInfo& vf : world.vfs_) {
            if (VfOfferId(vf.lender, vf.address) == id) {
              free = vf.borrower.empty();
            }
          }
          if (free) left[id] = {n, now};
        }
      }
      for (const auto& [n, ids] : after) {
        for (const std::string& id : ids) {
          auto l = left.find(id);
          if (l == left.end() || l->second.first == n) continue;
          // Allowed only after the grace (or once the device was claimed
          // and freed again, which clears `left` below).
          ASSERT_GE(now, l->second.second + grace)
              << "seed " << seed << " step " << step << ": " << id
              << " moved from " << l->second.first << " to " << n;
        }
      }
      // A device claimed since (held by a node now) is no longer a
      // withdrawn offer; neither is one whose grace is over, nor a memory
      // chunk that ceased to exist (its lender's free memory shrank: in no
      // set and in nobody's grace), which is a new offer if it comes back.
      for (auto it = left.begin(); it != left.end();) {
        const bool held = owner_of.count(it->first) &&
                          !after[owner_of[it->first]].count(it->first);
        const bool gone = it->first.rfind("mem-", 0) == 0 &&
                          !owner_of.count(it->first) &&
                          book.InGraceOf(it->first).empty();
        it = !held && !gone && it->second.second + grace > now
                 ? std::next(it)
                 : left.erase(it);
      }
      before = std::move(after);
    }
  }
}

}  // namespace
}  // namespace fabric::offers
