#pragma once
// The listener the Catch2 mains of the tests under mpirun register (tests/dist/dist_test_main.cpp,
// tests/dist/cuda/dist_cuda_test_main.cpp).
// Catch::TestEventListenerBase: a main's CATCH_CONFIG_RUNNER implies this; the header compiles alone.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include <cstdio>

#include "dist/init.h"

namespace dtrain::test {

// A failed assertion on one rank ends that rank's test case early, and the other ranks would
// wait in a collective it never joins (until the watchdog's timeout). Ending the whole job at the
// end of the failed test case turns that into a prompt failure; Catch has printed the failure by
// then. A main registers it with CATCH_REGISTER_LISTENER(AbortJobOnFailure), the name unqualified.
struct AbortJobOnFailure : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    if (stats.totals.assertions.failed == 0 || dtrain::dist::world_size() == 1) return;
    std::fprintf(stderr, "rank %d: test case \"%s\" failed; ending the job so the other ranks do not wait for it\n",
                 dtrain::dist::rank(), stats.testInfo.name.c_str());
    dtrain::dist::abort_job(1);
  }
};

}  // namespace dtrain::test
