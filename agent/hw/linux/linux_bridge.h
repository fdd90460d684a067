// LinuxBridge: BridgeHardware over the kernel's NTB test client, ntb_tool,
// i.e. the debugfs directory <debugfs_root>/ntb_tool/<device>/ (formats
// per drivers/ntb/test/ntb_tool.c) plus <sysfs_root>/bus/ntb/devices/<device>.
// Both roots are configurable so tests run against a fabricated tree.
//
// What maps and what does not (nothing pretends; see bridge_hardware.h):
//  - Outbound windows: direct window k is ntb_tool memory window k, LUT slot
//    s is memory window window_count + s (IDT lists LUT entries after the
//    direct BARs). SetWindow writes "ADDR:SIZE" to
//    peer<window_peer>/peer_mw_trans<k>; the window's local_base must be the
//    window's "Phys Address" as ntb_tool reports it. Tags are not stored by
//    the hardware: Read() returns windows with empty tags.
//  - Inbound grants: ntb_tool's mw_trans<k> takes only a size and the kernel
//    picks the buffer's DMA address, so a grant of a given host range cannot
//    be programmed: SetInbound of a non-empty list is UNIMPLEMENTED unless
//    every grant already matches an allocated inbound window; an empty list
//    frees every inbound window. Read() reports allocated inbound windows.
//  - Mapping-chip entries: no Linux interface; SetMapEntries of a non-empty
//    table is UNIMPLEMENTED, an empty one is OK; Read() returns none.
//  - Host memory: a fact of the host, not programmable; SetHostMemory keeps
//    it in this object and Read() returns it.
//  - Ports: the peer reached at peer index N is our port N + 1. ntb_tool's
//    `link` switch is device-wide: the link is enabled while any port is
//    wanted up and disabled when every port set is down. Read() reports each
//    peer's link as peer<N>/link says and its port as peer<N>/port says
//    (the hardware's port numbering).
//  - Doorbells: RingPeerDoorbell writes "s BITS" to peer_db (device-wide);
//    Read() parses db. Scratchpads: spad<i>.
//  - Data path: HostWrite through an outbound window writes
//    peer<window_peer>/peer_mw<k> at the offset (landed means posted into the
//    window: Linux cannot see where it lands; AccessResult.addr is the
//    translated address, node is empty). Outside any window, and for
//    HostRead, only host memory behind an allocated inbound window is
//    reachable, through peer<N>/mw<k>; anything else is UNIMPLEMENTED (no
//    /dev/mem access).
//
// Thread-compatible.
#ifndef FABRIC_AGENT_HW_LINUX_LINUX_BRIDGE_H_
#define FABRIC_AGENT_HW_LINUX_LINUX_BRIDGE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/hw/bridge_hardware.h"

namespace fabric::agent::hw {

class LinuxBridge : public BridgeHardware {
 public:
  struct Options {
    std::string debugfs_root = "/sys/kernel/debug";
    std::string sysfs_root = "/sys";
    std::string device;  // NTB device name, e.g. "0000:03:00.1".
    std::string name;    // This bridge's (node's) name, for AccessResult.
    // Peer bridge name -> ntb_tool peer index N (directory peer<N>/).
    std::map<std::string, int> peer_index;
    // The peer directory whose peer_mw_trans<k> files program the outbound
    // windows (ntb_tool's outbound windows are shared by all peers).
    int window_peer = 0;
  };

  // Checks that the device and its ntb_tool directory exist (NOT_FOUND
  // otherwise) and that every peer index has its directory. `limits` come
  // from the caller (discovery / the node's profile).
  static absl::StatusOr<std::unique_ptr<LinuxBridge>> Open(
      Options options, const HardwareLimits& limits);

  // Fills the counts ntb_tool shows into `base`: window_count (the
  // peer_mw_trans files of window_peer minus base.lut_entries), doorbells
  // (bits of db_valid_mask) and scratchpads (spad files).
  static absl::StatusOr<HardwareLimits> DiscoverLimits(const Options& options,
                                                       HardwareLimits base);

  const HardwareLimits& limits() const override { return limits_; }
  absl::StatusOr<BridgeState> Read() override;
  absl::Status SetHostMemory(const HostMemory& memory) override;
  absl::Status SetMapEntries(const std::vector<MapEntry>& entries) override;
  absl::Status SetWindow(const Window& window) override;
  absl::Status ClearWindow(SlotKind kind, int slot) override;
  absl::Status SetInbound(const std::vector<Inbound>& inbound) override;
  absl::Status SetPort(const Port& port) override;
  absl::Status RingPeerDoorbell(const std::string& peer_bridge,
                                uint64_t bits) override;
  absl::Status WriteScratchpad(int index, uint32_t value) override;
  absl::StatusOr<AccessResult> HostWrite(
      uint64_t addr, absl::Span<const uint8_t> data) override;
  absl::Status HostRead(uint64_t addr, absl::Span<uint8_t> out) override;

 private:
  // One outbound memory window as peer_mw_trans<k> prints it.
  struct OutboundMw {
    int widx = 0;
    int port_attached = -1;  // -1 when not programmed.
    uint64_t phys_addr = 0;
    uint64_t mapping_size = 0;
    uint64_t xlat = 0;
    uint64_t size = 0;
  };
  // One inbound memory window as peer<N>/mw_trans<k> prints it.
  struct InboundMw {
    int peer = 0;
    int widx = 0;
    uint64_t dma_addr = 0;
    uint64_t size = 0;
  };

  LinuxBridge(Options options, const HardwareLimits& limits);

  std::string ToolPath(const std::string& rel) const;
  std::string PeerPath(int peer, const std::string& rel) const;
  int WindowIndex(SlotKind kind, int slot) const;
  absl::StatusOr<OutboundMw> ReadOutbound(int widx) const;
  absl::StatusOr<std::vector<OutboundMw>> ReadAllOutbound() const;
  absl::StatusOr<std::vector<InboundMw>> ReadAllInbound() const;
  absl::Status WriteLink();

  const Options options_;
  const HardwareLimits limits_;
  HostMemory memory_;
  std::map<int, bool> wanted_up_;  // Port number -> up, as last set.
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_LINUX_LINUX_BRIDGE_H_
