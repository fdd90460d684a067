#include "server/service/gather_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace fabric::service {

absl::Status ValidateGatherOptions(const GatherOptions& options) {
  if (!(options.fraction >= 0 && options.fraction <= kMaxGatherFraction)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "commit_gather: ", options.fraction, " must be between 0 and ",
        kMaxGatherFraction, " (a fraction of the last commit's duration)"));
  }
  if (options.max_wait < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("commit_gather_max_wait: ",
                     absl::FormatDuration(options.max_wait),
                     " must not be negative"));
  }
  return absl::OkStatus();
}

GatherPolicy::Wait GatherPolicy::Before(size_t queued) const {
  Wait wait;
  wait.queued = goal_ + 1;
  if (options_.fraction <= 0 || last_group_ < 2 || queued >= wait.queued) {
    return wait;  // at_most zero: no wait
  }
  wait.at_most = std::min(last_commit_ * options_.fraction, options_.max_wait);
  return wait;
}

void GatherPolicy::Waited(bool met, size_t queued) {
  goal_ = met ? std::max(goal_ + 1, queued) : std::max<size_t>(queued, 1);
}

void GatherPolicy::Committed(size_t plans, absl::Duration took) {
  last_group_ = plans;
  last_commit_ = took;
  goal_ = std::max(goal_, plans);
}

}  // namespace fabric::service
