// CudaBackend::layer_norm, add_layer_norm and layer_norm_backward over contiguous rows [rows,
// size]. One block per row computes the mean and then the squared deviations (two passes, as the
// CPU) with the block's fixed shuffle tree, in the compute type (float for the 16-bit dtypes).
// add_layer_norm is the same kernel given a residual: its first pass writes sum = x + residual
// rounded to the dtype and sums those rounded values, and the later passes read them back, so
// mean, rstd and out are bit for bit those of layer_norm on sum. The weight and bias gradients sum
// over rows in two fixed-order stages (column partials over chunks of rows, then the chunks in
// order), so they are reproducible and need no atomics.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/backend.h"
#include "cuda/caching_allocator.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels/block_reduce.cuh"
#include "cuda/kernels/device_math.cuh"
#include "cuda/kernels/element.cuh"
#include "cuda/kernels/launch.cuh"

namespace dtrain::cuda {
namespace {

template <typename T>
__device__ inline compute_t<T> load(const T* pointer, int64_t i) {
  return Element<T>::load(pointer[i]);
}

// Normalises the rows of x, or with residual (and sum) non-null those of sum = x + residual.
template <typename T>
__global__ void layer_norm_forward_kernel(const T* x, const T* residual, T* sum, const T* weight, const T* bias, T* y,
                                          compute_t<T>* mean, compute_t<T>* rstd, int64_t rows, int64_t size,
                                          compute_t<T> eps) {
  using C = compute_t<T>;
  __shared__ C shared[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* in = x + row * size;
    T* out = y + row * size;
    C total = 0;
    if (residual != nullptr) {
      const T* r = residual + row * size;
      T* s = sum + row * size;
      for (int64_t i = threadIdx.x; i < size; i += blockDim.x) {
        const T rounded = Element<T>::store(load(in, i) + load(r, i));  // as add() rounds
        s[i] = rounded;
        total += Element<T>::load(rounded);
      }
      in = s;  // the later passes read the rounded sums; each thread only the ones it wrote
    } else {
      for (int64_t i = threadIdx.x; i < size; i += blockDim.x) total += load(in, i);
    }
    const C m = block_all_reduce<SumOp>(total, shared) / static_cast<C>(size);
    C squares = 0;
    for (int64_t i = threadIdx.x; i < size; i += blockDim.x) {
      const C deviation = load(in, i) - m;
      squares += deviation * deviation;
    }
    const C variance = block_all_reduce<SumOp>(squares, shared) / static_cast<C>(size);
    const C r_std = C(1) / math::sqrt(variance + eps);
    for (int64_t i = threadIdx.x; i < size; i += blockDim.x) {
      C value = (load(in, i) - m) * r_std;
      if (weight != nullptr) value *= load(weight, i);
      if (bias != nullptr) value += load(bias, i);
      out[i] = Element<T>::store(value);
    }
    if (threadIdx.x == 0) {
      mean[row] = m;
      rstd[row] = r_std;
    }
  }
}

// grad_x = rstd * (dy*w - mean(dy*w) - xhat * mean(dy*w * xhat)) per row, plus grad_sum where
// non-null, added to that value rounded to the dtype (as a separate add() would see it).
template <typename T>
__global__ void layer_norm_grad_input_kernel(const T* dy, const T* x, const T* weight, const compute_t<T>* mean,
                                             const compute_t<T>* rstd, const T* grad_sum, T* grad_x, int64_t rows,
                                             int64_t size) {
  using C = compute_t<T>;
  __shared__ C shared[32];
  const C inverse_size = C(1) / static_cast<C>(size);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* g = dy + row * size;
    const T* in = x + row * size;
    const C m = mean[row], r_std = rstd[row];
    C sum_scaled = 0, sum_scaled_xhat = 0;
    for (int64_t i = threadIdx.x; i < size; i += blockDim.x) {
      const C scaled = weight != nullptr ? load(g, i) * load(weight, i) : load(g, i);
      sum_scaled += scaled;
      sum_scaled_xhat += scaled * ((load(in, i) - m) * r_std);
    }
    sum_scaled = block_all_reduce<SumOp>(sum_scaled, shared);
    sum_scaled_xhat = block_all_reduce<SumOp>(sum_scaled_xhat, shared);
    T* out = grad_x + row * size;
    const T* residual_grad = grad_sum != nullptr ? grad_sum + row * size : nullptr;
    for (int64_t i = threadIdx.x; i < size; i += blockDim.x) {
      const C scaled = weight != nullptr ? load(g, i) * load(weight, i) : load(g, i);
      const C xhat = (load(in, i) - m) * r_std;
      // Both roundings explicit: nvcc would otherwise fuse the last multiply with grad_sum's add
      // into one FMA where T is float or double (Element<T>::store is then no rounding at all).
      T value = Element<T>::store(
          math::mul_rn(r_std, scaled - sum_scaled * inverse_size - xhat * sum_scaled_xhat * inverse_size));
      if (residual_grad != nullptr) {
        value = Element<T>::store(math::add_rn(Element<T>::load(value), load(residual_grad, i)));
      }
      out[i] = value;
    }
  }
}

// Stage 1: partial sums of dy * xhat and dy per column over one chunk of rows (blockIdx.y).
template <typename T>
__global__ void layer_norm_affine_partials_kernel(const T* dy, const T* x, const compute_t<T>* mean,
                                                  const compute_t<T>* rstd, compute_t<T>* weight_partials,
                                                  compute_t<T>* bias_partials, int64_t rows, int64_t size,
                                                  int64_t rows_per_chunk) {
  using C = compute_t<T>;
  const int64_t column = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (column >= size) return;
  const int64_t chunk = blockIdx.y;
  const int64_t row_begin = chunk * rows_per_chunk;
  const int64_t row_end = row_begin + rows_per_chunk < rows ? row_begin + rows_per_chunk : rows;
  C weight_sum = 0, bias_sum = 0;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const C g = load(dy, row * size + column);
    weight_sum += g * ((load(x, row * size + column) - mean[row]) * rstd[row]);
    bias_sum += g;
  }
  if (weight_partials != nullptr) weight_partials[chunk * size + column] = weight_sum;
  if (bias_partials != nullptr) bias_partials[chunk * size + column] = bias_sum;
}

// Stage 2: the chunks' partials summed in chunk order.
template <typename T>
__global__ void layer_norm_affine_total_kernel(const compute_t<T>* partials, T* total, int64_t chunks, int64_t size) {
  using C = compute_t<T>;
  for (int64_t column = global_thread(); column < size; column += grid_stride()) {
    C sum = 0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partials[chunk * size + column];
    total[column] = Element<T>::store(sum);
  }
}

template <typename Fn>
void visit_floating_dtype(DType dtype, const char* op, Fn&& fn) {
  visit_dtype(dtype, [&]<typename T>() {
    if constexpr (std::is_floating_point_v<compute_t<T>>) fn.template operator()<T>();
    else fail("internal: the CUDA ", op, " kernel takes a floating dtype, got ", dtype);
  });
}

template <typename T>
const T* data_or_null(const Tensor& tensor) {
  return tensor.defined() ? static_cast<const T*>(tensor.data()) : nullptr;
}

// Threads per row-block: enough for the row, a multiple of 32, at most 1024.
int threads_for_row(int64_t size) { return static_cast<int>(std::clamp<int64_t>((size + 31) / 32 * 32, 32, 1024)); }

constexpr int64_t kMaxChunks = 65535;  // gridDim.y

// layer_norm of x, or with residual and sum defined add_layer_norm: one kernel either way.
void layer_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& sum, const Tensor& weight,
                        const Tensor& bias, double eps, Tensor& out, Tensor& mean, Tensor& rstd, const char* op) {
  const int64_t rows = mean.numel();
  const int64_t size = rows == 0 ? 0 : x.numel() / rows;
  if (rows == 0 || size == 0) return;
  LaunchContext context(x.device());
  visit_floating_dtype(x.dtype(), op, [&]<typename T>() {
    using C = compute_t<T>;
    const auto blocks = static_cast<unsigned int>(std::min(rows, kMaxBlocks));
    layer_norm_forward_kernel<T><<<blocks, std::min(threads_for_row(size), 512), 0, context.stream>>>(
        static_cast<const T*>(x.data()), data_or_null<T>(residual), sum.defined() ? static_cast<T*>(sum.data()) : nullptr,
        data_or_null<T>(weight), data_or_null<T>(bias), static_cast<T*>(out.data()), static_cast<C*>(mean.data()),
        static_cast<C*>(rstd.data()), rows, size, static_cast<C>(eps));
    check_launch(op, x.dtype());
  });
}

}  // namespace

void CudaBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& out,
                             Tensor& mean, Tensor& rstd) {
  require_kernel_support(*this, {.kernel = FusedKernel::LayerNorm, .tensors = {x, weight, bias}}, "layer_norm");
  layer_norm_forward(x, Tensor(), Tensor(), weight, bias, eps, out, mean, rstd, "layer_norm");
}

void CudaBackend::add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                                 double eps, Tensor& sum, Tensor& out, Tensor& mean, Tensor& rstd) {
  require_kernel_support(*this, {.kernel = FusedKernel::AddLayerNorm, .tensors = {x, residual, weight, bias}},
                         "add_layer_norm");
  layer_norm_forward(x, residual, sum, weight, bias, eps, out, mean, rstd, "add_layer_norm");
}

void CudaBackend::layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                      const Tensor& rstd, const Tensor& grad_sum, Tensor& grad_x, Tensor& grad_weight,
                                      Tensor& grad_bias) {
  require_kernel_support(*this, {.kernel = FusedKernel::LayerNorm, .tensors = {x, weight, Tensor()}},
                         "layer_norm_backward");
  const int64_t rows = mean.numel();
  const int64_t size = rows == 0 ? 0 : x.numel() / rows;
  LaunchContext context(x.device());
  visit_floating_dtype(x.dtype(), "layer_norm_backward", [&]<typename T>() {
    using C = compute_t<T>;
    if (rows == 0 || size == 0) {
      for (Tensor* sum : {&grad_weight, &grad_bias}) {
        if (sum->defined()) DTRAIN_CUDA_CHECK(cudaMemsetAsync(sum->data(), 0, sum->nbytes(), context.stream));
      }
      return;
    }
    const T* dy = static_cast<const T*>(grad_out.data());
    const T* input = static_cast<const T*>(x.data());
    const C* row_mean = static_cast<const C*>(mean.data());
    const C* row_rstd = static_cast<const C*>(rstd.data());
    if (grad_x.defined()) {
      const auto blocks = static_cast<unsigned int>(std::min(rows, kMaxBlocks));
      layer_norm_grad_input_kernel<T><<<blocks, std::min(threads_for_row(size), 512), 0, context.stream>>>(
          dy, input, data_or_null<T>(weight), row_mean, row_rstd, data_or_null<T>(grad_sum),
          static_cast<T*>(grad_x.data()), rows, size);
      check_launch("layer_norm_backward (input)", x.dtype());
    }
    if (!grad_weight.defined() && !grad_bias.defined()) return;
    const int64_t rows_per_chunk = std::max<int64_t>(64, (rows + kMaxChunks - 1) / kMaxChunks);
    const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
    const size_t partial_bytes = static_cast<size_t>(chunks * size) * sizeof(C);
    ScratchBuffer weight_partials(x.device().index, grad_weight.defined() ? partial_bytes : 0);
    ScratchBuffer bias_partials(x.device().index, grad_bias.defined() ? partial_bytes : 0);
    C* weight_data = grad_weight.defined() ? static_cast<C*>(weight_partials.data()) : nullptr;
    C* bias_data = grad_bias.defined() ? static_cast<C*>(bias_partials.data()) : nullptr;
    const dim3 grid(blocks_for(size), static_cast<unsigned int>(chunks));
    layer_norm_affine_partials_kernel<T><<<grid, kThreads, 0, context.stream>>>(dy, input, row_mean, row_rstd, weight_data,
                                                                                bias_data, rows, size, rows_per_chunk);
    check_launch("layer_norm_backward (weight and bias partials)", x.dtype());
    if (grad_weight.defined()) {
      layer_norm_affine_total_kernel<T><<<blocks_for(size), kThreads, 0, context.stream>>>(
          weight_data, static_cast<T*>(grad_weight.data()), chunks, size);
      check_launch("layer_norm_backward (weight)", x.dtype());
    }
    if (grad_bias.defined()) {
      layer_norm_affine_total_kernel<T><<<blocks_for(size), kThreads, 0, context.stream>>>(
          bias_data, static_cast<T*>(grad_bias.data()), chunks, size);
      check_launch("layer_norm_backward (bias)", x.dtype());
    }
  });
}

}  // namespace dtrain::cuda
