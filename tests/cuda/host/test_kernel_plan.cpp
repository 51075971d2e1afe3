// The CUDA kernels' addressing plan (cuda/kernels/kernel_plan.h) on the host: dims merged and
// dropped as on the CPU, and every element's byte offsets equal to the ones its index gives.
#include <catch2/catch.hpp>

#include <array>
#include <cstddef>
#include <cstdint>

#include "core/core.h"
#include "cuda/kernels/kernel_plan.h"

using namespace dtrain;
using namespace dtrain::cuda;

namespace {

// Byte offset of logical element `linear` (row-major over shape) in tensor, from its strides.
int64_t direct_offset(const Tensor& tensor, const Shape& shape, int64_t linear) {
  int64_t offset = 0;
  for (size_t d = shape.size(); d-- > 0;) {
    offset += (linear % shape[d]) * tensor.strides()[d];
    linear /= shape[d];
  }
  return offset * static_cast<int64_t>(tensor.element_size());
}

template <int N>
void check_offsets(const OffsetPlan<N>& plan, const Shape& shape, const std::array<const Tensor*, N>& operands) {
  for (int64_t i = 0; i < shape.numel(); ++i) {
    int64_t offsets[N];
    plan.offsets(i, offsets);
    for (int k = 0; k < N; ++k) {
      INFO("element " << i << " operand " << k);
      REQUIRE(offsets[k] == direct_offset(*operands[k], shape, i));
    }
  }
}

}  // namespace

TEST_CASE("kernel plan: contiguous operands merge into one dim") {
  Tensor a = zeros({4, 5, 6}), b = zeros({4, 5, 6}, {.dtype = kFloat64});
  OffsetPlan<2> plan = make_plan<2>(a.shape(), {&a, &b});
  CHECK(plan.ndim == 1);
  CHECK(plan.sizes[0] == 120);
  CHECK(plan.strides[0][0] == 4);
  CHECK(plan.strides[1][0] == 8);
  check_offsets<2>(plan, a.shape(), {&a, &b});
}

TEST_CASE("kernel plan: size-1 dims are dropped and a single element has no dims") {
  Tensor a = zeros({1, 7, 1});
  OffsetPlan<1> plan = make_plan<1>(a.shape(), {&a});
  CHECK(plan.ndim == 1);
  CHECK(plan.sizes[0] == 7);
  Tensor one = zeros({1, 1});
  OffsetPlan<1> single = make_plan<1>(one.shape(), {&one});
  CHECK(single.ndim == 0);
  int64_t offsets[1] = {99};
  single.offsets(0, offsets);
  CHECK(offsets[0] == 0);
}

TEST_CASE("kernel plan: transposed, broadcast and sliced operands address every element right") {
  Tensor base = zeros({6, 8});
  Tensor transposed = base.t();                               // [8, 6], strides (1, 8)
  Tensor row = zeros({1, 6}).expand({8, 6});                  // stride 0 along dim 0
  Tensor sliced = zeros({8, 12}).slice(1, 0, 12, 2);          // [8, 6], strides (12, 2)
  Tensor out = zeros({8, 6});
  OffsetPlan<4> plan = make_plan<4>(out.shape(), {&out, &transposed, &row, &sliced});
  CHECK(plan.ndim == 2);
  check_offsets<4>(plan, out.shape(), {&out, &transposed, &row, &sliced});
}

TEST_CASE("kernel plan: a permuted 4-d view keeps the dims it cannot merge") {
  Tensor x = zeros({3, 4, 5, 2}).permute({2, 0, 3, 1});  // [5, 3, 2, 4]
  Tensor out = zeros({5, 3, 2, 4});
  OffsetPlan<2> plan = make_plan<2>(out.shape(), {&out, &x});
  CHECK(plan.ndim == 4);
  check_offsets<2>(plan, out.shape(), {&out, &x});
}
