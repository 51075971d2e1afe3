// CudaBackend::softmax and softmax_backward along one dim, any strides, with the CPU's formulas
// (core/cpu/softmax_kernels.cpp): softmax(x) = exp(x - max) * (1 / sum), log_softmax(x) =
// (x - max) - log(sum), sums accumulated in double. Along an innermost dim a block handles one
// row (coalesced reads, shuffle-tree sums); otherwise each thread walks one row.
//
// causal_softmax and its backward are the row kernels with Causal set: row r of contiguous
// [..., T, T] sees only its first r % T + 1 columns and writes 0 in the rest, which it never
// reads. The visible columns take the same threads and sums as softmax over the row with the rest
// at -inf (whose exponentials add only zeros), so the result equals the composed
// masked_fill + softmax on CUDA in the visible columns.
#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "cuda/cuda_backend.h"
#include "cuda/kernels/block_reduce.cuh"
#include "cuda/kernels/device_math.cuh"
#include "cuda/kernels/elementwise.cuh"

namespace dtrain::cuda {
namespace {

// Operand 0 is written; forward: (out, input); backward: (grad_input, grad_output, output).
struct SoftmaxGeometry {
  OffsetPlan<3> rows;  // each operand at each row's start
  int64_t row_count;
  int64_t length;
  int64_t step[3];  // bytes between neighbours along the dim
};

template <typename T>
__device__ inline compute_t<T> value_at(const char* row, int64_t step, int64_t i) {
  return Element<T>::load(*reinterpret_cast<const T*>(row + i * step));
}
template <typename T>
__device__ inline void store(char* row, int64_t step, int64_t i, compute_t<T> value) {
  *reinterpret_cast<T*>(row + i * step) = Element<T>::store(value);
}

// The columns a row kernel reads: all of them, or with Causal those up to the row's position in
// its [T, T] matrix (length is T; rows are numbered in order, so row % T is that position).
template <bool Causal>
__device__ inline int64_t visible_columns(const SoftmaxGeometry& geometry, int64_t row) {
  return Causal ? row % geometry.length + 1 : geometry.length;
}

// Zeros in the columns past visible (none unless Causal), spread over the block's threads.
template <typename T, bool Causal>
__device__ inline void zero_masked(char* row, int64_t step, int64_t visible, int64_t length) {
  if constexpr (Causal) {
    for (int64_t i = visible + threadIdx.x; i < length; i += blockDim.x) store<T>(row, step, i, compute_t<T>(0));
  }
}

template <typename T, bool Log, bool Causal>
__global__ void softmax_rows(SoftmaxGeometry geometry, char* out, const char* input) {
  using C = compute_t<T>;
  __shared__ C shared_max[32];
  __shared__ double shared_sum[32];
  for (int64_t row = blockIdx.x; row < geometry.row_count; row += gridDim.x) {
    int64_t offsets[3];
    geometry.rows.offsets(row, offsets);
    const char* x = input + offsets[1];
    char* y = out + offsets[0];
    const int64_t visible = visible_columns<Causal>(geometry, row);
    C row_max = MaxOp::identity<C>();
    for (int64_t i = threadIdx.x; i < visible; i += blockDim.x) row_max = MaxOp::combine(row_max, value_at<T>(x, geometry.step[1], i));
    row_max = block_all_reduce<MaxOp>(row_max, shared_max);
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < visible; i += blockDim.x) sum += math::exp(value_at<T>(x, geometry.step[1], i) - row_max);
    sum = block_all_reduce<SumOp>(sum, shared_sum);
    const C factor = static_cast<C>(Log ? ::log(sum) : 1.0 / sum);
    for (int64_t i = threadIdx.x; i < visible; i += blockDim.x) {
      const C shifted = value_at<T>(x, geometry.step[1], i) - row_max;
      store<T>(y, geometry.step[0], i, Log ? shifted - factor : math::exp(shifted) * factor);
    }
    zero_masked<T, Causal>(y, geometry.step[0], visible, geometry.length);
  }
}

template <typename T, bool Log>
__global__ void softmax_columns(SoftmaxGeometry geometry, char* out, const char* input) {
  using C = compute_t<T>;
  for (int64_t row = global_thread(); row < geometry.row_count; row += grid_stride()) {
    int64_t offsets[3];
    geometry.rows.offsets(row, offsets);
    const char* x = input + offsets[1];
    char* y = out + offsets[0];
    C row_max = MaxOp::identity<C>();
    for (int64_t i = 0; i < geometry.length; ++i) row_max = MaxOp::combine(row_max, value_at<T>(x, geometry.step[1], i));
    double sum = 0.0;
    for (int64_t i = 0; i < geometry.length; ++i) sum += math::exp(value_at<T>(x, geometry.step[1], i) - row_max);
    const C factor = static_cast<C>(Log ? ::log(sum) : 1.0 / sum);
    for (int64_t i = 0; i < geometry.length; ++i) {
      const C shifted = value_at<T>(x, geometry.step[1], i) - row_max;
      store<T>(y, geometry.step[0], i, Log ? shifted - factor : math::exp(shifted) * factor);
    }
  }
}

// softmax: dx = y * (g - sum(g * y)); log_softmax: dx = g - exp(y) * sum(g).
template <typename T, bool Log>
__device__ inline compute_t<T> backward_term(const char* g, const char* y, const SoftmaxGeometry& geometry, int64_t i) {
  compute_t<T> term = value_at<T>(g, geometry.step[1], i);
  if constexpr (!Log) term *= value_at<T>(y, geometry.step[2], i);
  return term;
}

template <typename T, bool Log>
__device__ inline compute_t<T> backward_result(const char* g, const char* y, const SoftmaxGeometry& geometry, int64_t i,
                                               compute_t<T> total) {
  const compute_t<T> gradient = value_at<T>(g, geometry.step[1], i);
  const compute_t<T> output = value_at<T>(y, geometry.step[2], i);
  if constexpr (Log) return gradient - math::exp(output) * total;
  else return output * (gradient - total);
}

template <typename T, bool Log, bool Causal>
__global__ void softmax_backward_rows(SoftmaxGeometry geometry, char* grad_input, const char* grad_output, const char* output) {
  using C = compute_t<T>;
  __shared__ double shared_sum[32];
  for (int64_t row = blockIdx.x; row < geometry.row_count; row += gridDim.x) {
    int64_t offsets[3];
    geometry.rows.offsets(row, offsets);
    const char* g = grad_output + offsets[1];
    const char* y = output + offsets[2];
    char* dx = grad_input + offsets[0];
    const int64_t visible = visible_columns<Causal>(geometry, row);
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < visible; i += blockDim.x) sum += backward_term<T, Log>(g, y, geometry, i);
    const C total = static_cast<C>(block_all_reduce<SumOp>(sum, shared_sum));
    for (int64_t i = threadIdx.x; i < visible; i += blockDim.x) {
      store<T>(dx, geometry.step[0], i, backward_result<T, Log>(g, y, geometry, i, total));
    }
    zero_masked<T, Causal>(dx, geometry.step[0], visible, geometry.length);
  }
}

template <typename T, bool Log>
__global__ void softmax_backward_columns(SoftmaxGeometry geometry, char* grad_input, const char* grad_output,
                                         const char* output) {
  using C = compute_t<T>;
  for (int64_t row = global_thread(); row < geometry.row_count; row += grid_stride()) {
    int64_t offsets[3];
    geometry.rows.offsets(row, offsets);
    const char* g = grad_output + offsets[1];
    const char* y = output + offsets[2];
    char* dx = grad_input + offsets[0];
    double sum = 0.0;
    for (int64_t i = 0; i < geometry.length; ++i) sum += backward_term<T, Log>(g, y, geometry, i);
    const C total = static_cast<C>(sum);
    for (int64_t i = 0; i < geometry.length; ++i) store<T>(dx, geometry.step[0], i, backward_result<T, Log>(g, y, geometry, i, total));
  }
}

Tensor row_starts(const Tensor& tensor, int64_t dim) {
  Shape shape = tensor.shape();
  shape[dim] = 1;
  return Tensor(std::make_shared<TensorImpl>(tensor.storage(), shape, tensor.strides(), tensor.storage_offset(), tensor.dtype()));
}

bool is_innermost_dim(const Tensor& tensor, int64_t dim) {
  const int64_t dim_stride = tensor.stride(dim);
  for (int64_t d = 0; d < tensor.dim(); ++d) {
    if (d == dim || tensor.size(d) <= 1 || tensor.stride(d) == 0) continue;
    if (tensor.stride(d) < dim_stride) return false;
  }
  return true;
}

// operands[0] is written, operands[1] decides the walk. Missing operands repeat the last one.
SoftmaxGeometry make_geometry(std::array<const Tensor*, 3> operands, int64_t dim) {
  SoftmaxGeometry geometry;
  geometry.length = operands[1]->size(dim);
  Tensor starts[3] = {row_starts(*operands[0], dim), row_starts(*operands[1], dim), row_starts(*operands[2], dim)};
  geometry.rows = make_plan<3>(starts[0].shape(), {&starts[0], &starts[1], &starts[2]});
  geometry.row_count = starts[0].numel();
  for (int k = 0; k < 3; ++k) geometry.step[k] = operands[k]->stride(dim) * static_cast<int64_t>(operands[k]->element_size());
  return geometry;
}

// Threads per row-block: enough for the row, a multiple of 32, at most kThreads.
int row_threads(int64_t length) { return static_cast<int>(std::clamp<int64_t>((length + 31) / 32 * 32, 32, kThreads)); }

template <typename Fn>
void visit_floating(DType dtype, const char* op, Fn&& fn) {
  visit_dtype(dtype, [&]<typename T>() {
    if constexpr (std::is_floating_point_v<compute_t<T>>) fn.template operator()<T>();
    else fail("internal: ", op, " kernel called on ", dtype);
  });
}

}  // namespace

void CudaBackend::softmax(const Tensor& input, int64_t dim, bool log, Tensor& out) {
  if (input.numel() == 0) return;
  LaunchContext context(out.device());
  SoftmaxGeometry geometry = make_geometry({&out, &input, &input}, dim);
  const bool rows = is_innermost_dim(input, dim);
  visit_floating(input.dtype(), "softmax", [&]<typename T>() {
    char* y = static_cast<char*>(out.data());
    const char* x = static_cast<const char*>(input.data());
    const auto row_blocks = static_cast<unsigned int>(std::min(geometry.row_count, kMaxBlocks));
    if (rows && log) softmax_rows<T, true, false><<<row_blocks, row_threads(geometry.length), 0, context.stream>>>(geometry, y, x);
    else if (rows) softmax_rows<T, false, false><<<row_blocks, row_threads(geometry.length), 0, context.stream>>>(geometry, y, x);
    else if (log) softmax_columns<T, true><<<blocks_for(geometry.row_count), kThreads, 0, context.stream>>>(geometry, y, x);
    else softmax_columns<T, false><<<blocks_for(geometry.row_count), kThreads, 0, context.stream>>>(geometry, y, x);
    check_launch(log ? "log_softmax" : "softmax", input.dtype());
  });
}

void CudaBackend::softmax_backward(const Tensor& grad_output, const Tensor& output, int64_t dim, bool log,
                                   Tensor& grad_input) {
  if (output.numel() == 0) return;
  LaunchContext context(grad_input.device());
  SoftmaxGeometry geometry = make_geometry({&grad_input, &grad_output, &output}, dim);
  const bool rows = is_innermost_dim(output, dim);
  visit_floating(output.dtype(), "softmax_backward", [&]<typename T>() {
    char* dx = static_cast<char*>(grad_input.data());
    const char* g = static_cast<const char*>(grad_output.data());
    const char* y = static_cast<const char*>(output.data());
    const auto row_blocks = static_cast<unsigned int>(std::min(geometry.row_count, kMaxBlocks));
    const int threads = row_threads(geometry.length);
    if (rows && log) softmax_backward_rows<T, true, false><<<row_blocks, threads, 0, context.stream>>>(geometry, dx, g, y);
    else if (rows) softmax_backward_rows<T, false, false><<<row_blocks, threads, 0, context.stream>>>(geometry, dx, g, y);
    else if (log) softmax_backward_columns<T, true><<<blocks_for(geometry.row_count), kThreads, 0, context.stream>>>(geometry, dx, g, y);
    else softmax_backward_columns<T, false><<<blocks_for(geometry.row_count), kThreads, 0, context.stream>>>(geometry, dx, g, y);
    check_launch(log ? "log_softmax_backward" : "softmax_backward", output.dtype());
  });
}

void CudaBackend::causal_softmax(const Tensor& scores, Tensor& out) {
  if (scores.numel() == 0) return;
  LaunchContext context(out.device());
  const int64_t dim = scores.dim() - 1;
  SoftmaxGeometry geometry = make_geometry({&out, &scores, &scores}, dim);
  visit_floating(scores.dtype(), "causal_softmax", [&]<typename T>() {
    const auto row_blocks = static_cast<unsigned int>(std::min(geometry.row_count, kMaxBlocks));
    softmax_rows<T, false, true><<<row_blocks, row_threads(geometry.length), 0, context.stream>>>(
        geometry, static_cast<char*>(out.data()), static_cast<const char*>(scores.data()));
    check_launch("causal_softmax", scores.dtype());
  });
}

void CudaBackend::causal_softmax_backward(const Tensor& grad_output, const Tensor& output, Tensor& grad_input) {
  if (output.numel() == 0) return;
  LaunchContext context(grad_input.device());
  const int64_t dim = output.dim() - 1;
  SoftmaxGeometry geometry = make_geometry({&grad_input, &grad_output, &output}, dim);
  visit_floating(output.dtype(), "causal_softmax_backward", [&]<typename T>() {
    const auto row_blocks = static_cast<unsigned int>(std::min(geometry.row_count, kMaxBlocks));
    softmax_backward_rows<T, false, true><<<row_blocks, row_threads(geometry.length), 0, context.stream>>>(
        geometry, static_cast<char*>(grad_input.data()), static_cast<const char*>(grad_output.data()),
        static_cast<const char*>(output.data()));
    check_launch("causal_softmax_backward", output.dtype());
  });
}

}  // namespace dtrain::cuda
