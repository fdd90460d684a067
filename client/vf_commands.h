// fabricctl's VF lending commands: vf attach|detach|config|setup|verify|
// interrupt, and vm start|stop.
//
// Not thread-safe (writes to one stream).
#ifndef FABRIC_CLIENT_VF_COMMANDS_H_
#define FABRIC_CLIENT_VF_COMMANDS_H_

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

struct AttachOptions {
  // "{node}/{0000:3b:00.4}" or "nodes/{node}/vfs/{0000-3b-00.4}".
  std::string vf;
  std::string borrower;  // "b" or "nodes/b"
  std::string vm;        // empty: the borrower's host
  v1::Attachment::InterruptPolicy interrupts = v1::Attachment::AUTO;
  uint64_t dma_size = 0;  // 0: the server's default (1 MiB)
  std::string owner;
  // Empty: a random one is generated, so the client's retries are
  // idempotent.
  std::string request_id;
  // Wait until READY, for at most wait_timeout.
  bool wait = false;
  absl::Duration wait_timeout = absl::Seconds(30);
};

// One access to a shadow device's config space or MSI-X table.
struct ShadowAccessOptions {
  std::string attachment;  // "att-x" or "attachments/att-x"
  bool msix_table = false;
  bool write = false;
  uint32_t offset = 0;
  uint32_t size = 4;
  uint32_t value = 0;  // write only
};

// Usage error unless `access` is one the shadow device can take: size 1, 2
// or 4, naturally aligned, within the 4 KiB config space; the MSI-X table
// takes dwords only; a written value fits in `size` bytes.
absl::Status CheckShadowAccess(const ShadowAccessOptions& access);

class VfCommands : public CommandBase {
 public:
  using CommandBase::CommandBase;

  // vf attach: CreateAttachment; prints the AttachmentSummary line; with
  // wait, then waits until READY. DEADLINE_EXCEEDED when it is not READY in
  // time (the attachment still exists; the message gives its state and
  // reason).
  absl::Status Attach(const AttachOptions& options);

  // vf detach ID: DeleteAttachment; `request_id` empty means a random one.
  absl::Status Detach(const std::string& id, const std::string& request_id);

  // vf config ID read|write: one access to the shadow device (checked with
  // CheckShadowAccess first). Prints the value read, or the write's outcome
  // (forwarded, emulated, dropped) and reason.
  absl::Status ShadowConfig(const ShadowAccessOptions& access);

  // vf setup ID: what the borrower's driver does to start the device
  // (AccessShadow DRIVER_SETUP); prints how many MSI-X vectors it set up.
  absl::Status ShadowSetup(const std::string& id);

  // vf verify ID: the VF DMAs a pattern into the borrower's memory, which is
  // read back. Prints OK or where it failed; FAILED_PRECONDITION (after
  // printing) when it failed. `probe_size` 0 means the server's default.
  absl::Status VerifyAttachment(const std::string& id, uint32_t probe_size);

  // vf interrupt ID: the VF raises MSI-X `vector` `count` times; prints how
  // each was delivered and the shadow device's totals.
  absl::Status RaiseInterrupt(const std::string& id, int vector, int count);

  // vm start|stop NODE VM: tells the borrower's hypervisor that `vm`
  // entered guest mode on `core`, or left it.
  absl::Status SetVmState(const std::string& node, const std::string& vm,
                          bool running, int core);

};

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_VF_COMMANDS_H_
