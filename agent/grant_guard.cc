#include "agent/grant_guard.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/vf_assignment.h"
#include "common/units.h"

namespace fabric::agent {
namespace {

// Sorts by base and joins ranges of one grant that touch (a grant spread
// over several LUT slots).
void Normalize(std::vector<GrantedRange>* ranges) {
  std::sort(ranges->begin(), ranges->end(),
            [](const GrantedRange& a, const GrantedRange& b) {
              return a.base != b.base ? a.base < b.base : a.grant < b.grant;
            });
  std::vector<GrantedRange> out;
  for (GrantedRange& r : *ranges) {
    if (r.size == 0) continue;
    if (!out.empty() && out.back().grant == r.grant &&
        out.back().base + out.back().size == r.base) {
      out.back().size += r.size;
      continue;
    }
    if (!out.empty() && out.back() == r) continue;
    out.push_back(std::move(r));
  }
  *ranges = std::move(out);
}

}  // namespace

const char* HostAccessName(HostAccess access) {
  return access == HostAccess::kRead ? "HostRead" : "HostWrite";
}

GrantedRanges GrantedRangesOf(const agentproto::v1::DesiredConfig& config) {
  GrantedRanges out;
  for (const v1::InboundEntry& e : config.address_map().inbound()) {
    out.read.push_back({e.local_base(), e.size(), e.allocation()});
  }
  for (const v1::WindowEntry& w : config.address_map().windows()) {
    out.write.push_back({w.local_base(), w.size(), w.allocation()});
  }
  for (const agentproto::v1::VfAssignment& a : config.vf_assignments()) {
    if (a.role() != agentproto::v1::VfAssignment::BORROWER) continue;
    for (const v1::AttachmentWindow& w : a.windows()) {
      const std::string grant = absl::StrCat(a.attachment(), " (", w.role(), ")");
      if (w.role() == "dma") {
        // The lent VF writes into this host's DMA region at target_addr.
        out.read.push_back({w.target_addr(), w.size(), grant});
      } else if (absl::StartsWith(w.role(), "mmio-bar")) {
        // This host's window onto the VF's BAR.
        out.write.push_back({w.local_addr(), w.size(), grant});
      }
    }
  }
  Normalize(&out.read);
  Normalize(&out.write);
  return out;
}

void GrantGuard::Update(const agentproto::v1::DesiredConfig& config) {
  GrantedRanges ranges = GrantedRangesOf(config);
  absl::MutexLock l(&mu_);
  ranges_ = std::move(ranges);
  generation_ = config.generation();
}

absl::Status GrantGuard::Check(HostAccess access, uint64_t addr,
                               uint64_t length) const {
  absl::MutexLock l(&mu_);
  const std::vector<GrantedRange>& ranges =
      access == HostAccess::kRead ? ranges_.read : ranges_.write;
  const GrantedRange* overlapped = nullptr;
  for (const GrantedRange& r : ranges) {
    if (Inside(addr, length, r.base, r.size)) return absl::OkStatus();
    const bool overlaps =
        addr < r.base ? r.base - addr < length : addr - r.base < r.size;
    if (overlaps && overlapped == nullptr) overlapped = &r;
  }
  std::string why = absl::StrCat(
      HostAccessName(access), " of ", length, " bytes at ", FormatAddr(addr),
      ": no grant covers it (configuration generation ", generation_, ")");
  if (overlapped != nullptr) {
    absl::StrAppend(&why, "; it straddles the edge of ", overlapped->grant,
                    "'s range ", FormatAddr(overlapped->base), "+",
                    FormatSize(overlapped->size));
  }
  return absl::PermissionDeniedError(why);
}

GrantedRanges GrantGuard::ranges() const {
  absl::MutexLock l(&mu_);
  return ranges_;
}

}  // namespace fabric::agent
