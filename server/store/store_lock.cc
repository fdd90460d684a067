#include "server/store/store_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace fabric::store {
namespace {

// The holder's record, on one line.
std::string ReadHolder(int fd) {
  std::string text;
  char buf[512];
  ssize_t n;
  off_t offset = 0;
  while (text.size() < 4096 &&
         (n = pread(fd, buf, sizeof(buf), offset)) > 0) {
    text.append(buf, static_cast<size_t>(n));
    offset += n;
  }
  text = std::string(absl::StripAsciiWhitespace(text));
  return absl::StrReplaceAll(text, {{"\n", ", "}});
}

}  // namespace

absl::StatusOr<std::unique_ptr<StoreLock>> StoreLock::Acquire(
    const std::string& store_path) {
  const std::string path = store_path + ".lock";
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    return absl::UnavailableError(
        absl::StrCat("cannot create the lock file ", path, " of store ",
                     store_path, ": ", std::strerror(err)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      std::string holder = ReadHolder(fd);
      close(fd);
      if (holder.empty()) holder = "a process that has not said who it is";
      return absl::FailedPreconditionError(absl::StrCat(
          "store ", store_path, " is in use by another process (", holder,
          "; lock file ", path, "): only one manager may own a store"));
    }
    close(fd);
    return absl::UnavailableError(absl::StrCat(
        "cannot lock ", path, " of store ", store_path, ": ",
        std::strerror(err)));
  }
  std::unique_ptr<StoreLock> lock(new StoreLock(path, fd));
  RETURN_IF_ERROR(lock->Describe(""));
  return lock;
}

StoreLock::~StoreLock() { close(fd_); }  // closing releases the flock

namespace {

// Replaces the text of the lock file open at `fd` with "pid N" and
// `description`.
absl::Status WriteHolder(int fd, const std::string& path,
                         absl::string_view description) {
  std::string text = absl::StrCat("pid ", getpid(), "\n");
  if (!description.empty()) absl::StrAppend(&text, description, "\n");
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, text.data(), text.size(), 0) !=
          static_cast<ssize_t>(text.size())) {
    const int err = errno;
    return absl::UnavailableError(absl::StrCat(
        "cannot write the lock file ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status StoreLock::Describe(absl::string_view description) {
  return WriteHolder(fd_, path_, description);
}

absl::Status DescribeStoreHolder(const std::string& store_path,
                                 absl::string_view description) {
  const std::string path = store_path + ".lock";
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return absl::UnavailableError(absl::StrCat(
        "cannot open the lock file ", path, ": ", std::strerror(err)));
  }
  absl::Status s = WriteHolder(fd, path, description);
  close(fd);
  return s;
}

}  // namespace fabric::store
