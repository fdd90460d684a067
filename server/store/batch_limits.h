// Fitting writes into a store's per-Apply limits (StoreLimits, store.h):
// the error that names the limit a change exceeds, and the split of a batch
// of independent mutations into batches that each fit.
//
// Usage:
//
//   RETURN_IF_ERROR(CheckFits(plan.batch, store->limits()));
//   ASSIGN_OR_RETURN(std::vector<WriteBatch> chunks,
//                    SplitToFit(std::move(deletes), store->limits()));
//   for (const WriteBatch& chunk : chunks)
//   RETURN_IF_ERROR(store->Apply(chunk));
//
// Pure functions; thread-compatible.
#ifndef FABRIC_SERVER_STORE_BATCH_LIMITS_H_
#define FABRIC_SERVER_STORE_BATCH_LIMITS_H_

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace fabric::store {

// True when `ops` mutations of `bytes` bytes in all (WriteBatch's
// ApproximateBytes) fit in one Apply under `limits` (StoreLimits::Fits).
bool FitsIn(const StoreLimits& limits, size_t ops, size_t bytes);

// OK when `batch` fits `limits`; otherwise INVALID_ARGUMENT naming the
// limit, e.g. "the change needs 300 store operations; the store takes at
// most 127 per transaction (etcd --max-txn-ops)".
absl::Status CheckFits(const WriteBatch& batch, const StoreLimits& limits);

// Cuts `batch` into consecutive batches, in order, each as large as fits
// `limits` (one batch when it fits whole; none when empty). Only for
// mutations that stay consistent when written apart (e.g. deletes of
// independent rows, a copy that is verified afterwards): the chunks are
// separate Applies. INVALID_ARGUMENT (CheckFits's) when one mutation alone
// does not fit.
absl::StatusOr<std::vector<WriteBatch>> SplitToFit(WriteBatch batch,
                                                   const StoreLimits& limits);

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_BATCH_LIMITS_H_
