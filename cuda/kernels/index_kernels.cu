// CudaBackend::gather, scatter_add, index_select and index_add.
//
// Every index is checked on the device (cuda/kernels/index_check.cuh); reading the result back
// makes these ops synchronise their stream, except index_add with IndexBounds::Validated.
// The accumulating kernels give each thread one line along dim (lines never share an output
// element) and add repeated indices in index order, so results are reproducible, as on the CPU.
#include <cstdint>
#include <memory>
#include <utility>

#include "cuda/cuda_backend.h"
#include "cuda/kernels/elementwise.cuh"
#include "cuda/kernels/index_add_rows.h"
#include "cuda/kernels/index_check.cuh"

namespace dtrain::cuda {
namespace {

// An unsigned type of the element's size: gathering and selecting move bytes, whatever the dtype.
template <typename Fn>
void visit_element_size(size_t size, Fn&& fn) {
  switch (size) {
    case 1: return fn.template operator()<uint8_t>();
    case 2: return fn.template operator()<uint16_t>();
    case 4: return fn.template operator()<uint32_t>();
    default: return fn.template operator()<uint64_t>();
  }
}

template <typename I>
__device__ inline int64_t load_index(const char* address) {
  return static_cast<int64_t>(*reinterpret_cast<const I*>(address));
}

Tensor restrided(const Tensor& tensor, Shape shape, Strides strides) {
  return Tensor(std::make_shared<TensorImpl>(tensor.storage(), std::move(shape), std::move(strides), tensor.storage_offset(),
                                             tensor.dtype()));
}

Tensor with_size_one(const Tensor& tensor, int64_t dim) {
  Shape shape = tensor.shape();
  shape[dim] = 1;
  return restrided(tensor, shape, tensor.strides());
}

template <typename Bytes>
__global__ void gather_kernel(OffsetPlan<3> plan, int64_t n, char* out, const char* index, const char* lines, int64_t step,
                              int64_t size, IndexError* error) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    int64_t offsets[3];
    plan.offsets(i, offsets);
    const int64_t position = load_index<int64_t>(index + offsets[1]);
    if (!check_position(error, position, size)) continue;
    *reinterpret_cast<Bytes*>(out + offsets[0]) = *reinterpret_cast<const Bytes*>(lines + offsets[2] + position * step);
  }
}

template <typename T>
__global__ void scatter_add_kernel(OffsetPlan<3> plan, int64_t lines, int64_t length, char* out, const char* index,
                                   const char* source, int64_t out_step, int64_t index_step, int64_t source_step,
                                   int64_t size, IndexError* error) {
  for (int64_t line = global_thread(); line < lines; line += grid_stride()) {
    int64_t offsets[3];
    plan.offsets(line, offsets);
    for (int64_t k = 0; k < length; ++k) {
      const int64_t position = load_index<int64_t>(index + offsets[1] + k * index_step);
      if (!check_position(error, position, size)) continue;
      T& target = *reinterpret_cast<T*>(out + offsets[0] + position * out_step);
      const T value = *reinterpret_cast<const T*>(source + offsets[2] + k * source_step);
      target = Element<T>::store(static_cast<compute_t<T>>(Element<T>::load(target) + Element<T>::load(value)));
    }
  }
}

template <typename Bytes, typename I>
__global__ void index_select_kernel(OffsetPlan<3> plan, int64_t n, char* out, const char* source, const char* positions,
                                    int64_t step, int64_t size, IndexError* error) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    int64_t offsets[3];
    plan.offsets(i, offsets);
    const int64_t position = load_index<I>(positions + offsets[2]);
    if (!check_position(error, position, size)) continue;
    *reinterpret_cast<Bytes*>(out + offsets[0]) = *reinterpret_cast<const Bytes*>(source + offsets[1] + position * step);
  }
}

template <typename T, typename I>
__global__ void index_add_kernel(OffsetPlan<2> plan, int64_t lines, int64_t count, char* out, const char* source,
                                 const char* index, int64_t out_step, int64_t source_step, int64_t index_step, int64_t size,
                                 IndexError* error) {
  for (int64_t line = global_thread(); line < lines; line += grid_stride()) {
    int64_t offsets[2];
    plan.offsets(line, offsets);
    for (int64_t k = 0; k < count; ++k) {
      const int64_t position = load_index<I>(index + k * index_step);
      if (!check_position(error, position, size)) continue;
      T& target = *reinterpret_cast<T*>(out + offsets[0] + position * out_step);
      const T value = *reinterpret_cast<const T*>(source + offsets[1] + k * source_step);
      target = Element<T>::store(static_cast<compute_t<T>>(Element<T>::load(target) + Element<T>::load(value)));
    }
  }
}

template <typename Fn>
void visit_index_dtype(DType dtype, const char* op, Fn&& fn) {
  if (dtype == kInt64) fn.template operator()<int64_t>();
  else if (dtype == kInt32) fn.template operator()<int32_t>();
  else fail("internal: ", op, " kernel called with a ", dtype, " index");
}

}  // namespace

void CudaBackend::gather(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) {
  const int64_t n = index.numel();
  if (n == 0) return;
  if (index.dtype() != kInt64) fail("internal: gather kernel called with a ", index.dtype(), " index");
  LaunchContext context(out.device());
  IndexCheck check(context, out.device().index);
  Strides line_strides = input.strides();
  line_strides[dim] = 0;  // the index supplies the step along dim
  Tensor lines = restrided(input, index.shape(), line_strides);
  OffsetPlan<3> plan = make_plan<3>(index.shape(), {&out, &index, &lines});
  const int64_t step = input.stride(dim) * static_cast<int64_t>(input.element_size());
  visit_element_size(input.element_size(), [&]<typename Bytes>() {
    gather_kernel<Bytes><<<blocks_for(n), kThreads, 0, context.stream>>>(
        plan, n, static_cast<char*>(out.data()), static_cast<const char*>(index.data()), static_cast<const char*>(lines.data()),
        step, input.size(dim), check.record());
  });
  check_launch("gather", input.dtype());
  check.finish("gather", dim, input.size(dim));
}

void CudaBackend::scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source) {
  if (index.numel() == 0) return;
  if (index.dtype() != kInt64) fail("internal: scatter_add kernel called with a ", index.dtype(), " index");
  LaunchContext context(out.device());
  IndexCheck check(context, out.device().index);
  Tensor index_lines = with_size_one(index, dim);
  Tensor out_lines = restrided(out, index_lines.shape(), out.strides());
  Tensor source_lines = restrided(source, index_lines.shape(), source.strides());
  OffsetPlan<3> plan = make_plan<3>(index_lines.shape(), {&out_lines, &index_lines, &source_lines});
  const int64_t element = static_cast<int64_t>(out.element_size());
  const int64_t lines = index_lines.numel();
  visit_dtype(out.dtype(), [&]<typename T>() {
    scatter_add_kernel<T><<<blocks_for(lines), kThreads, 0, context.stream>>>(
        plan, lines, index.size(dim), static_cast<char*>(out.data()), static_cast<const char*>(index.data()),
        static_cast<const char*>(source.data()), out.stride(dim) * element, index.stride(dim) * int64_t{8},
        source.stride(dim) * element, out.size(dim), check.record());
  });
  check_launch("scatter_add", out.dtype());
  check.finish("scatter_add", dim, out.size(dim));
}

void CudaBackend::index_select(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  LaunchContext context(out.device());
  IndexCheck check(context, out.device().index);
  Strides source_strides = input.strides();
  source_strides[dim] = 0;
  Tensor source = restrided(input, out.shape(), source_strides);
  Strides index_strides(out.dim(), 0);
  index_strides[dim] = index.dim() == 0 ? 0 : index.stride(0);
  Tensor positions = restrided(index, out.shape(), index_strides);
  OffsetPlan<3> plan = make_plan<3>(out.shape(), {&out, &source, &positions});
  const int64_t step = input.stride(dim) * static_cast<int64_t>(input.element_size());
  visit_index_dtype(index.dtype(), "index_select", [&]<typename I>() {
    visit_element_size(input.element_size(), [&]<typename Bytes>() {
      index_select_kernel<Bytes, I><<<blocks_for(n), kThreads, 0, context.stream>>>(
          plan, n, static_cast<char*>(out.data()), static_cast<const char*>(source.data()),
          static_cast<const char*>(positions.data()), step, input.size(dim), check.record());
    });
  });
  check_launch("index_select", input.dtype());
  check.finish("index_select", dim, input.size(dim));
}

void CudaBackend::index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source, IndexBounds bounds) {
  const int64_t count = index.numel();
  if (count == 0 || out.numel() == 0) return;
  LaunchContext context(out.device());
  // A validated index needs no record: nothing is read back, so the host never waits here.
  std::unique_ptr<IndexCheck> check;
  if (bounds == IndexBounds::Check) check = std::make_unique<IndexCheck>(context, out.device().index);
  IndexError* record = check ? check->record() : nullptr;
  // An embedding's gradient (many rows at once) takes the sorted-rows path; anything else the generic one.
  if (!index_add_rows(out, dim, index, source, record)) {
    Tensor out_lines = with_size_one(out, dim);
    Tensor source_lines = restrided(source, out_lines.shape(), source.strides());
    OffsetPlan<2> plan = make_plan<2>(out_lines.shape(), {&out_lines, &source_lines});
    const int64_t element = static_cast<int64_t>(out.element_size());
    const int64_t lines = out_lines.numel();
    visit_index_dtype(index.dtype(), "index_add", [&]<typename I>() {
      const int64_t index_step = index.dim() == 0 ? 0 : index.stride(0) * static_cast<int64_t>(sizeof(I));
      visit_dtype(out.dtype(), [&]<typename T>() {
        index_add_kernel<T, I><<<blocks_for(lines), kThreads, 0, context.stream>>>(
            plan, lines, count, static_cast<char*>(out.data()), static_cast<const char*>(source.data()),
            static_cast<const char*>(index.data()), out.stride(dim) * element, source.stride(dim) * element, index_step,
            out.size(dim), record);
      });
    });
    check_launch("index_add", out.dtype());
  }
  if (check) check->finish("index_add", dim, out.size(dim));
}

}  // namespace dtrain::cuda
