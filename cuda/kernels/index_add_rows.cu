// The sorted-rows index_add (cuda/kernels/index_add_rows.h).
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/profiler_recorder.h"
#include "cuda/caching_allocator.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels/element.cuh"
#include "cuda/kernels/index_add_rows.h"
#include "cuda/kernels/launch.cuh"

namespace dtrain::cuda {
namespace {

// Fewer indices than this take the generic kernel: the host round trip would cost more.
constexpr int64_t kMinIndicesForRows = 256;

// Block s adds source rows order[begin[s] .. begin[s + 1]) into out row target[s], rounding to T
// after every addition as the generic kernel does.
template <typename T>
__global__ void index_add_rows_kernel(T* out, const T* source, const int64_t* order, const int64_t* target,
                                      const int64_t* begin, int64_t segments, int64_t width) {
  for (int64_t segment = blockIdx.x; segment < segments; segment += gridDim.x) {
    T* row = out + target[segment] * width;
    const int64_t first = begin[segment], last = begin[segment + 1];
    for (int64_t column = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; column < width;
         column += static_cast<int64_t>(gridDim.y) * blockDim.x) {
      T total = row[column];
      for (int64_t j = first; j < last; ++j) {
        const T value = source[order[j] * width + column];
        total = Element<T>::store(static_cast<compute_t<T>>(Element<T>::load(total) + Element<T>::load(value)));
      }
      row[column] = total;
    }
  }
}

template <typename I>
std::vector<int64_t> index_on_host(const Tensor& index, cudaStream_t stream) {
  const int64_t count = index.numel();
  std::vector<I> raw(static_cast<size_t>(count));
  const int64_t stride = index.dim() == 0 ? 1 : index.stride(0);
  DTRAIN_CUDA_CHECK(cudaMemcpy2DAsync(raw.data(), sizeof(I), index.data(), static_cast<size_t>(stride) * sizeof(I),
                                      sizeof(I), static_cast<size_t>(count), cudaMemcpyDeviceToHost, stream));
  profiler::detail::host_synchronization("index_add rows: indices to the host");
  DTRAIN_CUDA_CHECK(cudaStreamSynchronize(stream));
  return std::vector<int64_t>(raw.begin(), raw.end());
}

}  // namespace

bool index_add_rows(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source) {
  const int64_t count = index.numel();
  if (dim != 0 || count < kMinIndicesForRows || out.dim() != 2 || source.dim() != 2 || index.dim() != 1 || index.stride(0) < 1 ||
      !out.is_contiguous() || !source.is_contiguous() || !is_floating(out.dtype()) || source.dtype() != out.dtype() ||
      (index.dtype() != kInt64 && index.dtype() != kInt32) || source.size(0) != count || source.size(1) != out.size(1)) {
    return false;
  }
  const int64_t rows = out.size(0), width = out.size(1);
  if (width == 0 || rows == 0) return false;
  LaunchContext context(out.device());
  const std::vector<int64_t> positions = index.dtype() == kInt64 ? index_on_host<int64_t>(index, context.stream)
                                                                 : index_on_host<int32_t>(index, context.stream);
  // A stable counting sort by target row: each row's run keeps the index order.
  std::vector<int64_t> start(static_cast<size_t>(rows), 0);
  for (int64_t position : positions) {
    if (position < 0 || position >= rows) {
      fail("index_add: index ", position, " is out of bounds for dimension 0 with size ", rows);
    }
    ++start[static_cast<size_t>(position)];
  }
  std::vector<int64_t> target, begin;  // the distinct rows, and where each one's run begins
  int64_t running = 0;
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t entries = start[static_cast<size_t>(row)];
    start[static_cast<size_t>(row)] = running;
    if (entries > 0) {
      target.push_back(row);
      begin.push_back(running);
    }
    running += entries;
  }
  begin.push_back(count);
  std::vector<int64_t> order(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) order[static_cast<size_t>(start[static_cast<size_t>(positions[k])]++)] = k;

  const int64_t segments = static_cast<int64_t>(target.size());
  const size_t order_bytes = order.size() * sizeof(int64_t), target_bytes = target.size() * sizeof(int64_t);
  const size_t begin_bytes = begin.size() * sizeof(int64_t);
  ScratchBuffer device_lists(out.device().index, order_bytes + target_bytes + begin_bytes);
  auto* device_order = static_cast<int64_t*>(device_lists.data());
  int64_t* device_target = device_order + order.size();
  int64_t* device_begin = device_target + target.size();
  // Pageable sources: each copy has read its host bytes when it returns.
  DTRAIN_CUDA_CHECK(cudaMemcpyAsync(device_order, order.data(), order_bytes, cudaMemcpyHostToDevice, context.stream));
  DTRAIN_CUDA_CHECK(cudaMemcpyAsync(device_target, target.data(), target_bytes, cudaMemcpyHostToDevice, context.stream));
  DTRAIN_CUDA_CHECK(cudaMemcpyAsync(device_begin, begin.data(), begin_bytes, cudaMemcpyHostToDevice, context.stream));
  const dim3 grid(static_cast<unsigned int>(std::min<int64_t>(segments, kMaxBlocks)),
                  std::min<unsigned int>(blocks_for(width), 65535u));
  visit_dtype(out.dtype(), [&]<typename T>() {
    if constexpr (std::is_floating_point_v<compute_t<T>>) {
      index_add_rows_kernel<T><<<grid, kThreads, 0, context.stream>>>(static_cast<T*>(out.data()),
                                                                     static_cast<const T*>(source.data()), device_order,
                                                                     device_target, device_begin, segments, width);
    }
  });
  check_launch("index_add (sorted rows)", out.dtype());
  return true;
}

}  // namespace dtrain::cuda
