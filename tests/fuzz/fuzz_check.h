// Test-only helpers shared by the libFuzzer targets in this directory.
#ifndef FABRIC_TESTS_FUZZ_FUZZ_CHECK_H_
#define FABRIC_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

// FUZZ_CHECK(cond, message parts...): a property of the code under test
// (at least one message part).
// When it does not hold, prints the condition, its place and the message
// (absl::StrCat of the parts, evaluated only then) and aborts, which
// libFuzzer reports as a crash and saves the input. Unlike assert(), it is
// never compiled out.
#define FUZZ_CHECK(cond, ...)                            \
  do {                                                   \
    if (!(cond)) {                                       \
      ::fabric::fuzz::Fail(#cond, __FILE__, __LINE__,    \
                           ::absl::StrCat(__VA_ARGS__)); \
    }                                                    \
  } while (false)

namespace fabric::fuzz {

[[noreturn]] inline void Fail(const char* cond, const char* file, int line,
                              const std::string& message) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", file, line, cond,
               message.c_str());
  std::abort();
}

// Reads little-endian integers from the front of a fuzz input, so that the
// checked-in seeds are easy to write (see make_corpus.py). Past the end
// every read returns 0 and empty() is true.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return empty() ? 0 : size_ - pos_; }

  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() {
    const uint16_t lo = U8();
    return static_cast<uint16_t>(lo | U8() << 8);
  }
  uint32_t U32() {
    const uint32_t lo = U16();
    return lo | static_cast<uint32_t>(U16()) << 16;
  }
  uint64_t U64() {
    const uint64_t lo = U32();
    return lo | static_cast<uint64_t>(U32()) << 32;
  }
  // The rest of the input.
  absl::string_view Rest() {
    if (empty()) return {};
    absl::string_view r(reinterpret_cast<const char*>(data_ + pos_),
                        size_ - pos_);
    pos_ = size_;
    return r;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Prints each call and its outcome to stderr when the environment variable
// it is made with is set (MANAGER_FUZZ_TRACE, AGENT_FUZZ_TRACE): for
// writing seeds with make_corpus.py.
class CallTracer {
 public:
  explicit CallTracer(const char* env) : on_(std::getenv(env) != nullptr) {}
  void operator()(absl::string_view what, const absl::Status& s) const {
    if (!on_) return;
    std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(what.size()),
                 what.data(), s.ToString().c_str());
  }

 private:
  const bool on_;
};

// An error a client can act on: one of the `canonical` codes this target's
// calls may answer with, and a message saying why.
inline void CheckActionableError(
    absl::string_view what, const absl::Status& s, absl::string_view request,
    std::initializer_list<absl::StatusCode> canonical) {
  if (s.ok()) return;
  for (absl::StatusCode code : canonical) {
    if (s.code() != code) continue;
    FUZZ_CHECK(!s.message().empty(), what,
               " failed without a message: ", s.ToString(),
               "\nrequest: ", request);
    return;
  }
  FUZZ_CHECK(false, what, " failed with a non-canonical code: ", s.ToString(),
             "\nrequest: ", request);
}

}  // namespace fabric::fuzz

#endif  // FABRIC_TESTS_FUZZ_FUZZ_CHECK_H_
