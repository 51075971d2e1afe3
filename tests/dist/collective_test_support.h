#pragma once
// What the collective tests share: rank-dependent values whose sums, means and maxima are known in
// closed form, tensors built from them in any dtype, and an element-wise comparison that reports
// the first mismatch.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/core.h"
#include "dist/dist.h"

namespace dtrain::dist::collective_testing {

// Every dtype dtrain has, and those that can be summed (bool sums as a logical or, tested apart).
inline const std::vector<DType> kAllDtypes = {kFloat32, kFloat64, kBFloat16, kFloat16, kInt32, kInt64, kBool};
inline const std::vector<DType> kNumericDtypes = {kFloat32, kFloat64, kBFloat16, kFloat16, kInt32, kInt64};
inline const std::vector<DType> kFloatingDtypes = {kFloat32, kFloat64, kBFloat16, kFloat16};
// Zero, one, a few, and sizes that no world size from 2 to 4 divides; the largest (1.2 MB of
// float32) takes Open MPI's large-message algorithms (segmented rings).
inline const std::vector<int64_t> kSizes = {0, 1, 7, 1001, 300007};

// Rank r's value at index i: (r + 1) * m(i) with m(i) = ±(i % 7 + 1) (negative at odd i). Every sum,
// mean and maximum over up to 4 ranks is a small integer or half-integer, exact in bfloat16 too.
inline double magnitude(int64_t index) { return static_cast<double>(index % 7 + 1) * (index % 2 ? -1.0 : 1.0); }
inline double contribution(int rank, int64_t index) { return (rank + 1) * magnitude(index); }
// Over ranks 0 .. n-1: sum is m(i) * n(n+1)/2; max is m(i) * n where m(i) > 0 and m(i) * 1 where m(i) < 0.
inline double sum_over_ranks(int n, int64_t index) { return magnitude(index) * n * (n + 1) / 2.0; }
inline double max_over_ranks(int n, int64_t index) { return magnitude(index) > 0 ? magnitude(index) * n : magnitude(index); }

// Bool values: rank r holds true at i when i % (n + 1) == r, so the or over ranks is i % (n + 1) != n.
inline double truth(int rank, int n, int64_t index) { return index % (n + 1) == rank ? 1.0 : 0.0; }

inline Tensor make_tensor(int64_t numel, DType dtype, const std::function<double(int64_t)>& value) {
  std::vector<double> values(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) values[i] = value(i);
  return from_vector<double>(values, Shape{numel}).to(dtype);
}

inline std::vector<double> values_of(const Tensor& tensor) { return tensor.contiguous().to(kFloat64).to_vector<double>(); }

// Checks every element against expected(i); on a mismatch reports the first one.
inline void check_values(const Tensor& tensor, const std::function<double(int64_t)>& expected) {
  std::vector<double> actual = values_of(tensor);
  int64_t first_wrong = -1;
  for (int64_t i = 0; i < static_cast<int64_t>(actual.size()); ++i) {
    if (actual[i] != expected(i)) {
      first_wrong = i;
      break;
    }
  }
  if (first_wrong >= 0) {
    INFO("element " << first_wrong << " of " << actual.size() << ": got " << actual[first_wrong] << ", expected "
                    << expected(first_wrong));
    CHECK(first_wrong == -1);
  }
}

// Runs the provocation, requires that it raised a dtrain::Error on this rank within seconds (not
// a hang: every rank runs it), and returns the message.
template <typename Provocation>
std::string error_of(Provocation&& provoke) {
  auto start = std::chrono::steady_clock::now();
  std::string message;
  try {
    provoke();
  } catch (const Error& error) {
    message = error.what();
  }
  INFO("message: " << message);
  REQUIRE_FALSE(message.empty());
  REQUIRE(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  return message;
}

// Proof that the group is still in step after an error: a checked all_reduce gives the sum.
inline void require_group_still_works(ProcessGroup& group) {
  Tensor ones_everywhere = full({3}, 1.0, {.dtype = kFloat64});
  group.all_reduce(ones_everywhere)->wait();
  check_values(ones_everywhere, [&](int64_t) { return static_cast<double>(group.size()); });
}

// Sets the debug-mode checks for one scope (every rank must open it at the same point).
class CollectiveChecksScope {
 public:
  explicit CollectiveChecksScope(bool enabled) : previous_(collective_checks_enabled()) { set_collective_checks(enabled); }
  ~CollectiveChecksScope() { set_collective_checks(previous_); }
  CollectiveChecksScope(const CollectiveChecksScope&) = delete;
  CollectiveChecksScope& operator=(const CollectiveChecksScope&) = delete;

 private:
  bool previous_;
};

}  // namespace dtrain::dist::collective_testing
