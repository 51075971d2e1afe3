#pragma once
// What one cuBLASLt GEMM plan depends on: shapes, leading dims, types, transposes, the epilogue, the
// operands' alignment (the heuristic picks kernels by it) and the device. Plain integers (the
// cuBLASLt enums cast), so the key is built and tested on the host without CUDA.
#include <cstddef>
#include <cstdint>
#include <functional>

namespace dtrain::cuda {

struct LtPlanKey {
  int device = 0;
  int64_t m = 0, n = 0, k = 0;  // D [m, n] = op(A) [m, k] @ op(B) [k, n], column-major
  int64_t lda = 0, ldb = 0, ldd = 0;
  int64_t aux_ld = 0;          // leading dim of the epilogue's auxiliary matrix; 0 without one
  int data_type = 0;           // cudaDataType_t of A, B and D
  int compute_type = 0;        // cublasComputeType_t
  int epilogue = 0;            // cublasLtEpilogue_t
  bool transpose_a = false;
  bool transpose_b = false;
  uint32_t alignment_a = 0, alignment_b = 0, alignment_d = 0, alignment_bias = 0;  // bytes

  bool operator==(const LtPlanKey&) const = default;
};

struct LtPlanKeyHash {
  size_t operator()(const LtPlanKey& key) const {
    size_t h = 0;
    auto mix = [&h](int64_t value) {
      h ^= std::hash<int64_t>()(value) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    };
    for (int64_t value : {int64_t{key.device}, key.m, key.n, key.k, key.lda, key.ldb, key.ldd, key.aux_ld,
                          int64_t{key.data_type}, int64_t{key.compute_type}, int64_t{key.epilogue},
                          int64_t{key.transpose_a}, int64_t{key.transpose_b}, int64_t{key.alignment_a},
                          int64_t{key.alignment_b}, int64_t{key.alignment_d}, int64_t{key.alignment_bias}}) {
      mix(value);
    }
    return h;
  }
};

// The largest power of two up to 256 that divides the address (cuBLASLt assumes 256 unless told).
inline uint32_t alignment_of(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

}  // namespace dtrain::cuda
