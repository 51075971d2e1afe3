// Integer pow: core/integer_power.h (the one function the CPU and CUDA kernels share) against
// repeated multiplication, wrap-around included, and the tensor ops that use it.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/integer_power.h"
#include "dtrain.h"

using namespace dtrain;
using Catch::Contains;

namespace {

// base ** exponent by exponent multiplications, modulo 2^bits (unsigned arithmetic): the
// reference that exponentiation by squaring must equal.
template <typename T>
T repeated_product(T base, T exponent) {
  using Unsigned = std::make_unsigned_t<T>;
  Unsigned product = 1;
  for (T i = 0; i < exponent; ++i) product = static_cast<Unsigned>(product * static_cast<Unsigned>(base));
  return static_cast<T>(product);
}

}  // namespace

TEST_CASE("integer_power is exact where pow(double) truncated went wrong") {
  CHECK(integer_power<int32_t>(3, 1) == 3);  // the H200 gave 2 through pow(double, double)
  CHECK(integer_power<int32_t>(3, 0) == 1);
  CHECK(integer_power<int32_t>(0, 0) == 1);
  CHECK(integer_power<int32_t>(-2, 3) == -8);
  CHECK(integer_power<int32_t>(-3, 4) == 81);
  CHECK(integer_power<int64_t>(10, 18) == 1'000'000'000'000'000'000);
  CHECK(integer_power<int64_t>(3, 39) == 4'052'555'153'018'976'267);  // 3^39 < 2^63, past double's 2^53
  CHECK(integer_power<int64_t>(2, 62) == int64_t{1} << 62);
}

TEST_CASE("integer_power wraps like repeated multiplication in two's complement") {
  CHECK(integer_power<int64_t>(2, 63) == std::numeric_limits<int64_t>::min());
  CHECK(integer_power<int64_t>(2, 64) == 0);
  CHECK(integer_power<int32_t>(2, 31) == std::numeric_limits<int32_t>::min());
  for (int32_t base = -7; base <= 7; ++base) {
    for (int32_t exponent = 0; exponent <= 70; ++exponent) {
      INFO(base << " ** " << exponent);
      REQUIRE(integer_power<int32_t>(base, exponent) == repeated_product<int32_t>(base, exponent));
      REQUIRE(integer_power<int64_t>(base, exponent) == repeated_product<int64_t>(base, exponent));
    }
  }
}

TEST_CASE("integer_power with a negative exponent follows PyTorch's tensor pow") {
  CHECK(integer_power<int32_t>(1, -5) == 1);
  CHECK(integer_power<int32_t>(-1, -3) == -1);
  CHECK(integer_power<int32_t>(-1, -4) == 1);
  CHECK(integer_power<int64_t>(2, -1) == 0);
  CHECK(integer_power<int64_t>(-2, -1) == 0);
  CHECK(integer_power<int64_t>(0, -1) == 0);
  CHECK(integer_power<int32_t>(5, std::numeric_limits<int32_t>::min()) == 0);
}

TEST_CASE("pow of integer tensors computes every element exactly, tensor and scalar exponents") {
  for (DType dtype : {kInt32, kInt64}) {
    INFO(dtype);
    std::vector<int64_t> bases, exponents;
    for (int64_t base = -5; base <= 5; ++base) {
      for (int64_t exponent = -3; exponent <= 13; ++exponent) {
        bases.push_back(base);
        exponents.push_back(exponent);
      }
    }
    const Shape shape{static_cast<int64_t>(bases.size())};
    const std::vector<int64_t> got =
        pow(from_vector(bases, shape, {.dtype = kInt64}).to(dtype), from_vector(exponents, shape, {.dtype = kInt64}).to(dtype))
            .to_vector<int64_t>();
    for (size_t i = 0; i < bases.size(); ++i) {
      INFO(bases[i] << " ** " << exponents[i]);
      int64_t expected;
      if (exponents[i] >= 0) expected = repeated_product<int64_t>(bases[i], exponents[i]);
      else expected = bases[i] == 1 ? 1 : bases[i] == -1 ? (exponents[i] % 2 == 0 ? 1 : -1) : 0;
      REQUIRE(got[i] == expected);
    }
    const Tensor base_tensor = from_vector(std::vector<int64_t>{-3, -1, 0, 2, 7}, {5}, {.dtype = kInt64}).to(dtype);
    CHECK(pow(base_tensor, 3).to_vector<int64_t>() == std::vector<int64_t>{-27, -1, 0, 8, 343});
    CHECK(pow(base_tensor, 3).dtype() == dtype);
    CHECK(pow(base_tensor, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1, 1, 1});
  }
  // int32 wraps at 32 bits: 7^12 = 13841287201 = 3 * 2^32 + 956385313.
  const Tensor seven = from_vector(std::vector<int64_t>{7}, {1}, {.dtype = kInt32});
  CHECK(pow(seven, 12).to_vector<int64_t>() == std::vector<int64_t>{956385313});
}

TEST_CASE("pow of an integer tensor by a negative integer scalar raises, as in PyTorch") {
  const Tensor integers = from_vector(std::vector<int64_t>{2, 3}, {2}, {.dtype = kInt64});
  CHECK_THROWS_WITH(pow(integers, -1), Contains("expected a non-negative exponent for an integer tensor") && Contains("-1"));
  // A real exponent promotes to float32 instead.
  CHECK(pow(integers, 0.5).dtype() == kFloat32);
}
