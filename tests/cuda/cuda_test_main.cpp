// Catch2's main for the GPU tests: without a usable CUDA device the whole executable is skipped
// (exit code 77, which CTest reports as skipped), saying why. Listing tests works anywhere, so
// CTest's test discovery does not need a GPU.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <iostream>

#include "core/cuda_device.h"
#include "tests/support/only_listing_tests.h"

int main(int argc, char** argv) {
  if (!dtrain::test::only_listing_tests(argc, argv) && !dtrain::cuda::is_available()) {
    std::cout << "SKIPPED: " << dtrain::cuda::unavailable_reason() << "\n";
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
