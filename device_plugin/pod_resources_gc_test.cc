#include "device_plugin/pod_resources_gc.h"

#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/kubernetes/pod_resources_server.h"

namespace fabric::device_plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr char kVf[] = "pciefabric.dev/vf-8086-154c";
constexpr char kMem[] = "pciefabric.dev/remote-memory";

// A Claimer holding a set of ids; Release drops one (or fails while
// `fail_release`).
class FakeClaimer : public Claimer {
 public:
  absl::Status Claim(absl::string_view, absl::Span<const Device>,
                     v1beta1::ContainerAllocateResponse*) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::Status Release(absl::string_view id) override {
    absl::MutexLock l(&mu_);
    if (fail_release) return absl::UnavailableError("manager down");
    held_.erase(std::string(id));
    released_.push_back(std::string(id));
    return absl::OkStatus();
  }
  absl::Status Recover() override { return absl::OkStatus(); }
  std::vector<std::string> HeldDeviceIds() const override {
    absl::MutexLock l(&mu_);
    return {held_.begin(), held_.end()};
  }
  void Hold(const std::string& id) {
    absl::MutexLock l(&mu_);
    held_.insert(id);
  }
  std::vector<std::string> released() const {
    absl::MutexLock l(&mu_);
    return released_;
  }
  bool fail_release = false;

 private:
  mutable absl::Mutex mu_;
  std::set<std::string> held_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> released_ ABSL_GUARDED_BY(mu_);
};

class PodResourcesGcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "dp-gc-test-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    kubelet_ = std::make_unique<k8stest::PodResourcesServer>(dir_ + "/k.sock");
    ASSERT_TRUE(kubelet_->Start().ok());
    PodResourcesGcOptions options;
    options.socket = kubelet_->socket_path();
    options.grace = absl::Seconds(30);
    options.clock = &clock_;
    gc_ = std::make_unique<PodResourcesGc>(options, &claimer_);
  }
  void TearDown() override {
    gc_.reset();
    kubelet_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::vector<std::string> Pass() {
    absl::StatusOr<std::vector<std::string>> r = gc_->RunOnce();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<std::string>{};
  }

  std::string dir_;
  ManualClock clock_;
  FakeClaimer claimer_;
  std::unique_ptr<k8stest::PodResourcesServer> kubelet_;
  std::unique_ptr<PodResourcesGc> gc_;
};

TEST_F(PodResourcesGcTest, UnlistedDeviceIsReleasedOnlyAfterGrace) {
  claimer_.Hold("mem-n2-0");
  EXPECT_THAT(Pass(), IsEmpty());  // first seen unlisted: the timer starts
  clock_.Advance(absl::Seconds(29));
  EXPECT_THAT(Pass(), IsEmpty());
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(Pass(), ElementsAre("mem-n2-0"));
  EXPECT_THAT(claimer_.HeldDeviceIds(), IsEmpty());
}

TEST_F(PodResourcesGcTest, ListedDevicesAreNeverReleased) {
  claimer_.Hold("vf-n3-a");
  claimer_.Hold("mem-n2-0");
  kubelet_->SetPod("default", "p1", kVf, {"vf-n3-a"});
  kubelet_->SetPod("default", "p2", kMem, {"mem-n2-0"});
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(Pass(), IsEmpty());
    clock_.Advance(absl::Minutes(10));
  }
  EXPECT_THAT(claimer_.released(), IsEmpty());
}

TEST_F(PodResourcesGcTest, ReleasedOnceItsPodIsGoneForGrace) {
  claimer_.Hold("vf-n3-a");
  claimer_.Hold("vf-n3-b");
  kubelet_->SetPod("default", "p1", kVf, {"vf-n3-a", "vf-n3-b"});
  EXPECT_THAT(Pass(), IsEmpty());
  clock_.Advance(absl::Minutes(5));
  kubelet_->SetPod("default", "p1", kVf, {"vf-n3-b"});
  EXPECT_THAT(Pass(), IsEmpty());  // a's timer starts now, not at claim time
  clock_.Advance(absl::Seconds(30));
  EXPECT_THAT(Pass(), ElementsAre("vf-n3-a"));
  EXPECT_THAT(claimer_.HeldDeviceIds(), ElementsAre("vf-n3-b"));
}

TEST_F(PodResourcesGcTest, ListedAgainResetsTheTimer) {
  claimer_.Hold("mem-n2-0");
  EXPECT_THAT(Pass(), IsEmpty());
  clock_.Advance(absl::Seconds(20));
  kubelet_->SetPod("default", "p1", kMem, {"mem-n2-0"});
  EXPECT_THAT(Pass(), IsEmpty());
  kubelet_->RemovePod("default", "p1");
  EXPECT_THAT(Pass(), IsEmpty());
  clock_.Advance(absl::Seconds(20));
  EXPECT_THAT(Pass(), IsEmpty());  // 20 s since it was last listed
  clock_.Advance(absl::Seconds(10));
  EXPECT_THAT(Pass(), ElementsAre("mem-n2-0"));
}

TEST_F(PodResourcesGcTest, NoteClaimedRestartsTheTimer) {
  claimer_.Hold("mem-n2-0");
  EXPECT_THAT(Pass(), IsEmpty());
  clock_.Advance(absl::Seconds(29));
  gc_->NoteClaimed("mem-n2-0");  // released and claimed again meanwhile
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(Pass(), IsEmpty());
  clock_.Advance(absl::Seconds(29));
  EXPECT_THAT(Pass(), ElementsAre("mem-n2-0"));
}

TEST_F(PodResourcesGcTest, OtherResourcesDoNotCountAsListed) {
  claimer_.Hold("mem-n2-0");
  kubelet_->SetPod("default", "p1", "nvidia.com/gpu", {"mem-n2-0"});
  EXPECT_THAT(Pass(), IsEmpty());
  clock_.Advance(absl::Seconds(30));
  EXPECT_THAT(Pass(), ElementsAre("mem-n2-0"));
}

TEST_F(PodResourcesGcTest, FailedListReleasesNothingAndRestartsTimers) {
  claimer_.Hold("mem-n2-0");
  EXPECT_THAT(Pass(), IsEmpty());
  clock_.Advance(absl::Minutes(5));
  kubelet_->SetFailing(true);
  absl::StatusOr<std::vector<std::string>> r = gc_->RunOnce();
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::HasSubstr(kubelet_->socket_path()));
  kubelet_->SetFailing(false);
  EXPECT_THAT(Pass(), IsEmpty());  // the grace starts again
  clock_.Advance(absl::Seconds(30));
  EXPECT_THAT(Pass(), ElementsAre("mem-n2-0"));
}

TEST_F(PodResourcesGcTest, FailedReleaseIsRetriedOnTheNextPass) {
  claimer_.Hold("mem-n2-0");
  EXPECT_THAT(Pass(), IsEmpty());
  clock_.Advance(absl::Seconds(30));
  claimer_.fail_release = true;
  EXPECT_TRUE(absl::IsUnavailable(gc_->RunOnce().status()));
  claimer_.fail_release = false;
  EXPECT_THAT(Pass(), ElementsAre("mem-n2-0"));
}

TEST_F(PodResourcesGcTest, BackgroundLoopReleases) {
  PodResourcesGcOptions options;
  options.socket = kubelet_->socket_path();
  options.grace = absl::ZeroDuration();
  options.interval = absl::Milliseconds(10);
  PodResourcesGc gc(options, &claimer_);
  claimer_.Hold("mem-n2-0");
  gc.Start();
  const int before = kubelet_->list_calls();
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (claimer_.released().empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // polls for the state it needs
  }
  gc.Stop();
  EXPECT_THAT(claimer_.released(), ElementsAre("mem-n2-0"));
  EXPECT_GT(kubelet_->list_calls(), before);
}

}  // namespace
}  // namespace fabric::device_plugin
