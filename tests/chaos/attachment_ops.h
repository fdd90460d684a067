// SR-IOV VF lending in the chaos storm: CreateAttachment / DeleteAttachment
// of a random free VF to a random other node, proven with VerifyAttachment.
// The lifecycle is LeaseOps's (lease_ops.h).
#ifndef FABRIC_TESTS_CHAOS_ATTACHMENT_OPS_H_
#define FABRIC_TESTS_CHAOS_ATTACHMENT_OPS_H_

#include <optional>
#include <string>

#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "tests/chaos/lease_ops.h"
#include "tests/chaos/ops.h"

namespace fabric::chaos {

// What attachments are to LeaseOps.
struct AttachmentKind {
  FABRIC_CHAOS_LEASE_RPCS(Attachment, attachments)
  static constexpr v1::Attachment::State kGone = v1::Attachment::DETACHED;
  static std::string SpecOf(const Record& a);
};

class AttachmentOps : public LeaseOps<AttachmentKind> {
 public:
  // Lists the fabric's VFs and picks a FREE one; nullopt when none is.
  std::optional<NewCreate> RandomCreate(v1::FabricService::Stub* stub,
                                        const FabricInfo& fabric,
                                        const std::string& request_id,
                                        Rng& rng) override;

  // "nodes/n0/vfs/0000-3b-00.4 -> nodes/n2".
  static std::string Spec(const std::string& vf, const std::string& borrower);

 protected:
  // What the borrower's driver does first: without bus mastering the VF
  // cannot DMA.
  absl::Status BeforeVerify(v1::FabricService::Stub* stub,
                            const ObservedResource& r) override;
};

}  // namespace fabric::chaos

#endif  // FABRIC_TESTS_CHAOS_ATTACHMENT_OPS_H_
