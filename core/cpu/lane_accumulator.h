#pragma once
// Combining many values into one (sum, max, min) quickly and reproducibly. A run of values is
// dealt round-robin onto kLanes independent accumulators, which the compiler keeps in vector
// registers (a single accumulator would serialise every add on its latency and cannot be
// vectorised without reassociating floating point). The lanes are folded in a fixed tree, so the
// result depends only on the run boundaries, never on the thread count.
// The lane loops carry `omp simd`: without it GCC will not turn the comparisons of max and min
// into vector selects (they might raise floating-point exceptions under -ftrapping-math).
#include <cstdint>
#include <limits>

#include "core/dtype.h"

namespace dtrain::cpu {

struct SumCombine {
  template <typename A> static A identity() { return A(0); }
  template <typename A> static A combine(A total, A value) { return total + value; }
};

// NaN wins (as in PyTorch): once a NaN is seen it stays, since every comparison with it is false.
struct MaxCombine {
  template <typename A> static A identity() {
    if constexpr (std::numeric_limits<A>::has_infinity) return -std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::lowest();
  }
  template <typename A> static A combine(A best, A value) { return (value > best || value != value) ? value : best; }
};

struct MinCombine {
  template <typename A> static A identity() {
    if constexpr (std::numeric_limits<A>::has_infinity) return std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::max();
  }
  template <typename A> static A combine(A best, A value) { return (value < best || value != value) ? value : best; }
};

// Converts a stored element to the accumulator type (16-bit floats go through float).
template <typename T, typename A>
inline A load_as(const char* address) {
  return static_cast<A>(static_cast<compute_t<T>>(*reinterpret_cast<const T*>(address)));
}

template <typename T, typename A, typename Combine>
class LaneAccumulator {
 public:
  static constexpr int kLanes = 16;

  LaneAccumulator() {
    for (A& lane : lanes_) lane = Combine::template identity<A>();
  }

  // Adds count elements of type T starting at address, byte_stride apart.
  void add_run(const char* address, int64_t byte_stride, int64_t count) {
    A lanes[kLanes];  // a local copy stays in registers; the member would be reloaded each step
    for (int k = 0; k < kLanes; ++k) lanes[k] = lanes_[k];
    int64_t i = 0;
    if (byte_stride == static_cast<int64_t>(sizeof(T))) {
      const T* values = reinterpret_cast<const T*>(address);
      for (; i + kLanes <= count; i += kLanes) {
#pragma omp simd
        for (int k = 0; k < kLanes; ++k) {
          lanes[k] = Combine::combine(lanes[k], static_cast<A>(static_cast<compute_t<T>>(values[i + k])));
        }
      }
      for (int k = 0; k < kLanes && i < count; ++i, ++k) {  // the tail: fewer than kLanes left
        lanes[k] = Combine::combine(lanes[k], static_cast<A>(static_cast<compute_t<T>>(values[i])));
      }
    } else {
      for (; i + kLanes <= count; i += kLanes) {
#pragma omp simd
        for (int k = 0; k < kLanes; ++k) lanes[k] = Combine::combine(lanes[k], load_as<T, A>(address + (i + k) * byte_stride));
      }
      for (int k = 0; k < kLanes && i < count; ++i, ++k) lanes[k] = Combine::combine(lanes[k], load_as<T, A>(address + i * byte_stride));
    }
    for (int k = 0; k < kLanes; ++k) lanes_[k] = lanes[k];
  }

  A result() const {
    A folded[kLanes];
    for (int k = 0; k < kLanes; ++k) folded[k] = lanes_[k];
    for (int width = kLanes / 2; width >= 1; width /= 2) {
      for (int k = 0; k < width; ++k) folded[k] = Combine::combine(folded[k], folded[k + width]);
    }
    return folded[0];
  }

 private:
  A lanes_[kLanes];
};

}  // namespace dtrain::cpu
