#include "tests/chaos/fabric_checks.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/hw/profile_limits.h"
#include "agent/hw/sim/sim_bridge.h"
#include "agent/hw/sim/sim_world.h"
#include "common/clock.h"
#include "common/profiles.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "server/core/invariants.h"
#include "server/service/convert.h"
#include "server/service/manager.h"
#include "server/service/records.h"
#include "server/store/sqlite_store.h"

namespace fabric::chaos {
namespace {

namespace hw = agent::hw;

std::string MapEntryText(hw::MapEntry::Kind kind, uint64_t base, uint64_t size,
                         int port, uint64_t local_base) {
  if (kind == hw::MapEntry::Kind::kClaim) {
    return absl::StrCat("claim ", FormatAddr(base), "+", size, " -> ",
                        FormatAddr(local_base));
  }
  return absl::StrCat("forward ", FormatAddr(base), "+", size, " port ", port);
}

std::string WindowText(hw::SlotKind kind, int slot, uint64_t local_base,
                       uint64_t size, uint64_t xlat, const std::string& tag) {
  return absl::StrCat(kind == hw::SlotKind::kLut ? "lut slot " : "window ",
                      slot, " ", FormatAddr(local_base), "+", size, " -> ",
                      FormatAddr(xlat), " (", tag, ")");
}

std::string InboundText(uint64_t local_base, uint64_t size,
                        const std::string& tag) {
  return absl::StrCat("inbound ", FormatAddr(local_base), "+", size, " (", tag,
                      ")");
}

std::string Strip(absl::string_view name, absl::string_view prefix) {
  return std::string(absl::StripPrefix(name, prefix));
}

// Lines in `want` but not in `have` ("lacks") and the reverse ("extra").
void DiffLines(const std::string& node, std::vector<std::string> want,
               std::vector<std::string> have, std::vector<std::string>* out) {
  std::sort(want.begin(), want.end());
  std::sort(have.begin(), have.end());
  std::vector<std::string> lacks, extra;
  std::set_difference(want.begin(), want.end(), have.begin(), have.end(),
                      std::back_inserter(lacks));
  std::set_difference(have.begin(), have.end(), want.begin(), want.end(),
                      std::back_inserter(extra));
  for (const auto& l : lacks) {
    out->push_back(
        absl::StrCat(node, ": hardware lacks ", l, " that the manager wants"));
  }
  for (const auto& e : extra) {
    out->push_back(absl::StrCat(node, ": hardware holds ", e,
                                " that the manager does not want"));
  }
}

// Runs SQLite's online backup of `from` into `to`.
absl::Status CopyDatabase(const std::string& from, const std::string& to) {
  sqlite3* src = nullptr;
  sqlite3* dst = nullptr;
  auto close = [&] {
    if (src != nullptr) sqlite3_close(src);
    if (dst != nullptr) sqlite3_close(dst);
  };
  if (sqlite3_open_v2(from.c_str(), &src, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("open ", from, ": ", sqlite3_errmsg(src)));
    close();
    return s;
  }
  sqlite3_busy_timeout(src, 5000);
  std::remove(to.c_str());
  if (sqlite3_open(to.c_str(), &dst) != SQLITE_OK) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("open ", to, ": ", sqlite3_errmsg(dst)));
    close();
    return s;
  }
  sqlite3_backup* backup = sqlite3_backup_init(dst, "main", src, "main");
  if (backup == nullptr) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("backup of ", from, ": ", sqlite3_errmsg(dst)));
    close();
    return s;
  }
  int rc;
  while ((rc = sqlite3_backup_step(backup, -1)) == SQLITE_BUSY ||
         rc == SQLITE_LOCKED) {
    // SQLite's documented way to wait for a writer's lock: it has no event.
    sqlite3_sleep(10);
  }
  sqlite3_backup_finish(backup);
  absl::Status s = rc == SQLITE_DONE
                       ? absl::OkStatus()
                       : absl::UnavailableError(absl::StrCat(
                             "backup of ", from, ": ", sqlite3_errstr(rc)));
  close();
  return s;
}

}  // namespace

absl::StatusOr<HardwareStates> ReadSimBridges(
    const std::string& sim_dir, const std::vector<std::string>& nodes) {
  ASSIGN_OR_RETURN(std::vector<std::string> present,
                   hw::SimWorld::Nodes(sim_dir));
  // Only seeds a state file that does not exist, which is never the case
  // here: every node is checked to be present first.
  const hw::HardwareLimits limits =
      hw::LimitsFromProfile(*core::FindProfile("sim"));
  HardwareStates out;
  for (const std::string& node : nodes) {
    if (std::find(present.begin(), present.end(), node) == present.end()) {
      return absl::NotFoundError(absl::StrCat(
          "the simulator has no bridge for node ", node, " in ", sim_dir));
    }
    ASSIGN_OR_RETURN(std::unique_ptr<hw::SimBridge> bridge,
                     hw::SimBridge::Open(sim_dir, node, limits));
    ASSIGN_OR_RETURN(out[node], bridge->Read());
  }
  return out;
}

absl::StatusOr<FabricModel> ModelFromApi(
    const v1::Fabric& fabric, const std::vector<v1::Link>& links,
    const std::vector<v1::Allocation>& allocations,
    const std::vector<v1::Attachment>& attachments) {
  ASSIGN_OR_RETURN(core::FabricSpec spec,
                   service::SpecFromProto(fabric.spec()));
  ASSIGN_OR_RETURN(core::Topology topo, core::Topology::Build(spec));
  std::vector<bool> link_up(topo.links().size(), true);
  for (const v1::Link& l : links) {
    auto index = topo.FindLinkByName(Strip(l.name(), "links/"));
    if (!index) {
      return absl::InternalError(
          absl::StrCat("link ", l.name(), " is not in the fabric's spec"));
    }
    link_up[*index] = l.up();
  }
  std::vector<core::Grant> grants;
  for (const v1::Allocation& a : allocations) {
    auto borrower = topo.FindNode(Strip(a.borrower(), "nodes/"));
    auto target = topo.FindNode(Strip(a.target(), "nodes/"));
    if (!borrower || !target) {
      return absl::InternalError(absl::StrCat(
          a.name(), " names a node outside fabric ", fabric.name()));
    }
    core::Grant g;
    g.id = Strip(a.name(), "allocations/");
    g.borrower = *borrower;
    g.target = *target;
    g.size = a.size();
    g.target_addr = a.target_addr();
    g.fabric_addr = a.fabric_addr();
    g.slot_kind = service::SlotKindFromProto(a.slot_kind());
    g.slot_index = a.slot();
    g.slot_count = a.slot_count();
    g.borrower_addr = a.borrower_addr();
    grants.push_back(std::move(g));
  }
  for (const v1::Attachment& a : attachments) {
    for (const v1::AttachmentWindow& w : a.windows()) {
      auto from = topo.FindNode(Strip(w.from_node(), "nodes/"));
      auto to = topo.FindNode(Strip(w.to_node(), "nodes/"));
      if (!from || !to) {
        return absl::InternalError(absl::StrCat(a.name(), " window ", w.role(),
                                                " names a node outside fabric ",
                                                fabric.name()));
      }
      core::Grant g;
      // As the manager's maps name it, and so the agents tag it.
      g.id = absl::StrCat(a.name(), "/", w.role());
      g.borrower = *from;
      g.target = *to;
      g.size = w.size();
      g.target_addr = w.target_addr();
      g.fabric_addr = w.fabric_addr();
      g.slot_kind = service::SlotKindFromProto(w.slot_kind());
      g.slot_index = w.slot();
      g.slot_count = w.slot_count();
      g.borrower_addr = w.local_addr();
      g.device = absl::StartsWith(w.role(), "mmio");
      grants.push_back(std::move(g));
    }
  }
  return FabricModel{std::move(topo), std::move(link_up), std::move(grants)};
}

std::vector<core::BridgeConfig> ConfigsFromHardware(
    const core::Topology& topo, const HardwareStates& hardware) {
  std::vector<core::BridgeConfig> configs;
  for (int i = 0; i < topo.node_count(); ++i) {
    core::BridgeConfig c;
    c.node = i;
    auto it = hardware.find(topo.node(i).name);
    if (it != hardware.end()) {
      const hw::BridgeState& s = it->second;
      for (const hw::MapEntry& e : s.map) {
        c.map.push_back({e.kind == hw::MapEntry::Kind::kClaim
                             ? core::MapEntry::Kind::kClaim
                             : core::MapEntry::Kind::kForward,
                         e.base, e.size, e.port, e.local_base});
      }
      for (const hw::Window& w : s.windows) {
        c.windows.push_back({w.kind == hw::SlotKind::kLut
                                 ? core::SlotKind::kLut
                                 : core::SlotKind::kWindow,
                             w.slot, w.local_base, w.size, w.xlat, w.tag});
      }
      for (const hw::Inbound& in : s.inbound) {
        // The hardware does not record the borrower; the checker matches
        // inbound entries to grants by id, range and target.
        c.inbound.push_back({in.local_base, in.size, in.tag, -1});
      }
    }
    configs.push_back(std::move(c));
  }
  return configs;
}

absl::Status CheckHardwareInvariants(const FabricModel& model,
                                     const HardwareStates& hardware) {
  std::vector<const core::Grant*> grants;
  for (const core::Grant& g : model.grants) grants.push_back(&g);
  return core::CheckConfigs(model.topology, model.link_up, grants,
                            ConfigsFromHardware(model.topology, hardware));
}

HardwareStates RelabelAsWanted(const std::vector<v1::AddressMap>& maps,
                               HardwareStates hardware) {
  for (const v1::AddressMap& m : maps) {
    auto it = hardware.find(Strip(m.bridge(), "bridges/"));
    if (it == hardware.end()) continue;
    hw::BridgeState& s = it->second;
    for (const v1::WindowEntry& want : m.windows()) {
      const hw::SlotKind kind = want.slot_kind() == v1::LUT
                                    ? hw::SlotKind::kLut
                                    : hw::SlotKind::kWindow;
      for (hw::Window& w : s.windows) {
        if (w.kind == kind && w.slot == static_cast<int>(want.slot()) &&
            w.local_base == want.local_base() && w.size == want.size() &&
            w.xlat == want.translated_addr()) {
          w.tag = Strip(want.allocation(), "allocations/");
        }
      }
    }
    for (const v1::InboundEntry& want : m.inbound()) {
      for (hw::Inbound& in : s.inbound) {
        if (in.local_base == want.local_base() && in.size == want.size()) {
          in.tag = Strip(want.allocation(), "allocations/");
        }
      }
    }
  }
  return hardware;
}

std::vector<std::string> DiffMapsAndHardware(
    const std::vector<v1::AddressMap>& maps, const HardwareStates& hardware) {
  std::vector<std::string> out;
  for (const v1::AddressMap& m : maps) {
    const std::string node = Strip(m.bridge(), "bridges/");
    auto it = hardware.find(node);
    if (it == hardware.end()) {
      out.push_back(absl::StrCat(node, ": no hardware state"));
      continue;
    }
    const hw::BridgeState& s = it->second;
    std::vector<std::string> want, have;
    for (const v1::MapEntry& e : m.entries()) {
      want.push_back(MapEntryText(
          e.kind() == v1::MapEntry::CLAIM ? hw::MapEntry::Kind::kClaim
                                          : hw::MapEntry::Kind::kForward,
          e.base(), e.size(), e.port(), e.local_base()));
    }
    for (const v1::WindowEntry& w : m.windows()) {
      want.push_back(WindowText(
          w.slot_kind() == v1::LUT ? hw::SlotKind::kLut : hw::SlotKind::kWindow,
          w.slot(), w.local_base(), w.size(), w.translated_addr(),
          Strip(w.allocation(), "allocations/")));
    }
    for (const v1::InboundEntry& in : m.inbound()) {
      want.push_back(InboundText(in.local_base(), in.size(),
                                 Strip(in.allocation(), "allocations/")));
    }
    for (const hw::MapEntry& e : s.map) {
      have.push_back(
          MapEntryText(e.kind, e.base, e.size, e.port, e.local_base));
    }
    for (const hw::Window& w : s.windows) {
      have.push_back(
          WindowText(w.kind, w.slot, w.local_base, w.size, w.xlat, w.tag));
    }
    for (const hw::Inbound& in : s.inbound) {
      have.push_back(InboundText(in.local_base, in.size, in.tag));
    }
    DiffLines(node, std::move(want), std::move(have), &out);
  }
  return out;
}

std::vector<std::string> Leftovers(const HardwareStates& hardware) {
  std::vector<std::string> out;
  for (const auto& [node, s] : hardware) {
    for (const hw::Window& w : s.windows) {
      out.push_back(absl::StrCat(
          node, ": ",
          WindowText(w.kind, w.slot, w.local_base, w.size, w.xlat, w.tag)));
    }
    for (const hw::Inbound& in : s.inbound) {
      out.push_back(absl::StrCat(node, ": ",
                                 InboundText(in.local_base, in.size, in.tag)));
    }
  }
  return out;
}

namespace {

// How many times the etcd copy is taken again when etcd's revision moved
// while it was taken (a write landed between two tables' scans).
constexpr int kEtcdCopyAttempts = 20;

// Loads `store` into a FabricManager, as a restart would, and lists what it
// holds.
absl::StatusOr<DurableState> LoadFromStore(store::Store* store) {
  service::ManagerOptions manager_options;
  manager_options.sweep_interval = absl::ZeroDuration();
  ASSIGN_OR_RETURN(std::unique_ptr<service::FabricManager> manager,
                   service::FabricManager::Open(store, Clock::Real(),
                                                manager_options));
  DurableState out;
  out.invariants = manager->CheckInvariants();
  std::string token;
  do {
    v1::ListAllocationsRequest req;
    req.set_page_size(1000);
    req.set_page_token(token);
    ASSIGN_OR_RETURN(v1::ListAllocationsResponse resp,
                     manager->ListAllocations(req));
    for (const v1::Allocation& a : resp.allocations()) {
      out.resources.insert(a.name());
    }
    token = resp.next_page_token();
  } while (!token.empty());
  do {
    v1::ListAttachmentsRequest req;
    req.set_page_size(1000);
    req.set_page_token(token);
    ASSIGN_OR_RETURN(v1::ListAttachmentsResponse resp,
                     manager->ListAttachments(req));
    for (const v1::Attachment& a : resp.attachments()) {
      out.resources.insert(a.name());
    }
    token = resp.next_page_token();
  } while (!token.empty());
  manager->Shutdown();
  return out;
}

// Copies every table of the etcd store `etcd` into `copy`, at one etcd
// revision: the copy is kept when no write landed between its first and its
// last read (etcd's revision did not move), else it is taken again.
absl::Status CopyEtcdStore(const store::EtcdStoreOptions& etcd,
                           store::Store* copy) {
  ASSIGN_OR_RETURN(std::unique_ptr<store::EtcdStore> source,
                   store::EtcdStore::Open(etcd));
  // A linearizable read: source->revision() is then etcd's current one.
  auto read_revision = [&]() -> absl::StatusOr<int64_t> {
    absl::StatusOr<std::string> meta =
        source->Get(service::kTableMeta, "meta");
    if (!meta.ok() && !absl::IsNotFound(meta.status())) return meta.status();
    return source->revision();
  };
  std::vector<std::string> copied;  // keys of `copy`, as "table\0key"
  for (int attempt = 0; attempt < kEtcdCopyAttempts; ++attempt) {
    ASSIGN_OR_RETURN(const int64_t before, read_revision());
    store::WriteBatch batch;
    // Whatever an earlier attempt copied is replaced.
    for (const std::string& k : copied) {
      const size_t nul = k.find('\0');
      batch.Delete(k.substr(0, nul), k.substr(nul + 1));
    }
    copied.clear();
    for (const std::string& table : service::StoreTables()) {
      ASSIGN_OR_RETURN(auto rows, source->Scan(table));
      for (const auto& [key, value] : rows) {
        batch.Put(table, key, value);
        copied.push_back(absl::StrCat(table, std::string(1, '\0'), key));
      }
    }
    ASSIGN_OR_RETURN(const int64_t after, read_revision());
    RETURN_IF_ERROR(copy->Apply(batch));
    if (after == before) return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat(
      "etcd prefix \"", etcd.prefix, "\" was written to during each of ",
      kEtcdCopyAttempts, " attempts to copy it"));
}

}  // namespace

absl::StatusOr<DurableState> LoadDurableState(const std::string& db_path,
                                              const std::string& copy_path) {
  RETURN_IF_ERROR(CopyDatabase(db_path, copy_path));
  store::SqliteOptions options;
  options.path = copy_path;
  ASSIGN_OR_RETURN(std::unique_ptr<store::Store> store,
                   store::OpenSqliteStore(options));
  return LoadFromStore(store.get());
}

absl::StatusOr<DurableState> LoadEtcdDurableState(
    const store::EtcdStoreOptions& etcd, const std::string& copy_path) {
  std::remove(copy_path.c_str());
  store::SqliteOptions options;
  options.path = copy_path;
  ASSIGN_OR_RETURN(std::unique_ptr<store::Store> copy,
                   store::OpenSqliteStore(options));
  RETURN_IF_ERROR(CopyEtcdStore(etcd, copy.get()));
  return LoadFromStore(copy.get());
}

}  // namespace fabric::chaos
