// Human (table, describe) and machine (protobuf JSON) renderings of
// fabric.v1 resources for fabricctl.
//
// Tables are kubectl-like: an upper-case header row, columns padded to the
// widest cell and separated by three spaces, "-" for an empty cell. Sizes are
// printed with FormatSize ("4 MiB"), addresses with FormatAddr
// ("0x200_0000_0000"). JSON is protobuf's canonical JSON mapping (lowerCamel
// field names, 64-bit integers as strings, default values included); a list
// is printed as a JSON array, a single resource as an object.
//
// All functions are pure: they only write to the stream they are given.
#ifndef FABRIC_CLIENT_OUTPUT_H_
#define FABRIC_CLIENT_OUTPUT_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/list_writer.h"
#include "fabric/v1/diagnostics.pb.h"
#include "fabric/v1/resources.pb.h"
#include "google/protobuf/message.h"

namespace fabric::client {

namespace v1 = ::fabric::v1;

// Accepts "table" or "json"; INVALID_ARGUMENT naming -o otherwise.
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view text);

// Aligned text columns. Rows shorter than the header are padded with "-".
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  // Prints the header and every row; trailing spaces are trimmed.
  // `indent` spaces are put before each line.
  void Print(std::ostream& out, int indent = 0) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// "nodes/a" -> "a", "bridges/a/addressMap" -> "a", "a" -> "a".
std::string ShortName(absl::string_view resource_name);

// Protobuf JSON of one message, indented, without a trailing newline.
std::string ToJson(const google::protobuf::Message& message);
// A JSON array of the messages (an empty list prints "[]").
std::string ToJsonArray(
    const std::vector<const google::protobuf::Message*>& messages);

template <typename M>
std::string ToJsonArray(const std::vector<M>& messages) {
  std::vector<const google::protobuf::Message*> ptrs;
  ptrs.reserve(messages.size());
  for (const M& m : messages) ptrs.push_back(&m);
  return ToJsonArray(ptrs);
}

// The table of each listed kind: its column headers, and one item's row.
template <typename M>
std::vector<std::string> TableHeaders();
template <>
std::vector<std::string> TableHeaders<v1::Fabric>();
template <>
std::vector<std::string> TableHeaders<v1::Node>();
template <>
std::vector<std::string> TableHeaders<v1::Bridge>();
template <>
std::vector<std::string> TableHeaders<v1::Link>();
template <>
std::vector<std::string> TableHeaders<v1::Allocation>();
template <>
std::vector<std::string> TableHeaders<v1::VirtualFunction>();
template <>
std::vector<std::string> TableHeaders<v1::Attachment>();
template <>
std::vector<std::string> TableHeaders<v1::HardwareProfile>();
template <>
std::vector<std::string> TableHeaders<v1::Manager>();
std::vector<std::string> TableRow(const v1::Fabric& fabric);
std::vector<std::string> TableRow(const v1::Node& node);
std::vector<std::string> TableRow(const v1::Bridge& bridge);
std::vector<std::string> TableRow(const v1::Link& link);
std::vector<std::string> TableRow(const v1::Allocation& allocation);
std::vector<std::string> TableRow(const v1::VirtualFunction& vf);
std::vector<std::string> TableRow(const v1::Attachment& attachment);
std::vector<std::string> TableRow(const v1::HardwareProfile& profile);
std::vector<std::string> TableRow(const v1::Manager& manager);

// A whole list in one page (see ListWriter).
template <typename M>
void PrintList(const std::vector<M>& items, OutputFormat format,
               std::ostream& out) {
  ListWriter writer(format, TableHeaders<M>(), &out);
  for (const M& m : items) writer.Add(m, TableRow(m));
  writer.Finish();
}

// Lists. With kJson each prints a JSON array; with kTable a table, or
// "No resources found." when the list is empty.
void PrintFabrics(const std::vector<v1::Fabric>& fabrics, OutputFormat format,
                  std::ostream& out);
void PrintNodes(const std::vector<v1::Node>& nodes, OutputFormat format,
                std::ostream& out);
void PrintBridges(const std::vector<v1::Bridge>& bridges, OutputFormat format,
                  std::ostream& out);
void PrintLinks(const std::vector<v1::Link>& links, OutputFormat format,
                std::ostream& out);
void PrintAllocations(const std::vector<v1::Allocation>& allocations,
                      OutputFormat format, std::ostream& out);
// VFs: NAME (node/address), NODE, ADDRESS, PF, VENDOR:DEVICE, STATE ("FREE",
// "LENT to b") and HEALTH (with the reason when UNHEALTHY).
void PrintVirtualFunctions(const std::vector<v1::VirtualFunction>& vfs,
                           OutputFormat format, std::ostream& out);
// Attachments: NAME, VF, BORROWER, VM, INTERRUPTS, STATE (with the reason
// unless READY) and HEALTH (of the VF).
void PrintAttachments(const std::vector<v1::Attachment>& attachments,
                      OutputFormat format, std::ostream& out);
// The table leaves out the (long) descriptions; -o json has them.
void PrintProfiles(const std::vector<v1::HardwareProfile>& profiles,
                   OutputFormat format, std::ostream& out);
// Managers: ADDRESS, ROLE (LEADER/STANDBY), STORE, LEASE (hex, as etcdctl
// shows it; "-" without one) and TTL (what the lease has left).
void PrintManagers(const std::vector<v1::Manager>& managers,
                   OutputFormat format, std::ostream& out);

// One bridge's address map: its entries (kind, fabric range, port or local
// address, covers), outbound windows and inbound grants, each as a table
// under a heading.
void PrintAddressMap(const v1::AddressMap& map, std::ostream& out);
// With kTable, every map in full one after another (blank line between);
// with kJson, an array.
void PrintAddressMaps(const std::vector<v1::AddressMap>& maps,
                      OutputFormat format, std::ostream& out);

// Multi-line "Key: value" views for `fabricctl describe`.
void DescribeFabric(const v1::Fabric& fabric, std::ostream& out);
void DescribeNode(const v1::Node& node, std::ostream& out);
// One line: OK or FAIL, the allocation, and the verifier's summary (the hop
// where a write failed).
void PrintVerify(const v1::VerifyResult& result, std::ostream& out);
void DescribeBridge(const v1::Bridge& bridge, std::ostream& out);
void DescribeAllocation(const v1::Allocation& allocation, std::ostream& out);
void DescribeVirtualFunction(const v1::VirtualFunction& vf, std::ostream& out);
// Every field, each window, and the shadow device's counters.
void DescribeAttachment(const v1::Attachment& attachment, std::ostream& out);

// "allocations/alloc-1 borrower a sees 4 MiB of b at 0x200_0000_0000
// (PENDING)".
std::string AllocationSummary(const v1::Allocation& allocation);

// "n1/0000:3b:00.4": the short form of VF nodes/n1/vfs/0000-3b-00.4 (from
// `node` and `address` when both are set, else parsed from `name`).
std::string VfShortName(absl::string_view node, absl::string_view address,
                        absl::string_view name);

// "attachments/att-1 VF a/0000:3b:00.4 lent to b, vm vm1, interrupts AUTO
// (PENDING)"; without a VM, "..., interrupts AUTO (PENDING)".
std::string AttachmentSummary(const v1::Attachment& attachment);

// One line: "shadow device totals: 3 direct, 1 via hypervisor, 3 exits
// avoided, 1 exits, 0 injected at entry, 0 coalesced, 2 dropped (no vector:
// 2)".
std::string CountersSummary(const v1::VfCounters& counters);

// What became of a shadow-device write, as fabricctl prints it:
// "forwarded", "emulated" or "dropped"; "" when unspecified (not a write).
std::string ShadowWriteOutcome(v1::AccessShadowResponse::Outcome outcome);

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_OUTPUT_H_
