// Offer builders for the device plugin's tests.
#ifndef FABRIC_DEVICE_PLUGIN_DEVICE_PLUGIN_TEST_UTIL_H_
#define FABRIC_DEVICE_PLUGIN_DEVICE_PLUGIN_TEST_UTIL_H_

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "device_plugin/claimer.h"
#include "fabric/v1/offers.pb.h"
#include "kubelet/deviceplugin/v1beta1/api.pb.h"

namespace fabric::device_plugin::testing {

inline constexpr char kVfResource[] = "pciefabric.dev/vf-8086-154c";
inline constexpr char kMemoryResource[] = "pciefabric.dev/remote-memory";

// A healthy VF offer of 8086:154c.
inline fabric::v1::Offer VfOffer(const std::string& id, int hops = 1,
                                 double load = 0.0) {
  fabric::v1::Offer o;
  o.set_id(id);
  o.mutable_vf()->set_vf("nodes/n2/vfs/" + id);
  o.mutable_vf()->set_vendor_id(0x8086);
  o.mutable_vf()->set_device_id(0x154c);
  o.set_lender("n2");
  o.set_healthy(true);
  o.set_hops(hops);
  o.set_lender_load(load);
  o.set_epoch(1);
  return o;
}

// A healthy 1 GiB memory chunk offer.
inline fabric::v1::Offer MemoryOffer(const std::string& id) {
  fabric::v1::Offer o;
  o.set_id(id);
  o.mutable_memory()->set_size(uint64_t{1} << 30);
  o.set_lender("n3");
  o.set_healthy(true);
  o.set_hops(1);
  o.set_epoch(1);
  return o;
}

// A fresh directory under /tmp (short: unix socket paths are at most 107
// bytes), removed with everything in it on destruction.
class SocketDir {
 public:
  SocketDir() {
    char tmpl[] = "/tmp/dp-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) path_ = tmpl;
  }
  ~SocketDir() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  SocketDir(const SocketDir&) = delete;
  SocketDir& operator=(const SocketDir&) = delete;
  // "" when it could not be made.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The file names of the sockets in `dir`, sorted.
inline std::vector<std::string> SocketsIn(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_socket()) out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A Claimer that records its calls. Claim() answers with one CDI device per
// device ("pciefabric.dev/test=<id>"), or with `fail_claim` when set.
class FakeClaimer final : public Claimer {
 public:
  struct ClaimCall {
    std::string resource;
    std::vector<std::string> ids;
  };

  absl::Status Claim(absl::string_view resource,
                     absl::Span<const Device> devices,
                     v1beta1::ContainerAllocateResponse* response) override {
    absl::MutexLock l(&mu_);
    ClaimCall call{std::string(resource), {}};
    for (const Device& d : devices) call.ids.push_back(d.id);
    claims_.push_back(call);
    if (!fail_claim_.ok() && static_cast<int>(claims_.size()) > fail_after_) {
      return fail_claim_;
    }
    for (const Device& d : devices) {
      response->add_cdi_devices()->set_name(
          absl::StrCat("pciefabric.dev/test=", d.id));
    }
    return absl::OkStatus();
  }
  absl::Status Release(absl::string_view id) override {
    absl::MutexLock l(&mu_);
    released_.emplace_back(id);
    return absl::OkStatus();
  }
  absl::Status Recover() override {
    absl::MutexLock l(&mu_);
    ++recovers_;
    return absl::OkStatus();
  }
  std::vector<std::string> HeldDeviceIds() const override { return {}; }

  // Claims after the first `after` fail with `status`.
  void FailClaims(absl::Status status, int after = 0) {
    absl::MutexLock l(&mu_);
    fail_claim_ = std::move(status);
    fail_after_ = after;
  }
  std::vector<ClaimCall> claims() const {
    absl::MutexLock l(&mu_);
    return claims_;
  }
  std::vector<std::string> released() const {
    absl::MutexLock l(&mu_);
    return released_;
  }
  int recovers() const {
    absl::MutexLock l(&mu_);
    return recovers_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Status fail_claim_ ABSL_GUARDED_BY(mu_);
  int fail_after_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<ClaimCall> claims_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> released_ ABSL_GUARDED_BY(mu_);
  int recovers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fabric::device_plugin::testing

#endif  // FABRIC_DEVICE_PLUGIN_DEVICE_PLUGIN_TEST_UTIL_H_
