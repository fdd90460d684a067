#include "common/security/key_pair_snapshot.h"
#include "common/security/openssl_lifetime.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"

namespace fabric::security {
namespace {

// What a file looked like when it was last read: any change is a reason to
// read it again.
struct FileStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = -1;
  int64_t mtime_ns = -1;

  static FileStamp Of(const std::string& path) {
    FileStamp s;
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return s;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    return s;
  }
  bool operator==(const FileStamp& o) const {
    return dev == o.dev && ino == o.ino && size == o.size &&
           mtime_ns == o.mtime_ns;
  }
};

class Registry {
 public:
  static Registry& Get() {
    // Destroyed at exit: the thread stops and the directory goes.
    static Registry registry;
    return registry;
  }

  absl::StatusOr<std::string> PathFor(const std::string& cert_file,
                                      const std::string& key_file)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    auto key = std::make_pair(cert_file, key_file);
    auto it = pairs_.find(key);
    if (it != pairs_.end()) return it->second.path;
    if (dir_.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      std::string pattern = absl::StrCat(
          tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/fabric-tls-XXXXXX");
      if (mkdtemp(pattern.data()) == nullptr) {
        return absl::InternalError(
            absl::StrCat("cannot make a directory for key pair snapshots (",
                         pattern, "): ", std::strerror(errno)));
      }
      dir_ = pattern;
    }
    Entry e;
    e.path = absl::StrCat(dir_, "/pair-", pairs_.size(), ".pem");
    e.cert_file = cert_file;
    e.key_file = key_file;
    if (absl::Status s = Refresh(e, /*require_match=*/false); !s.ok()) {
      return s;
    }
    std::string path = e.path;
    pairs_.emplace(std::move(key), std::move(e));
    if (!thread_.joinable()) thread_ = std::thread([this] { Poll(); });
    return path;
  }

  ~Registry() {
    {
      absl::MutexLock l(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
    if (!dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

 private:
  struct Entry {
    std::string path;  // the snapshot
    std::string cert_file;
    std::string key_file;
    FileStamp cert_seen;  // as of the last snapshot written
    FileStamp key_seen;
  };

  // OpenSSL is initialised first, its configuration loaded here rather than
  // on the polling thread, and for the life of the process
  // (openssl_lifetime.h): the polling thread never outlives it.
  Registry() { InitOpenSslForProcessLifetime(); }

  // Rewrites e's snapshot when its files changed since the last one, and
  // (with require_match) only when the key is the certificate's.
  static absl::Status Refresh(Entry& e, bool require_match) {
    const FileStamp cert_now = FileStamp::Of(e.cert_file);
    const FileStamp key_now = FileStamp::Of(e.key_file);
    if (require_match && cert_now == e.cert_seen && key_now == e.key_seen) {
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> cert = ReadFileToString(e.cert_file);
    absl::StatusOr<std::string> key = ReadFileToString(e.key_file);
    if (!cert.ok() || !key.ok()) {
      // Mid-rotation, or gone: keep the snapshot there is, if any.
      if (require_match) return absl::OkStatus();
      return !cert.ok() ? cert.status() : key.status();
    }
    if (require_match && !KeyPairSnapshot::Matches(*cert, *key)) {
      return absl::OkStatus();  // half-rotated: try again on the next poll
    }
    const std::string tmp = e.path + ".tmp";
    {
      // 0600 from the start: the file holds a private key.
      const mode_t old_mask = umask(077);
      std::ofstream out(tmp, std::ios::trunc);
      umask(old_mask);
      out << *cert;
      if (!cert->empty() && cert->back() != '\n') out << '\n';
      out << *key;
      out.close();
      if (!out) {
        return absl::InternalError(
            absl::StrCat("cannot write key pair snapshot ", tmp));
      }
    }
    if (std::rename(tmp.c_str(), e.path.c_str()) != 0) {
      return ErrnoError("cannot rename key pair snapshot", e.path);
    }
    e.cert_seen = cert_now;
    e.key_seen = key_now;
    return absl::OkStatus();
  }

  void Poll() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    while (!stop_) {
      mu_.AwaitWithTimeout(absl::Condition(&stop_),
                           KeyPairSnapshot::kPollInterval);
      if (stop_) break;
      for (auto& [unused, e] : pairs_) {
        // Errors leave the last good snapshot in place; the next poll
        // tries again.
        (void)Refresh(e, /*require_match=*/true);
      }
    }
    OPENSSL_thread_stop();  // this thread's OpenSSL state, now
  }

  absl::Mutex mu_;
  std::string dir_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, Entry> pairs_
      ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::string> KeyPairSnapshot::PathFor(
    const std::string& cert_file, const std::string& key_file) {
  return Registry::Get().PathFor(cert_file, key_file);
}

bool KeyPairSnapshot::Matches(const std::string& cert_pem,
                              const std::string& key_pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())),
      &BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())),
      &BIO_free);
  if (cert_bio == nullptr || key_bio == nullptr) return false;
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), &X509_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr),
      &EVP_PKEY_free);
  return cert != nullptr && key != nullptr &&
         X509_check_private_key(cert.get(), key.get()) == 1;
}

}  // namespace fabric::security
