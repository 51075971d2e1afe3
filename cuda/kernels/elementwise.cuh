#pragma once
// Elementwise maps over 0 to 3 inputs: out[i] = f(inputs[i]...). Two paths:
// - contiguous: out and every input contiguous (or an input that is one broadcast value, as the
//   2 in x * 2), pointers aligned: each thread moves VEC elements with 128-bit loads and stores
//   (VEC = 16 bytes / the widest element), no index arithmetic;
// - strided: any strides and broadcasts, through an OffsetPlan (kernel_plan.h).
// f takes and returns compute values (Element<T>::Compute); the kernels load and store.
#include <algorithm>
#include <cstdint>
#include <utility>

#include "cuda/kernels/element.cuh"
#include "cuda/kernels/kernel_plan.h"
#include "cuda/kernels/launch.cuh"

namespace dtrain::cuda {

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T values[VEC];
};

enum class OperandLayout { Contiguous, Scalar, Strided };

inline OperandLayout layout_of(const Tensor& operand, const Shape& shape) {
  bool broadcast_everywhere = true;
  for (int64_t d = 0; d < operand.dim(); ++d) {
    if (shape[d] != 1 && operand.stride(d) != 0) broadcast_everywhere = false;
  }
  if (broadcast_everywhere) return OperandLayout::Scalar;
  if (operand.is_contiguous()) return OperandLayout::Contiguous;
  return OperandLayout::Strided;
}

inline bool aligned_to(const Tensor& tensor, size_t bytes) {
  return reinterpret_cast<uintptr_t>(tensor.data()) % bytes == 0;
}

template <int VEC, typename T>
__device__ inline void load_pack(const T* pointer, bool scalar, int64_t base, typename Element<T>::Compute (&values)[VEC]) {
  if (scalar) {
    const auto value = Element<T>::load(pointer[0]);
#pragma unroll
    for (int j = 0; j < VEC; ++j) values[j] = value;
  } else {
    const Pack<T, VEC> pack = *reinterpret_cast<const Pack<T, VEC>*>(pointer + base);
#pragma unroll
    for (int j = 0; j < VEC; ++j) values[j] = Element<T>::load(pack.values[j]);
  }
}

template <typename T>
__device__ inline typename Element<T>::Compute load_one(const T* pointer, bool scalar, int64_t i) {
  return Element<T>::load(pointer[scalar ? 0 : i]);
}

template <typename T>
__device__ inline typename Element<T>::Compute load_at(const char* base, int64_t offset) {
  return Element<T>::load(*reinterpret_cast<const T*>(base + offset));
}

template <typename T>
__device__ inline void store_at(char* base, int64_t offset, typename Element<T>::Compute value) {
  *reinterpret_cast<T*>(base + offset) = Element<T>::store(value);
}

// --- kernels -----------------------------------------------------------------------------------

template <int VEC, typename Out, typename F>
__global__ void map0_contiguous(Out* out, int64_t n, F f) {
  for (int64_t base = global_thread() * VEC; base < n; base += grid_stride() * VEC) {
    if (base + VEC <= n) {
      Pack<Out, VEC> result;
#pragma unroll
      for (int j = 0; j < VEC; ++j) result.values[j] = Element<Out>::store(f(base + j));
      *reinterpret_cast<Pack<Out, VEC>*>(out + base) = result;
    } else {
      for (int64_t i = base; i < n; ++i) out[i] = Element<Out>::store(f(i));
    }
  }
}

template <typename Out, typename F>
__global__ void map0_strided(OffsetPlan<1> plan, char* out, int64_t n, F f) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    int64_t offsets[1];
    plan.offsets(i, offsets);
    store_at<Out>(out, offsets[0], f(i));
  }
}

template <int VEC, typename Out, typename A, typename F>
__global__ void map1_contiguous(Out* out, const A* a, bool a_scalar, int64_t n, F f) {
  for (int64_t base = global_thread() * VEC; base < n; base += grid_stride() * VEC) {
    if (base + VEC <= n) {
      typename Element<A>::Compute x[VEC];
      load_pack<VEC>(a, a_scalar, base, x);
      Pack<Out, VEC> result;
#pragma unroll
      for (int j = 0; j < VEC; ++j) result.values[j] = Element<Out>::store(f(x[j]));
      *reinterpret_cast<Pack<Out, VEC>*>(out + base) = result;
    } else {
      for (int64_t i = base; i < n; ++i) out[i] = Element<Out>::store(f(load_one(a, a_scalar, i)));
    }
  }
}

template <typename Out, typename A, typename F>
__global__ void map1_strided(OffsetPlan<2> plan, char* out, const char* a, int64_t n, F f) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    int64_t offsets[2];
    plan.offsets(i, offsets);
    store_at<Out>(out, offsets[0], f(load_at<A>(a, offsets[1])));
  }
}

template <int VEC, typename Out, typename A, typename B, typename F>
__global__ void map2_contiguous(Out* out, const A* a, bool a_scalar, const B* b, bool b_scalar, int64_t n, F f) {
  for (int64_t base = global_thread() * VEC; base < n; base += grid_stride() * VEC) {
    if (base + VEC <= n) {
      typename Element<A>::Compute x[VEC];
      typename Element<B>::Compute y[VEC];
      load_pack<VEC>(a, a_scalar, base, x);
      load_pack<VEC>(b, b_scalar, base, y);
      Pack<Out, VEC> result;
#pragma unroll
      for (int j = 0; j < VEC; ++j) result.values[j] = Element<Out>::store(f(x[j], y[j]));
      *reinterpret_cast<Pack<Out, VEC>*>(out + base) = result;
    } else {
      for (int64_t i = base; i < n; ++i) out[i] = Element<Out>::store(f(load_one(a, a_scalar, i), load_one(b, b_scalar, i)));
    }
  }
}

template <typename Out, typename A, typename B, typename F>
__global__ void map2_strided(OffsetPlan<3> plan, char* out, const char* a, const char* b, int64_t n, F f) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    int64_t offsets[3];
    plan.offsets(i, offsets);
    store_at<Out>(out, offsets[0], f(load_at<A>(a, offsets[1]), load_at<B>(b, offsets[2])));
  }
}

template <int VEC, typename Out, typename A, typename B, typename C, typename F>
__global__ void map3_contiguous(Out* out, const A* a, bool a_scalar, const B* b, bool b_scalar, const C* c, bool c_scalar,
                                int64_t n, F f) {
  for (int64_t base = global_thread() * VEC; base < n; base += grid_stride() * VEC) {
    if (base + VEC <= n) {
      typename Element<A>::Compute x[VEC];
      typename Element<B>::Compute y[VEC];
      typename Element<C>::Compute z[VEC];
      load_pack<VEC>(a, a_scalar, base, x);
      load_pack<VEC>(b, b_scalar, base, y);
      load_pack<VEC>(c, c_scalar, base, z);
      Pack<Out, VEC> result;
#pragma unroll
      for (int j = 0; j < VEC; ++j) result.values[j] = Element<Out>::store(f(x[j], y[j], z[j]));
      *reinterpret_cast<Pack<Out, VEC>*>(out + base) = result;
    } else {
      for (int64_t i = base; i < n; ++i) {
        out[i] = Element<Out>::store(f(load_one(a, a_scalar, i), load_one(b, b_scalar, i), load_one(c, c_scalar, i)));
      }
    }
  }
}

template <typename Out, typename A, typename B, typename C, typename F>
__global__ void map3_strided(OffsetPlan<4> plan, char* out, const char* a, const char* b, const char* c, int64_t n, F f) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    int64_t offsets[4];
    plan.offsets(i, offsets);
    store_at<Out>(out, offsets[0], f(load_at<A>(a, offsets[1]), load_at<B>(b, offsets[2]), load_at<C>(c, offsets[3])));
  }
}

// --- launchers ---------------------------------------------------------------------------------

template <typename... T>
constexpr int vector_width() {
  return static_cast<int>(16 / std::max({sizeof(T)...}));
}

// Whether the contiguous path applies: out contiguous, inputs contiguous or one value, and every
// contiguous pointer aligned to its pack.
template <int VEC>
bool contiguous_path(const Tensor& out, std::initializer_list<std::pair<const Tensor*, OperandLayout>> inputs) {
  if (!out.is_contiguous() || !aligned_to(out, VEC * out.element_size())) return false;
  for (const auto& [tensor, layout] : inputs) {
    if (layout == OperandLayout::Strided) return false;
    if (layout == OperandLayout::Contiguous && !aligned_to(*tensor, VEC * tensor->element_size())) return false;
  }
  return true;
}

// out[i] = f(i), i the element's logical (row-major) position.
template <typename Out, typename F>
void map0(const LaunchContext& context, Tensor& out, F f, const char* name) {
  const int64_t n = out.numel();
  if (n == 0) return;
  constexpr int VEC = vector_width<Out>();
  if (contiguous_path<VEC>(out, {})) {
    map0_contiguous<VEC, Out><<<blocks_for((n + VEC - 1) / VEC), kThreads, 0, context.stream>>>(static_cast<Out*>(out.data()), n, f);
  } else {
    OffsetPlan<1> plan = make_plan<1>(out.shape(), {&out});
    map0_strided<Out><<<blocks_for(n), kThreads, 0, context.stream>>>(plan, static_cast<char*>(out.data()), n, f);
  }
  check_launch(name, out.dtype());
}

template <typename Out, typename A, typename F>
void map1(const LaunchContext& context, Tensor& out, const Tensor& a, F f, const char* name) {
  const int64_t n = out.numel();
  if (n == 0) return;
  constexpr int VEC = vector_width<Out, A>();
  const OperandLayout a_layout = layout_of(a, out.shape());
  if (contiguous_path<VEC>(out, {{&a, a_layout}})) {
    map1_contiguous<VEC, Out, A><<<blocks_for((n + VEC - 1) / VEC), kThreads, 0, context.stream>>>(
        static_cast<Out*>(out.data()), static_cast<const A*>(a.data()), a_layout == OperandLayout::Scalar, n, f);
  } else {
    OffsetPlan<2> plan = make_plan<2>(out.shape(), {&out, &a});
    map1_strided<Out, A><<<blocks_for(n), kThreads, 0, context.stream>>>(plan, static_cast<char*>(out.data()),
                                                                        static_cast<const char*>(a.data()), n, f);
  }
  check_launch(name, a.dtype());
}

template <typename Out, typename A, typename B, typename F>
void map2(const LaunchContext& context, Tensor& out, const Tensor& a, const Tensor& b, F f, const char* name) {
  const int64_t n = out.numel();
  if (n == 0) return;
  constexpr int VEC = vector_width<Out, A, B>();
  const OperandLayout a_layout = layout_of(a, out.shape()), b_layout = layout_of(b, out.shape());
  if (contiguous_path<VEC>(out, {{&a, a_layout}, {&b, b_layout}})) {
    map2_contiguous<VEC, Out, A, B><<<blocks_for((n + VEC - 1) / VEC), kThreads, 0, context.stream>>>(
        static_cast<Out*>(out.data()), static_cast<const A*>(a.data()), a_layout == OperandLayout::Scalar,
        static_cast<const B*>(b.data()), b_layout == OperandLayout::Scalar, n, f);
  } else {
    OffsetPlan<3> plan = make_plan<3>(out.shape(), {&out, &a, &b});
    map2_strided<Out, A, B><<<blocks_for(n), kThreads, 0, context.stream>>>(
        plan, static_cast<char*>(out.data()), static_cast<const char*>(a.data()), static_cast<const char*>(b.data()), n, f);
  }
  check_launch(name, a.dtype());
}

template <typename Out, typename A, typename B, typename C, typename F>
void map3(const LaunchContext& context, Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, F f,
          const char* name) {
  const int64_t n = out.numel();
  if (n == 0) return;
  constexpr int VEC = vector_width<Out, A, B, C>();
  const OperandLayout a_layout = layout_of(a, out.shape()), b_layout = layout_of(b, out.shape());
  const OperandLayout c_layout = layout_of(c, out.shape());
  if (contiguous_path<VEC>(out, {{&a, a_layout}, {&b, b_layout}, {&c, c_layout}})) {
    map3_contiguous<VEC, Out, A, B, C><<<blocks_for((n + VEC - 1) / VEC), kThreads, 0, context.stream>>>(
        static_cast<Out*>(out.data()), static_cast<const A*>(a.data()), a_layout == OperandLayout::Scalar,
        static_cast<const B*>(b.data()), b_layout == OperandLayout::Scalar, static_cast<const C*>(c.data()),
        c_layout == OperandLayout::Scalar, n, f);
  } else {
    OffsetPlan<4> plan = make_plan<4>(out.shape(), {&out, &a, &b, &c});
    map3_strided<Out, A, B, C><<<blocks_for(n), kThreads, 0, context.stream>>>(
        plan, static_cast<char*>(out.data()), static_cast<const char*>(a.data()), static_cast<const char*>(b.data()),
        static_cast<const char*>(c.data()), n, f);
  }
  check_launch(name, out.dtype());
}

}  // namespace dtrain::cuda
