#include "common/config_digest.h"

#include <openssl/sha.h>

namespace fabric {

std::string ConfigContent(agentproto::v1::DesiredConfig* config) {
  const int64_t generation = config->generation();
  config->clear_generation();
  const bool has_map = config->has_address_map();
  const int64_t map_generation = config->address_map().generation();
  if (has_map) config->mutable_address_map()->clear_generation();
  std::string out = config->SerializeAsString();
  config->set_generation(generation);
  if (has_map) config->mutable_address_map()->set_generation(map_generation);
  return out;
}

std::string ContentDigest(absl::string_view content) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(content.data()),
         content.size(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string ConfigDigest(const agentproto::v1::DesiredConfig& config) {
  agentproto::v1::DesiredConfig copy = config;
  return ContentDigest(ConfigContent(&copy));
}

}  // namespace fabric
