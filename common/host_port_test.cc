#include "common/host_port.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric {
namespace {

using ::testing::HasSubstr;

TEST(ParseHostPortTest, AcceptsNamesIpv4AndBracketedIpv6) {
  absl::StatusOr<HostPort> a = ParseHostPort("--listen", "127.0.0.1:7070");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7070);
  EXPECT_EQ(a->ToString(), "127.0.0.1:7070");

  absl::StatusOr<HostPort> b = ParseHostPort("--manager", "mgr.lab:65535");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->host, "mgr.lab");
  EXPECT_EQ(b->port, 65535);

  absl::StatusOr<HostPort> v6 = ParseHostPort("--listen", "[::1]:7070");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 7070);
  EXPECT_EQ(v6->ToString(), "[::1]:7070");
}

TEST(ParseHostPortTest, AcceptsPortZeroForCallersToDecide) {
  absl::StatusOr<HostPort> any = ParseHostPort("--listen", "0.0.0.0:0");
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(any->port, 0);
}

TEST(ParseHostPortTest, RejectsWithMessagesNamingTheFlag) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"", "--listen: the address is empty; expected HOST:PORT"},
      {"host", "--listen: \"host\" has no port; expected HOST:PORT"},
      {"host:", "--listen: \"host:\" has no port; expected HOST:PORT"},
      {"[::1]", "--listen: \"[::1]\" has no port; expected HOST:PORT"},
      {":7070", "--listen: \":7070\" has no host; expected HOST:PORT"},
      {"[]:7070", "--listen: \"[]:7070\" has no host; expected HOST:PORT"},
      {"host:abc", "--listen: port \"abc\" is not a number"},
      {"host:-1", "--listen: port \"-1\" is not a number"},
      {"host:+80", "--listen: port \"+80\" is not a number"},
      {"host: 80", "--listen: port \" 80\" is not a number"},
      {"host:99999", "--listen: port 99999 is out of range (0-65535)"},
      {"host:65536", "--listen: port 65536 is out of range (0-65535)"},
      {"host:123456789012345678901234567890",
       "--listen: port 123456789012345678901234567890 is out of range "
       "(0-65535)"},
      {"::1:7070",
       "--listen: \"::1:7070\": an IPv6 address needs brackets, e.g. "
       "[::1]:7070"},
      {"[::1]7070", "--listen: \"[::1]7070\": expected \":PORT\" after \"]\""},
      {"[::1:7070", "--listen: \"[::1:7070\": \"[\" without \"]\""},
      {"my host:80", "--listen: \"my host:80\": the host has a space"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<HostPort> hp = ParseHostPort("--listen", c.text);
    ASSERT_FALSE(hp.ok()) << c.text << " parsed as " << hp->ToString();
    EXPECT_EQ(hp.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(hp.status().message(), c.error) << c.text;
  }
}

TEST(ParseHostPortTest, NamesTheFlagItIsGiven) {
  EXPECT_THAT(
      std::string(ParseHostPort("--manager", "m:70000").status().message()),
      HasSubstr("--manager: port 70000"));
}

}  // namespace
}  // namespace fabric
