// PrintLine: one line of a program's status output (what process tests and
// operators read: "fabric-manager: REST on 127.0.0.1:8080"), written whole.
//
// `std::cout << "a " << x << std::endl` is several writes, and another
// thread's line can land between them ("REST on 127.0.0.1:fabric-manager:
// elected leader ...46045"). PrintLine writes the text and its newline in
// one stream insertion (with the standard streams synced with stdio, as
// they are by default, one locked fwrite), then flushes, so lines from
// different threads never mix. Use it wherever a program prints while other
// threads may.
#ifndef FABRIC_COMMON_STATUS_LINE_H_
#define FABRIC_COMMON_STATUS_LINE_H_

#include <ostream>
#include <string>

#include "absl/strings/str_cat.h"

namespace fabric {

// PrintLine(std::cout, "fabric-manager: REST on ", host, ":", port);
template <typename... Parts>
void PrintLine(std::ostream& out, const Parts&... parts) {
  out << absl::StrCat(parts..., "\n") << std::flush;
}

}  // namespace fabric

#endif  // FABRIC_COMMON_STATUS_LINE_H_
