#pragma once
// Negative control (tests/std_includes/negative-control.sh): compiles only where its includer
// included core/tensor.h first. scripts/check-std-includes compiles every header alone and must
// report it. Never include this file.

namespace dtrain::std_includes_fixture {

inline bool is_empty(const Tensor& tensor) { return tensor.numel() == 0; }

}  // namespace dtrain::std_includes_fixture
