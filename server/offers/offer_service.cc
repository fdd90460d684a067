#include "server/offers/offer_service.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "server/service/paginate.h"

namespace fabric::offers {
namespace {

using service::ForEachPage;

std::string Strip(absl::string_view name, absl::string_view prefix) {
  return std::string(absl::StripPrefix(name, prefix));
}
std::string NodeOf(absl::string_view name) { return Strip(name, "nodes/"); }

}  // namespace

OfferService::OfferService(service::FabricManager* manager,
                           OfferBookOptions options)
    : manager_(manager), book_(options) {}

OfferService::~OfferService() { Shutdown(); }

void OfferService::Shutdown() {
  bool was_listening;
  {
    absl::MutexLock l(&mu_);
    was_listening = listening_;
    listening_ = false;
    shut_down_ = true;
  }
  if (was_listening) manager_->hub().RemoveListener(this);
  {
    absl::MutexLock l(&wake_mu_);
    stopping_ = true;
  }
  // Not under mu_: the worker may be waiting for it.
  if (worker_.joinable()) worker_.join();
  offers_hub_.Close();
}

absl::Status OfferService::Open(absl::string_view node,
                                uint64_t chunk_bytes) {
  {
    absl::MutexLock l(&mu_);
    if (shut_down_) {
      return absl::UnavailableError("the manager is shutting down");
    }
    if (!subscription_.has_value()) {
      // Events are published only while someone watches: from now on the
      // book sees every freed device; what it missed meanwhile, it treats
      // as freed.
      subscription_.emplace(&manager_->hub());
      seen_ = manager_->hub().last_sequence();
      absl::StatusOr<FabricView> view = ReadView();
      if (!view.ok()) {
        subscription_.reset();
        return absl::UnavailableError(absl::StrCat(
            "offers: the fabric could not be read: ", view.status().message()));
      }
      view->all_freed = true;
      generation_ = view->generation;
      book_.SetView(*std::move(view), absl::Now());
    }
    if (!listening_) {
      // Under mu_, so that Shutdown (which takes it first) never misses
      // it. Periodic: grace periods end without any change to announce
      // them. (The notifier calls OnHubChanged holding no hub lock, so the
      // order mu_ -> hub is the only one.)
      listening_ = true;
      worker_ = std::thread([this] { Run(); });
      manager_->hub().AddListener(this, /*periodic=*/true);
    }
    absl::Status s = book_.Watch(node, chunk_bytes, absl::Now());
    if (!s.ok()) return s;
    Announce();
  }
  return absl::OkStatus();
}

void OfferService::Close(absl::string_view node) {
  absl::MutexLock l(&mu_);
  book_.Unwatch(node, absl::Now());
  Announce();
}

v1::OfferSet OfferService::OffersFor(absl::string_view node) {
  absl::MutexLock l(&mu_);
  return book_.OffersFor(node);
}

absl::Status OfferService::CheckVfClaim(absl::string_view borrower,
                                        absl::string_view vf,
                                        bool consumer) {
  absl::MutexLock l(&mu_);
  return book_.CheckVfClaim(borrower, vf, consumer);
}

absl::Status OfferService::CheckMemoryClaim(absl::string_view borrower,
                                            absl::string_view lender,
                                            uint64_t size, bool consumer) {
  absl::MutexLock l(&mu_);
  return book_.CheckMemoryClaim(borrower, lender, size, consumer);
}

void OfferService::OnHubChanged() {
  absl::MutexLock l(&wake_mu_);
  woken_ = true;
}

void OfferService::Run() {
  absl::Time again = absl::InfinitePast();  // Update's answer
  while (true) {
    {
      absl::MutexLock l(&wake_mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) {
        return stopping_;
      };
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) {
        return woken_ || stopping_;
      };
      if (again != absl::InfinitePast()) {
        // Too soon after a read: wait out the spacing, then read whatever
        // came meanwhile.
        wake_mu_.AwaitWithDeadline(absl::Condition(&stop), again);
      } else {
        wake_mu_.Await(absl::Condition(&woken));
      }
      if (stopping_) return;
      woken_ = false;
    }
    again = Update();
  }
}

absl::Time OfferService::Update() {
  absl::ReleasableMutexLock l(&mu_);
  if (!listening_ || !subscription_.has_value()) return absl::InfinitePast();
  if (!book_.HasWatchers()) {
    // Nobody watches (and no stream's grace runs): the fabric is not read,
    // nor events kept for it, until the next stream opens, which reads it
    // whole as the first did (Open).
    subscription_.reset();
    return absl::InfinitePast();
  }
  if (absl::Now() < next_read_) return next_read_;
  service::WatchHub& hub = manager_->hub();
  std::set<std::string> freed_vfs, freed_lenders;
  bool all_freed = false, changed = false;
  for (bool more = true; more;) {
    std::vector<v1::WatchEvent> batch;
    switch (hub.Read(seen_, &batch)) {
      case service::WatchHub::ReadResult::kOk:
        changed = true;
        for (const v1::WatchEvent& e : batch) {
          seen_ = e.sequence();
          if (e.type() != v1::WatchEvent::DELETED) continue;
          if (e.has_attachment()) freed_vfs.insert(e.attachment().vf());
          if (e.has_allocation()) {
            freed_lenders.insert(NodeOf(e.allocation().target()));
          }
        }
        break;
      case service::WatchHub::ReadResult::kFellBehind:
        all_freed = changed = true;
        seen_ = hub.last_sequence();
        more = false;
        break;
      default:
        more = false;
    }
  }
  if (hub.generation() != generation_) changed = true;
  const absl::Time now = absl::Now();
  if (changed || read_failed_) {
    const absl::Time start = absl::Now();
    // Read without mu_: a read costs what the fabric holds, and claims
    // (CheckVfClaim, CheckMemoryClaim) and streams must not wait for it.
    // Only this thread reads once the first stream is open; what changes
    // meanwhile is read again next time.
    l.Release();
    absl::StatusOr<FabricView> view = ReadView();
    absl::MutexLock relock(&mu_);
    if (!listening_) return absl::InfinitePast();
    next_read_ = start + (absl::Now() - start) * kReadSpacing;
    if (!view.ok()) {
      // The book keeps the last whole view (a partial one would take the
      // claims it lacks for freed); the next notice (the hub is periodic)
      // reads again, and then treats every device as freed, since the
      // events read now are not applied.
      if (!read_failed_) {
        std::cerr << "fabric-manager: offers: the fabric could not be read ("
                  << view.status() << "); offers wait for the next read"
                  << std::endl;
      }
      read_failed_ = true;
      return absl::InfinitePast();  // the hub's periodic call retries
    }
    view->freed_vfs = std::move(freed_vfs);
    view->freed_lenders = std::move(freed_lenders);
    view->all_freed = all_freed || read_failed_;
    read_failed_ = false;
    generation_ = view->generation;
    book_.SetView(*std::move(view), absl::Now());
    Announce();
  } else if (now >= book_.NextDeadline()) {
    book_.Tick(now);
    Announce();
  }
  return absl::InfinitePast();
}

void OfferService::Announce() { offers_hub_.SetGeneration(++announced_); }

absl::StatusOr<FabricView> OfferService::ReadView() const {
  FabricView view;
  // Read first: a change after it moves it again, and is read then.
  view.generation = manager_->hub().generation();
  std::map<std::string, std::string> bridge_node;
  std::map<std::string, int> free_windows;
  RETURN_IF_ERROR(ForEachPage(
      v1::ListBridgesRequest(),
      [&](const auto& r) { return manager_->ListBridges(r); },
      [&](const v1::ListBridgesResponse& page) {
        for (const v1::Bridge& b : page.bridges()) {
          bridge_node[b.name()] = NodeOf(b.node());
          free_windows[NodeOf(b.node())] =
              std::max(0, b.profile().window_count() - b.windows_used());
        }
      }));
  std::map<std::string, std::pair<uint64_t, uint64_t>> exports;
  RETURN_IF_ERROR(ForEachPage(
      v1::ListNodesRequest(),
      [&](const auto& r) { return manager_->ListNodes(r); },
      [&](const v1::ListNodesResponse& page) {
        for (const v1::Node& n : page.nodes()) {
          NodeInfo info;
          info.name = NodeOf(n.name());
          info.fabric = Strip(n.fabric(), "fabrics/");
          info.up = n.agent_state() == v1::Node::READY;
          info.free_windows = free_windows[info.name];
          view.nodes.push_back(info);
          if (n.export_size() > 0 && !info.fabric.empty()) {
            exports[info.name] = {n.export_base(), n.export_size()};
          }
        }
      }));
  std::map<std::string, MemoryInfo> memory;
  for (const auto& [node, region] : exports) {
    MemoryInfo& m = memory[node];
    m.lender = node;
    m.export_base = region.first;
    m.export_size = region.second;
  }
  // A range in use on `node`, if it lies in its export region.
  auto use = [&](const std::string& node, uint64_t addr, uint64_t size) {
    auto it = memory.find(node);
    if (it == memory.end() || size == 0) return;
    const MemoryInfo& m = it->second;
    if (addr < m.export_base + m.export_size && addr + size > m.export_base) {
      it->second.used.emplace_back(addr, size);
    }
  };
  RETURN_IF_ERROR(ForEachPage(
      v1::ListAllocationsRequest(),
      [&](const auto& r) { return manager_->ListAllocations(r); },
      [&](const v1::ListAllocationsResponse& page) {
        for (const v1::Allocation& a : page.allocations()) {
          if (a.state() == v1::Allocation::RELEASED) continue;
          MemoryClaim c;
          c.allocation = a.name();
          c.borrower = NodeOf(a.borrower());
          c.lender = NodeOf(a.target());
          c.owner = a.owner();
          c.size = a.size();
          if (auto l = a.labels().find(std::string(kOfferLabel));
              l != a.labels().end()) {
            c.offer_label = l->second;
          }
          use(c.lender, a.target_addr(), a.size());
          view.claims.push_back(std::move(c));
        }
      }));
  std::map<std::string, std::string> attachment_owner;
  RETURN_IF_ERROR(ForEachPage(
      v1::ListAttachmentsRequest(),
      [&](const auto& r) { return manager_->ListAttachments(r); },
      [&](const v1::ListAttachmentsResponse& page) {
        for (const v1::Attachment& a : page.attachments()) {
          attachment_owner[a.name()] = a.owner();
          for (const v1::AttachmentWindow& w : a.windows()) {
            use(NodeOf(w.to_node()), w.target_addr(), w.size());
          }
        }
      }));
  for (auto& [node, m] : memory) view.memory.push_back(std::move(m));
  RETURN_IF_ERROR(ForEachPage(
      v1::ListVirtualFunctionsRequest(),
      [&](const auto& r) { return manager_->ListVirtualFunctions(r); },
      [&](const v1::ListVirtualFunctionsResponse& page) {
        for (const v1::VirtualFunction& f : page.virtual_functions()) {
          VfInfo vf;
          vf.name = f.name();
          vf.lender = NodeOf(f.node());
          vf.address = f.address();
          vf.vendor_id = f.vendor_id();
          vf.device_id = f.device_id();
          vf.windows = static_cast<int>(std::count_if(
              f.bar_sizes().begin(), f.bar_sizes().end(),
              [](uint64_t size) { return size != 0; }));
          vf.healthy = f.health() != v1::VirtualFunction::UNHEALTHY;
          vf.health_reason = f.health_reason();
          if (f.state() == v1::VirtualFunction::LENT) {
            vf.borrower = NodeOf(f.borrower());
            vf.attachment = f.attachment();
            vf.owner = attachment_owner[f.attachment()];
          }
          view.vfs.push_back(std::move(vf));
        }
      }));
  RETURN_IF_ERROR(ForEachPage(
      v1::ListLinksRequest(),
      [&](const auto& r) { return manager_->ListLinks(r); },
      [&](const v1::ListLinksResponse& page) {
        for (const v1::Link& link : page.links()) {
          if (!link.up()) continue;
          const std::string& a = bridge_node[link.a_bridge()];
          const std::string& b = bridge_node[link.b_bridge()];
          view.adjacent[a].push_back(b);
          view.adjacent[b].push_back(a);
        }
      }));
  return view;
}

}  // namespace fabric::offers
