// CpuBackend::gather, scatter_add, index_select and index_add.
//
// Every index is checked before it is used: a bad one raises naming the op, the index, the dim
// and its size, never reads or writes out of bounds. The accumulating kernels (scatter_add,
// index_add) split work only across positions that can never receive the same element, and add
// repeated indices in index order, so results do not depend on the thread count.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_views.h"
#include "core/cpu/strided_loop.h"

namespace dtrain::cpu {
namespace {

[[noreturn]] void index_out_of_range(const char* op, int64_t position, int64_t dim, int64_t size) {
  fail(op, ": index ", position, " is out of bounds for dimension ", dim, " with size ", size);
}

inline void check_position(const char* op, int64_t position, int64_t dim, int64_t size) {
  if (position < 0 || position >= size) index_out_of_range(op, position, dim, size);
}

template <typename I>
inline int64_t load_index(const char* address) {
  return static_cast<int64_t>(*reinterpret_cast<const I*>(address));
}

template <typename Fn>
void visit_index_dtype(DType dtype, const char* op, Fn&& fn) {
  if (dtype == kInt64) fn.template operator()<int64_t>();
  else if (dtype == kInt32) fn.template operator()<int32_t>();
  else fail("internal: ", op, " kernel called with a ", dtype, " index");
}

// Checks every entry of a 1-d (or 0-d) index once, up front, so the copy loops stay clean.
template <typename I>
void check_all_positions(const Tensor& index, const char* op, int64_t dim, int64_t size) {
  const char* base = static_cast<const char*>(index.data());
  const int64_t step = index.dim() == 0 ? 0 : index.stride(0) * static_cast<int64_t>(sizeof(I));
  for (int64_t k = 0; k < index.numel(); ++k) check_position(op, load_index<I>(base + k * step), dim, size);
}

template <typename T>
inline void add_into(char* destination, const char* source) {
  using C = compute_t<T>;
  T& out = *reinterpret_cast<T*>(destination);
  out = static_cast<T>(static_cast<C>(out) + static_cast<C>(*reinterpret_cast<const T*>(source)));
}

}  // namespace

void CpuBackend::gather(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) {
  const int64_t size = input.size(dim);
  const int64_t step = input.stride(dim) * static_cast<int64_t>(input.element_size());
  // The input seen with index's shape and no step along dim: the index supplies that step.
  Strides line_strides = input.strides();
  line_strides[dim] = 0;
  Tensor lines = restrided(input, index.shape(), line_strides);
  visit_dtype(input.dtype(), [&]<typename T>() {
    strided_loop<3>(index.shape(), {&out, &index, &lines}, [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t count) {
      for (int64_t i = 0; i < count; ++i) {
        int64_t position = load_index<int64_t>(p[1] + i * s[1]);
        check_position("gather", position, dim, size);
        *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const T*>(p[2] + i * s[2] + position * step);
      }
    });
  });
}

void CpuBackend::scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source) {
  if (index.numel() == 0) return;
  const int64_t size = out.size(dim);
  const int64_t length = index.size(dim);
  const int64_t element = static_cast<int64_t>(out.element_size());
  const int64_t out_step = out.stride(dim) * element, source_step = source.stride(dim) * element;
  const int64_t index_step = index.stride(dim) * static_cast<int64_t>(sizeof(int64_t));
  // One line along dim per position of the other dims: lines never share an output element.
  Tensor index_lines = with_sizes_one(index, {dim});
  Tensor out_lines = restrided(out, index_lines.shape(), out.strides());
  Tensor source_lines = restrided(source, index_lines.shape(), source.strides());
  visit_dtype(out.dtype(), [&]<typename T>() {
    auto on_run = [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t count) {
      for (int64_t i = 0; i < count; ++i) {
        for (int64_t k = 0; k < length; ++k) {
          int64_t position = load_index<int64_t>(p[1] + i * s[1] + k * index_step);
          check_position("scatter_add", position, dim, size);
          add_into<T>(p[0] + i * s[0] + position * out_step, p[2] + i * s[2] + k * source_step);
        }
      }
    };
    strided_loop<3>(index_lines.shape(), {&out_lines, &index_lines, &source_lines}, on_run,
                    std::max<int64_t>(1, kParallelGrain / length));
  });
}

void CpuBackend::index_select(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) {
  if (out.numel() == 0) return;
  const int64_t element = static_cast<int64_t>(input.element_size());
  const int64_t step = input.stride(dim) * element;
  // Operands over out's shape: the input without its step along dim, and the index stepping
  // only along dim. Runs that do not move along dim share one index: a straight copy.
  Strides source_strides = input.strides();
  source_strides[dim] = 0;
  Tensor source = restrided(input, out.shape(), source_strides);
  Strides index_strides(out.dim(), 0);
  index_strides[dim] = index.dim() == 0 ? 0 : index.stride(0);
  Tensor positions = restrided(index, out.shape(), index_strides);
  visit_index_dtype(index.dtype(), "index_select", [&]<typename I>() {
    check_all_positions<I>(index, "index_select", dim, input.size(dim));
    visit_dtype(input.dtype(), [&]<typename T>() {
      auto on_run = [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t count) {
        if (s[2] == 0) {
          const char* from = p[1] + load_index<I>(p[2]) * step;
          if (s[0] == element && s[1] == element) {
            std::memcpy(p[0], from, static_cast<size_t>(count * element));
          } else {
            for (int64_t i = 0; i < count; ++i) *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const T*>(from + i * s[1]);
          }
          return;
        }
        for (int64_t i = 0; i < count; ++i) {
          const char* from = p[1] + i * s[1] + load_index<I>(p[2] + i * s[2]) * step;
          *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const T*>(from);
        }
      };
      strided_loop<3>(out.shape(), {&out, &source, &positions}, on_run);
    });
  });
}

void CpuBackend::index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source, IndexBounds /*bounds*/) {
  const int64_t count_k = index.numel();
  if (count_k == 0 || out.numel() == 0) return;
  const int64_t element = static_cast<int64_t>(out.element_size());
  const int64_t out_step = out.stride(dim) * element, source_step = source.stride(dim) * element;
  // Work is split across the other dims' positions; each walks the index in order, so repeated
  // indices add up in index order on one thread.
  Tensor out_lines = with_sizes_one(out, {dim});
  Tensor source_lines = with_sizes_one(source, {dim});
  visit_index_dtype(index.dtype(), "index_add", [&]<typename I>() {
    check_all_positions<I>(index, "index_add", dim, out.size(dim));
    const char* index_base = static_cast<const char*>(index.data());
    const int64_t index_step = index.dim() == 0 ? 0 : index.stride(0) * static_cast<int64_t>(sizeof(I));
    visit_dtype(out.dtype(), [&]<typename T>() {
      using C = compute_t<T>;
      auto on_run = [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t count) {
        for (int64_t k = 0; k < count_k; ++k) {
          char* to = p[0] + load_index<I>(index_base + k * index_step) * out_step;
          const char* from = p[1] + k * source_step;
          if (s[0] == element && s[1] == element) {
            T* destination = reinterpret_cast<T*>(to);
            const T* values = reinterpret_cast<const T*>(from);
            for (int64_t i = 0; i < count; ++i) destination[i] = static_cast<T>(static_cast<C>(destination[i]) + static_cast<C>(values[i]));
          } else {
            for (int64_t i = 0; i < count; ++i) add_into<T>(to + i * s[0], from + i * s[1]);
          }
        }
      };
      strided_loop<2>(out_lines.shape(), {&out_lines, &source_lines}, on_run, std::max<int64_t>(1, kParallelGrain / count_k));
    });
  });
}

}  // namespace dtrain::cpu
