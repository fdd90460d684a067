// Fabric topology: which nodes exist, which bridge ports are wired together,
// and the fabric-wide address layout (one aperture per node).
#ifndef FABRIC_SERVER_CORE_TOPOLOGY_H_
#define FABRIC_SERVER_CORE_TOPOLOGY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/profiles.h"

namespace fabric::core {

enum class TopologyKind { kRing, kStar, kCustom };

// Fabric addresses of node i's aperture start here:
// kApertureRegionBase + i * aperture_size.
inline constexpr uint64_t kApertureRegionBase = 0x1000'0000'0000ull;
inline constexpr uint64_t kDefaultExportBase = 0x1'0000'0000ull;
inline constexpr uint64_t kDefaultWindowBase = 0x200'0000'0000ull;
inline constexpr uint64_t kMinApertureSize = 1ull << 20;
inline constexpr uint64_t kMaxExportSize = 1ull << 40;
inline constexpr uint64_t kExportGranularity = 4096;
inline constexpr int kMaxNodes = 4096;
inline constexpr int kMaxPort = 4096;

struct NodeSpec {
  std::string name;
  std::string profile = "";  // "" = the fabric's default_profile.
  uint64_t export_base = 0;  // 0 = kDefaultExportBase.
  uint64_t export_size = 0;  // 0 = the fabric's default_export_size.
  // Host-physical base of the node's NTB outbound windows; 0 =
  // kDefaultWindowBase.
  uint64_t window_base = 0;
  // Host-physical range of the node's device MMIO (the BARs of the SR-IOV
  // functions it can lend); 0 size = it lends no device. When any node has
  // one, every aperture doubles and its upper half is that node's device
  // range (NodeInfo::mmio_aperture_base).
  uint64_t mmio_base = 0;
  uint64_t mmio_size = 0;
};

struct LinkSpec {
  std::string a;
  int a_port = 0;
  std::string b;
  int b_port = 0;
};

struct FabricSpec {
  std::string name;
  TopologyKind kind = TopologyKind::kRing;
  // Ring order for kRing; for kStar includes the hub.
  std::vector<NodeSpec> nodes;
  std::string hub;  // kStar only: name of the management host.
  std::string default_profile = "sim";
  uint64_t default_export_size = 1ull << 30;
  std::vector<LinkSpec> links;  // kCustom only.
};

// A node with every default resolved. The node's bridge shares its name.
struct NodeInfo {
  std::string name;
  const HardwareProfile* profile;  // Not owned; static storage.
  uint64_t export_base;            // Host-physical memory this node lends out.
  uint64_t export_size;
  uint64_t window_base;    // Host-physical base of its outbound windows.
  uint64_t aperture_base;  // Fabric range routed to this node.
  uint64_t aperture_size;
  uint64_t mmio_base = 0;  // Host-physical device MMIO; size 0 = none.
  uint64_t mmio_size = 0;
  // Fabric address of mmio_base: aperture_base + aperture_size / 2 when any
  // node of the fabric has device MMIO, else 0.
  uint64_t mmio_aperture_base = 0;
  int port_count;  // Ports are numbered 1..port_count.
  bool is_hub;
};

struct Link {
  std::string name;  // "a--b".
  int a;
  int a_port;
  int b;
  int b_port;
};

// An immutable, validated topology. Copyable; thread-safe for concurrent reads.
//
// Ring: port 2 of node i is wired to port 1 of node (i+1) mod N; link i is
// that link. Star: the hub's port k+1 is wired to port 1 of the k-th server
// (servers in node order, hub skipped); link k is that link. Custom: links as
// given.
class Topology {
 public:
  // Validates `spec` and resolves its defaults. Returns INVALID_ARGUMENT
  // naming the offending field and the limit it breaks.
  static absl::StatusOr<Topology> Build(const FabricSpec& spec);

  const FabricSpec& spec() const { return spec_; }
  int node_count() const { return static_cast<int>(nodes_.size()); }
  // REQUIRES: 0 <= i < node_count().
  const NodeInfo& node(int i) const { return nodes_[i]; }
  const std::vector<NodeInfo>& nodes() const { return nodes_; }
  std::optional<int> FindNode(absl::string_view name) const;

  const std::vector<Link>& links() const { return links_; }
  // The first link joining the two nodes, in either order.
  std::optional<int> FindLink(absl::string_view node_a,
                              absl::string_view node_b) const;
  std::optional<int> FindLinkByName(absl::string_view name) const;

  // The {peer node, link index} reached from `node` out of `port`, or nullopt
  // if the port is not wired (or either argument is out of range). Ignores
  // link state.
  std::optional<std::pair<int, int>> PortPeer(int node, int port) const;

  // One wired port of a node.
  struct PortLink {
    int port;
    int peer;
    int link;
  };
  // The wired ports of `node`, sorted by port. REQUIRES: valid node.
  const std::vector<PortLink>& ports(int node) const { return ports_[node]; }

 private:
  Topology() = default;

  FabricSpec spec_;
  std::vector<NodeInfo> nodes_;
  std::vector<Link> links_;
  std::vector<std::vector<PortLink>> ports_;
  absl::flat_hash_map<std::string, int> node_index_;
  absl::flat_hash_map<std::string, int> link_index_;
  absl::flat_hash_map<std::pair<int, int>, int> pair_index_;
};

// Checks a fabric or node name: 1-63 lowercase letters, digits or single
// hyphens, starting with a letter and not ending with a hyphen. Returns
// INVALID_ARGUMENT naming `field`.
absl::Status ValidateName(absl::string_view field, absl::string_view name);

}  // namespace fabric::core

#endif  // FABRIC_SERVER_CORE_TOPOLOGY_H_
