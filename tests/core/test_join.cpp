// cat, stack, split and chunk.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "core/core.h"

using namespace dtrain;
using Catch::Contains;

namespace {
Tensor counting(const Shape& shape, double start = 0) {
  return arange(start, start + static_cast<double>(shape.numel()), 1, {.dtype = kFloat32}).view(shape);
}
}  // namespace

TEST_CASE("cat along the first, last and a negative dim") {
  Tensor a = counting({2, 2}), b = counting({1, 2}, 10);
  REQUIRE(cat({a, b}).to_vector<float>() == std::vector<float>{0, 1, 2, 3, 10, 11});
  REQUIRE(cat({a, b}, 0).shape() == Shape{3, 2});
  Tensor c = counting({2, 3}, 20);
  Tensor wide = cat({a, c}, -1);
  REQUIRE(wide.shape() == Shape{2, 5});
  REQUIRE(wide.to_vector<float>() == std::vector<float>{0, 1, 20, 21, 22, 2, 3, 23, 24, 25});
  REQUIRE(equal(cat({a}, 1), a));
  REQUIRE(cat({a, a, a}, 0).shape() == Shape{6, 2});
}

TEST_CASE("cat of transposed and sliced inputs, empty pieces, and mixed dtypes") {
  Tensor base = counting({3, 4});
  Tensor transposed = base.t();           // [4, 3]
  Tensor sliced = base.slice(1, 0, 4, 2);  // [3, 2]: columns 0 and 2
  Tensor joined = cat({transposed.narrow(0, 0, 2), sliced.t()}, 0);
  REQUIRE(joined.to_vector<float>() == std::vector<float>{0, 4, 8, 1, 5, 9, 0, 4, 8, 2, 6, 10});
  Tensor nothing = zeros({0, 4});
  REQUIRE(equal(cat({nothing, base, nothing}, 0), base));
  Tensor promoted = cat({from_vector<int32_t>({1, 2}), from_vector<float>({0.5f})});
  REQUIRE(promoted.dtype() == kFloat32);
  REQUIRE(promoted.to_vector<float>() == std::vector<float>{1, 2, 0.5f});
  Tensor three_d = cat({counting({2, 1, 2}), counting({2, 2, 2}, 100)}, 1);
  REQUIRE(three_d.to_vector<float>() == std::vector<float>{0, 1, 100, 101, 102, 103, 2, 3, 104, 105, 106, 107});
}

TEST_CASE("cat names what does not fit") {
  Tensor a = counting({2, 3});
  REQUIRE_THROWS_WITH(cat({}), Contains("cat: expected a non-empty list of tensors"));
  REQUIRE_THROWS_WITH(cat({a, counting({3, 2})}, 0),
                      Contains("cat: sizes must match except in dim 0, but tensor 0 has shape [2, 3] and tensor 1 has shape [3, 2]"));
  REQUIRE_THROWS_WITH(cat({a, counting({6})}), Contains("expected every tensor to have 2 dims like tensor 0 of shape [2, 3], got tensor 1 of shape [6]"));
  REQUIRE_THROWS_WITH(cat({scalar_tensor(1.0)}), Contains("cat: a 0-d tensor (tensor 0) cannot be concatenated"));
  REQUIRE_THROWS_WITH(cat({a, Tensor()}), Contains("cat: tensor 1 of the list is undefined"));
  REQUIRE_THROWS_WITH(cat({a}, 2), Contains("cat: dimension 2 is out of range for a tensor of rank 2"));
}

TEST_CASE("stack adds a dim at the front, the middle or the end") {
  Tensor a = counting({2, 3}), b = counting({2, 3}, 10);
  Tensor front = stack({a, b});
  REQUIRE(front.shape() == Shape{2, 2, 3});
  REQUIRE(front.to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15});
  Tensor middle = stack({a, b}, 1);
  REQUIRE(middle.shape() == Shape{2, 2, 3});
  REQUIRE(middle.to_vector<float>() == std::vector<float>{0, 1, 2, 10, 11, 12, 3, 4, 5, 13, 14, 15});
  Tensor end = stack({a, b}, -1);
  REQUIRE(end.shape() == Shape{2, 3, 2});
  REQUIRE(end.to_vector<float>() == std::vector<float>{0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15});
  REQUIRE(stack({scalar_tensor(1.0), scalar_tensor(2.0)}).to_vector<double>() == std::vector<double>{1, 2});
  REQUIRE_THROWS_WITH(stack({a, counting({3, 2})}), Contains("stack: expected every tensor to have shape [2, 3] like tensor 0, got tensor 1 of shape [3, 2]"));
  REQUIRE_THROWS_WITH(stack({a, b}, 3), Contains("stack: dimension 3 is out of range for a tensor of rank 3"));
  REQUIRE_THROWS_WITH(stack({}), Contains("stack: expected a non-empty list of tensors"));
}

TEST_CASE("split by a size gives views, the last piece smaller") {
  Tensor x = counting({5, 2});
  std::vector<Tensor> pieces = split(x, 2);
  REQUIRE(pieces.size() == 3);
  REQUIRE(pieces[0].shape() == Shape{2, 2});
  REQUIRE(pieces[2].shape() == Shape{1, 2});
  REQUIRE(pieces[2].to_vector<float>() == std::vector<float>{8, 9});
  REQUIRE(pieces[1].storage() == x.storage());
  pieces[1].fill_(-1);
  REQUIRE(x.to_vector<float>()[4] == -1);
  std::vector<Tensor> columns = x.split(1, -1);
  REQUIRE(columns.size() == 2);
  REQUIRE(columns[1].to_vector<float>() == std::vector<float>{1, 3, -1, -1, 9});
  REQUIRE(split(x, 10).size() == 1);
  REQUIRE(split(zeros({0, 2}), 3).size() == 1);
  REQUIRE_THROWS_WITH(split(x, 0), Contains("split: expected a positive split_size, got 0 for dim 0 of size 5"));
  REQUIRE_THROWS_WITH(split(scalar_tensor(1.0), 1), Contains("split: expected a tensor with at least one dimension"));
}

TEST_CASE("split by sizes, and chunk") {
  Tensor x = counting({2, 6});
  std::vector<Tensor> pieces = split(x, std::vector<int64_t>{1, 0, 5}, 1);
  REQUIRE(pieces.size() == 3);
  REQUIRE(pieces[1].shape() == Shape{2, 0});
  REQUIRE(pieces[2].to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 7, 8, 9, 10, 11});
  REQUIRE_THROWS_WITH(split(x, std::vector<int64_t>{2, 3}, 1), Contains("split: sizes [2, 3] add up to 5 but dim 1 has size 6"));
  REQUIRE_THROWS_WITH(split(x, std::vector<int64_t>{7, -1}, 1), Contains("split: sizes must be non-negative, got [7, -1]"));

  std::vector<Tensor> thirds = chunk(x, 3, 1);
  REQUIRE(thirds.size() == 3);
  REQUIRE(thirds[2].to_vector<float>() == std::vector<float>{4, 5, 10, 11});
  std::vector<Tensor> uneven = chunk(counting({5}), 4);  // ceil(5 / 4) = 2: pieces 2, 2, 1 as PyTorch
  REQUIRE(uneven.size() == 3);
  REQUIRE(uneven[2].to_vector<float>() == std::vector<float>{4});
  REQUIRE(x.chunk(2).size() == 2);
  REQUIRE(chunk(zeros({0}), 3).size() == 3);
  REQUIRE_THROWS_WITH(chunk(x, 0), Contains("chunk: expected a positive number of chunks, got 0"));
}

TEST_CASE("chunk of a permuted tensor: gradients land in the input's layout with the right values") {
  // [B, T, 3, H, D] permuted to [3, B, H, T, D] and cut into q, k, v, as attention does.
  const Shape shape{2, 3, 3, 2, 4};
  Tensor base = counting(shape);
  base.set_requires_grad();
  Tensor permuted = base.permute({2, 0, 3, 1, 4});
  std::vector<Tensor> q_k_v = chunk(permuted, 3, 0);
  // Different weights per piece, so a gradient in the wrong place shows.
  Tensor loss = (q_k_v[0] * 1.0).sum() + (q_k_v[1] * 10.0).sum() + (q_k_v[2] * q_k_v[2]).sum();
  loss.backward();
  Tensor grad = base.grad();
  REQUIRE(grad.shape() == shape);
  REQUIRE(grad.is_contiguous());  // the permuted layout, permuted back
  const std::vector<float> values = base.to_vector<float>(), grads = grad.to_vector<float>();
  for (int64_t i = 0; i < shape.numel(); ++i) {
    const int64_t piece = (i / (2 * 4)) % 3;  // the index along the dim of size 3
    const float expected = piece == 0 ? 1.0f : piece == 1 ? 10.0f : 2.0f * values[i];
    REQUIRE(grads[i] == expected);
  }
  // A contiguous input keeps cat's path; the values are the same.
  Tensor plain = counting({6, 2});
  plain.set_requires_grad();
  std::vector<Tensor> halves = chunk(plain, 2, 0);
  ((halves[0] * 3.0).sum() + (halves[1] * 5.0).sum()).backward();
  REQUIRE(plain.grad().to_vector<float>() == std::vector<float>{3, 3, 3, 3, 3, 3, 5, 5, 5, 5, 5, 5});
}
