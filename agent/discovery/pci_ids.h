// Which PCI functions are non-transparent bridges, by vendor/device ID and
// class code, with a short human description.
#ifndef FABRIC_AGENT_DISCOVERY_PCI_IDS_H_
#define FABRIC_AGENT_DISCOVERY_PCI_IDS_H_

#include <cstdint>
#include <string>

namespace fabric::agent::discovery {

struct NtbMatch {
  enum class Confidence {
    kNone,       // not an NTB as far as we know
    kKnown,      // listed in the table (a kernel NTB driver binds to it)
    kClassOnly,  // class 0x0680 "bridge, other", not in the table
  };
  Confidence confidence = Confidence::kNone;
  // "Intel Xeon NTB (Skylake)", "possible NTB (class 0680)", or "unknown".
  std::string description = "unknown";

  bool is_ntb() const { return confidence != Confidence::kNone; }
};

// Looks a function up. `class_code` is the 24-bit class code (base, sub,
// prog-if); only its upper 16 bits matter. Thread-safe; the table is
// constant.
NtbMatch LookupNtb(uint16_t vendor_id, uint16_t device_id, uint32_t class_code);

}  // namespace fabric::agent::discovery

#endif  // FABRIC_AGENT_DISCOVERY_PCI_IDS_H_
