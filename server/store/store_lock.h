// StoreLock: one writer per store file.
//
// A store file is held exclusively by the process that opened it for
// writing, for as long as it has it open: an advisory flock(2) on the file
// PATH.lock beside it (as leveldb's LOCK file). The kernel drops the lock
// when the holder exits, kill -9 included, so a stale lock never blocks a
// restart. The lock file's text says who holds it ("pid 123" and what the
// holder added with Describe), so that a refused opener can say so.
//
// Locks are per open file description: a second Acquire of the same path
// fails even within one process.
//
// Thread-compatible.
#ifndef FABRIC_SERVER_STORE_STORE_LOCK_H_
#define FABRIC_SERVER_STORE_STORE_LOCK_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric::store {

class StoreLock {
 public:
  // Takes the lock of the store at `store_path` without waiting, creating
  // STORE_PATH.lock if needed, and records this process's pid in it.
  // Errors:
  //   FAILED_PRECONDITION when another holder has it; the message names the
  //     store, the lock file and what the holder recorded (its pid, and its
  //     listen address once it has described itself).
  //   UNAVAILABLE when the lock file cannot be created or locked (e.g. no
  //     permission to write in the directory; the message says which).
  static absl::StatusOr<std::unique_ptr<StoreLock>> Acquire(
      const std::string& store_path);

  // Releases the lock (the file stays, for the next holder).
  ~StoreLock();
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;

  // Replaces what the lock file says about the holder with "pid N" and
  // `description` (one line, e.g. "fabric-manager listening on
  // 127.0.0.1:7070").
  absl::Status Describe(absl::string_view description);

  const std::string& path() const { return path_; }

 private:
  StoreLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  const std::string path_;  // the lock file
  const int fd_;
};

// Describe() for the lock this process holds on the store at `store_path`
// (through an open store, which keeps its StoreLock to itself), e.g. once
// the listen port is bound. REQUIRES: this process holds that lock.
absl::Status DescribeStoreHolder(const std::string& store_path,
                                 absl::string_view description);

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_STORE_LOCK_H_
