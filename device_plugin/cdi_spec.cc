#include "device_plugin/cdi_spec.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "device_plugin/device.h"
#include "nlohmann/json.hpp"

namespace fabric::device_plugin {
namespace {

using Json = nlohmann::json;

constexpr absl::string_view kSuffix = ".json";

std::string FilePrefix() { return absl::StrCat(kResourceDomain, "-"); }

// Writes all of `data` to `fd`.
absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", dir);
  absl::Status s;
  if (fsync(fd) != 0) s = ErrnoError("fsync", dir);
  close(fd);
  return s;
}

}  // namespace

std::string CdiKind(absl::string_view device_class) {
  return absl::StrCat(kResourceDomain, "/", device_class);
}

std::string CdiDeviceName(absl::string_view device_class,
                          absl::string_view device_id) {
  return absl::StrCat(CdiKind(device_class), "=", device_id);
}

std::string CdiSpecPath(absl::string_view dir, absl::string_view device_class,
                        absl::string_view device_id) {
  return absl::StrCat(dir, "/", FilePrefix(), device_class, "-", device_id,
                      kSuffix);
}

std::string CdiSpecJson(const CdiDevice& device) {
  Json env = Json::array();
  for (const auto& [k, v] : device.env) env.push_back(absl::StrCat(k, "=", v));
  Json spec = {
      {"cdiVersion", std::string(kCdiVersion)},
      {"kind", CdiKind(device.device_class)},
      {"devices",
       Json::array({{
           {"name", device.device_id},
           {"annotations",
            {{std::string(kClaimAnnotation), device.claim},
             {std::string(kEpochAnnotation), absl::StrCat(device.epoch)}}},
           {"containerEdits", {{"env", env}}},
       }})},
  };
  return spec.dump(2) + "\n";
}

absl::StatusOr<CdiDevice> ParseCdiSpec(absl::string_view path,
                                       absl::string_view json) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("CDI spec ", path, ": ", why));
  };
  Json spec = Json::parse(json.begin(), json.end(), nullptr,
                          /*allow_exceptions=*/false);
  if (spec.is_discarded() || !spec.is_object()) return bad("not a JSON object");
  const auto kind = spec.find("kind");
  if (kind == spec.end() || !kind->is_string()) return bad("no kind");
  absl::string_view k = kind->get_ref<const std::string&>();
  if (!absl::ConsumePrefix(&k, absl::StrCat(kResourceDomain, "/"))) {
    return bad(absl::StrCat("kind \"", kind->get<std::string>(),
                            "\" is not ours"));
  }
  const auto devices = spec.find("devices");
  if (devices == spec.end() || !devices->is_array() || devices->size() != 1 ||
      !(*devices)[0].is_object()) {
    return bad("devices must hold one device");
  }
  const Json& d = (*devices)[0];
  CdiDevice out;
  out.device_class = std::string(k);
  if (!d.contains("name") || !d["name"].is_string()) return bad("no name");
  out.device_id = d["name"].get<std::string>();
  if (d.contains("annotations") && d["annotations"].is_object()) {
    const Json& a = d["annotations"];
    const std::string claim(kClaimAnnotation), epoch(kEpochAnnotation);
    if (a.contains(claim) && a[claim].is_string()) {
      out.claim = a[claim].get<std::string>();
    }
    if (a.contains(epoch) && a[epoch].is_string() &&
        !absl::SimpleAtoi(a[epoch].get<std::string>(), &out.epoch)) {
      return bad("epoch annotation is not an integer");
    }
  }
  if (d.contains("containerEdits") && d["containerEdits"].contains("env")) {
    for (const Json& e : d["containerEdits"]["env"]) {
      if (!e.is_string()) return bad("env entries must be strings");
      const std::string& kv = e.get_ref<const std::string&>();
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) return bad("env entry without '='");
      out.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  return out;
}

absl::Status WriteCdiSpec(absl::string_view dir, const CdiDevice& device) {
  const std::string d(dir);
  std::error_code ec;
  std::filesystem::create_directories(d, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("create CDI directory ", d, ": ", ec.message()));
  }
  const std::string path =
      CdiSpecPath(dir, device.device_class, device.device_id);
  // A dot file: the runtime reads only *.json, and a crash leaves at worst
  // a stray temporary behind, never a partial spec.
  const std::string tmp =
      absl::StrCat(d, "/.", FilePrefix(), device.device_class, "-",
                   device.device_id, ".tmp.", getpid());
  const int fd =
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create", tmp);
  absl::Status s = WriteAll(fd, CdiSpecJson(device), tmp);
  if (s.ok() && fsync(fd) != 0) s = ErrnoError("fsync", tmp);
  close(fd);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoError("rename over", path);
  }
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  return SyncDir(d);
}

absl::Status RemoveCdiSpec(absl::string_view dir,
                           absl::string_view device_class,
                           absl::string_view device_id) {
  const std::string path = CdiSpecPath(dir, device_class, device_id);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError("remove", path);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CdiDevice>> ListCdiSpecs(absl::string_view dir) {
  std::vector<CdiDevice> out;
  std::error_code ec;
  const std::filesystem::path d{std::string(dir)};
  if (!std::filesystem::exists(d, ec)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(d, ec)) {
    const std::string name = entry.path().filename().string();
    absl::string_view rest = name;
    if (!absl::ConsumePrefix(&rest, FilePrefix()) ||
        !absl::ConsumeSuffix(&rest, kSuffix)) {
      continue;
    }
    const size_t dash = rest.find('-');
    if (dash == absl::string_view::npos) continue;
    CdiDevice from_name;
    from_name.device_class = std::string(rest.substr(0, dash));
    from_name.device_id = std::string(rest.substr(dash + 1));
    absl::StatusOr<std::string> text =
        ReadFileToString(entry.path().string());
    if (!text.ok()) {
      out.push_back(std::move(from_name));
      continue;
    }
    absl::StatusOr<CdiDevice> parsed =
        ParseCdiSpec(entry.path().string(), *text);
    out.push_back(parsed.ok() ? *std::move(parsed) : std::move(from_name));
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("list CDI directory ", d.string(), ": ", ec.message()));
  }
  return out;
}

}  // namespace fabric::device_plugin
