#include "server/store/open_store.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace fabric::store {

absl::StatusOr<StoreSpec> ParseStoreFlag(absl::string_view flag) {
  StoreSpec spec;
  spec.text = std::string(flag);
  if (absl::ConsumePrefix(&flag, "sqlite:")) {
    if (flag.empty()) {
      return absl::InvalidArgumentError(
          "--store: sqlite: needs a file path, e.g. sqlite:fabric.db");
    }
    spec.kind = StoreSpec::Kind::kSqlite;
    spec.sqlite.path = std::string(flag);
    return spec;
  }
  if (absl::StartsWith(flag, "etcd://")) {
    absl::StatusOr<EtcdUrl> url = ParseEtcdUrl(flag);
    if (!url.ok()) return url.status();
    spec.kind = StoreSpec::Kind::kEtcd;
    spec.etcd.client.endpoints = std::move(url->endpoints);
    spec.etcd.prefix = std::move(url->prefix);
    return spec;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--store: \"", flag,
                   "\" is neither sqlite:PATH nor "
                   "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]"));
}

absl::Status SetEtcdTls(StoreSpec& spec, const std::string& ca,
                        const std::string& cert, const std::string& key) {
  if (ca.empty() && cert.empty() && key.empty()) return absl::OkStatus();
  if (spec.kind != StoreSpec::Kind::kEtcd) {
    return absl::InvalidArgumentError(
        "--etcd-ca, --etcd-cert and --etcd-key apply to an etcd:// --store "
        "only");
  }
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError(
        "--etcd-cert and --etcd-key go together (mutual TLS)");
  }
  spec.etcd.client.ca_file = ca;
  spec.etcd.client.cert_file = cert;
  spec.etcd.client.key_file = key;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreSpec& spec) {
  if (spec.kind == StoreSpec::Kind::kSqlite)
    return OpenSqliteStore(spec.sqlite);
  absl::StatusOr<std::unique_ptr<EtcdStore>> etcd = EtcdStore::Open(spec.etcd);
  if (!etcd.ok()) return etcd.status();
  return std::unique_ptr<Store>(*std::move(etcd));
}

}  // namespace fabric::store
