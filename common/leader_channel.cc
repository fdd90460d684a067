#include "common/leader_channel.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "common/host_port.h"

namespace fabric {
namespace {

constexpr char kStandbyPrefix[] = "this manager is a standby; ";

}  // namespace

std::string StandbyMessage(const std::optional<std::string>& leader) {
  return leader.has_value()
             ? absl::StrCat(kStandbyPrefix, "the leader is ", *leader)
             : absl::StrCat(kStandbyPrefix, "no leader is elected yet");
}

bool IsStandbyAnswer(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         absl::StartsWith(status.error_message(), kStandbyPrefix);
}

std::optional<std::string> LeaderOf(const grpc::ClientContext& ctx) {
  const auto& trailing = ctx.GetServerTrailingMetadata();
  auto it = trailing.find(kLeaderMetadataKey);
  if (it == trailing.end() || it->second.empty()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

absl::StatusOr<std::vector<std::string>> ParseManagerList(
    absl::string_view flag, absl::string_view text) {
  std::vector<std::string> out;
  const bool single = !absl::StrContains(text, ',');
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    if (!single) entry = absl::StripAsciiWhitespace(entry);
    if (!single && entry.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": \"", text,
          "\" has an empty entry; expected HOST:PORT[,HOST:PORT...]"));
    }
    absl::StatusOr<HostPort> address = ParseHostPort(flag, entry);
    if (!address.ok()) return address.status();
    if (address->port == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": ", single ? "" : absl::StrCat(entry, ": "),
          "port 0 cannot be connected to; use 1-65535"));
    }
    std::string target = address->ToString();
    if (std::find(out.begin(), out.end(), target) == out.end()) {
      out.push_back(std::move(target));
    }
  }
  return out;
}

LeaderChannel::LeaderChannel(std::vector<std::string> targets, Dial dial)
    : dial_(std::move(dial)), targets_(std::move(targets)) {
  channels_.resize(targets_.size());
}

LeaderChannel::Endpoint LeaderChannel::EndpointLocked(size_t index) {
  if (channels_[index] == nullptr) channels_[index] = dial_(targets_[index]);
  return {targets_[index], channels_[index]};
}

LeaderChannel::Endpoint LeaderChannel::Current() {
  absl::MutexLock l(&mu_);
  return EndpointLocked(current_);
}

std::vector<std::string> LeaderChannel::targets() const {
  absl::MutexLock l(&mu_);
  return targets_;
}

LeaderChannel::Endpoint LeaderChannel::Follow(const std::string& from,
                                              const std::string& leader) {
  absl::MutexLock l(&mu_);
  // Another call moved on already: go where it went.
  if (targets_[current_] != from) return EndpointLocked(current_);
  auto it = std::find(targets_.begin(), targets_.end(), leader);
  if (it == targets_.end()) {
    targets_.push_back(leader);
    channels_.push_back(nullptr);
    it = targets_.end() - 1;
  }
  current_ = static_cast<size_t>(it - targets_.begin());
  return EndpointLocked(current_);
}

LeaderChannel::Endpoint LeaderChannel::Advance(const std::string& from) {
  absl::MutexLock l(&mu_);
  if (targets_[current_] == from) current_ = (current_ + 1) % targets_.size();
  return EndpointLocked(current_);
}

bool LeaderChannel::IsSwitching(const Endpoint& tried,
                                const grpc::Status& status,
                                const grpc::ClientContext& ctx) {
  if (status.error_code() == grpc::StatusCode::CANCELLED) return true;
  if (!IsStandbyAnswer(status)) return false;
  std::optional<std::string> leader = LeaderOf(ctx);
  return leader.has_value() && *leader == tried.target;
}

LeaderChannel::Endpoint LeaderChannel::Observe(const Endpoint& tried,
                                               const grpc::Status& status,
                                               const grpc::ClientContext& ctx) {
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    // No answer in time: paused, or its host is gone. The next manager
    // names the leader, which may be this one again.
    return Advance(tried.target);
  }
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return tried;
  std::optional<std::string> leader = LeaderOf(ctx);
  if (leader.has_value() && *leader == tried.target) {
    // It names itself: it won the election and is starting its leader's
    // server on this very address.
    return tried;
  }
  if (leader.has_value()) return Follow(tried.target, *leader);
  if (IsStandbyAnswer(status) ||
      tried.channel->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
    // No leader named, or the manager was not reached (see
    // client/fabric_client.h, IsServerUnreachable).
    return Advance(tried.target);
  }
  // The manager itself answered UNAVAILABLE (an agent out of reach, a store
  // that failed): not about where the leader is.
  return tried;
}

bool LeaderChannel::OthersNameAsLeader(
    const Endpoint& slow,
    absl::FunctionRef<grpc::Status(const Endpoint&, grpc::ClientContext&)>
        probe) {
  std::vector<Endpoint> others;
  {
    absl::MutexLock l(&mu_);
    for (size_t i = 0; i < targets_.size(); ++i) {
      if (targets_[i] != slow.target) others.push_back(EndpointLocked(i));
    }
  }
  for (const Endpoint& other : others) {
    grpc::ClientContext ctx;
    const grpc::Status status = probe(other, ctx);
    if (IsStandbyAnswer(status)) {
      const std::optional<std::string> leader = LeaderOf(ctx);
      if (!leader.has_value()) continue;  // none elected, as far as it knows
      return *leader == slow.target;
    }
    const grpc::StatusCode code = status.error_code();
    if (code == grpc::StatusCode::DEADLINE_EXCEEDED ||
        code == grpc::StatusCode::CANCELLED ||
        (code == grpc::StatusCode::UNAVAILABLE &&
         other.channel->GetState(/*try_to_connect=*/false) !=
             GRPC_CHANNEL_READY)) {
      continue;  // not reached: it says nothing
    }
    // It answered as a manager that serves (the leader now, or one that
    // thinks so): not `slow`.
    return false;
  }
  return false;
}

grpc::Status LeaderChannel::Call(
    absl::FunctionRef<grpc::Status(const Endpoint&, grpc::ClientContext&)>
        attempt,
    bool retry_safe, Endpoint* last, absl::Time deadline) {
  Endpoint endpoint = Current();
  // Once per known address, and once more after a leader was named.
  size_t budget;
  {
    absl::MutexLock l(&mu_);
    budget = targets_.size() + 1;
  }
  grpc::Status status;
  for (size_t tries = 1;; ++tries) {
    grpc::ClientContext ctx;
    status = attempt(endpoint, ctx);
    if (last != nullptr) *last = endpoint;
    const grpc::StatusCode code = status.error_code();
    // DEADLINE_EXCEEDED before the call's deadline: the attempt's own
    // (shorter) deadline passed without an answer.
    const bool unanswered = code == grpc::StatusCode::DEADLINE_EXCEEDED &&
                            absl::Now() < deadline;
    if (code != grpc::StatusCode::UNAVAILABLE &&
        code != grpc::StatusCode::CANCELLED && !unanswered) {
      return status;
    }
    const bool switching = IsSwitching(endpoint, status, ctx);
    Endpoint next = Observe(endpoint, status, ctx);
    // Nothing said where to go (the same endpoint, and not a manager
    // between standby and leader): the manager's own answer.
    if (!retry_safe || tries >= budget || absl::Now() >= deadline ||
        (next.target == endpoint.target && !switching)) {
      return status;
    }
    endpoint = std::move(next);
  }
}

}  // namespace fabric
