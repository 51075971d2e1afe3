// CudaBackend::reduce_with_index: max or min over one dim with the position of the first extreme
// (a NaN counts as the extreme, as on the CPU). Along an innermost dim a block scans one row (each
// thread keeps its best in increasing position, then a tree picks the better value, or the lower
// position of equal ones); otherwise each thread scans one row in order.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "cuda/cuda_backend.h"
#include "cuda/kernels/elementwise.cuh"

namespace dtrain::cuda {
namespace {

template <bool IsMax, typename C>
__device__ inline bool is_better(C value, C best) {
  // Strict comparisons keep the first of equal values; a NaN beats everything but an earlier NaN.
  if constexpr (IsMax) return value > best || (value != value && best == best);
  else return value < best || (value != value && best == best);
}

// (value, position) a beats b: better value, or the same value (both NaN included) at a lower position.
template <bool IsMax, typename C>
__device__ inline bool beats(C a_value, int64_t a_position, C b_value, int64_t b_position) {
  if (is_better<IsMax>(a_value, b_value)) return true;
  if (is_better<IsMax>(b_value, a_value)) return false;
  return a_position < b_position;
}

struct RowGeometry {
  OffsetPlan<3> outputs;  // operands: values, indices, the input at each row start
  int64_t output_count;
  int64_t length;
  int64_t step;  // bytes between neighbours along the dim
};

template <typename T, bool IsMax>
__global__ void extreme_rows(RowGeometry geometry, char* values, char* indices, const char* input) {
  using C = compute_t<T>;
  __shared__ C shared_values[kThreads];
  __shared__ int64_t shared_positions[kThreads];
  for (int64_t output = blockIdx.x; output < geometry.output_count; output += gridDim.x) {
    int64_t offsets[3];
    geometry.outputs.offsets(output, offsets);
    const char* row = input + offsets[2];
    C best = C(0);
    int64_t where = -1;  // nothing seen yet
    for (int64_t i = threadIdx.x; i < geometry.length; i += blockDim.x) {
      C value = Element<T>::load(*reinterpret_cast<const T*>(row + i * geometry.step));
      if (where < 0 || is_better<IsMax>(value, best)) {
        best = value;
        where = i;
      }
    }
    shared_values[threadIdx.x] = best;
    shared_positions[threadIdx.x] = where;
    __syncthreads();
    for (int width = blockDim.x / 2; width > 0; width /= 2) {
      if (threadIdx.x < width) {
        const int other = threadIdx.x + width;
        const int64_t other_position = shared_positions[other];
        const int64_t mine = shared_positions[threadIdx.x];
        if (other_position >= 0 &&
            (mine < 0 || beats<IsMax>(shared_values[other], other_position, shared_values[threadIdx.x], mine))) {
          shared_values[threadIdx.x] = shared_values[other];
          shared_positions[threadIdx.x] = other_position;
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const int64_t position = shared_positions[0];
      *reinterpret_cast<T*>(values + offsets[0]) = *reinterpret_cast<const T*>(row + position * geometry.step);
      *reinterpret_cast<int64_t*>(indices + offsets[1]) = position;
    }
    __syncthreads();  // the shared arrays are reused by the next output
  }
}

template <typename T, bool IsMax>
__global__ void extreme_columns(RowGeometry geometry, char* values, char* indices, const char* input) {
  using C = compute_t<T>;
  for (int64_t output = global_thread(); output < geometry.output_count; output += grid_stride()) {
    int64_t offsets[3];
    geometry.outputs.offsets(output, offsets);
    const char* row = input + offsets[2];
    C best = Element<T>::load(*reinterpret_cast<const T*>(row));
    int64_t where = 0;
    for (int64_t i = 1; i < geometry.length; ++i) {
      C value = Element<T>::load(*reinterpret_cast<const T*>(row + i * geometry.step));
      if (is_better<IsMax>(value, best)) {
        best = value;
        where = i;
      }
    }
    *reinterpret_cast<T*>(values + offsets[0]) = *reinterpret_cast<const T*>(row + where * geometry.step);
    *reinterpret_cast<int64_t*>(indices + offsets[1]) = where;
  }
}

// The dim is (one of) the innermost: no other dim of size > 1 has a smaller nonzero stride.
bool is_innermost_dim(const Tensor& tensor, int64_t dim) {
  const int64_t dim_stride = tensor.stride(dim);
  for (int64_t d = 0; d < tensor.dim(); ++d) {
    if (d == dim || tensor.size(d) <= 1 || tensor.stride(d) == 0) continue;
    if (tensor.stride(d) < dim_stride) return false;
  }
  return true;
}

template <typename T, bool IsMax>
void extreme_with_index(const LaunchContext& context, const Tensor& input, int64_t dim, Tensor& values, Tensor& indices) {
  RowGeometry geometry;
  geometry.output_count = values.numel();
  if (geometry.output_count == 0) return;
  geometry.length = input.size(dim);
  geometry.step = input.stride(dim) * static_cast<int64_t>(sizeof(T));
  Shape row_shape = input.shape();
  row_shape[dim] = 1;
  Tensor row_starts(std::make_shared<TensorImpl>(input.storage(), row_shape, input.strides(), input.storage_offset(),
                                                 input.dtype()));
  geometry.outputs = make_plan<3>(values.shape(), {&values, &indices, &row_starts});
  char* value_data = static_cast<char*>(values.data());
  char* index_data = static_cast<char*>(indices.data());
  const char* input_data = static_cast<const char*>(input.data());
  if (geometry.length > 1 && is_innermost_dim(input, dim)) {
    const auto blocks = static_cast<unsigned int>(std::min(geometry.output_count, kMaxBlocks));
    extreme_rows<T, IsMax><<<blocks, kThreads, 0, context.stream>>>(geometry, value_data, index_data, input_data);
  } else {
    extreme_columns<T, IsMax><<<blocks_for(geometry.output_count), kThreads, 0, context.stream>>>(geometry, value_data,
                                                                                                  index_data, input_data);
  }
  check_launch(IsMax ? "max (with index)" : "min (with index)", input.dtype());
}

}  // namespace

void CudaBackend::reduce_with_index(ReductionKind op, const Tensor& input, int64_t dim, Tensor& values, Tensor& indices) {
  if (op != ReductionKind::Max && op != ReductionKind::Min) fail("internal: reduce_with_index supports max and min only");
  if (input.size(dim) == 0) fail("internal: reduce_with_index over an empty dimension");
  LaunchContext context(values.device());
  visit_dtype(input.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      fail("reduce_with_index: max and min are not defined for bool tensors");
    } else if (op == ReductionKind::Max) {
      extreme_with_index<T, true>(context, input, dim, values, indices);
    } else {
      extreme_with_index<T, false>(context, input, dim, values, indices);
    }
  });
}

}  // namespace dtrain::cuda
