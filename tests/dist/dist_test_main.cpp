// Catch2's main for the tests that run under mpirun: every rank starts dist (a world of one
// without mpirun) and runs the same test cases in the same order, so the collectives inside them
// pair up across ranks.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "dist/init.h"
#include "tests/support/abort_job_on_failure.h"

using dtrain::test::AbortJobOnFailure;
CATCH_REGISTER_LISTENER(AbortJobOnFailure)

int main(int argc, char** argv) {
  dtrain::dist::init(&argc, &argv);
  int result = Catch::Session().run(argc, argv);
  dtrain::dist::finalize();
  return result;
}
