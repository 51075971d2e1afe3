// gather, scatter_add, index_select and index_add against loops written here.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/core.h"

using namespace dtrain;
using Catch::Contains;

namespace {
// x[i][j] = 10 i + j, so every value names its position.
Tensor grid(int64_t rows, int64_t cols, DType dtype = kFloat32) {
  std::vector<double> values;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) values.push_back(static_cast<double>(10 * i + j));
  }
  return from_vector(values, {rows, cols}).to(dtype);
}
}  // namespace

TEST_CASE("gather along each dim, negative dim, index smaller than the input") {
  Tensor x = grid(3, 4);
  Tensor along_rows = from_vector<int64_t>({3, 0, 1, 1, 2, 3}, {3, 2});
  REQUIRE(gather(x, 1, along_rows).to_vector<float>() == std::vector<float>{3, 0, 11, 11, 22, 23});
  REQUIRE(equal(gather(x, -1, along_rows), gather(x, 1, along_rows)));
  Tensor down_columns = from_vector<int64_t>({2, 0, 1, 2, 0, 0}, {2, 3});  // uses columns 0..2 only
  REQUIRE(gather(x, 0, down_columns).to_vector<float>() == std::vector<float>{20, 1, 12, 20, 1, 2});
  REQUIRE(gather(x, 0, down_columns).shape() == Shape{2, 3});
  REQUIRE(gather(grid(3, 4, kInt64), 1, along_rows).to_vector<int64_t>() == std::vector<int64_t>{3, 0, 11, 11, 22, 23});
  REQUIRE(gather(x, 1, zeros({3, 0}, {.dtype = kInt64})).shape() == Shape{3, 0});
}

TEST_CASE("gather on transposed input and index") {
  Tensor x = grid(4, 3).t();  // [3, 4], x[i][j] = 10 j + i
  Tensor index = from_vector<int64_t>({1, 3, 0, 2, 2, 2}, {2, 3}).t();  // [3, 2] strided
  // out[i][k] = x[i][index[i][k]] = 10 * index[i][k] + i
  REQUIRE(gather(x, 1, index).to_vector<float>() == std::vector<float>{10, 20, 31, 21, 2, 22});
}

TEST_CASE("gather checks its index: dtype, rank, size, and every value") {
  Tensor x = grid(3, 4);
  REQUIRE_THROWS_WITH(gather(x, 1, from_vector<int64_t>({0, 4}, {2, 1})),
                      Contains("gather: index 4 is out of bounds for dimension 1 with size 4"));
  REQUIRE_THROWS_WITH(gather(x, 0, from_vector<int64_t>({-1}, {1, 1})),
                      Contains("gather: index -1 is out of bounds for dimension 0 with size 3"));
  REQUIRE_THROWS_WITH(gather(x, 1, from_vector<int32_t>({0}, {1, 1})), Contains("gather: expected an int64 index, got int32"));
  REQUIRE_THROWS_WITH(gather(x, 1, from_vector<int64_t>({0}, {1})),
                      Contains("gather: expected an index with as many dims as the input (2), got index of shape [1]"));
  REQUIRE_THROWS_WITH(gather(x, 1, zeros({4, 1}, {.dtype = kInt64})),
                      Contains("index of shape [4, 1] is larger than the input of shape [3, 4] in dim 0 (4 > 3)"));
  REQUIRE_THROWS_WITH(gather(x, 2, zeros({1, 1}, {.dtype = kInt64})), Contains("gather: dimension 2 is out of range"));
}

TEST_CASE("scatter_add adds repeated positions, leaves x alone, accepts a larger source") {
  Tensor x = ones({2, 4});
  Tensor index = from_vector<int64_t>({0, 0, 3, 1, 1, 1}, {2, 3});
  Tensor source = from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});  // column 3 is not indexed
  Tensor out = scatter_add(x, 1, index, source);
  REQUIRE(out.to_vector<float>() == std::vector<float>{4, 1, 1, 4, 1, 19, 1, 1});
  REQUIRE(x.to_vector<float>() == std::vector<float>(8, 1.0f));
  Tensor down = scatter_add(zeros({3, 2}), 0, from_vector<int64_t>({2, 0, 2, 2}, {2, 2}), from_vector<float>({1, 2, 3, 4}, {2, 2}));
  REQUIRE(down.to_vector<float>() == std::vector<float>{0, 2, 0, 0, 4, 4});
  Tensor into_int = scatter_add(zeros({3}, {.dtype = kInt64}), 0, from_vector<int64_t>({1, 1, 2}), from_vector<int64_t>({5, 6, 7}));
  REQUIRE(into_int.to_vector<int64_t>() == std::vector<int64_t>{0, 11, 7});
  // Transposed source and output.
  Tensor out_t = scatter_add(zeros({4, 2}).t(), 1, index, source.t().contiguous().t());
  REQUIRE(equal(out_t, sub(out, 1.0)));
}

TEST_CASE("scatter_add checks shapes, dtypes and every index") {
  Tensor x = zeros({2, 3});
  Tensor source = ones({2, 3});
  REQUIRE_THROWS_WITH(scatter_add(x, 1, from_vector<int64_t>({3, 0}, {2, 1}), source),
                      Contains("scatter_add: index 3 is out of bounds for dimension 1 with size 3"));
  REQUIRE_THROWS_WITH(scatter_add(x, 1, zeros({2, 4}, {.dtype = kInt64}), source),
                      Contains("index of shape [2, 4] is larger than source of shape [2, 3] in dim 1 (4 > 3)"));
  REQUIRE_THROWS_WITH(scatter_add(x, 1, zeros({2, 1}, {.dtype = kInt64}), source.to(kFloat64)),
                      Contains("scatter_add: expected source of dtype float32 like the input, got float64"));
  REQUIRE_THROWS_WITH(scatter_add(x, 0, zeros({2, 1}, {.dtype = kInt32}), source), Contains("expected an int64 index, got int32"));
}

TEST_CASE("index_select picks rows and columns with int64 or int32 indices") {
  Tensor x = grid(4, 3);
  for (DType index_dtype : {kInt64, kInt32}) {
    Tensor rows = from_vector<int64_t>({3, 0, 3}).to(index_dtype);
    Tensor picked = index_select(x, 0, rows);
    REQUIRE(picked.shape() == Shape{3, 3});
    REQUIRE(picked.to_vector<float>() == std::vector<float>{30, 31, 32, 0, 1, 2, 30, 31, 32});
    Tensor columns = from_vector<int64_t>({2, 0}).to(index_dtype);
    REQUIRE(index_select(x, -1, columns).to_vector<float>() == std::vector<float>{2, 0, 12, 10, 22, 20, 32, 30});
  }
  REQUIRE(index_select(x.t(), 1, from_vector<int64_t>({1, 2})).to_vector<float>() == std::vector<float>{10, 20, 11, 21, 12, 22});
  Tensor strided_index = from_vector<int64_t>({2, 9, 0, 9, 1}).slice(0, 0, 5, 2);  // {2, 0, 1}
  REQUIRE(index_select(x, 0, strided_index).to_vector<float>() == std::vector<float>{20, 21, 22, 0, 1, 2, 10, 11, 12});
  REQUIRE(index_select(x, 0, scalar_tensor(2, kInt64)).to_vector<float>() == std::vector<float>{20, 21, 22});
  REQUIRE(index_select(x, 0, zeros({0}, {.dtype = kInt64})).shape() == Shape{0, 3});
  REQUIRE(index_select(grid(2, 2, kBFloat16), 1, from_vector<int64_t>({1})).to_vector<float>() == std::vector<float>{1, 11});
}

TEST_CASE("index_select on a large embedding table matches a loop") {
  const int64_t vocabulary = 500, width = 64, count = 3000;
  Tensor table = randn({vocabulary, width});
  std::vector<int64_t> tokens;
  for (int64_t i = 0; i < count; ++i) tokens.push_back((i * 7919) % vocabulary);
  Tensor out = index_select(table, 0, from_vector(tokens));
  std::vector<float> table_values = table.to_vector<float>(), got = out.to_vector<float>();
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t j = 0; j < width; ++j) REQUIRE(got[i * width + j] == table_values[tokens[i] * width + j]);
  }
}

TEST_CASE("index_select checks its index") {
  Tensor x = grid(4, 3);
  REQUIRE_THROWS_WITH(index_select(x, 0, from_vector<int64_t>({1, 4})),
                      Contains("index_select: index 4 is out of bounds for dimension 0 with size 4"));
  REQUIRE_THROWS_WITH(index_select(x, 1, from_vector<int32_t>({-1})),
                      Contains("index_select: index -1 is out of bounds for dimension 1 with size 3"));
  REQUIRE_THROWS_WITH(index_select(x, 0, from_vector<float>({1})), Contains("index_select: expected an int64 or int32 index, got float32"));
  REQUIRE_THROWS_WITH(index_select(x, 0, zeros({1, 1}, {.dtype = kInt64})), Contains("index_select: expected a 1-d index, got index of shape [1, 1]"));
  REQUIRE_THROWS_WITH(index_select(scalar_tensor(1.0), 0, zeros({1}, {.dtype = kInt64})), Contains("at least one dimension"));
}

TEST_CASE("index_add adds slices in index order, repeated indices summed") {
  Tensor x = ones({3, 2});
  Tensor source = from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2});
  for (DType index_dtype : {kInt64, kInt32}) {
    Tensor out = index_add(x, 0, from_vector<int64_t>({2, 0, 2}).to(index_dtype), source);
    REQUIRE(out.to_vector<float>() == std::vector<float>{4, 5, 1, 1, 7, 9});
  }
  REQUIRE(x.to_vector<float>() == std::vector<float>(6, 1.0f));
  Tensor columns = index_add(zeros({2, 3}), 1, from_vector<int64_t>({1, 1}), from_vector<float>({1, 2, 3, 4}, {2, 2}));
  REQUIRE(columns.to_vector<float>() == std::vector<float>{0, 3, 0, 0, 7, 0});
  Tensor transposed = index_add(zeros({3, 2}).t(), 1, from_vector<int64_t>({0, 0}), from_vector<float>({1, 2, 3, 4}, {2, 2}));
  REQUIRE(transposed.to_vector<float>() == std::vector<float>{3, 0, 0, 7, 0, 0});
  REQUIRE_THROWS_WITH(index_add(x, 0, from_vector<int64_t>({3}), ones({1, 2})),
                      Contains("index_add: index 3 is out of bounds for dimension 0 with size 3"));
  REQUIRE_THROWS_WITH(index_add(x, 0, from_vector<int64_t>({0, 1}), ones({3, 2})),
                      Contains("index_add: expected source of shape [2, 2]"));
  REQUIRE_THROWS_WITH(index_add(x, 0, from_vector<int64_t>({0}), ones({1, 2}, {.dtype = kFloat64})),
                      Contains("index_add: expected source of dtype float32 like the input, got float64"));
}

TEST_CASE("index_add of an embedding gradient is exact and independent of the thread count") {
  const int64_t vocabulary = 50, width = 300, count = 2000;
  std::vector<int64_t> tokens;
  for (int64_t i = 0; i < count; ++i) tokens.push_back((i * i + 3 * i) % vocabulary);
  Tensor gradient = randn({count, width}, {.dtype = kFloat64});
  Tensor index = from_vector(tokens);
  int threads = num_threads();
  set_num_threads(1);
  Tensor serial = index_add(zeros({vocabulary, width}, {.dtype = kFloat64}), 0, index, gradient);
  set_num_threads(std::max(threads, 3));
  Tensor parallel = index_add(zeros({vocabulary, width}, {.dtype = kFloat64}), 0, index, gradient);
  set_num_threads(threads);
  REQUIRE(equal(serial, parallel));
  std::vector<double> expected(static_cast<size_t>(vocabulary * width), 0.0), g = gradient.to_vector<double>();
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t j = 0; j < width; ++j) expected[tokens[i] * width + j] += g[i * width + j];
  }
  REQUIRE(serial.to_vector<double>() == expected);  // same order of additions: bit for bit
}
