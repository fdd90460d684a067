#include "client/output.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/units.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace fabric::client {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kKeyWidth = 22;

std::string Dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string Time(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  return TimeUtil::ToString(ts);
}

// "0x1000_0000_0000-0x1000_3fff_ffff" (inclusive end).
std::string Range(uint64_t base, uint64_t size) {
  if (size == 0) return FormatAddr(base);
  return absl::StrCat(FormatAddr(base), "-", FormatAddr(base + size - 1));
}

std::string Used(int used, int capacity) {
  return absl::StrCat(used, "/", capacity);
}

// A "Key:" line of a describe view, values aligned at `width`.
void Line(std::ostream& out, absl::string_view key, absl::string_view value,
          int indent = 0, int width = kKeyWidth) {
  std::string k = absl::StrCat(std::string(indent, ' '), key, ":");
  int pad = std::max<int>(1, width - static_cast<int>(k.size()));
  out << k << std::string(pad, ' ') << (value.empty() ? "-" : value) << "\n";
}

std::string AgentState(v1::Node::AgentState s) {
  return v1::Node::AgentState_Name(s);
}

std::string SlotName(v1::SlotKind kind, int slot) {
  switch (kind) {
    case v1::WINDOW:
      return absl::StrCat("window ", slot);
    case v1::LUT:
      return absl::StrCat("lut ", slot);
    default:
      return "-";
  }
}

std::string VfHealth(v1::VirtualFunction::Health health,
                     const std::string& reason) {
  std::string s = health == v1::VirtualFunction::HEALTH_UNSPECIFIED
                      ? "UNKNOWN"
                      : v1::VirtualFunction::Health_Name(health);
  if (health == v1::VirtualFunction::UNHEALTHY && !reason.empty()) {
    absl::StrAppend(&s, " (", reason, ")");
  }
  return s;
}

std::string VfState(const v1::VirtualFunction& v) {
  if (v.state() == v1::VirtualFunction::LENT) {
    return v.borrower().empty()
               ? "LENT"
               : absl::StrCat("LENT to ", ShortName(v.borrower()));
  }
  return v1::VirtualFunction::State_Name(v.state());
}

std::string AttachmentState(const v1::Attachment& a) {
  std::string s = v1::Attachment::State_Name(a.state());
  if (a.state() != v1::Attachment::READY && !a.state_reason().empty()) {
    absl::StrAppend(&s, " (", a.state_reason(), ")");
  }
  return s;
}

std::string AttachmentVf(const v1::Attachment& a) {
  return VfShortName(a.lender(), a.vf_address(), a.vf());
}

std::string Hex4(uint32_t vendor, uint32_t device) {
  return absl::StrFormat("%04x:%04x", vendor, device);
}

// A map<string, uint64> in key order.
std::vector<std::pair<std::string, uint64_t>> Sorted(
    const google::protobuf::Map<std::string, uint64_t>& m) {
  std::vector<std::pair<std::string, uint64_t>> out(m.begin(), m.end());
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t Total(const google::protobuf::Map<std::string, uint64_t>& m) {
  uint64_t n = 0;
  for (const auto& [k, v] : m) n += v;
  return n;
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view text) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "table" || t == "wide") return OutputFormat::kTable;
  if (t == "json") return OutputFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("-o: unknown output format \"", text,
                   "\"; use table or json"));
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(std::max(cells.size(), headers_.size()));
  for (std::string& c : cells) c = Dash(c);
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out, int indent) const {
  TableWriter(headers_, indent).Write(rows_, out);
}

std::string ShortName(absl::string_view resource_name) {
  std::vector<absl::string_view> parts = absl::StrSplit(resource_name, '/');
  // {collection}/{id}[/{singleton}]: the id is the second part.
  if (parts.size() >= 2) return std::string(parts[1]);
  return std::string(resource_name);
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.always_print_enums_as_ints = false;
  std::string json;
  // Only fails for malformed Any/well-known types, which fabric.v1 never
  // produces; fall back to the debug form rather than print nothing.
  if (!google::protobuf::util::MessageToJsonString(message, &json, options)
           .ok()) {
    return message.DebugString();
  }
  while (!json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

std::string ToJsonArray(
    const std::vector<const google::protobuf::Message*>& messages) {
  if (messages.empty()) return "[]";
  std::vector<std::string> items;
  items.reserve(messages.size());
  for (const auto* m : messages) {
    // Indent each element by two spaces inside the array.
    std::vector<std::string> lines = absl::StrSplit(ToJson(*m), '\n');
    for (std::string& l : lines) l = absl::StrCat("  ", l);
    items.push_back(absl::StrJoin(lines, "\n"));
  }
  return absl::StrCat("[\n", absl::StrJoin(items, ",\n"), "\n]");
}

template <>
std::vector<std::string> TableHeaders<v1::Fabric>() {
  return {"NAME",        "TOPOLOGY",   "NODES",  "LINKS", "DOWN", "ALLOCATIONS",
          "FWD-ENTRIES", "GENERATION", "CREATED"};
}

std::vector<std::string> TableRow(const v1::Fabric& f) {
  return {ShortName(f.name()), v1::Topology_Name(f.spec().topology()),
          absl::StrCat(f.node_count()), absl::StrCat(f.link_count()),
          absl::StrCat(f.links_down()), absl::StrCat(f.allocation_count()),
          absl::StrCat(f.max_forward_entries()), absl::StrCat(f.generation()),
          Time(f.create_time())};
}

template <>
std::vector<std::string> TableHeaders<v1::Node>() {
  return {"NAME",     "FABRIC", "ROLE", "AGENT",
          "APERTURE", "EXPORT", "LENT", "GENERATION"};
}

std::vector<std::string> TableRow(const v1::Node& n) {
  return {ShortName(n.name()), ShortName(n.fabric()),
          n.hub() ? "hub" : "server", AgentState(n.agent_state()),
          FormatAddr(n.aperture_base()), FormatSize(n.export_size()),
          FormatSize(n.lent_bytes()),
          absl::StrCat(n.applied_generation(), "/", n.desired_generation())};
}

template <>
std::vector<std::string> TableHeaders<v1::Bridge>() {
  return {"NAME",        "FABRIC",  "PROFILE", "PORTS-UP",
          "MAP-ENTRIES", "WINDOWS", "LUT"};
}

std::vector<std::string> TableRow(const v1::Bridge& b) {
  int up = 0, wired = 0;
  for (const v1::Port& p : b.ports()) {
    if (p.link().empty()) continue;
    ++wired;
    if (p.up()) ++up;
  }
  const v1::HardwareProfile& prof = b.profile();
  return {ShortName(b.name()), ShortName(b.fabric()), prof.name(),
          Used(up, wired), Used(b.map_entries(), prof.mapping_entries()),
          Used(b.windows_used(), prof.window_count()),
          prof.lut_entries() == 0
              ? "-"
              : Used(b.lut_entries_used(), prof.lut_entries())};
}

template <>
std::vector<std::string> TableHeaders<v1::Link>() {
  return {"NAME", "FABRIC", "A", "B", "STATE"};
}

std::vector<std::string> TableRow(const v1::Link& l) {
  return {ShortName(l.name()), ShortName(l.fabric()),
          absl::StrCat(ShortName(l.a_bridge()), ":", l.a_port()),
          absl::StrCat(ShortName(l.b_bridge()), ":", l.b_port()),
          l.up() ? "up" : "down"};
}

template <>
std::vector<std::string> TableHeaders<v1::Allocation>() {
  return {"NAME",  "FABRIC",        "BORROWER", "TARGET", "SIZE",
          "STATE", "BORROWER-ADDR", "SLOT",     "OWNER",  "EXPIRES"};
}

std::vector<std::string> TableRow(const v1::Allocation& a) {
  return {ShortName(a.name()),
          ShortName(a.fabric()),
          ShortName(a.borrower()),
          ShortName(a.target()),
          FormatSize(a.size()),
          v1::Allocation::State_Name(a.state()),
          FormatAddr(a.borrower_addr()),
          SlotName(a.slot_kind(), a.slot()),
          a.owner(),
          Time(a.expire_time())};
}

template <>
std::vector<std::string> TableHeaders<v1::VirtualFunction>() {
  return {"NAME", "NODE", "ADDRESS", "PF", "VENDOR:DEVICE", "STATE", "HEALTH"};
}

std::vector<std::string> TableRow(const v1::VirtualFunction& v) {
  return {VfShortName(v.node(), v.address(), v.name()),
          ShortName(v.node()),
          v.address(),
          v.pf_address(),
          Hex4(v.vendor_id(), v.device_id()),
          VfState(v),
          VfHealth(v.health(), v.health_reason())};
}

template <>
std::vector<std::string> TableHeaders<v1::Attachment>() {
  return {"NAME", "VF", "BORROWER", "VM", "INTERRUPTS", "STATE", "HEALTH"};
}

std::vector<std::string> TableRow(const v1::Attachment& a) {
  return {ShortName(a.name()),
          AttachmentVf(a),
          ShortName(a.borrower()),
          a.vm(),
          v1::Attachment::InterruptPolicy_Name(a.interrupts()),
          AttachmentState(a),
          VfHealth(a.vf_health(), a.vf_health_reason())};
}

template <>
std::vector<std::string> TableHeaders<v1::HardwareProfile>() {
  return {"NAME",       "WINDOWS",    "LUT",         "MIN-WINDOW",
          "MAX-WINDOW", "XLAT-ALIGN", "GRANULARITY", "MAP-ENTRIES"};
}

std::vector<std::string> TableRow(const v1::HardwareProfile& p) {
  return {p.name(),
          absl::StrCat(p.window_count()),
          p.lut_entries() == 0 ? "-"
                               : absl::StrCat(p.lut_entries(), " x ",
                                              FormatSize(p.lut_entry_size())),
          FormatSize(p.min_window_size()),
          FormatSize(p.max_window_size()),
          FormatSize(p.xlat_align()),
          FormatSize(p.size_granularity()),
          absl::StrCat(p.mapping_entries())};
}

template <>
std::vector<std::string> TableHeaders<v1::Manager>() {
  return {"ADDRESS", "ROLE", "STORE", "LEASE", "TTL"};
}

std::vector<std::string> TableRow(const v1::Manager& m) {
  const bool leased = m.lease_id() != 0;
  return {m.address(), v1::Manager::Role_Name(m.role()), Dash(m.store()),
          leased ? absl::StrCat(absl::Hex(m.lease_id())) : "-",
          leased ? absl::StrCat(m.lease_ttl_seconds(), "s") : "-"};
}

void PrintFabrics(const std::vector<v1::Fabric>& fabrics, OutputFormat format,
                  std::ostream& out) {
  PrintList(fabrics, format, out);
}

void PrintNodes(const std::vector<v1::Node>& nodes, OutputFormat format,
                std::ostream& out) {
  PrintList(nodes, format, out);
}

void PrintBridges(const std::vector<v1::Bridge>& bridges, OutputFormat format,
                  std::ostream& out) {
  PrintList(bridges, format, out);
}

void PrintLinks(const std::vector<v1::Link>& links, OutputFormat format,
                std::ostream& out) {
  PrintList(links, format, out);
}

void PrintAllocations(const std::vector<v1::Allocation>& allocations,
                      OutputFormat format, std::ostream& out) {
  PrintList(allocations, format, out);
}

void PrintVirtualFunctions(const std::vector<v1::VirtualFunction>& vfs,
                           OutputFormat format, std::ostream& out) {
  PrintList(vfs, format, out);
}

void PrintAttachments(const std::vector<v1::Attachment>& attachments,
                      OutputFormat format, std::ostream& out) {
  PrintList(attachments, format, out);
}

void PrintProfiles(const std::vector<v1::HardwareProfile>& profiles,
                   OutputFormat format, std::ostream& out) {
  PrintList(profiles, format, out);
}

void PrintManagers(const std::vector<v1::Manager>& managers,
                   OutputFormat format, std::ostream& out) {
  PrintList(managers, format, out);
}

void PrintAddressMap(const v1::AddressMap& map, std::ostream& out) {
  out << map.name() << " (bridge " << ShortName(map.bridge().empty()
                                                    ? map.name()
                                                    : map.bridge())
      << ", generation " << map.generation() << ")\n";

  out << "Entries (" << map.entries_size() << "):\n";
  if (map.entries_size() > 0) {
    Table t({"KIND", "FABRIC RANGE", "SIZE", "TO", "COVERS"});
    for (const v1::MapEntry& e : map.entries()) {
      std::string to;
      if (e.kind() == v1::MapEntry::CLAIM) {
        to = absl::StrCat("local ", FormatAddr(e.local_base()));
      } else if (e.kind() == v1::MapEntry::FORWARD) {
        to = absl::StrCat("port ", e.port());
      }
      t.AddRow({v1::MapEntry::Kind_Name(e.kind()), Range(e.base(), e.size()),
                FormatSize(e.size()), to, e.covers()});
    }
    t.Print(out, 2);
  }

  out << "Windows (" << map.windows_size() << "):\n";
  if (map.windows_size() > 0) {
    Table t({"SLOT", "LOCAL RANGE", "SIZE", "TRANSLATED", "ALLOCATION"});
    for (const v1::WindowEntry& w : map.windows()) {
      t.AddRow({SlotName(w.slot_kind(), w.slot()),
                Range(w.local_base(), w.size()), FormatSize(w.size()),
                FormatAddr(w.translated_addr()), ShortName(w.allocation())});
    }
    t.Print(out, 2);
  }

  out << "Inbound (" << map.inbound_size() << "):\n";
  if (map.inbound_size() > 0) {
    Table t({"LOCAL RANGE", "SIZE", "ALLOCATION", "BORROWER"});
    for (const v1::InboundEntry& in : map.inbound()) {
      t.AddRow({Range(in.local_base(), in.size()), FormatSize(in.size()),
                ShortName(in.allocation()), ShortName(in.borrower())});
    }
    t.Print(out, 2);
  }
}

void PrintAddressMaps(const std::vector<v1::AddressMap>& maps,
                      OutputFormat format, std::ostream& out) {
  ListWriter w(format, {}, &out);
  for (const v1::AddressMap& m : maps) {
    w.AddBlock(m, [&m](std::ostream& o) { PrintAddressMap(m, o); });
  }
  w.Finish();
}

void DescribeFabric(const v1::Fabric& f, std::ostream& out) {
  const v1::FabricSpec& spec = f.spec();
  Line(out, "Name", f.name());
  Line(out, "Topology", v1::Topology_Name(spec.topology()));
  if (spec.topology() == v1::STAR) Line(out, "Hub", spec.hub());
  Line(out, "Default profile", spec.default_profile());
  Line(out, "Default export size",
       spec.default_export_size() == 0 ? "-"
                                       : FormatSize(spec.default_export_size()));
  Line(out, "Created", Time(f.create_time()));
  Line(out, "Generation", absl::StrCat(f.generation()));
  Line(out, "Nodes", absl::StrCat(f.node_count()));
  Line(out, "Links", absl::StrCat(f.link_count(), " (", f.links_down(),
                                  " down)"));
  Line(out, "Allocations", absl::StrCat(f.allocation_count()));
  Line(out, "Max forward entries", absl::StrCat(f.max_forward_entries()));
  out << "Node specs:\n";
  Table t({"NAME", "PROFILE", "EXPORT-BASE", "EXPORT", "WINDOW-BASE"});
  for (const v1::NodeSpec& n : spec.nodes()) {
    t.AddRow({n.name(), n.profile(),
              n.export_base() == 0 ? "" : FormatAddr(n.export_base()),
              n.export_size() == 0 ? "" : FormatSize(n.export_size()),
              n.window_base() == 0 ? "" : FormatAddr(n.window_base())});
  }
  t.Print(out, 2);
  if (spec.links_size() > 0) {
    out << "Link specs:\n";
    Table lt({"A", "B"});
    for (const v1::LinkSpec& l : spec.links()) {
      lt.AddRow({absl::StrCat(l.a(), ":", l.a_port()),
                 absl::StrCat(l.b(), ":", l.b_port())});
    }
    lt.Print(out, 2);
  }
}

void PrintVerify(const v1::VerifyResult& r, std::ostream& out) {
  out << (r.ok() ? "OK    " : "FAIL  ") << r.allocation() << "  "
      << r.summary() << "\n";
}

void DescribeNode(const v1::Node& n, std::ostream& out) {
  Line(out, "Name", n.name());
  if (n.fabric().empty()) {
    // Its agent is connected, but no fabric names the node (GetNode).
    Line(out, "Fabric",
         "(none: the node is in no fabric; its agent holds an empty "
         "configuration and keeps its bridge cleared)");
    Line(out, "Agent", AgentState(n.agent_state()));
    Line(out, "Last heartbeat", Time(n.last_heartbeat()));
    Line(out, "Generation", absl::StrCat("applied ", n.applied_generation(),
                                         ", desired ",
                                         n.desired_generation()));
    if (!n.agent_address().empty()) {
      Line(out, "Agent address",
           absl::StrCat(n.agent_address(), " (", n.agent_backend(), ")"));
    }
    return;
  }
  Line(out, "Fabric", n.fabric());
  Line(out, "Bridge", n.bridge());
  Line(out, "Role", n.hub() ? "hub" : "server");
  Line(out, "Aperture", absl::StrCat(Range(n.aperture_base(), n.aperture_size()),
                                     " (", FormatSize(n.aperture_size()), ")"));
  Line(out, "Export", absl::StrCat(Range(n.export_base(), n.export_size()),
                                   " (", FormatSize(n.export_size()), ")"));
  Line(out, "Lent", absl::StrCat(FormatSize(n.lent_bytes()), " of ",
                                 FormatSize(n.export_size())));
  Line(out, "Window base", FormatAddr(n.window_base()));
  Line(out, "Agent", AgentState(n.agent_state()));
  Line(out, "Last heartbeat", Time(n.last_heartbeat()));
  std::string gen = absl::StrCat("applied ", n.applied_generation(),
                                 ", desired ", n.desired_generation());
  if (n.applied_generation() < n.desired_generation()) {
    absl::StrAppend(&gen, " (behind)");
  }
  Line(out, "Generation", gen);
  if (!n.agent_address().empty()) {
    Line(out, "Agent address",
         absl::StrCat(n.agent_address(), " (", n.agent_backend(), ")"));
  }
  if (n.agent_session() != 0) {
    Line(out, "Agent session", absl::StrCat(n.agent_session()));
  }
  if (!n.agent_takeover().empty()) {
    Line(out, "Takeover", n.agent_takeover());
  }
  Line(out, "Drift repaired", absl::StrCat(n.repairs(), " entries"));
  for (const std::string& r : n.recent_repairs()) Line(out, "  repair", r);
  for (const v1::ApplyError& e : n.apply_errors()) {
    std::string retry;
    if (e.attempts() > 0) {
      retry = absl::StrCat("; attempt ", e.attempts());
      if (e.has_retry_in()) {
        absl::StrAppend(
            &retry, ", next ",
            absl::FormatDuration(absl::Seconds(e.retry_in().seconds()) +
                                 absl::Nanoseconds(e.retry_in().nanos())),
            " after the last report");
      }
    }
    Line(out, "Apply error",
         absl::StrCat(e.entry(), ": ", e.message(),
                      e.allocation().empty()
                          ? ""
                          : absl::StrCat(" (", e.allocation(), ")"),
                      retry));
  }
  const auto& fns = n.inventory().functions();
  out << "Inventory (" << fns.size() << " PCI functions):\n";
  if (!fns.empty()) {
    Table t({"ADDRESS", "KIND", "ID", "BARS", "DESCRIPTION"});
    for (const v1::PciFunction& f : fns) {
      std::vector<std::string> bars;
      for (uint64_t b : f.bar_sizes()) {
        if (b != 0) bars.push_back(FormatSize(b));
      }
      std::string kind = v1::PciFunction::Kind_Name(f.kind());
      if (f.has_sriov() && f.sriov().total_vfs() > 0) {
        absl::StrAppend(&kind, " (", f.sriov().num_vfs(), "/",
                        f.sriov().total_vfs(), " VFs)");
      }
      t.AddRow({f.address(), kind,
                absl::StrFormat("%04x:%04x", f.vendor_id(), f.device_id()),
                absl::StrJoin(bars, ","), f.description()});
    }
    t.Print(out, 2);
  }
}

void DescribeBridge(const v1::Bridge& b, std::ostream& out) {
  const v1::HardwareProfile& p = b.profile();
  Line(out, "Name", b.name());
  Line(out, "Fabric", b.fabric());
  Line(out, "Node", b.node());
  Line(out, "Profile", p.description().empty()
                           ? p.name()
                           : absl::StrCat(p.name(), " (", p.description(), ")"));
  Line(out, "Windows", absl::StrCat(p.window_count(), " (min ",
                                    FormatSize(p.min_window_size()), ", max ",
                                    FormatSize(p.max_window_size()), ")"));
  Line(out, "LUT", p.lut_entries() == 0
                       ? "none"
                       : absl::StrCat(p.lut_entries(), " x ",
                                      FormatSize(p.lut_entry_size())));
  Line(out, "Translation align", FormatSize(p.xlat_align()));
  Line(out, "Size granularity", FormatSize(p.size_granularity()));
  Line(out, "Doorbells", absl::StrCat(p.doorbells()));
  Line(out, "Scratchpads", absl::StrCat(p.scratchpads()));
  Line(out, "Map entries used", Used(b.map_entries(), p.mapping_entries()));
  Line(out, "Windows used", Used(b.windows_used(), p.window_count()));
  Line(out, "LUT entries used",
       p.lut_entries() == 0 ? "-" : Used(b.lut_entries_used(), p.lut_entries()));
  out << "Ports:\n";
  Table t({"PORT", "LINK", "PEER", "STATE"});
  for (const v1::Port& port : b.ports()) {
    bool wired = !port.link().empty();
    t.AddRow({absl::StrCat(port.number()), ShortName(port.link()),
              wired ? absl::StrCat(ShortName(port.peer_bridge()), ":",
                                   port.peer_port())
                    : "",
              wired ? (port.up() ? "up" : "down") : "unwired"});
  }
  t.Print(out, 2);
}

void DescribeAllocation(const v1::Allocation& a, std::ostream& out) {
  Line(out, "Name", a.name());
  Line(out, "Fabric", a.fabric());
  Line(out, "Borrower", a.borrower());
  Line(out, "Target", a.target());
  Line(out, "Size", FormatSize(a.size()));
  Line(out, "State", v1::Allocation::State_Name(a.state()));
  Line(out, "Reason", a.state_reason());
  Line(out, "Borrower address", Range(a.borrower_addr(), a.size()));
  Line(out, "Target address", Range(a.target_addr(), a.size()));
  Line(out, "Fabric address", Range(a.fabric_addr(), a.size()));
  std::string slot = SlotName(a.slot_kind(), a.slot());
  if (a.slot_count() > 1) absl::StrAppend(&slot, " (", a.slot_count(), " slots)");
  Line(out, "Slot", slot);
  Line(out, "Owner", a.owner());
  std::vector<std::pair<std::string, std::string>> labels(a.labels().begin(),
                                                          a.labels().end());
  std::sort(labels.begin(), labels.end());
  Line(out, "Labels", absl::StrJoin(labels, ",", absl::PairFormatter("=")));
  Line(out, "TTL", a.has_ttl() ? TimeUtil::ToString(a.ttl()) : "");
  Line(out, "Expires", Time(a.expire_time()));
  Line(out, "Created", Time(a.create_time()));
  std::vector<std::string> path;
  for (const std::string& p : a.path()) path.push_back(ShortName(p));
  Line(out, "Path", absl::StrJoin(path, " -> "));
  Line(out, "Required generation", absl::StrCat(a.required_generation()));
}

std::string AllocationSummary(const v1::Allocation& a) {
  return absl::StrCat(a.name(), " borrower ", ShortName(a.borrower()),
                      " sees ", FormatSize(a.size()), " of ",
                      ShortName(a.target()), " at ",
                      FormatAddr(a.borrower_addr()), " (",
                      v1::Allocation::State_Name(a.state()), ")");
}

void DescribeVirtualFunction(const v1::VirtualFunction& v, std::ostream& out) {
  Line(out, "Name", v.name());
  Line(out, "Node", v.node());
  Line(out, "Address", v.address());
  Line(out, "PF", v.pf_address());
  Line(out, "Vendor:device", Hex4(v.vendor_id(), v.device_id()));
  Line(out, "State", v1::VirtualFunction::State_Name(v.state()));
  Line(out, "Attachment", v.attachment());
  Line(out, "Borrower", v.borrower());
  Line(out, "Health", VfHealth(v.health(), ""));
  Line(out, "Health reason", v.health_reason());
  std::vector<std::string> bars;
  for (int i = 0; i < v.bar_sizes_size(); ++i) {
    if (v.bar_sizes(i) != 0) {
      bars.push_back(absl::StrCat("bar", i, " ", FormatSize(v.bar_sizes(i))));
    }
  }
  Line(out, "BARs", absl::StrJoin(bars, ", "));
}

void DescribeAttachment(const v1::Attachment& a, std::ostream& out) {
  Line(out, "Name", a.name());
  Line(out, "Fabric", a.fabric());
  Line(out, "VF", a.vf());
  Line(out, "Lender", a.lender());
  Line(out, "VF address", a.vf_address());
  Line(out, "Borrower", a.borrower());
  Line(out, "VM", a.vm().empty() ? "- (the host)" : a.vm());
  Line(out, "Interrupt policy",
       v1::Attachment::InterruptPolicy_Name(a.interrupts()));
  Line(out, "DMA size", a.dma_size() == 0 ? "" : FormatSize(a.dma_size()));
  Line(out, "State", v1::Attachment::State_Name(a.state()));
  Line(out, "Reason", a.state_reason());
  Line(out, "VF health", VfHealth(a.vf_health(), ""));
  Line(out, "VF health reason", a.vf_health_reason());
  Line(out, "Shadow device", a.shadow_device());
  Line(out, "Owner", a.owner());
  Line(out, "Created", Time(a.create_time()));
  Line(out, "Required generation", absl::StrCat(a.required_generation()));
  out << "Windows (" << a.windows_size() << "):\n";
  if (a.windows_size() > 0) {
    Table t({"ROLE", "FROM -> TO", "LOCAL ADDR", "TARGET ADDR", "FABRIC ADDR",
             "SIZE", "SLOT"});
    for (const v1::AttachmentWindow& w : a.windows()) {
      std::string slot = SlotName(w.slot_kind(), w.slot());
      if (w.slot_count() > 1) {
        absl::StrAppend(&slot, " (", w.slot_count(), " slots)");
      }
      t.AddRow({w.role(),
                absl::StrCat(ShortName(w.from_node()), " -> ",
                             ShortName(w.to_node())),
                FormatAddr(w.local_addr()), FormatAddr(w.target_addr()),
                FormatAddr(w.fabric_addr()), FormatSize(w.size()), slot});
    }
    t.Print(out, 2);
  }
  // Counter names are longer than the top-level keys.
  constexpr int kCounterWidth = 30;
  auto counter = [&out](absl::string_view key, uint64_t value, int indent = 2) {
    Line(out, key, absl::StrCat(value), indent, kCounterWidth);
  };
  const v1::VfCounters& c = a.counters();
  out << "Interrupt delivery:\n";
  counter("Delivered direct", c.delivered_direct());
  counter("Delivered via hypervisor", c.delivered_via_hypervisor());
  counter("Exits avoided", c.exits_avoided());
  counter("Exits", c.exits());
  counter("Injected at entry", c.injected_at_entry());
  counter("Coalesced", c.coalesced());
  counter("Dropped", Total(c.dropped_by_reason()));
  for (const auto& [why, n] : Sorted(c.dropped_by_reason())) {
    counter(why, n, 4);
  }
  out << "Config space:\n";
  counter("Reads", c.config_reads());
  counter("Writes forwarded", c.config_writes_forwarded());
  counter("Writes emulated", c.config_writes_emulated());
  counter("Writes dropped", c.config_writes_dropped());
  for (const auto& [why, n] : Sorted(c.config_dropped_by_reason())) {
    counter(why, n, 4);
  }
}

std::string VfShortName(absl::string_view node, absl::string_view address,
                        absl::string_view name) {
  if (!node.empty() && !address.empty()) {
    return absl::StrCat(ShortName(node), "/", address);
  }
  // nodes/{node}/vfs/{0000-3b-00.4}
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() == 4 && parts[0] == "nodes" && parts[2] == "vfs") {
    return absl::StrCat(parts[1], "/",
                        absl::StrReplaceAll(parts[3], {{"-", ":"}}));
  }
  return std::string(name);
}

std::string AttachmentSummary(const v1::Attachment& a) {
  return absl::StrCat(
      a.name(), " VF ", AttachmentVf(a), " lent to ", ShortName(a.borrower()),
      a.vm().empty() ? "" : absl::StrCat(", vm ", a.vm()), ", interrupts ",
      v1::Attachment::InterruptPolicy_Name(a.interrupts()), " (",
      v1::Attachment::State_Name(a.state()), ")");
}

std::string CountersSummary(const v1::VfCounters& c) {
  std::string s =
      absl::StrCat("shadow device totals: ", c.delivered_direct(), " direct, ",
                   c.delivered_via_hypervisor(), " via hypervisor, ",
                   c.exits_avoided(), " exits avoided, ", c.exits(), " exits, ",
                   c.injected_at_entry(), " injected at entry, ", c.coalesced(),
                   " coalesced, ", Total(c.dropped_by_reason()), " dropped");
  if (!c.dropped_by_reason().empty()) {
    absl::StrAppend(&s, " (",
                    absl::StrJoin(Sorted(c.dropped_by_reason()), ", ",
                                  absl::PairFormatter(": ")),
                    ")");
  }
  return s;
}

std::string ShadowWriteOutcome(v1::AccessShadowResponse::Outcome outcome) {
  switch (outcome) {
    case v1::AccessShadowResponse::FORWARDED:
      return "forwarded";
    case v1::AccessShadowResponse::EMULATED:
      return "emulated";
    case v1::AccessShadowResponse::DROPPED:
      return "dropped";
    default:
      return "";
  }
}

}  // namespace fabric::client
