#include "dist/zero/shard_layout.h"

#include <algorithm>

#include "core/error.h"

namespace dtrain::dist {

ShardLayout::ShardLayout(std::vector<int64_t> numels, int shard_count)
    : numels_(std::move(numels)), shard_count_(shard_count) {
  if (shard_count < 1) fail("ShardLayout: expected at least one shard, got ", shard_count);
  offsets_.reserve(numels_.size());
  for (size_t i = 0; i < numels_.size(); ++i) {
    if (numels_[i] < 0) fail("ShardLayout: tensor ", i, " has a negative element count (", numels_[i], ")");
    offsets_.push_back(total_);
    total_ += numels_[i];
  }
  shard_size_ = (total_ + shard_count - 1) / shard_count;
}

void ShardLayout::check_shard(int shard) const {
  if (shard < 0 || shard >= shard_count_) {
    fail("ShardLayout: expected a shard index from 0 to ", shard_count_ - 1, ", got ", shard);
  }
}

int64_t ShardLayout::shard_begin(int shard) const {
  check_shard(shard);
  return shard * shard_size_;
}

int64_t ShardLayout::shard_end(int shard) const { return shard_begin(shard) + shard_size_; }

std::vector<ShardPiece> ShardLayout::pieces(int shard) const {
  const int64_t begin = shard_begin(shard);
  const int64_t end = std::min(shard_end(shard), total_);
  std::vector<ShardPiece> result;
  if (begin >= end) return result;
  // The first tensor that ends after begin: offsets are sorted, so search them.
  auto first = std::upper_bound(offsets_.begin(), offsets_.end(), begin);
  size_t tensor = static_cast<size_t>(first - offsets_.begin()) - 1;
  for (; tensor < numels_.size() && offsets_[tensor] < end; ++tensor) {
    const int64_t piece_begin = std::max(begin, offsets_[tensor]);
    const int64_t piece_end = std::min(end, offsets_[tensor] + numels_[tensor]);
    if (piece_begin >= piece_end) continue;  // an empty tensor
    result.push_back({tensor, piece_begin - offsets_[tensor], piece_begin, piece_end - piece_begin});
  }
  return result;
}

int64_t ShardLayout::padding_in_shard(int shard) const {
  const int64_t begin = shard_begin(shard);
  const int64_t end = shard_end(shard);
  return end - std::clamp(total_, begin, end);
}

}  // namespace dtrain::dist
