#pragma once
// ShardLayout: tensors laid end to end in one flat buffer that is cut into N shards of equal
// size, as ZeRO does. The flat length is padded up to a multiple of N with elements that belong
// to no tensor (they are counted as padding, never updated and never saved). A shard cuts
// tensors anywhere, so each shard is described as the pieces of tensors it crosses.
//
//   ShardLayout layout({6, 4}, 3);   // 10 elements, padded to 12, shards of 4
//   layout.shard_begin(1);           // 4
//   layout.pieces(1);                // {tensor 0, elements [4, 6), flat [4, 6)},
//                                    // {tensor 1, elements [0, 2), flat [6, 8)}
//   layout.padding_in_shard(2);      // 2: flat [10, 12)
//
// Pure arithmetic: no tensors, the same on every rank given the same sizes.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dtrain::dist {

// The part of one tensor that lies in one shard.
struct ShardPiece {
  size_t tensor = 0;         // index into the layout's tensors
  int64_t tensor_begin = 0;  // first element of the tensor held, in its row-major order
  int64_t flat_begin = 0;    // where that element lies in the flat buffer
  int64_t length = 0;        // elements

  int64_t tensor_end() const { return tensor_begin + length; }
  int64_t flat_end() const { return flat_begin + length; }
  bool operator==(const ShardPiece& other) const = default;
};

class ShardLayout {
 public:
  ShardLayout() = default;
  // numels: the element count of each tensor, in buffer order; shard_count >= 1.
  ShardLayout(std::vector<int64_t> numels, int shard_count);

  size_t tensor_count() const { return numels_.size(); }
  int64_t numel(size_t tensor) const { return numels_.at(tensor); }
  int64_t offset(size_t tensor) const { return offsets_.at(tensor); }  // in the flat buffer
  int64_t total() const { return total_; }                             // elements of all tensors
  int64_t padded_total() const { return shard_size_ * shard_count_; }  // a multiple of shard_count
  int64_t padding() const { return padded_total() - total_; }

  int shard_count() const { return shard_count_; }
  int64_t shard_size() const { return shard_size_; }
  int64_t shard_begin(int shard) const;  // flat index
  int64_t shard_end(int shard) const;
  // The tensors' pieces in shard [begin, end), in flat order; a shard of padding only has none.
  std::vector<ShardPiece> pieces(int shard) const;
  // Elements of the shard that belong to no tensor.
  int64_t padding_in_shard(int shard) const;

 private:
  void check_shard(int shard) const;

  std::vector<int64_t> numels_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
  int shard_count_ = 1;
  int64_t shard_size_ = 0;
};

}  // namespace dtrain::dist
