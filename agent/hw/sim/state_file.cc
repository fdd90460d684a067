#include "agent/hw/sim/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "agent/hw/limits_check.h"
#include "agent/hw/sim/sim_state.pb.h"
#include "common/file_util.h"
#include "google/protobuf/util/json_util.h"

namespace fabric::agent::hw::sim_internal {
namespace {

namespace pb = ::fabric::agent::hw::sim;

// The longest Quote(bytes, max).
constexpr size_t QuotedBytes(size_t max) { return 4 * max + 3; }

// At most the first `max` bytes of `bytes`, each byte that is not printable
// ASCII and each backslash written as \xNN, then "..." when cut: ASCII of at
// most QuotedBytes(max) bytes, whatever `bytes` holds.
std::string Quote(absl::string_view bytes, size_t max) {
  std::string out;
  for (const char c : bytes.substr(0, max)) {
    const auto b = static_cast<uint8_t>(c);
    if (b >= 0x20 && b < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(b, absl::kZeroPad2));
    }
  }
  if (bytes.size() > max) out += "...";
  return out;
}

pb::BridgeState ToProto(const SimRecord& r) {
  pb::BridgeState p;
  p.set_bridge(r.bridge);
  pb::Limits* l = p.mutable_limits();
  l->set_profile(r.limits.profile);
  l->set_window_count(r.limits.window_count);
  l->set_lut_entries(r.limits.lut_entries);
  l->set_lut_entry_size(r.limits.lut_entry_size);
  l->set_xlat_align(r.limits.xlat_align);
  l->set_size_granularity(r.limits.size_granularity);
  l->set_min_window_size(r.limits.min_window_size);
  l->set_max_window_size(r.limits.max_window_size);
  l->set_mapping_entries(r.limits.mapping_entries);
  l->set_doorbells(r.limits.doorbells);
  l->set_scratchpads(r.limits.scratchpads);
  const BridgeState& s = r.state;
  p.mutable_memory()->set_base(s.memory.base);
  p.mutable_memory()->set_size(s.memory.size);
  p.mutable_memory()->set_window_base(s.memory.window_base);
  p.mutable_memory()->set_mmio_base(s.memory.mmio_base);
  p.mutable_memory()->set_mmio_size(s.memory.mmio_size);
  for (const MapEntry& e : s.map) {
    pb::MapEntry* m = p.add_map();
    m->set_kind(e.kind == MapEntry::Kind::kClaim ? pb::MapEntry::CLAIM
                                                 : pb::MapEntry::FORWARD);
    m->set_base(e.base);
    m->set_size(e.size);
    m->set_port(e.port);
    m->set_local_base(e.local_base);
  }
  for (const Window& w : s.windows) {
    pb::Window* m = p.add_windows();
    m->set_kind(w.kind == SlotKind::kLut ? pb::Window::LUT
                                         : pb::Window::WINDOW);
    m->set_slot(w.slot);
    m->set_local_base(w.local_base);
    m->set_size(w.size);
    m->set_xlat(w.xlat);
    m->set_tag(w.tag);
  }
  for (const Inbound& in : s.inbound) {
    pb::Inbound* m = p.add_inbound();
    m->set_local_base(in.local_base);
    m->set_size(in.size);
    m->set_tag(in.tag);
  }
  for (const Port& port : s.ports) {
    pb::Port* m = p.add_ports();
    m->set_number(port.number);
    m->set_peer_bridge(port.peer_bridge);
    m->set_peer_port(port.peer_port);
    m->set_up(port.up);
  }
  p.set_doorbell(s.doorbell);
  for (uint32_t v : s.scratchpads) p.add_scratchpads(v);
  return p;
}

SimRecord FromProto(const pb::BridgeState& p) {
  SimRecord r;
  r.bridge = p.bridge();
  const pb::Limits& l = p.limits();
  r.limits.profile = l.profile();
  r.limits.window_count = l.window_count();
  r.limits.lut_entries = l.lut_entries();
  r.limits.lut_entry_size = l.lut_entry_size();
  r.limits.xlat_align = l.xlat_align();
  r.limits.size_granularity = l.size_granularity();
  r.limits.min_window_size = l.min_window_size();
  r.limits.max_window_size = l.max_window_size();
  r.limits.mapping_entries = l.mapping_entries();
  r.limits.doorbells = l.doorbells();
  r.limits.scratchpads = l.scratchpads();
  BridgeState& s = r.state;
  s.memory = {p.memory().base(), p.memory().size(), p.memory().window_base(),
              p.memory().mmio_base(), p.memory().mmio_size()};
  for (const pb::MapEntry& m : p.map()) {
    s.map.push_back({m.kind() == pb::MapEntry::CLAIM ? MapEntry::Kind::kClaim
                                                     : MapEntry::Kind::kForward,
                     m.base(), m.size(), m.port(), m.local_base()});
  }
  for (const pb::Window& m : p.windows()) {
    s.windows.push_back(
        {m.kind() == pb::Window::LUT ? SlotKind::kLut : SlotKind::kWindow,
         m.slot(), m.local_base(), m.size(), m.xlat(), m.tag()});
  }
  for (const pb::Inbound& m : p.inbound()) {
    s.inbound.push_back({m.local_base(), m.size(), m.tag()});
  }
  for (const pb::Port& m : p.ports()) {
    s.ports.push_back({m.number(), m.peer_bridge(), m.peer_port(), m.up()});
  }
  s.doorbell = p.doorbell();
  s.scratchpads.assign(p.scratchpads().begin(), p.scratchpads().end());
  return r;
}

}  // namespace

std::string NodeDir(const std::string& sim_dir, const std::string& node) {
  return absl::StrCat(sim_dir, "/", node);
}
std::string StatePath(const std::string& sim_dir, const std::string& node) {
  return absl::StrCat(sim_dir, "/", node, "/bridge.json");
}
std::string MemoryPath(const std::string& sim_dir, const std::string& node) {
  return absl::StrCat(sim_dir, "/", node, "/memory");
}
std::string LockPath(const std::string& sim_dir, const std::string& node) {
  return absl::StrCat(sim_dir, "/", node, "/lock");
}

absl::StatusOr<std::string> RecordToJson(const SimRecord& record) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  std::string out;
  auto st =
      google::protobuf::util::MessageToJsonString(ToProto(record), &out, opts);
  if (!st.ok()) {
    return absl::InternalError(
        absl::StrCat("encoding bridge state: ", st.ToString()));
  }
  return out;
}

absl::StatusOr<SimRecord> RecordFromJson(const std::string& json) {
  pb::BridgeState p;
  google::protobuf::util::JsonParseOptions opts;
  auto st = google::protobuf::util::JsonStringToMessage(json, &p, opts);
  if (!st.ok()) {
    // Protobuf's message is the reason, then the input around the error
    // (raw bytes) and a caret line: both are quoted, bounded.
    constexpr absl::string_view kPrefix = "bridge state does not parse: ";
    constexpr absl::string_view kNear = " near \"\"";
    constexpr size_t kReasonBytes = 64;
    constexpr size_t kNearBytes = 24;
    static_assert(kPrefix.size() + QuotedBytes(kReasonBytes) + kNear.size() +
                      QuotedBytes(kNearBytes) <=
                  kMaxParseErrorBytes);
    const std::string what(st.message().data(), st.message().size());
    const std::vector<absl::string_view> lines =
        absl::StrSplit(what, absl::MaxSplits('\n', 2));
    std::string message = absl::StrCat(kPrefix, Quote(lines[0], kReasonBytes));
    if (lines.size() > 1 && !lines[1].empty()) {
      absl::StrAppend(&message, " near \"", Quote(lines[1], kNearBytes), "\"");
    }
    return absl::DataLossError(message);
  }
  return FromProto(p);
}

SimRecord ResetRecord(const std::string& bridge, const HardwareLimits& limits) {
  SimRecord r;
  r.bridge = bridge;
  r.limits = limits;
  r.state.scratchpads.assign(limits.scratchpads, 0);
  return r;
}

absl::StatusOr<SimRecord> ParseRecord(const std::string& path,
                                      const std::string& bridge,
                                      const std::string& text) {
  absl::StatusOr<SimRecord> r = RecordFromJson(text);
  if (!r.ok()) {
    return absl::DataLossError(absl::StrCat(path, ": ", r.status().message()));
  }
  if (r->bridge != bridge) {
    return absl::DataLossError(absl::StrCat(path, " belongs to bridge '",
                                            Quote(r->bridge, 64), "', not '",
                                            bridge, "'"));
  }
  if (absl::Status s = CheckLimits(r->limits); !s.ok()) {
    return absl::DataLossError(absl::StrCat(
        path, " holds limits no chip has: ", Quote(s.message(), 160)));
  }
  return r;
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  return ReadFileToString(path);
}

absl::StatusOr<SimRecord> LoadRecord(const std::string& sim_dir,
                                     const std::string& node,
                                     std::string* text) {
  const std::string path = StatePath(sim_dir, node);
  absl::StatusOr<std::string> t = ReadText(path);
  if (!t.ok()) return t.status();
  absl::StatusOr<SimRecord> r = ParseRecord(path, node, *t);
  if (r.ok() && text != nullptr) *text = *std::move(t);
  return r;
}

absl::Status SaveRecord(const std::string& path, const SimRecord& record,
                        std::string* text) {
  absl::StatusOr<std::string> json = RecordToJson(record);
  if (!json.ok()) return json.status();
  json->push_back('\n');
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  const int fd =
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create", tmp);
  size_t done = 0;
  while (done < json->size()) {
    const ssize_t n = write(fd, json->data() + done, json->size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = ErrnoError("write", tmp);
      close(fd);
      unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  // No fsync: the simulated chip, like a real one, need not survive power
  // loss. The rename alone makes the change atomic for every reader and
  // survives the writer being killed.
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = ErrnoError("rename over", path);
    unlink(tmp.c_str());
    return s;
  }
  if (text != nullptr) *text = *std::move(json);
  return absl::OkStatus();
}

absl::StatusOr<FileLock> FileLock::Acquire(const std::string& path) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("open lock", path);
  while (flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    absl::Status s = ErrnoError("flock", path);
    close(fd);
    return s;
  }
  return FileLock(fd);
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(other.fd_) {
  other.fd_ = -1;
}

FileLock::~FileLock() {
  if (fd_ >= 0) close(fd_);  // Closing the last descriptor drops the flock.
}

}  // namespace fabric::agent::hw::sim_internal
