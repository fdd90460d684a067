#include "device_plugin/plugin.h"

#include <sys/stat.h>

#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fabric::device_plugin {

Plugin::Plugin(PluginOptions options, const DeviceTable* table,
               Claimer* claimer)
    : options_(std::move(options)), table_(table), claimer_(claimer) {}

Plugin::~Plugin() { Stop(); }

absl::Status Plugin::Start() {
  if (absl::Status s = claimer_->Recover(); !s.ok()) {
    std::cerr << "fabric-device-plugin: recovering the held devices from the "
                 "manager failed: "
              << s.message() << std::endl;
  }
  const std::string& dir = options_.registrar.kubelet_dir;
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--kubelet-dir: ", dir, " is not a directory"));
  }
  // The version is read before the resources are: a change that comes
  // after it, even before the thread below has started (the offer feed
  // starts right after this returns), is then one the thread sees.
  const uint64_t seen = table_->version();
  AddResources();
  thread_ = std::thread([this, seen] { Run(seen); });
  return absl::OkStatus();
}

void Plugin::Stop() {
  std::map<std::string, std::unique_ptr<Registrar>> registrars;
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  {
    absl::MutexLock l(&mu_);
    registrars = std::move(registrars_);
  }
  for (auto& [resource, registrar] : registrars) registrar->Stop();
}

std::vector<std::string> Plugin::resources() const {
  absl::MutexLock l(&mu_);
  std::vector<std::string> out;
  for (const auto& [resource, unused] : registrars_) out.push_back(resource);
  return out;
}

const Registrar* Plugin::registrar(const std::string& resource) const {
  absl::MutexLock l(&mu_);
  auto it = registrars_.find(resource);
  return it == registrars_.end() ? nullptr : it->second.get();
}

void Plugin::AddResources() {
  for (const std::string& resource : table_->Resources()) {
    {
      absl::MutexLock l(&mu_);
      if (stopping_ || registrars_.count(resource) > 0) continue;
    }
    RegistrarOptions ro = options_.registrar;
    ro.resource = resource;
    auto registrar = std::make_unique<Registrar>(
        std::move(ro), [this, resource] {
          return std::make_unique<ResourceServer>(resource, table_, claimer_);
        });
    if (absl::Status s = registrar->Start(); !s.ok()) {
      std::cerr << "fabric-device-plugin: " << resource
                << ": cannot serve (tried again at the next change): "
                << s.message() << std::endl;
      continue;
    }
    absl::MutexLock l(&mu_);
    registrars_[resource] = std::move(registrar);
  }
}

void Plugin::Run(uint64_t seen) {
  if (options_.on_follow_start) options_.on_follow_start();
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return;
    }
    const uint64_t now =
        table_->AwaitChange(seen, absl::Now() + ResourceServer::kStreamPoll);
    if (now == seen) continue;
    seen = now;
    AddResources();
  }
}

}  // namespace fabric::device_plugin
