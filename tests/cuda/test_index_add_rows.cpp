// The sorted-rows index_add on the device (cuda/kernels/index_add_rows.cu): equal to the CPU bit
// for bit (repeated rows, unsorted and strided indices, every floating dtype, int32 and int64
// indices), an empty index, out-of-range indices (raised with IndexBounds::Check, skipped with
// Validated), and no host synchronisation with Validated — nor in an embedding's backward.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/profiler.h"
#include "layers/embedding.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;

namespace {

Backend& cpu_table() { return backend_for(Device::cpu()); }
Backend& gpu_table() { return backend_for(gpu()); }

// index_add through each table on copies of base; the CUDA result and the CPU's.
struct Sums {
  Tensor gpu_result;
  Tensor cpu_result;
};
Sums both_devices(const Tensor& base, const Tensor& index, const Tensor& source, IndexBounds bounds) {
  Sums sums{base.to(gpu()), base.clone()};
  gpu_table().index_add(sums.gpu_result, 0, index.to(gpu()), source.to(gpu()), bounds);
  cpu_table().index_add(sums.cpu_result, 0, index, source, IndexBounds::Check);
  return sums;
}

}  // namespace

TEST_CASE("cuda index_add rows: repeated, unsorted rows add up in index order, bit for bit the CPU's") {
  // 3000 positions over 97 rows: every row repeated about 31 times, in no order; 300 columns (two
  // column tiles). Sums rounded after every addition differ with the order: equal bits show the order.
  const int64_t rows = 97, width = 300, count = 3000;
  for (DType dtype : floating_dtypes()) {
    for (DType index_dtype : {kInt64, kInt32}) {
      for (IndexBounds bounds : {IndexBounds::Check, IndexBounds::Validated}) {
        const std::string what = std::string(dtype_name(dtype)) + ", " + dtype_name(index_dtype) + " index, " +
                                 (bounds == IndexBounds::Check ? "checked" : "validated");
        const Tensor index = integers({count}, 0, rows, index_dtype, 29);
        const Tensor source = wavy({count, width}, kFloat64, 3.0, 0.7).to(dtype);
        const Tensor base = wavy({rows, width}, kFloat64, 1.0, 0.2).to(dtype);
        const Sums sums = both_devices(base, index, source, bounds);
        require_match(sums.gpu_result, sums.cpu_result, Tolerance{0.0, 0.0}, "index_add rows, " + what);
      }
    }
  }
}

TEST_CASE("cuda index_add rows: a strided index, rows that get nothing, and a single row") {
  // Every other entry of a longer index (stride 2); only some of 500 rows are hit.
  std::vector<int64_t> spread = integers({1200}, 0, 60, kInt64, 5).to_vector<int64_t>();
  for (int64_t& row : spread) row *= 7;  // rows 0, 7, ..., 413
  const Tensor index = from_vector(spread, {1200}, {.dtype = kInt64}).slice(0, 0, 1200, 2);
  REQUIRE(index.stride(0) == 2);
  const Tensor source = wavy({600, 40}, kFloat32, 2.0, 1.1);
  const Tensor base = wavy({500, 40}, kFloat32, 1.0, 0.4);
  const Sums strided = both_devices(base, index, source, IndexBounds::Validated);
  require_match(strided.gpu_result, strided.cpu_result, Tolerance{0.0, 0.0}, "strided index");
  // All 300 entries on one row: one run as long as the index.
  const Tensor same_row = from_vector(std::vector<int64_t>(300, 3), {300}, {.dtype = kInt64});
  const Sums one_run = both_devices(base, same_row, wavy({300, 40}, kFloat32, 2.0, 0.9), IndexBounds::Validated);
  require_match(one_run.gpu_result, one_run.cpu_result, Tolerance{0.0, 0.0}, "one run of 300");
}

TEST_CASE("cuda index_add rows: an empty index leaves the tensor as it was") {
  const Tensor base = wavy({20, 8}, kFloat32, 1.0, 0.5);
  for (IndexBounds bounds : {IndexBounds::Check, IndexBounds::Validated}) {
    const Sums sums = both_devices(base, empty({0}, {.dtype = kInt64}), empty({0, 8}), bounds);
    require_match(sums.gpu_result, base, Tolerance{0.0, 0.0}, "empty index");
  }
}

TEST_CASE("cuda index_add rows: an index out of range raises when checked, and is skipped when validated") {
  const int64_t rows = 50, count = 400;
  std::vector<int64_t> positions = integers({count}, 0, rows, kInt64, 3).to_vector<int64_t>();
  positions[123] = rows;  // one past the end
  positions[321] = -2;
  const Tensor bad = from_vector(positions, {count}, {.dtype = kInt64});
  const Tensor source = wavy({count, 16}, kFloat32, 1.0, 0.1);
  const Tensor base = wavy({rows, 16}, kFloat32, 1.0, 0.2);
  Tensor target = base.to(gpu());
  CHECK_THROWS_WITH(gpu_table().index_add(target, 0, bad.to(gpu()), source.to(gpu()), IndexBounds::Check),
                    Catch::Contains("index_add: index ") && Catch::Contains(" is out of bounds for dimension 0 with size 50"));
  // Validated (a promise the caller breaks here): no error, no write out of bounds, the other entries added.
  Tensor validated = base.to(gpu());
  gpu_table().index_add(validated, 0, bad.to(gpu()), source.to(gpu()), IndexBounds::Validated);
  std::vector<int64_t> kept_positions;
  std::vector<int64_t> kept_rows;
  for (int64_t k = 0; k < count; ++k) {
    if (positions[static_cast<size_t>(k)] >= 0 && positions[static_cast<size_t>(k)] < rows) {
      kept_positions.push_back(positions[static_cast<size_t>(k)]);
      kept_rows.push_back(k);
    }
  }
  const Tensor kept_source = index_select(source, 0, from_vector(kept_rows, {static_cast<int64_t>(kept_rows.size())}, {.dtype = kInt64}));
  Tensor expected = base.clone();
  cpu_table().index_add(expected, 0, from_vector(kept_positions, {static_cast<int64_t>(kept_positions.size())}, {.dtype = kInt64}),
                        kept_source, IndexBounds::Check);
  require_match(validated, expected, Tolerance{0.0, 0.0}, "validated index with two entries out of range");
}

TEST_CASE("cuda index_add rows: validated indices make no host synchronisation, checked ones one") {
  const Tensor index = integers({2048}, 0, 300, kInt32, 8).to(gpu());
  const Tensor source = wavy({2048, 64}, kBFloat16, 1.0, 0.3).to(gpu());
  for (const Tensor& indices : {index, index.slice(0, 0, 100)}) {  // the sorted path, and the generic kernel
    const Tensor part = source.slice(0, 0, indices.size(0));
    Tensor target = zeros({300, 64}, {.dtype = kBFloat16, .device = gpu()});
    gpu_table().index_add(target, 0, indices, part, IndexBounds::Validated);  // caches warm
    profiler::Profile validated;
    gpu_table().index_add(target, 0, indices, part, IndexBounds::Validated);
    validated.stop();
    CHECK(validated.host_synchronizations() == 0);
    profiler::Profile checked;
    gpu_table().index_add(target, 0, indices, part, IndexBounds::Check);
    checked.stop();
    CHECK(checked.host_synchronizations() == 1);
  }
}

TEST_CASE("cuda index_add rows: an embedding's backward waits for nothing and matches the CPU bit for bit") {
  const int64_t vocabulary = 1000, width = 64;
  const Tensor tokens = integers({8, 128}, 0, vocabulary, kInt64, 41);
  const Tensor weights = wavy({vocabulary, width}, kFloat32, 1.0, 0.5);
  Tensor cpu_weight = weights.detach().set_requires_grad(true);
  Tensor gpu_weight = weights.to(gpu()).detach().set_requires_grad(true);
  const Tensor upstream = wavy({8, 128, width}, kFloat32, 1.0, 1.9);
  sum(mul(embedding(tokens, cpu_weight), upstream)).backward();
  Tensor loss = sum(mul(embedding(tokens.to(gpu()), gpu_weight), upstream.to(gpu())));
  profiler::Profile profile;
  loss.backward();
  profile.stop();
  CHECK(profile.host_synchronizations() == 0);
  require_match(gpu_weight.grad(), cpu_weight.grad(), Tolerance{0.0, 0.0}, "embedding gradient");
}
