// Catch2's main for the GPU tests: without a usable CUDA device the whole executable is skipped
// (exit code 77, which CTest reports as skipped), saying why. Listing tests works anywhere, so
// CTest's test discovery does not need a GPU.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstring>
#include <iostream>

#include "core/cuda_device.h"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--list", 6) == 0 || std::strcmp(argv[i], "-l") == 0 || std::strcmp(argv[i], "-h") == 0 ||
        std::strcmp(argv[i], "--help") == 0) {
      listing = true;
    }
  }
  if (!listing && !dtrain::cuda::is_available()) {
    std::cout << "SKIPPED: " << dtrain::cuda::unavailable_reason() << "\n";
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
