// The pure parts of the manager session: the address it registers and the
// UTF-8 cleaning of what it reports. The session itself runs end to end in
// agent_test.cc, against an in-process manager.
#include "agent/manager_session.h"

#include <string>

#include "gtest/gtest.h"

namespace fabric::agent {
namespace {

TEST(ControlAddressTest, FollowsAdvertiseThenListen) {
  ManagerSessionOptions o;
  o.listen = "10.1.2.3:0";
  EXPECT_EQ(ControlAddress(o, 7071), "10.1.2.3:7071");
  o.listen = "0.0.0.0:7071";
  EXPECT_EQ(ControlAddress(o, 7071), ":7071");
  o.listen = "[::]:7071";
  EXPECT_EQ(ControlAddress(o, 7071), ":7071");
  o.advertise = "node1.example:7071";
  EXPECT_EQ(ControlAddress(o, 7071), "node1.example:7071");
}

TEST(ValidUtf8Test, EscapesEveryByteThatIsNotUtf8) {
  EXPECT_EQ(ValidUtf8("plain ASCII"), "plain ASCII");
  // 2-, 3- and 4-byte characters stay as they are.
  EXPECT_EQ(ValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(ValidUtf8("\xff\xfe"), "\\xff\\xfe");
  // A lone continuation byte, a sequence cut short, an overlong '/', a
  // UTF-16 surrogate and a code point past U+10FFFF.
  EXPECT_EQ(ValidUtf8("a\x80z"), "a\\x80z");
  EXPECT_EQ(ValidUtf8("\xe2\x82"), "\\xe2\\x82");
  EXPECT_EQ(ValidUtf8("\xc0\xaf"), "\\xc0\\xaf");
  EXPECT_EQ(ValidUtf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  EXPECT_EQ(ValidUtf8("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
  EXPECT_EQ(ValidUtf8(std::string("nul\0ok", 6)), std::string("nul\0ok", 6));
}

}  // namespace
}  // namespace fabric::agent
