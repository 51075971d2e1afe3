// Catch2's main for the GPU tests of dist (tests/dist/cuda/), which also run under mpirun: every
// rank starts dist, takes the GPU of its local rank and runs the same test cases in the same
// order. Without a usable CUDA device every rank skips (exit code 77, CTest's "skipped"), saying
// why; listing tests works anywhere.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <iostream>

#include "core/cuda_device.h"
#include "dist/init.h"
#include "tests/support/abort_job_on_failure.h"
#include "tests/support/only_listing_tests.h"

using dtrain::test::AbortJobOnFailure;
CATCH_REGISTER_LISTENER(AbortJobOnFailure)

int main(int argc, char** argv) {
  if (dtrain::test::only_listing_tests(argc, argv)) return Catch::Session().run(argc, argv);
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
