#include "core/parallel.h"

#include <omp.h>

#include <Eigen/Core>

#include "core/error.h"

namespace dtrain {

void set_num_threads(int threads) {
  if (threads < 1) fail("set_num_threads: expected at least 1 thread, got ", threads);
  omp_set_num_threads(threads);
  Eigen::setNbThreads(threads);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace dtrain
