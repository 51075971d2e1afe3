// float16 training on the CPU with dynamic loss scaling and float32 masters: the procedure and
// the hand-computed skip pattern are in tests/support/float16_training.h; the GPU test
// (tests/cuda/test_mixed_precision_fp16.cpp) runs the same one on CUDA.
#include <catch2/catch.hpp>

#include "tests/support/float16_training.h"

using namespace dtrain;

TEST_CASE("float16 training with loss scaling and float32 masters skips exactly the overflowing steps", "[optim][scaler]") {
  test::require_float16_pattern(test::train_float16(Device::cpu()));
}
