// Internal to the simulator: the layout of <sim_dir>/<node>/, the bridge
// state file (protobuf JSON, replaced atomically) and the per-node lock.
#ifndef FABRIC_AGENT_HW_SIM_STATE_FILE_H_
#define FABRIC_AGENT_HW_SIM_STATE_FILE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/hw/bridge_hardware.h"

namespace fabric::agent::hw::sim_internal {

// One bridge's file: its name, the limits fixed at creation, its state.
struct SimRecord {
  std::string bridge;
  HardwareLimits limits;
  BridgeState state;
};

std::string NodeDir(const std::string& sim_dir, const std::string& node);
std::string StatePath(const std::string& sim_dir, const std::string& node);
std::string MemoryPath(const std::string& sim_dir, const std::string& node);
std::string LockPath(const std::string& sim_dir, const std::string& node);

// Reads a whole file. Tolerates it being replaced by rename concurrently
// (the open descriptor pins one version). NOT_FOUND if absent.
absl::StatusOr<std::string> ReadText(const std::string& path);

// What bridge `bridge`, whose chip has `limits`, holds right after a reset
// (or when new): nothing programmed, no doorbell bits, zeroed scratchpads.
SimRecord ResetRecord(const std::string& bridge, const HardwareLimits& limits);

// Parses `text`, read from `path`, the state file of bridge `bridge`.
// DATA_LOSS naming `path` when it does not parse (RecordFromJson), belongs
// to another bridge or holds limits no chip has.
absl::StatusOr<SimRecord> ParseRecord(const std::string& path,
                                      const std::string& bridge,
                                      const std::string& text);

// Reads and parses (ParseRecord) the state file of `node` under `sim_dir`.
// NOT_FOUND if absent. `text`, if not null, receives the text read.
absl::StatusOr<SimRecord> LoadRecord(const std::string& sim_dir,
                                     const std::string& node,
                                     std::string* text);

// Writes `record` to a temporary file and renames it over `path`: atomic
// for readers and against the writer being killed; not fsync'd, since the
// simulated registers need not survive power loss.
// `text`, if not null, receives the text written.
absl::Status SaveRecord(const std::string& path, const SimRecord& record,
                        std::string* text);

// The JSON text of a record, and back (exposed for tests and tools).
// RecordFromJson fails with DATA_LOSS when `json` does not parse; since the
// text may be anything (random bytes, another file), the message quotes it
// only as a short excerpt with every byte that is not printable ASCII
// escaped: at most kMaxParseErrorBytes of ASCII, whatever the text holds.
absl::StatusOr<std::string> RecordToJson(const SimRecord& record);
absl::StatusOr<SimRecord> RecordFromJson(const std::string& json);
inline constexpr size_t kMaxParseErrorBytes = 512;

// An exclusive flock on a node's lock file, held for a read-modify-write of
// its state. Move-only; released on destruction.
class FileLock {
 public:
  static absl::StatusOr<FileLock> Acquire(const std::string& path);
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace fabric::agent::hw::sim_internal

#endif  // FABRIC_AGENT_HW_SIM_STATE_FILE_H_
