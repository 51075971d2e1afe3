#pragma once
// Intra-op threads (OpenMP): elementwise loops, reductions and GEMM use up to this many.

namespace dtrain {

void set_num_threads(int threads);
int num_threads();

}  // namespace dtrain
