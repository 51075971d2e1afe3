#pragma once
// The kernel table as backend_for hands it out while a profile records: a wrapper around a
// device's table that opens one op event (core/profiler_recorder.h) around each call, named for
// the op ("matmul", "add", "layer_norm"), with its input tensors' shapes and dtypes.
#include "core/backend.h"

namespace dtrain::profiler::detail {

// The wrapper of table (one per table, made at first use, alive for the program).
Backend& profiling_backend(Backend& table);

}  // namespace dtrain::profiler::detail
