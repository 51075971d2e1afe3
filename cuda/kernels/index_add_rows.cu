// The sorted-rows index_add (cuda/kernels/index_add_rows.h).
#include <cub/device/device_radix_sort.cuh>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "cuda/caching_allocator.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels/element.cuh"
#include "cuda/kernels/index_add_rows.h"
#include "cuda/kernels/index_add_rows_plan.h"
#include "cuda/kernels/index_check.cuh"
#include "cuda/kernels/launch.cuh"

namespace dtrain::cuda {
namespace {

// keys[k] = the target row of entry k (rows for an index out of range, recorded), positions[k] = k.
template <typename I>
__global__ void sort_keys_kernel(const I* index, int64_t index_stride, int64_t count, int64_t rows, uint32_t* keys,
                                 int32_t* positions, IndexError* error) {
  for (int64_t k = global_thread(); k < count; k += grid_stride()) {
    const int64_t row = static_cast<int64_t>(index[k * index_stride]);
    keys[k] = check_position(error, row, rows) ? static_cast<uint32_t>(row) : static_cast<uint32_t>(rows);
    positions[k] = static_cast<int32_t>(k);
  }
}

// The block of sorted position s adds the run of equal keys that starts there (a run starts where
// the key differs from the one before) into out's row of that key, source rows in sorted order —
// their index order, as the sort is stable — rounding to T after every addition, as the generic
// kernel and the CPU do. Blocks at positions inside a run, and the run of out-of-range entries
// (key == rows), return at once.
template <typename T>
__global__ void add_sorted_runs_kernel(T* out, const T* source, const uint32_t* sorted_keys,
                                       const int32_t* sorted_positions, int64_t count, int64_t rows, int64_t width) {
  for (int64_t s = blockIdx.x; s < count; s += gridDim.x) {
    const uint32_t key = sorted_keys[s];
    if (key == static_cast<uint32_t>(rows) || (s > 0 && sorted_keys[s - 1] == key)) continue;
    T* row = out + static_cast<int64_t>(key) * width;
    for (int64_t column = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; column < width;
         column += static_cast<int64_t>(gridDim.y) * blockDim.x) {
      T total = row[column];
      for (int64_t j = s; j < count && sorted_keys[j] == key; ++j) {
        const T value = source[static_cast<int64_t>(sorted_positions[j]) * width + column];
        total = Element<T>::store(static_cast<compute_t<T>>(Element<T>::load(total) + Element<T>::load(value)));
      }
      row[column] = total;
    }
  }
}

template <typename I>
void launch_sort_keys(const Tensor& index, int64_t rows, uint32_t* keys, int32_t* positions, IndexError* error,
                      cudaStream_t stream) {
  const int64_t count = index.numel();
  const int64_t stride = index.dim() == 0 ? 0 : index.stride(0);
  sort_keys_kernel<I><<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const I*>(index.data()), stride, count,
                                                                   rows, keys, positions, error);
}

template <typename T>
T* at(void* base, size_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

}  // namespace

bool index_add_rows(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source, IndexError* error) {
  const int64_t count = index.numel();
  if (dim != 0 || out.dim() != 2 || source.dim() != 2 || index.dim() != 1 || !out.is_contiguous() ||
      !source.is_contiguous() || !is_floating(out.dtype()) || source.dtype() != out.dtype() ||
      (index.dtype() != kInt64 && index.dtype() != kInt32) || source.size(0) != count || source.size(1) != out.size(1)) {
    return false;
  }
  const int64_t rows = out.size(0), width = out.size(1);
  const IndexAddRowsPlan plan = plan_index_add_rows(rows, width, count, kThreads, kMaxBlocks);
  if (!plan.applies) return false;
  LaunchContext context(out.device());
  const int entries = static_cast<int>(count);  // the plan keeps count within int32

  // CUB's temporary storage, asked for with a null buffer (a host computation, no launch).
  size_t sort_storage_bytes = 0;
  DTRAIN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_storage_bytes, static_cast<const uint32_t*>(nullptr),
                                                    static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                                    static_cast<int32_t*>(nullptr), entries, 0, plan.key_bits,
                                                    context.stream));
  const IndexAddRowsScratch layout = index_add_rows_scratch(count, sort_storage_bytes);
  // From the caching allocator, on this stream: freed when this returns, reused only by work
  // queued after this on the same stream, so no wait is needed.
  ScratchBuffer scratch(out.device().index, layout.total);
  uint32_t* keys = at<uint32_t>(scratch.data(), layout.keys);
  uint32_t* sorted_keys = at<uint32_t>(scratch.data(), layout.sorted_keys);
  int32_t* positions = at<int32_t>(scratch.data(), layout.positions);
  int32_t* sorted_positions = at<int32_t>(scratch.data(), layout.sorted_positions);

  if (index.dtype() == kInt64) launch_sort_keys<int64_t>(index, rows, keys, positions, error, context.stream);
  else launch_sort_keys<int32_t>(index, rows, keys, positions, error, context.stream);
  check_launch("index_add (sort keys)", out.dtype());
  DTRAIN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(at<void>(scratch.data(), layout.sort_storage), sort_storage_bytes,
                                                    keys, sorted_keys, positions, sorted_positions, entries, 0,
                                                    plan.key_bits, context.stream));
  const dim3 grid(static_cast<unsigned int>(plan.blocks_x), static_cast<unsigned int>(plan.blocks_y));
  visit_dtype(out.dtype(), [&]<typename T>() {
    if constexpr (std::is_floating_point_v<compute_t<T>>) {
      add_sorted_runs_kernel<T><<<grid, kThreads, 0, context.stream>>>(
          static_cast<T*>(out.data()), static_cast<const T*>(source.data()), sorted_keys, sorted_positions, count, rows,
          width);
    }
  });
  check_launch("index_add (sorted rows)", out.dtype());
  return true;
}

}  // namespace dtrain::cuda
