// Catch2's main for the GPU tests of dist (tests/dist/cuda/), which also run under mpirun: every
// rank starts dist, takes the GPU of its local rank and runs the same test cases in the same
// order. Without a usable CUDA device every rank skips (exit code 77, CTest's "skipped"), saying
// why; listing tests works anywhere.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <iostream>

#include "core/cuda_device.h"
#include "dist/init.h"

namespace {

// As tests/dist/dist_test_main.cpp: a failed test case on one rank ends the job, instead of
// leaving the other ranks waiting in a collective it never joins.
struct AbortJobOnFailure : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    if (stats.totals.assertions.failed == 0 || dtrain::dist::world_size() == 1) return;
    std::fprintf(stderr, "rank %d: test case \"%s\" failed; ending the job so the other ranks do not wait for it\n",
                 dtrain::dist::rank(), stats.testInfo.name.c_str());
    dtrain::dist::abort_job(1);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(AbortJobOnFailure)

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--list", 6) == 0 || std::strcmp(argv[i], "-l") == 0 || std::strcmp(argv[i], "-h") == 0 ||
        std::strcmp(argv[i], "--help") == 0) {
      listing = true;
    }
  }
  if (listing) return Catch::Session().run(argc, argv);
  dtrain::dist::init(&argc, &argv);
  if (!dtrain::cuda::is_available()) {
    std::cout << "SKIPPED: " << dtrain::cuda::unavailable_reason() << "\n";
    dtrain::dist::finalize();
    return 77;
  }
  dtrain::cuda::set_device(dtrain::cuda::device_for_local_rank(dtrain::dist::local_rank()).index);
  int result = Catch::Session().run(argc, argv);
  dtrain::dist::finalize();
  return result;
}
