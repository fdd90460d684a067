// fabricctl's allocation commands: alloc mem, release and verify.
//
// Not thread-safe (writes to one stream).
#ifndef FABRIC_CLIENT_ALLOCATION_COMMANDS_H_
#define FABRIC_CLIENT_ALLOCATION_COMMANDS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/command_base.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::client {

struct AllocOptions {
  std::string borrower;  // "a" or "nodes/a"
  std::string target;
  uint64_t size = 0;
  std::string owner;
  std::map<std::string, std::string> labels;
  std::optional<absl::Duration> ttl;
  // Empty: a random one is generated, so the client's retries are
  // idempotent.
  std::string request_id;
  // Poll until READY, for at most wait_timeout.
  bool wait = false;
  absl::Duration wait_timeout = absl::Seconds(30);
};

class AllocationCommands : public CommandBase {
 public:
  using CommandBase::CommandBase;

  // alloc mem: prints the AllocationSummary line; with wait, then polls
  // until READY. DEADLINE_EXCEEDED when it is not READY in time (the
  // allocation still exists; the message gives its state and reason).
  // With a request id given in `options`, a replay of a request whose
  // allocation has since been released is FAILED_PRECONDITION saying so.
  absl::Status Alloc(const AllocOptions& options);

  // release ID: `id` is "alloc-x" or "allocations/alloc-x". DeleteAllocation
  // is idempotent: a retry with the same `request_id` (empty means a random
  // one) answers as the first release did.
  absl::Status Release(const std::string& id, const std::string& request_id);

  // verify ID | verify --all: proves allocations by bytes through the
  // agents. Prints OK, or the hop where the write failed; FAILED_PRECONDITION
  // (after printing every result) when any failed. --all covers every READY
  // allocation, one line each, reports an allocation whose verification
  // failed with an error (an agent that does not answer) as FAIL with that
  // error and goes on, then says how many passed and how many others it
  // skipped; it stops only when the manager cannot be reached.
  absl::Status Verify(const std::string& id, bool all);

};

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_ALLOCATION_COMMANDS_H_
