// VfLender, against the simulator's device model:
// only the borrower a VF is lent to reaches it, and only as the
// virtualization rules allow, even when it bypasses its own shadow device.
#include "agent/vf_lender.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/hw/sim/sim_hardware.h"
#include "agent/hw/sim/sim_sriov_functions.h"
#include "agent/hw/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent {
namespace {

using ::testing::HasSubstr;

constexpr char kVf0[] = "0000:3b:02.0";
constexpr char kVf1[] = "0000:3b:02.1";
constexpr uint64_t kDmaWindow = 0x200'0000'0000ull;
constexpr uint64_t kMsixWindow = 0x200'4000'0000ull;

class VfLenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hw = hw::LoadSimHardware(std::string(FABRIC_SOURCE_DIR) +
                                  "/agent/hw/sim/examples/one_pf.json");
    ASSERT_TRUE(hw.ok()) << hw.status();
    auto host = hw::SimSriovHost::Open(dir_.path(), "n1", *hw);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = *std::move(host);
    local_ = std::make_unique<hw::SimSriovFunctions>(host_.get());
    lending_ = std::make_unique<VfLender>("n1", local_.get());
    lending_->SetAssignments({Lending("attachments/att-1", "n0", 0)});
  }

  // n1 lends VF 0 to `borrower` under `attachment`, with 1 MiB DMA and
  // MSI-X windows `shift` bytes above kDmaWindow and kMsixWindow.
  static agentproto::v1::VfAssignment Lending(const std::string& attachment,
                                              const std::string& borrower,
                                              uint64_t shift) {
    agentproto::v1::VfAssignment a;
    a.set_attachment(attachment);
    a.set_role(agentproto::v1::VfAssignment::LENDER);
    a.set_vf_address(kVf0);
    a.set_lender("nodes/n1");
    a.set_borrower("nodes/" + borrower);
    for (auto [role, addr] :
         {std::pair<const char*, uint64_t>{"dma", kDmaWindow + shift},
          {"msix", kMsixWindow + shift}}) {
      v1::AttachmentWindow* w = a.add_windows();
      w->set_role(role);
      w->set_from_node("n1");
      w->set_to_node(borrower);
      w->set_local_addr(addr);
      w->set_size(1 << 20);
    }
    return a;
  }

  // `borrower` points vector 0 of VF 0 at `addr` (unmasked), when `addr`
  // is set, and turns on bus mastering and MSI-X.
  void SignalFrom(const std::string& borrower, uint64_t addr) {
    if (addr != 0) {
      agentproto::v1::VfAccessRequest msi;
      msi.set_borrower(borrower);
      msi.set_vf_address(kVf0);
      msi.set_op(agentproto::v1::VfAccessRequest::MSIX_ENTRY);
      msi.set_vector(0);
      msi.set_addr(addr);
      msi.set_msi_data(0x41);
      msi.set_masked(false);
      ASSERT_TRUE(lending_->VfAccess(msi).ok());
    }
    ASSERT_TRUE(Access(borrower, kVf0,
                       agentproto::v1::VfAccessRequest::CONFIG_WRITE, 0x04, 2,
                       0x0004)
                    .ok());
    ASSERT_TRUE(Access(borrower, kVf0,
                       agentproto::v1::VfAccessRequest::CONFIG_WRITE,
                       hw::kSimMsixCapOffset + 2, 2, 0x8000)
                    .ok());
  }

  // `borrower` has VF 0 raise vector 0.
  absl::StatusOr<agentproto::v1::VfAccessResponse> RaiseVector0(
      const std::string& borrower) {
    agentproto::v1::VfAccessRequest raise;
    raise.set_borrower(borrower);
    raise.set_vf_address(kVf0);
    raise.set_op(agentproto::v1::VfAccessRequest::RAISE_MSIX);
    raise.set_vector(0);
    return lending_->VfAccess(raise);
  }

  absl::StatusOr<agentproto::v1::VfAccessResponse> Access(
      const std::string& borrower, const std::string& vf,
      agentproto::v1::VfAccessRequest::Op op, uint32_t offset = 0,
      uint32_t size = 4, uint32_t value = 0) {
    agentproto::v1::VfAccessRequest req;
    req.set_borrower(borrower);
    req.set_vf_address(vf);
    req.set_op(op);
    req.set_offset(offset);
    req.set_size(size);
    req.set_value(value);
    return lending_->VfAccess(req);
  }

  hw::testing::TempDir dir_;
  std::unique_ptr<hw::SimSriovHost> host_;
  std::unique_ptr<hw::SriovFunctions> local_;
  std::unique_ptr<VfLender> lending_;
};

TEST_F(VfLenderTest, OnlyTheBorrowerReachesItsVf) {
  EXPECT_TRUE(
      Access("nodes/n0", kVf0, agentproto::v1::VfAccessRequest::CONFIG_READ)
          .ok());
  auto other =
      Access("nodes/n2", kVf0, agentproto::v1::VfAccessRequest::CONFIG_READ);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(other.status().message()),
              HasSubstr("lent to nodes/n0, not to nodes/n2"));
  auto not_lent =
      Access("nodes/n0", kVf1, agentproto::v1::VfAccessRequest::CONFIG_READ);
  EXPECT_EQ(not_lent.status().code(), absl::StatusCode::kPermissionDenied);
  auto pf = Access("nodes/n0", "0000:3b:00.0",
                   agentproto::v1::VfAccessRequest::CONFIG_READ);
  EXPECT_EQ(pf.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(VfLenderTest, ConfigWritesAreLimitedToWhatShadowsForward) {
  auto bdf = discovery::ParsePciAddress(kVf0);
  ASSERT_TRUE(bdf.ok());
  const std::vector<uint8_t> before = *host_->ConfigSpace(*bdf);
  // A BAR, the header's read-only bytes, the capability pointer.
  for (uint32_t offset : {0x00u, 0x10u, 0x18u, 0x34u, 0x3cu}) {
    auto w =
        Access("nodes/n0", kVf0, agentproto::v1::VfAccessRequest::CONFIG_WRITE,
               offset, 4, 0xffffffff);
    EXPECT_EQ(w.status().code(), absl::StatusCode::kPermissionDenied)
        << offset;
  }
  EXPECT_EQ(*host_->ConfigSpace(*bdf), before);
  // Bus mastering through Command is allowed.
  ASSERT_TRUE(Access("nodes/n0", kVf0,
                     agentproto::v1::VfAccessRequest::CONFIG_WRITE, 0x04, 2,
                     0x0004)
                  .ok());
  EXPECT_EQ(*host_->ConfigRead(*bdf, 0x04, 2) & 0x4u, 0x4u);
}

TEST_F(VfLenderTest, DmaAndMsiStayInsideTheirWindows) {
  agentproto::v1::VfAccessRequest dma;
  dma.set_borrower("nodes/n0");
  dma.set_vf_address(kVf0);
  dma.set_op(agentproto::v1::VfAccessRequest::DMA);
  dma.set_addr(kDmaWindow + (1 << 20) - 2);
  dma.set_data("abcd");  // runs past the window's end
  auto r = lending_->VfAccess(dma);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("DMA window"));

  agentproto::v1::VfAccessRequest msi;
  msi.set_borrower("nodes/n0");
  msi.set_vf_address(kVf0);
  msi.set_op(agentproto::v1::VfAccessRequest::MSIX_ENTRY);
  msi.set_vector(0);
  msi.set_addr(0xfee00000);  // not the borrower's doorbell window
  msi.set_masked(false);
  EXPECT_EQ(lending_->VfAccess(msi).status().code(),
            absl::StatusCode::kPermissionDenied);
  msi.set_addr(kMsixWindow + 8);
  EXPECT_TRUE(lending_->VfAccess(msi).ok());
}

TEST_F(VfLenderTest, ARelentVfStartsQuietWithEveryVectorMasked) {
  auto bdf = discovery::ParsePciAddress(kVf0);
  ASSERT_TRUE(bdf.ok());
  // n0 sets the VF up to signal into its doorbell window.
  SignalFrom("nodes/n0", kMsixWindow + 8);

  // In one step the VF leaves n0 and is lent to n2.
  lending_->SetAssignments({Lending("attachments/att-2", "n2", 8 << 20)});

  // Quiet: no bus mastering, MSI-X off, every vector masked, n0 shut out.
  EXPECT_EQ(*host_->ConfigRead(*bdf, 0x04, 2) & 0x6u, 0u);
  EXPECT_EQ(*host_->ConfigRead(*bdf, hw::kSimMsixCapOffset + 2, 2) & 0x8000u,
            0u);
  const int msix_bar = host_->hardware().pfs[0].msix_bar;
  for (uint32_t v = 0; v < host_->hardware().pfs[0].msix_vectors; ++v) {
    std::vector<uint8_t> entry(16);
    ASSERT_TRUE(
        host_->MmioRead(*bdf, msix_bar, 16 * v, absl::MakeSpan(entry)).ok());
    EXPECT_EQ(entry[12] & 1, 1) << "vector " << v << " left unmasked";
    EXPECT_EQ(entry[0] | entry[1] | entry[2] | entry[3], 0) << v;
  }
  EXPECT_EQ(
      Access("nodes/n0", kVf0, agentproto::v1::VfAccessRequest::CONFIG_READ)
          .status()
          .code(),
      absl::StatusCode::kPermissionDenied);
  // n2 turns MSI-X and bus mastering back on without programming vector 0:
  // the VF holds the interrupt instead of sending it to n0's doorbell.
  SignalFrom("nodes/n2", 0);
  auto raised = RaiseVector0("nodes/n2");
  ASSERT_TRUE(raised.ok()) << raised.status();
  EXPECT_EQ(raised->outcome(), agentproto::v1::VfAccessResponse::PENDING);
}

// Found by agent_rpc_fuzzer: the same attachment whose windows move is a
// new lending too. The VF's vectors still point into the old window, so it
// must be quiesced like a VF whose lending ended.
TEST_F(VfLenderTest, ALendingWhoseWindowsMoveStartsQuiet) {
  SignalFrom("nodes/n0", kMsixWindow + 8);

  // att-1 again, to the same borrower, with its MSI-X window 8 MiB higher.
  lending_->SetAssignments({Lending("attachments/att-1", "n0", 8 << 20)});

  // MSI-X is re-enabled without reprogramming vector 0: the VF holds the
  // interrupt instead of sending it into the old window.
  SignalFrom("nodes/n0", 0);
  auto raised = RaiseVector0("nodes/n0");
  ASSERT_TRUE(raised.ok()) << raised.status();
  EXPECT_EQ(raised->outcome(), agentproto::v1::VfAccessResponse::PENDING);
}

TEST_F(VfLenderTest, HealthAndInventoryAreReported) {
  agentproto::v1::ReportStatusRequest report;
  lending_->FillStatus(&report);
  EXPECT_EQ(report.vf_health_size(), 8);
  for (const auto& h : report.vf_health()) EXPECT_TRUE(h.healthy()) << h.vf_address();
  EXPECT_EQ(report.inventory().functions_size(), 9);  // the PF and 8 VFs

  auto bdf = discovery::ParsePciAddress(kVf1);
  ASSERT_TRUE(host_->SetFunctionFailed(*bdf, true).ok());
  absl::SleepFor(absl::Milliseconds(110));  // past the probe cache
  agentproto::v1::ReportStatusRequest later;
  lending_->FillStatus(&later);
  bool seen = false;
  for (const auto& h : later.vf_health()) {
    if (h.vf_address() != kVf1) continue;
    seen = true;
    EXPECT_FALSE(h.healthy());
    EXPECT_THAT(h.reason(), HasSubstr("vendor id reads 0xffff"));
  }
  EXPECT_TRUE(seen);
}

// A borrower that heard of its lending first (generation 7) is answered
// once the lender applies that generation. Whichever comes first, the
// request or the lender's apply, the answer is OK; without the wait, a
// request that came first was refused.
TEST_F(VfLenderTest, ABorrowerAheadIsAnsweredOnceTheLenderCatchesUp) {
  lending_->SetAssignments({}, /*generation=*/6);  // att-1 ended
  agentproto::v1::VfAccessRequest req;
  req.set_borrower("n2");
  req.set_vf_address(kVf0);
  req.set_op(agentproto::v1::VfAccessRequest::CONFIG_SNAPSHOT);
  req.set_generation(7);
  absl::StatusOr<agentproto::v1::VfAccessResponse> got;
  std::thread borrower([&] { got = lending_->VfAccess(req); });
  lending_->SetAssignments({Lending("attachments/att-2", "n2", 0)},
                           /*generation=*/7);
  borrower.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->config().size(), 4096u);
}

// A lender at or past the borrower's generation decides at once.
TEST_F(VfLenderTest, ALenderUpToDateRefusesAtOnce) {
  lending_->SetAssignments({Lending("attachments/att-1", "n0", 0)},
                           /*generation=*/7);
  agentproto::v1::VfAccessRequest req;
  req.set_borrower("n2");
  req.set_vf_address(kVf0);
  req.set_op(agentproto::v1::VfAccessRequest::CONFIG_SNAPSHOT);
  req.set_generation(7);
  EXPECT_EQ(lending_->VfAccess(req).status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace fabric::agent
