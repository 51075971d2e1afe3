// Views share storage; every op must be right on non-contiguous input.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dtrain.h"

using namespace dtrain;
using Catch::Contains;

namespace {
Tensor grid() { return arange(0, 12, 1, {.dtype = kFloat32}).view({3, 4}); }
}

TEST_CASE("transpose is a view with swapped strides") {
  Tensor x = grid();
  Tensor t = x.t();
  REQUIRE(t.shape() == Shape{4, 3});
  REQUIRE(t.strides() == Strides{1, 4});
  REQUIRE_FALSE(t.is_contiguous());
  REQUIRE(t.to_vector<float>() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  t.select(0, 0).fill_(-1);  // writes through to x
  REQUIRE(x.to_vector<float>()[4] == -1);
}

TEST_CASE("view needs compatible strides, and reshape copies when it must") {
  Tensor x = grid();
  REQUIRE(x.view({2, -1}).shape() == Shape{2, 6});
  REQUIRE(x.view({12}).storage() == x.storage());
  REQUIRE_THROWS_WITH(x.t().view({12}), Contains("not compatible with the input's shape [4, 3] and strides [1, 4]"));
  Tensor copied = x.t().reshape({12});
  REQUIRE(copied.storage() != x.storage());
  REQUIRE(copied.to_vector<float>() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  REQUIRE_THROWS_WITH(x.view({5, -1}), Contains("shape [5, -1] is invalid for a tensor of 12 elements"));
  // A view of a sliced tensor whose rows stay contiguous.
  Tensor rows = x.narrow(0, 1, 2);
  REQUIRE(rows.view({8}).to_vector<float>() == std::vector<float>{4, 5, 6, 7, 8, 9, 10, 11});
}

TEST_CASE("permute, slice with step, narrow, select") {
  Tensor x = arange(0, 24, 1, {.dtype = kFloat64}).view({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  REQUIRE(p.shape() == Shape{4, 2, 3});
  REQUIRE(p.select(0, 1).to_vector<double>() == std::vector<double>{1, 5, 9, 13, 17, 21});
  Tensor s = x.slice(2, 0, 4, 2);
  REQUIRE(s.shape() == Shape{2, 3, 2});
  REQUIRE(s.select(0, 0).to_vector<double>() == std::vector<double>{0, 2, 4, 6, 8, 10});
  REQUIRE(x.slice(1, -2, 3).shape() == Shape{2, 2, 4});  // negative start
  REQUIRE_THROWS_WITH(x.narrow(1, 2, 2), Contains("[2, 4) is out of bounds for dim 1 of size 3"));
  REQUIRE_THROWS_WITH(x.select(0, 2), Contains("index 2 is out of range for dim 0 of size 2"));
  REQUIRE_THROWS_WITH(x.permute({0, 0, 1}), Contains("dim 0 appears twice"));
  REQUIRE_THROWS_WITH(x.transpose(0, 3), Contains("dimension 3 is out of range for a tensor of rank 3"));
}

TEST_CASE("expand, squeeze, unsqueeze, flatten") {
  Tensor column = from_vector<float>({1, 2, 3}, {3, 1});
  Tensor wide = column.expand({3, 4});
  REQUIRE(wide.strides() == Strides{1, 0});
  REQUIRE(wide.sum().item() == 24.0);
  REQUIRE(column.expand({2, -1, 2}).shape() == Shape{2, 3, 2});
  REQUIRE_THROWS_WITH(column.expand({4, 4}), Contains("cannot be expanded to [4, 4]"));
  REQUIRE(column.squeeze().shape() == Shape{3});
  REQUIRE(column.squeeze(0).shape() == Shape{3, 1});  // size 3: unchanged
  REQUIRE(column.unsqueeze(0).shape() == Shape{1, 3, 1});
  REQUIRE(column.unsqueeze(-1).shape() == Shape{3, 1, 1});
  Tensor x = zeros({2, 3, 4, 5});
  REQUIRE(x.flatten(1, 2).shape() == Shape{2, 12, 5});
  REQUIRE(x.flatten().shape() == Shape{120});
}

TEST_CASE("contiguous copies only non-contiguous tensors") {
  Tensor x = grid();
  REQUIRE(x.contiguous().is_same(x));
  Tensor c = x.t().contiguous();
  REQUIRE(c.is_contiguous());
  REQUIRE(c.to_vector<float>() == x.t().to_vector<float>());
}

TEST_CASE("elementwise ops are right on transposed, sliced and expanded inputs") {
  Tensor x = grid();                     // [3, 4]
  Tensor y = arange(0, 12, 1, {.dtype = kFloat32}).view({4, 3}).t();  // [3, 4], non-contiguous
  Tensor sum = x + y;
  std::vector<float> xs = x.to_vector<float>(), ys = y.to_vector<float>(), got = sum.to_vector<float>();
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == xs[i] + ys[i]);
  Tensor strided = x.slice(1, 0, 4, 2);  // columns 0 and 2
  REQUIRE((strided * 2).to_vector<float>() == std::vector<float>{0, 4, 8, 12, 16, 20});
  Tensor big = arange(0, 70000, 1, {.dtype = kFloat64}).view({700, 100}).t();  // parallel path
  Tensor doubled = big * 2.0;
  REQUIRE(doubled.select(0, 3).select(0, 699).item() == 2.0 * (699 * 100 + 3));
}

TEST_CASE("copy_ broadcasts and converts") {
  Tensor destination = zeros({2, 3}, {.dtype = kFloat64});
  destination.copy_(from_vector<int32_t>({1, 2, 3}));
  REQUIRE(destination.to_vector<double>() == std::vector<double>{1, 2, 3, 1, 2, 3});
  REQUIRE_THROWS_WITH(destination.copy_(zeros({4})), Contains("cannot be expanded"));
}

TEST_CASE("as_strided checks the storage bounds") {
  Tensor x = zeros({4});
  REQUIRE_THROWS_WITH(as_strided(x, {3}, {2}, 0), Contains("reach element 4 but the storage holds 4"));
  REQUIRE(as_strided(x, {2}, {2}, 1).shape() == Shape{2});
}
