#include "common/config_digest.h"

#include "gtest/gtest.h"

namespace fabric {
namespace {

agentproto::v1::DesiredConfig Config(int64_t generation) {
  agentproto::v1::DesiredConfig c;
  c.set_node("nodes/n1");
  c.set_fabric("fabrics/lab");
  c.set_generation(generation);
  c.mutable_address_map()->set_generation(generation);
  c.set_window_base(uint64_t{1} << 40);
  c.add_vf_assignments()->set_attachment("attachments/a1");
  return c;
}

// Generations that ask the same of the node digest alike; any change of
// what is asked changes the digest; the config itself is left as it was.
TEST(ConfigDigestTest, GenerationsAsideEqualConfigsDigestAlike) {
  agentproto::v1::DesiredConfig a = Config(7);
  const agentproto::v1::DesiredConfig b = Config(9);
  const std::string before = a.SerializeAsString();
  agentproto::v1::DesiredConfig b_copy = b;
  EXPECT_EQ(ConfigContent(&a), ConfigContent(&b_copy));
  EXPECT_EQ(a.SerializeAsString(), before);
  EXPECT_EQ(a.generation(), 7);
  EXPECT_EQ(a.address_map().generation(), 7);
  EXPECT_EQ(ConfigDigest(a), ConfigDigest(b));
  EXPECT_EQ(ConfigDigest(a).size(), 32u);

  agentproto::v1::DesiredConfig c = Config(7);
  c.mutable_vf_assignments(0)->set_lender_agent("127.0.0.1:1");
  EXPECT_NE(ConfigDigest(a), ConfigDigest(c));
  agentproto::v1::DesiredConfig d = Config(7);
  d.set_window_base(d.window_base() + 4096);
  EXPECT_NE(ConfigDigest(a), ConfigDigest(d));
}

// The digest is of the content: ContentDigest(ConfigContent) is the same
// SHA-256, and an empty configuration has one too (a node in no fabric).
TEST(ConfigDigestTest, DigestIsTheSha256OfTheContent) {
  agentproto::v1::DesiredConfig a = Config(3);
  EXPECT_EQ(ConfigDigest(a), ContentDigest(ConfigContent(&a)));
  // SHA-256 of the empty string.
  EXPECT_EQ(ContentDigest(""),
            std::string("\xe3\xb0\xc4\x42\x98\xfc\x1c\x14\x9a\xfb\xf4\xc8\x99"
                        "\x6f\xb9\x24\x27\xae\x41\xe4\x64\x9b\x93\x4c\xa4\x95"
                        "\x99\x1b\x78\x52\xb8\x55",
                        32));
}

}  // namespace
}  // namespace fabric
