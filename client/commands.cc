#include "client/commands.h"

namespace fabric::client {

Commands::Commands(FabricClient* client, std::ostream* out,
                   const Options& options)
    : fabric_(client, out, options),
      get_(client, out, options),
      allocations_(client, out, options),
      vfs_(client, out, options),
      audit_(client, out, options) {}

absl::Status Commands::CreateFabric(const v1::FabricSpec& spec) {
  return fabric_.CreateFabric(spec);
}
absl::Status Commands::Apply(const std::string& path) {
  return fabric_.Apply(path);
}
absl::Status Commands::SetLink(const std::string& a, const std::string& b,
                               bool up) {
  return fabric_.SetLink(a, b, up);
}
absl::Status Commands::DeleteFabric(const std::string& name, bool force) {
  return fabric_.DeleteFabric(name, force);
}

absl::Status Commands::Get(ResourceKind kind, const std::string& name,
                           const std::string& fabric, const std::string& node) {
  return get_.Get(kind, name, fabric, node);
}
absl::Status Commands::Describe(ResourceKind kind, const std::string& name) {
  return get_.Describe(kind, name);
}

absl::Status Commands::Alloc(const AllocOptions& options) {
  return allocations_.Alloc(options);
}
absl::Status Commands::Release(const std::string& id,
                               const std::string& request_id) {
  return allocations_.Release(id, request_id);
}
absl::Status Commands::Verify(const std::string& id, bool all) {
  return allocations_.Verify(id, all);
}

absl::Status Commands::Attach(const AttachOptions& options) {
  return vfs_.Attach(options);
}
absl::Status Commands::Detach(const std::string& id,
                              const std::string& request_id) {
  return vfs_.Detach(id, request_id);
}
absl::Status Commands::ShadowConfig(const ShadowAccessOptions& access) {
  return vfs_.ShadowConfig(access);
}
absl::Status Commands::ShadowSetup(const std::string& id) {
  return vfs_.ShadowSetup(id);
}
absl::Status Commands::VerifyAttachment(const std::string& id,
                                        uint32_t probe_size) {
  return vfs_.VerifyAttachment(id, probe_size);
}
absl::Status Commands::RaiseInterrupt(const std::string& id, int vector,
                                      int count) {
  return vfs_.RaiseInterrupt(id, vector, count);
}
absl::Status Commands::SetVmState(const std::string& node,
                                  const std::string& vm, bool running,
                                  int core) {
  return vfs_.SetVmState(node, vm, running, core);
}

absl::Status Commands::Audit(const AuditOptions& options) {
  return audit_.Audit(options);
}

}  // namespace fabric::client
