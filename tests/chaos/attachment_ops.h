// SR-IOV VF lending in the chaos storm: CreateAttachment / DeleteAttachment
// of a random free VF to a random other node, proven with VerifyAttachment.
#ifndef FABRIC_TESTS_CHAOS_ATTACHMENT_OPS_H_
#define FABRIC_TESTS_CHAOS_ATTACHMENT_OPS_H_

#include <optional>
#include <string>
#include <vector>

#include "tests/chaos/ops.h"

namespace fabric::chaos {

class AttachmentOps : public ResourceOps {
 public:
  std::string kind() const override { return "attachments"; }
  int weight() const override { return 1; }
  // Lists the fabric's VFs and picks a FREE one; nullopt when none is.
  std::optional<NewCreate> RandomCreate(v1::FabricService::Stub* stub,
                                        const FabricInfo& fabric,
                                        const std::string& request_id,
                                        Rng& rng) override;
  Attempt Create(v1::FabricService::Stub* stub, const std::string& request,
                 absl::Duration timeout) override;
  Attempt Delete(v1::FabricService::Stub* stub, const std::string& name,
                 const std::string& request_id,
                 absl::Duration timeout) override;
  absl::StatusOr<std::vector<ObservedResource>> List(
      v1::FabricService::Stub* stub) override;
  bool Settled(const ObservedResource& r) const override;
  absl::Status Verify(v1::FabricService::Stub* stub,
                      const ObservedResource& r) override;

  // "nodes/n0/vfs/0000-3b-00.4 -> nodes/n2".
  static std::string Spec(const std::string& vf, const std::string& borrower);

  // Every attachment the manager holds, whole.
  static absl::StatusOr<std::vector<v1::Attachment>> ListAll(
      v1::FabricService::Stub* stub);
};

}  // namespace fabric::chaos

#endif  // FABRIC_TESTS_CHAOS_ATTACHMENT_OPS_H_
