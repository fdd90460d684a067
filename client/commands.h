// The fabricctl commands, one method per verb, independent of flag parsing.
//
// Each command talks to the server through a FabricClient, writes its
// result to the output stream it was given (a table or protobuf JSON, see
// output.h) and returns a status. A failed status's message says what was
// being done and what the server answered ("get nodes/x: node not found");
// it may carry a hint (StatusHint) and may be marked as a usage error
// (IsUsageError), which fabricctl turns into exit code 2.
//
//   auto client = FabricClient::Connect("127.0.0.1:7070", {});
//   Commands cmds(client.get(), &std::cout, {OutputFormat::kTable});
//   absl::Status s = cmds.Get(ResourceKind::kNode, "", "");
//
// Not thread-safe (writes to one stream); use one Commands per thread.
#ifndef FABRIC_CLIENT_COMMANDS_H_
#define FABRIC_CLIENT_COMMANDS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/fabric_client.h"
#include "client/output.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::client {

// ---------------------------------------------------------------------------
// Errors

// INVALID_ARGUMENT marked as a usage error (bad flag value, bad resource
// kind): fabricctl exits 2 for these.
absl::Status UsageError(absl::string_view message);
bool IsUsageError(const absl::Status& status);

// Returns `status` with `hint` attached (a one-line suggestion printed after
// the error). OK statuses are returned unchanged.
absl::Status WithHint(absl::Status status, absl::string_view hint);
// The attached hint, or "" when there is none.
std::string StatusHint(const absl::Status& status);

// ---------------------------------------------------------------------------
// Argument helpers (pure)

// Parses a positive duration such as "30s", "5m", "1h", "1h30m", "250ms"
// (absl::ParseDuration syntax); a bare number means seconds. Returns a usage
// error naming `flag` otherwise.
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view text,
                                                 absl::string_view flag);

// Parses "k=v" labels. Returns a usage error naming --label for an entry
// without "=" or with an empty key.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& labels);

// Splits the values of a comma-separated list flag (given once, or
// repeated: "--nodes a,b --nodes c") into names stripped of surrounding
// whitespace. An empty name is a usage error naming `flag` and its 1-based
// position in the whole list ("--nodes: name 2 is empty"); a list with no
// name at all (`--nodes ""`) is one saying the list is empty.
absl::StatusOr<std::vector<std::string>> ParseNameList(
    const std::vector<std::string>& values, absl::string_view flag);

// Parses a FabricSpec in protobuf JSON (unknown fields are errors). Errors
// are INVALID_ARGUMENT usage errors naming `source` and, when the parser
// reports a position, its line and column.
absl::StatusOr<v1::FabricSpec> ParseFabricSpec(absl::string_view json,
                                               absl::string_view source);
// Reads `path` (the value of apply's -f) and parses it as above. A path
// that cannot be read is a usage error naming -f, the path and why:
// "-f X: no such file", "-f X: is a directory", "-f X: permission denied".
absl::StatusOr<v1::FabricSpec> ReadFabricSpecFile(const std::string& path);

// A RING fabric spec over `nodes` in ring order. `profile` and
// `export_size` (0 = server default) become the fabric's defaults.
v1::FabricSpec RingSpec(const std::string& name,
                        const std::vector<std::string>& nodes,
                        const std::string& profile, uint64_t export_size);
// A STAR fabric spec: `hub` first, then `nodes` (a repeated hub is dropped).
v1::FabricSpec StarSpec(const std::string& name, const std::string& hub,
                        const std::vector<std::string>& nodes,
                        const std::string& profile, uint64_t export_size);

// True when the specs describe the same fabric once the defaults documented
// in fabric.proto are filled in on both sides (empty profile = the fabric's
// default_profile = "sim", export_size 0 = default_export_size = 1 GiB,
// export_base 0 = 0x1_0000_0000, window_base 0 = 0x200_0000_0000).
bool SameFabricSpec(const v1::FabricSpec& a, const v1::FabricSpec& b);

// A random request id ("fabricctl-" and 32 hex digits).
std::string NewRequestId();

// "x", "nodes/x" -> "nodes/x" for collection "nodes".
std::string Qualify(absl::string_view collection, absl::string_view name);

// Parses an unsigned number, hexadecimal with "0x" or decimal, at most
// `max`. Usage error naming `flag` otherwise.
absl::StatusOr<uint64_t> ParseNumberFlag(absl::string_view text,
                                         absl::string_view flag,
                                         uint64_t max = UINT32_MAX);

// "direct", "hypervisor" or "auto" (any case). Usage error naming
// --interrupts and the allowed values otherwise.
absl::StatusOr<v1::Attachment::InterruptPolicy> ParseInterruptPolicy(
    absl::string_view text);

// ---------------------------------------------------------------------------
// Commands

enum class ResourceKind {
  kFabric,
  kNode,
  kBridge,
  kLink,
  kMap,
  kAllocation,
  kProfile,
  kVf,
  kAttachment
};

// Accepts plural and singular names ("nodes", "node"), "addressmaps" for
// maps, "virtualfunctions" for vfs and "att" for attachments. Usage error
// listing the valid kinds otherwise.
absl::StatusOr<ResourceKind> ParseResourceKind(absl::string_view text);

// OK when `node` is empty or `kind` is listed by node (allocations, vfs,
// attachments); a usage error naming --node otherwise.
absl::Status CheckNodeFilter(ResourceKind kind, absl::string_view node);

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

class Commands {
 public:
  struct Options {
    OutputFormat format = OutputFormat::kTable;
    // How often `alloc --wait` polls the allocation.
    absl::Duration poll_interval = absl::Milliseconds(250);
  };

  // `client` and `out` are not owned and must outlive this object.
  Commands(FabricClient* client, std::ostream* out, const Options& options);

  // create ring / create star: CreateFabric; prints "fabric/x created".
  // ALREADY_EXISTS hints at the fabric that has the name or, when none has
  // it, at the fabric that holds one of the spec's nodes.
  absl::Status CreateFabric(const v1::FabricSpec& spec);

  // apply -f: creates the fabric in `path`. When it exists with the same
  // spec (SameFabricSpec), prints "fabric/x unchanged" and succeeds; with a
  // different spec, FAILED_PRECONDITION (changing a live fabric is not
  // supported yet). When a node of the spec belongs to another fabric,
  // ALREADY_EXISTS with CreateFabric's hint.
  absl::Status Apply(const std::string& path);

  // get KIND [NAME]: one resource, or all of them (every page). `fabric`
  // optionally filters lists by fabric id, `node` (CheckNodeFilter) lists of
  // allocations (the node borrows or lends), VFs (the node's) and
  // attachments (lent by or to the node).
  absl::Status Get(ResourceKind kind, const std::string& name,
                   const std::string& fabric, const std::string& node = "");

  // describe KIND NAME (fabric, node, bridge, allocation, link, vf,
  // attachment).
  absl::Status Describe(ResourceKind kind, const std::string& name);

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

  // link up|down A B: SetLinkState on links/A--B, or links/B--A when the
  // first is NOT_FOUND.
  absl::Status SetLink(const std::string& a, const std::string& b, bool up);

  // delete fabric NAME [--force].
  absl::Status DeleteFabric(const std::string& name, bool force);

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

 private:
  // Prints `message` as JSON in kJson mode, otherwise `line`.
  void Report(const google::protobuf::Message& message,
              const std::string& line);

  FabricClient* const client_;
  std::ostream* const out_;
  const Options options_;
};

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_COMMANDS_H_
