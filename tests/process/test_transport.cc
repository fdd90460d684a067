#include "tests/process/test_transport.h"

#include <cstdlib>
#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/process/process_util.h"

namespace fabric::proctest {

Transport& Transport::Tls() {
  static Transport* const tls = [] {
    absl::StatusOr<std::unique_ptr<security::TestPki>> pki =
        security::TestPki::Create();
    if (!pki.ok()) {
      std::cerr << "test_transport: cannot make the test PKI: " << pki.status()
                << "\n";
      std::abort();
    }
    return new Transport(*std::move(pki));
  }();
  return *tls;
}

Transport& Transport::Insecure() {
  static Transport* const insecure = new Transport(nullptr);
  return *insecure;
}

security::TlsConfig Transport::Identity(const std::string& kind,
                                        const std::string& name,
                                        const std::string& role) {
  if (pki_ == nullptr) return security::TlsConfig{.insecure = true};
  const std::string key = absl::StrCat(kind, "/", name, "/", role);
  absl::MutexLock lock(&mu_);
  auto it = issued_.find(key);
  if (it == issued_.end()) {
    it = issued_.emplace(key, pki_->Issue(kind, name, role)).first;
  }
  return it->second;
}

security::TlsConfig Transport::Manager(const std::string& name) {
  return Identity("manager", name, "");
}

security::TlsConfig Transport::Node(const std::string& node) {
  return Identity("node", node, "");
}

security::TlsConfig Transport::User(const std::string& name,
                                    const std::string& role) {
  return Identity("user", name, role);
}

std::vector<std::string> Transport::Flags(const security::TlsConfig& tls) {
  if (tls.insecure) return {"--insecure"};
  return {"--tls-cert", tls.cert_file, "--tls-key",
          tls.key_file, "--tls-ca",    tls.ca_file};
}

std::vector<std::string> Transport::ManagerFlags(const std::string& name) {
  return Flags(Manager(name));
}

std::vector<std::string> Transport::AgentFlags(const std::string& node) {
  return Flags(Node(node));
}

std::vector<std::string> Transport::CtlFlags() { return Flags(Admin()); }

std::vector<std::string> Transport::Fabricctl(
    const std::string& server, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinDir() + "/fabricctl", "--server", server};
  for (std::string& flag : CtlFlags()) argv.push_back(std::move(flag));
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::shared_ptr<grpc::Channel> Transport::DialManager(
    const std::string& address, const grpc::ChannelArguments& args) {
  return grpc::CreateCustomChannel(
      address,
      security::ChannelCredentials(Admin(),
                                   security::PeerRequirement::AnyManager()),
      args);
}

std::shared_ptr<grpc::Channel> Transport::DialAgent(const std::string& address,
                                                    const std::string& node) {
  return DialAs(address, Manager(), security::PeerRequirement::Node(node));
}

std::shared_ptr<grpc::Channel> Transport::DialAs(
    const std::string& address, const security::TlsConfig& as,
    const security::PeerRequirement& peer) {
  return grpc::CreateChannel(address, security::ChannelCredentials(as, peer));
}

}  // namespace fabric::proctest
