#pragma once
// base ** exponent for integer dtypes, exact, with one definition for the CPU kernels and the CUDA
// kernels so both devices give the same bits. Going through pow(double, double) and truncating is
// not exact: CUDA's pow may be 2 ulp off, so 3 ** 1 once came out 2.
//
// Exponentiation by squaring in the unsigned type, so an overflowing result wraps as two's
// complement (as PyTorch's int32/int64 pow does) instead of being undefined. A negative exponent
// follows PyTorch's tensor pow: 1 ** -n is 1, (-1) ** -n is 1 or -1 by the parity of n, and every
// other base gives 0 (1 / base ** n truncated; 0 ** -n included).
#include <type_traits>

#include "core/host_device.h"

namespace dtrain {

template <typename T>
DTRAIN_HOST_DEVICE constexpr T integer_power(T base, T exponent) {
  static_assert(std::is_integral_v<T> && std::is_signed_v<T> && sizeof(T) >= sizeof(int),
                "integer_power takes int32 or int64 (narrower types would promote to int and could overflow it)");
  if (exponent < 0) {
    if (base == 1) return 1;
    if (base == -1) return exponent % 2 == 0 ? 1 : -1;
    return 0;
  }
  using Unsigned = std::make_unsigned_t<T>;
  Unsigned result = 1;
  Unsigned factor = static_cast<Unsigned>(base);
  for (Unsigned remaining = static_cast<Unsigned>(exponent); remaining != 0; remaining >>= 1) {
    if (remaining & 1u) result *= factor;
    factor *= factor;
  }
  return static_cast<T>(result);  // modulo 2^bits (C++20)
}

}  // namespace dtrain
