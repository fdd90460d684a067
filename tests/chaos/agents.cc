#include "tests/chaos/agents.h"

#include <signal.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fabric::chaos {

std::string NodeId(int i) { return absl::StrCat("n", i); }

Agents::Agents(std::string bin_dir, std::string dir, int nodes,
               std::string lender_hardware,
               const std::vector<std::string>& managers)
    : bin_dir_(std::move(bin_dir)),
      dir_(std::move(dir)),
      lender_hardware_(std::move(lender_hardware)),
      managers_(absl::StrJoin(managers, ",")),
      agents_(nodes) {}

void Agents::Start(int i) {
  std::vector<std::string> argv = {bin_dir_ + "/fabric-agent",
                                   "--manager",
                                   managers_,
                                   "--node",
                                   NodeId(i),
                                   "--backend",
                                   "sim",
                                   "--sim-dir",
                                   sim_dir(),
                                   "--insecure"};
  if (i == 0 && !lender_hardware_.empty()) {
    argv.insert(argv.end(), {"--sim-hardware", lender_hardware_});
  }
  agents_[i] = std::make_unique<proctest::Child>(
      argv, absl::StrCat(dir_, "/agent-", i, ".log"));
}

void Agents::Kill(int i) {
  if (agents_[i] == nullptr) return;
  agents_[i]->Signal(SIGKILL);
  agents_[i]->Wait();
  agents_[i].reset();
}

std::vector<std::string> Agents::ReapUnexpected() {
  std::vector<std::string> out;
  int code = 0;
  for (size_t i = 0; i < agents_.size(); ++i) {
    if (agents_[i] != nullptr && agents_[i]->pid() <= 0) {
      out.push_back(absl::StrCat("fabric-agent of ", NodeId(i),
                                 " could not be started; see ", dir_,
                                 "/agent-", i, ".log"));
      agents_[i].reset();
      continue;
    }
    if (agents_[i] != nullptr && agents_[i]->TryWait(&code)) {
      out.push_back(absl::StrCat("fabric-agent of ", NodeId(i),
                                 " exited by itself (", code, "); see ", dir_,
                                 "/agent-", i, ".log"));
      agents_[i].reset();
    }
  }
  return out;
}

}  // namespace fabric::chaos
