// Catch2's main for the tests that run under mpirun: every rank starts dist (a world of one
// without mpirun) and runs the same test cases in the same order, so the collectives inside them
// pair up across ranks.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "dist/init.h"

namespace {

// A failed assertion on one rank ends that rank's test case early, and the other ranks would
// wait in a collective it never joins (until the watchdog's timeout). Ending the whole job at the
// end of the failed test case turns that into a prompt failure; Catch has printed the failure by
// then.
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
  dtrain::dist::init(&argc, &argv);
  int result = Catch::Session().run(argc, argv);
  dtrain::dist::finalize();
  return result;
}
