// The cuBLASLt plan cache's key (cuda/lt_plan_key.h) on the host: a plan is reused only for a GEMM
// that agrees in every field the descriptors and the heuristic depend on.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_set>
#include <vector>

#include "cuda/lt_plan_key.h"

using namespace dtrain::cuda;

namespace {

LtPlanKey gpt2_weight_gradient() {
  LtPlanKey key;
  key.device = 0;
  key.m = 768;
  key.n = 3072;
  key.k = 8192;
  key.lda = 768;
  key.ldb = 3072;
  key.ldd = 768;
  key.data_type = 14;     // CUDA_R_16BF
  key.compute_type = 68;  // CUBLAS_COMPUTE_32F
  key.epilogue = 512;     // CUBLASLT_EPILOGUE_BGRADB
  key.transpose_b = true;
  key.alignment_a = key.alignment_b = key.alignment_d = key.alignment_bias = 256;
  return key;
}

}  // namespace

TEST_CASE("lt plan key: equal keys hash alike, and every field tells keys apart") {
  const LtPlanKey base = gpt2_weight_gradient();
  CHECK(base == gpt2_weight_gradient());
  CHECK(LtPlanKeyHash()(base) == LtPlanKeyHash()(gpt2_weight_gradient()));
  const std::vector<std::function<void(LtPlanKey&)>> changes{
      [](LtPlanKey& k) { k.device = 1; },         [](LtPlanKey& k) { k.m = 3072; },
      [](LtPlanKey& k) { k.n = 768; },            [](LtPlanKey& k) { k.k = 4096; },
      [](LtPlanKey& k) { k.lda = 1024; },         [](LtPlanKey& k) { k.ldb = 4096; },
      [](LtPlanKey& k) { k.ldd = 1024; },         [](LtPlanKey& k) { k.aux_ld = 3072; },
      [](LtPlanKey& k) { k.data_type = 2; },      [](LtPlanKey& k) { k.compute_type = 77; },
      [](LtPlanKey& k) { k.epilogue = 1; },       [](LtPlanKey& k) { k.transpose_a = true; },
      [](LtPlanKey& k) { k.transpose_b = false; }, [](LtPlanKey& k) { k.alignment_a = 16; },
      [](LtPlanKey& k) { k.alignment_b = 16; },   [](LtPlanKey& k) { k.alignment_d = 16; },
      [](LtPlanKey& k) { k.alignment_bias = 16; },
  };
  std::unordered_set<LtPlanKey, LtPlanKeyHash> keys{base};
  for (size_t i = 0; i < changes.size(); ++i) {
    LtPlanKey changed = base;
    changes[i](changed);
    INFO("change " << i);
    CHECK_FALSE(changed == base);
    CHECK(keys.insert(changed).second);  // a new entry: a different plan
  }
  CHECK(keys.size() == changes.size() + 1);
}

TEST_CASE("lt plan key: alignment_of is the largest power of two up to 256 dividing the address") {
  CHECK(alignment_of(reinterpret_cast<const void*>(uintptr_t{0x1000})) == 256);
  CHECK(alignment_of(reinterpret_cast<const void*>(uintptr_t{0x1010})) == 16);
  CHECK(alignment_of(reinterpret_cast<const void*>(uintptr_t{0x1002})) == 2);
  CHECK(alignment_of(reinterpret_cast<const void*>(uintptr_t{0x1001})) == 1);
}
