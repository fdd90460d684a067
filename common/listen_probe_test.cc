#include "common/listen_probe.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric {
namespace {

using ::testing::HasSubstr;

TEST(ProbeListenTest, SaysWhyAnAddressCannotBeListenedOn) {
  // A port this test holds, listening.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const uint16_t taken = ntohs(addr.sin_port);

  absl::Status in_use = ProbeListen("--listen", {"127.0.0.1", taken});
  EXPECT_EQ(in_use.code(), absl::StatusCode::kAlreadyExists) << in_use;
  EXPECT_THAT(in_use.message(), HasSubstr("--listen: 127.0.0.1:"));
  EXPECT_THAT(in_use.message(), HasSubstr("in use"));

  // TEST-NET-1 is on no interface here (nothing is sent).
  absl::Status foreign = ProbeListen("--listen", {"192.0.2.1", 7070});
  EXPECT_EQ(foreign.code(), absl::StatusCode::kInvalidArgument) << foreign;
  EXPECT_THAT(foreign.message(), HasSubstr("not an address of this host"));

  EXPECT_TRUE(ProbeListen("--listen", {"127.0.0.1", 0}).ok());
  close(fd);
  EXPECT_TRUE(ProbeListen("--listen", {"127.0.0.1", taken}).ok());
}

}  // namespace
}  // namespace fabric
