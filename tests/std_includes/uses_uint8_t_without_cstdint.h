#pragma once
// Negative control (tests/std_includes/negative-control.sh): the bug g++ 13 found in core/device.h.
// <string> brought uint8_t along in libstdc++ 12 (and does in libc++ 14), not in libstdc++ 13;
// scripts/check-std-includes must report the missing <cstdint>. Never include this file.
#include <string>

namespace dtrain::std_includes_fixture {

enum class Colour : uint8_t { Red, Green };

inline std::string colour_name(Colour colour) { return colour == Colour::Red ? "red" : "green"; }

}  // namespace dtrain::std_includes_fixture
