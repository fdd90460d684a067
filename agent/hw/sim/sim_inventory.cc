#include "agent/hw/sim/sim_inventory.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "agent/discovery/config_space.h"
#include "common/status_macros.h"

namespace fabric::agent::hw {

absl::StatusOr<v1::NodeInventory> SimulatedInventory(SimSriovHost& host) {
  // One read of the devices' state for all of it (SimSriovHost::Images).
  ASSIGN_OR_RETURN(std::vector<SimFunctionImage> images, host.Images());
  struct PfInfo {
    uint16_t vendor = 0;
    uint16_t vf_device = 0;
  };
  std::map<std::string, PfInfo> pfs;
  v1::NodeInventory out;
  // PFs sort before their VFs (lower routing ids), so each VF finds its PF.
  for (const SimFunctionImage& image : images) {
    const SimFunction& f = image.function;
    const std::vector<uint8_t>& config = image.config;
    ASSIGN_OR_RETURN(discovery::ConfigHeader header,
                     discovery::ParseHeader(config));
    v1::PciFunction* fn = out.add_functions();
    fn->set_address(f.address.ToString());
    fn->set_class_code(header.class_code);
    for (int bar = 0; bar < 6; ++bar) {
      fn->add_bar_sizes(image.bar_sizes[bar]);
      fn->add_bar_addresses(image.bar_addresses[bar]);
    }
    if (!f.is_vf) {
      fn->set_kind(v1::PciFunction::SRIOV_PF);
      fn->set_vendor_id(header.vendor_id);
      fn->set_device_id(header.device_id);
      fn->set_description("simulated SR-IOV physical function");
      ASSIGN_OR_RETURN(std::optional<discovery::SriovCapability> sriov,
                       discovery::FindSriov(config));
      if (sriov) {
        v1::SriovInfo* s = fn->mutable_sriov();
        s->set_initial_vfs(sriov->initial_vfs);
        s->set_total_vfs(sriov->total_vfs);
        s->set_num_vfs(sriov->num_vfs);
        s->set_vf_offset(sriov->first_vf_offset);
        s->set_vf_stride(sriov->vf_stride);
        s->set_vf_device_id(sriov->vf_device_id);
        ASSIGN_OR_RETURN(
            std::vector<discovery::PciAddress> vfs,
            discovery::VfAddresses(f.address, sriov->first_vf_offset,
                                   sriov->vf_stride, sriov->num_vfs));
        for (const auto& vf : vfs) s->add_vf_addresses(vf.ToString());
        pfs[f.address.ToString()] = {header.vendor_id, sriov->vf_device_id};
      }
    } else {
      fn->set_kind(v1::PciFunction::SRIOV_VF);
      fn->set_pf_address(f.pf.ToString());
      const PfInfo& pf = pfs[f.pf.ToString()];
      fn->set_vendor_id(pf.vendor);
      fn->set_device_id(pf.vf_device);
      fn->set_description(absl::StrCat("simulated virtual function ",
                                       f.vf_index, " of ", f.pf.ToString()));
    }
  }
  return out;
}

}  // namespace fabric::agent::hw
