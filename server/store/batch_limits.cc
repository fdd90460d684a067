#include "server/store/batch_limits.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace fabric::store {

bool FitsIn(const StoreLimits& limits, size_t ops, size_t bytes) {
  return (limits.max_ops == 0 || ops <= limits.max_ops) &&
         (limits.max_bytes == 0 ||
          bytes + ops * limits.per_op_overhead_bytes <= limits.max_bytes);
}

absl::Status CheckFits(const WriteBatch& batch, const StoreLimits& limits) {
  const size_t ops = batch.mutations().size();
  if (limits.max_ops != 0 && ops > limits.max_ops) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the change needs ", ops, " store operations; the store takes at most ",
        limits.max_ops, " per transaction (etcd --max-txn-ops)"));
  }
  const size_t bytes =
      batch.ApproximateBytes() + ops * limits.per_op_overhead_bytes;
  if (limits.max_bytes != 0 && bytes > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the change needs ", bytes, " bytes in one store transaction; the ",
        "store takes at most ", limits.max_bytes,
        " (etcd --max-request-bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<WriteBatch>> SplitToFit(WriteBatch batch,
                                                   const StoreLimits& limits) {
  std::vector<WriteBatch> chunks;
  if (batch.empty()) return chunks;
  if (limits.Fits(batch)) {
    chunks.push_back(std::move(batch));
    return chunks;
  }
  WriteBatch chunk;
  for (const Mutation& m : batch.mutations()) {
    WriteBatch one;
    if (m.value.has_value()) {
      one.Put(m.table, m.key, *m.value);
    } else {
      one.Delete(m.table, m.key);
    }
    if (absl::Status fits = CheckFits(one, limits); !fits.ok()) return fits;
    if (!FitsIn(limits, chunk.mutations().size() + 1,
                chunk.ApproximateBytes() + one.ApproximateBytes())) {
      chunks.push_back(std::move(chunk));
      chunk = WriteBatch();
    }
    chunk.Append(std::move(one));
  }
  if (!chunk.empty()) chunks.push_back(std::move(chunk));
  return chunks;
}

}  // namespace fabric::store
