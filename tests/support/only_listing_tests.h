#pragma once
// For the Catch2 mains that skip or start MPI before running (tests/cuda/cuda_test_main.cpp,
// tests/dist/cuda/dist_cuda_test_main.cpp).
#include <cstring>

namespace dtrain::test {

// Whether Catch is only asked to list or describe the tests: that works anywhere (CTest's test
// discovery runs it on machines without a GPU and without mpirun).
inline bool only_listing_tests(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--list", 6) == 0 || std::strcmp(argv[i], "-l") == 0 || std::strcmp(argv[i], "-h") == 0 ||
        std::strcmp(argv[i], "--help") == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace dtrain::test
