// Helpers for the store tests only; not part of the fabric_store library.
#ifndef FABRIC_SERVER_STORE_STORE_TEST_UTIL_H_
#define FABRIC_SERVER_STORE_STORE_TEST_UTIL_H_

#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace fabric::store::testing {

// A fresh directory under $TEST_TMPDIR (or /tmp), removed with everything in
// it when the object goes out of scope, even if the test failed.
class ScopedTempDir {
 public:
  ScopedTempDir() {
    const char* base = getenv("TEST_TMPDIR");
    std::string templ =
        absl::StrCat(base != nullptr && base[0] != '\0' ? base : "/tmp",
                     "/store_test.XXXXXX");
    if (mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~ScopedTempDir() {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const {
    return absl::StrCat(path_, "/", name);
  }

 private:
  std::string path_;
};

// A plain sqlite3 connection, for setting up and inspecting files behind the
// store's back (as the sqlite3 shell would).
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      error_ = sqlite3_errmsg(db_);
    }
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // Runs `sql`; returns column 0 of the first result row ("" if none).
  absl::StatusOr<std::string> Query(const std::string& sql) {
    std::string first;
    char* err = nullptr;
    const int rc = sqlite3_exec(
        db_, sql.c_str(),
        [](void* out, int n, char** values, char**) {
          auto* s = static_cast<std::string*>(out);
          if (s->empty() && n > 0 && values[0] != nullptr) *s = values[0];
          return 0;
        },
        &first, &err);
    if (rc != SQLITE_OK) {
      absl::Status s = absl::UnknownError(
          absl::StrCat(sql, ": ", err != nullptr ? err : sqlite3_errstr(rc)));
      sqlite3_free(err);
      return s;
    }
    return first;
  }

 private:
  sqlite3* db_ = nullptr;
  std::string error_;
};

}  // namespace fabric::store::testing

#endif  // FABRIC_SERVER_STORE_STORE_TEST_UTIL_H_
