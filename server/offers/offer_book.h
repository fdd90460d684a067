// OfferBook: which free device (VF or memory chunk) is offered to which node
// (issue 15; the contract is proto/fabric/v1/offers.proto).
//
// The book is pure: it is told the fabric as a FabricView (SetView), which
// nodes hold an open WatchOffers stream (Watch / Unwatch) and the time, and
// it answers each node's OfferSet and whether a claim may proceed.
//
// Policy ("Offers" in README.md):
//   - A free device is offered to at most one node at a time. Only watching
//     nodes of the device's fabric that reach its lender over links that are
//     up (and are not the lender) may receive it.
//   - Devices are pooled by kind (one pool per VF vendor:device, one for
//     memory). Unassigned devices go, one at a time, to the eligible node
//     with the fewest offers of that pool (fair share), which takes its
//     nearest device (fewest hops, then the least loaded lender, then id).
//   - When demand changes (a node claims offers, a node starts or stops
//     watching) the pools are rebalanced: while a node has at least two
//     offers more of a pool than another node that could use one of them,
//     one of its offers is withdrawn: it leaves its node's set at once, and
//     is given to the other node only after `withdrawal_grace`. Inside that
//     grace only the first node may claim it.
//   - When a node's last stream ends, its offers stay its own (claimable,
//     given to nobody else) for `stream_grace`, then return to the pool.
//   - An offer whose lender goes down or whose path is cut stays with its
//     node, Unhealthy with a reason, until the node stops watching.
//   - Windows: every offer can be claimed at once. Claiming takes direct
//     windows of bridges: a memory chunk one of its borrower's, a VF one of
//     its borrower's per BAR (VfInfo::windows) and two of its lender's (the
//     DMA and MSI-X windows). A device is offered only while the windows
//     its claim takes are free on both bridges after every offer already
//     counted there (NodeInfo::free_windows). The pools share them: each
//     next offer goes to the pool and node with the fewest offers. When free windows shrink (a claim by someone else),
//     offers over the budget are withdrawn to nobody: they leave the set at
//     once and are offered again after `withdrawal_grace`. (A DMA grant may
//     also fit in lookup-table slots, but the manager takes a free window
//     first, so windows are what a claim takes.)
//   - Memory: one chunk size per fabric (the first watching stream's; a
//     stream asking another one is FAILED_PRECONDITION while it lasts). A
//     lender's free export memory counts as many chunks as fit in it at
//     chunk-aligned addresses (at most 256). The manager places an
//     allocation first fit, so chunks are capacity, not addresses: a claim
//     of memory on a lender takes the node's offer named by the
//     allocation's label kOfferLabel when it has one, else its
//     lowest-numbered one there, else (a claim of a chunk offered to
//     nobody) the lowest-numbered chunk offered to nobody. A consumer
//     holding a chunk on a lender may claim there again (a retried claim
//     must get its original answer).
//   - Claims by a node's consumer (owner "node/<n>") are allowed on the
//     node's own offers (also in their withdrawal or stream grace) and on
//     devices offered to nobody. Claims by anyone else (schedulers, admins)
//     are allowed only on devices offered to nobody and in no grace, so no
//     device is ever offered to one node while another claims it.
//
// Epochs: an offer's epoch is the manager's configuration generation
// (FabricView::generation: epoch << 32 | counter, persisted, never reused
// across restarts and takeovers) read when the book saw the device become
// free, and at least one more than its previous epoch. A device freed and
// claimed again between two views is caught by FabricView::freed, which
// the caller fills from the Watch events (DELETED attachments and
// allocations), so its epoch still changes.
//
// Not thread-safe: the owner (OfferService) serializes calls.
#ifndef FABRIC_SERVER_OFFERS_OFFER_BOOK_H_
#define FABRIC_SERVER_OFFERS_OFFER_BOOK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/offer_label.h"
#include "fabric/v1/offers.pb.h"

namespace fabric::offers {

// The label a consumer puts on a memory claim to name the offer it takes.
using ::fabric::kOfferLabel;

// The owner recorded for a node consumer's claims ("node/n1").
std::string ConsumerOwner(absl::string_view node);

// An offer id: `raw` lower-cased, characters outside [a-z0-9.-] as '-', and
// when longer than 63 characters the first 46 of it, '-' and 16 hex digits
// of a hash of `raw`.
std::string OfferId(absl::string_view raw);
std::string VfOfferId(absl::string_view lender, absl::string_view address);
std::string MemoryOfferId(absl::string_view lender, int index);
// The offer id of VF `vf` named as CreateAttachment takes it
// ("nodes/n3/vfs/0000-3b-02.0" or "n3/0000:3b:02.0"); "" when malformed.
std::string VfOfferIdOf(absl::string_view vf);

struct NodeInfo {
  std::string name;    // "n1"
  std::string fabric;  // "" for a node in no fabric
  bool up = false;     // its agent is READY
  // Direct windows of its bridge not in use (claims take them: see
  // "Windows" above).
  int free_windows = 0;
};

struct VfInfo {
  std::string name;  // "nodes/n3/vfs/0000:3b:02.0"
  std::string lender;
  std::string address;
  uint32_t vendor_id = 0;
  uint32_t device_id = 0;
  // Borrower windows an attachment of it takes: one per memory BAR.
  int windows = 1;
  bool healthy = true;
  std::string health_reason;
  // Set when lent: the borrower, its attachment and the attachment's owner.
  std::string borrower;
  std::string attachment;
  std::string owner;
};

// One lender's export memory.
struct MemoryInfo {
  std::string lender;
  uint64_t export_base = 0;
  uint64_t export_size = 0;
  // Ranges in use: [addr, addr + size), in any order, may overlap.
  std::vector<std::pair<uint64_t, uint64_t>> used;
};

// An allocation of lender memory (a candidate held chunk).
struct MemoryClaim {
  std::string allocation;  // "allocations/a1"
  std::string borrower;
  std::string lender;
  std::string owner;
  uint64_t size = 0;
  std::string offer_label;  // its kOfferLabel label, if any
};

struct FabricView {
  std::vector<NodeInfo> nodes;
  std::vector<VfInfo> vfs;
  std::vector<MemoryInfo> memory;
  std::vector<MemoryClaim> claims;
  // Each node's neighbours over links that are up (both directions). The
  // book counts hops from a node breadth-first over these, and only from
  // the nodes it is asked about (the watching ones): all pairs of a
  // 4,096-node ring would be 16.8 million.
  std::map<std::string, std::vector<std::string>, std::less<>> adjacent;
  // The configuration generation when this view was read.
  int64_t generation = 0;
  // Devices freed since the previous view (they get a new epoch even if
  // the book never saw them held): VF names (either spelling), and lenders
  // whose memory was freed. `all_freed`: events were missed; every free device gets one.
  std::set<std::string> freed_vfs;
  std::set<std::string> freed_lenders;
  bool all_freed = false;
};

struct OfferBookOptions {
  absl::Duration withdrawal_grace = absl::Seconds(5);
  absl::Duration stream_grace = absl::Seconds(30);
};

class OfferBook {
 public:
  explicit OfferBook(OfferBookOptions options = {});

  // Replaces the fabric view and recomputes at `now`.
  void SetView(FabricView view, absl::Time now);
  // Recomputes at `now` (grace periods that ended). Cheap when nothing is
  // due.
  void Tick(absl::Time now);
  // The earliest time a grace ends (InfiniteFuture when none).
  absl::Time NextDeadline() const;

  // A stream of `node` opened with chunk size `chunk_bytes` (0: 1 GiB).
  // INVALID_ARGUMENT for a chunk size not a power of two in [4 KiB, 1 TiB];
  // NOT_FOUND for a node not in the view; FAILED_PRECONDITION when another
  // watching node of the fabric uses another chunk size. Streams of one
  // node are counted; each successful Watch needs one Unwatch.
  absl::Status Watch(absl::string_view node, uint64_t chunk_bytes,
                     absl::Time now);
  void Unwatch(absl::string_view node, absl::Time now);

  // The offers of `node` now (generation unset; the stream numbers sets).
  v1::OfferSet OffersFor(absl::string_view node) const;

  // May a claim proceed? `consumer`: the claim is by `borrower`'s own
  // consumer. FAILED_PRECONDITION naming the node the device is offered to
  // and the offer, per the policy above.
  absl::Status CheckVfClaim(absl::string_view borrower, absl::string_view vf,
                            bool consumer) const;
  absl::Status CheckMemoryClaim(absl::string_view borrower,
                                absl::string_view lender, uint64_t size,
                                bool consumer) const;

  // Whether any node watches, or is in its stream grace: while none is,
  // the book's view need not be kept up to date.
  bool HasWatchers() const { return !watchers_.empty(); }

  // For tests: who a device is offered to ("" if nobody), and the previous
  // holder while it is in its withdrawal grace.
  std::string OfferedTo(absl::string_view id) const;
  std::string InGraceOf(absl::string_view id) const;

 private:
  struct Device {
    std::string id;
    std::string pool;  // "vf-8086-154c" or "memory"
    std::string lender;
    std::string fabric;
    bool free = false;
    std::string held_by;  // node whose consumer holds it
    std::string claim;    // attachment or allocation name
    bool healthy = true;
    std::string reason;
    const VfInfo* vf = nullptr;
    uint64_t chunk = 0;
    // Windows a claim takes on the borrower's bridge and the lender's.
    int borrower_windows = 1;
    int lender_windows = 0;
  };
  struct Assignment {
    std::string node;
    // Withdrawal grace: `node` may still claim it until `until`; then it
    // goes to `next` (if still eligible).
    bool withdrawn = false;
    std::string next;
    absl::Time until;
  };
  struct Watcher {
    int streams = 0;
    uint64_t chunk_bytes = 0;
    absl::Time leaving_until = absl::InfiniteFuture();  // streams == 0
  };

  void Recompute(absl::Time now);
  void BuildDevices();
  // Builds lender `m`'s chunks; `claims`: the node consumers' claims of
  // its memory (owner ConsumerOwner(borrower)), in view order.
  void BuildMemory(const MemoryInfo& m, uint64_t chunk,
                   const std::string& fabric,
                   absl::Span<const MemoryClaim* const> claims);
  void UpdateEpochs();
  void ExpireGraces(absl::Time now);
  void Assign();
  // Assign()'s choice in `pool`: the node to offer a device next, its
  // offers of the pool now, and the device ("" when none can be offered).
  struct Candidate {
    int count;
    std::string node;
    std::string device;
  };
  Candidate BestOffer(const std::string& pool) const;
  void Rebalance(absl::Time now);
  bool Eligible(const std::string& node, const Device& d) const;
  int Hops(const std::string& from, const std::string& to) const;
  double LenderLoad(const std::string& lender) const;
  bool Watching(const std::string& node) const;
  const NodeInfo* FindNode(absl::string_view node) const;
  uint64_t ChunkOf(const std::string& fabric) const;
  // Offers of `pool` counted for `node` (assigned, or coming after grace),
  // from counts_.
  int CountFor(const std::string& node, const std::string& pool) const;
  // Rebuilds counts_ and window_use_ from assigned_.
  void Recount();
  // Counts device `d` as offered to `node` ("" for nobody): +1 / -1 of its
  // pool, and its borrower windows on `node`; `lender` also its lender's.
  void Count(const std::string& node, const Device& d, int sign, bool lender);
  // Windows counted on `node` (its offers' and its VFs' offered away).
  int WindowUse(const std::string& node) const;
  // Withdraws, to nobody, offers over a bridge's free windows.
  void TrimToWindows(absl::Time now);
  absl::Status Refused(absl::string_view what, const Assignment& a,
                       absl::string_view id) const;

  const OfferBookOptions options_;
  FabricView view_;
  // Hops from a node to every node it reaches (breadth-first over
  // view_.adjacent), filled by Hops() for the nodes asked about, cleared by
  // SetView. Mutable: a cache of view_, which the const readers use.
  mutable std::map<std::string, std::map<std::string, int, std::less<>>,
                   std::less<>>
      hops_;
  // view_.nodes by name (FindNode runs for every device a recompute looks
  // at).
  absl::flat_hash_map<std::string, size_t> node_index_;
  std::map<std::string, Device, std::less<>> devices_;  // by id
  // devices_' memory chunks (free and held) by lender, rebuilt with
  // devices_ (a claim checks its lender's chunks only, not every device).
  std::map<std::string, std::vector<const Device*>, std::less<>>
      memory_by_lender_;
  std::map<std::string, Assignment, std::less<>> assigned_;  // by device id
  std::map<std::string, Watcher, std::less<>> watchers_;     // by node
  std::map<std::string, int64_t, std::less<>> epochs_;       // by device id
  std::set<std::string, std::less<>> was_free_;              // free in the last view
  // Memory held chunks: allocation -> chunk index (stable while held).
  std::map<std::string, int, std::less<>> chunk_index_;
  std::map<std::string, double, std::less<>> load_;  // by lender
  // (node, pool) -> CountFor; kept up to date by Assign and Rebalance.
  std::map<std::pair<std::string, std::string>, int> counts_;
  // node -> windows its offers' claims would take; kept as counts_.
  std::map<std::string, int, std::less<>> window_use_;
  absl::Time now_ = absl::InfinitePast();
};

}  // namespace fabric::offers

#endif  // FABRIC_SERVER_OFFERS_OFFER_BOOK_H_
