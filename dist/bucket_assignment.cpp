#include "dist/bucket_assignment.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "core/error.h"

namespace dtrain::dist {

std::vector<std::vector<size_t>> assign_gradient_buckets(const std::vector<BucketableTensor>& parameters,
                                                         size_t first_bucket_cap_bytes, size_t bucket_cap_bytes) {
  // One open bucket per (device, dtype): a flat buffer can hold only one element type.
  struct OpenBucket {
    std::vector<size_t> members;
    size_t nbytes = 0;
    bool closed_one_before = false;  // the first bucket of this kind uses the small cap
  };
  using Kind = std::pair<std::pair<int, int>, int>;  // (device type, device index), dtype
  std::map<Kind, OpenBucket> open;
  std::vector<std::vector<size_t>> buckets;

  for (size_t position = parameters.size(); position-- > 0;) {
    const BucketableTensor& parameter = parameters[position];
    Kind kind{{static_cast<int>(parameter.device.type), static_cast<int>(parameter.device.index)},
              static_cast<int>(parameter.dtype)};
    OpenBucket& bucket = open[kind];
    bucket.members.push_back(position);
    bucket.nbytes += parameter.nbytes;
    size_t cap = bucket.closed_one_before ? bucket_cap_bytes : first_bucket_cap_bytes;
    if (bucket.nbytes >= cap) {
      buckets.push_back(std::move(bucket.members));
      bucket.members.clear();
      bucket.nbytes = 0;
      bucket.closed_one_before = true;
    }
  }
  for (auto& [kind, bucket] : open) {
    if (!bucket.members.empty()) buckets.push_back(std::move(bucket.members));
  }
  // Launch order: by the first parameter each bucket holds, in the reverse registration order
  // the buckets were filled in (as PyTorch sorts them), so a bucket that closed late because its
  // dtype is rare does not jump ahead of buckets whose gradients come first.
  std::stable_sort(buckets.begin(), buckets.end(), [](const std::vector<size_t>& a, const std::vector<size_t>& b) {
    return a.front() > b.front();
  });
  return buckets;
}

size_t megabytes_to_bytes(double megabytes, const char* who, const char* option) {
  if (!(megabytes >= 0) || !std::isfinite(megabytes)) fail(who, ": expected ", option, " >= 0 MB, got ", megabytes);
  return static_cast<size_t>(megabytes * 1024.0 * 1024.0);
}

}  // namespace dtrain::dist
