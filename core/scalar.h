#pragma once
// Scalar: a number given to an op (a fill value, the 2 in x * 2). Kept as double or int64 so
// integer tensors keep exact values.
#include <cstdint>
#include <ostream>
#include <type_traits>

namespace dtrain {

class Scalar {
 public:
  Scalar() = default;
  template <typename T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
  Scalar(T value) {  // NOLINT: implicit, as a number literal should be
    if constexpr (std::is_floating_point_v<T>) {
      is_integral_ = false;
      floating_ = static_cast<double>(value);
    } else {
      is_integral_ = true;
      integral_ = static_cast<int64_t>(value);
    }
  }
  bool is_integral() const { return is_integral_; }
  double to_double() const { return is_integral_ ? static_cast<double>(integral_) : floating_; }
  int64_t to_int64() const { return is_integral_ ? integral_ : static_cast<int64_t>(floating_); }
  template <typename T>
  T to() const {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(to_int64());
    else return static_cast<T>(to_double());
  }

 private:
  bool is_integral_ = false;
  double floating_ = 0.0;
  int64_t integral_ = 0;
};

inline std::ostream& operator<<(std::ostream& stream, const Scalar& scalar) {
  if (scalar.is_integral()) return stream << scalar.to_int64();
  return stream << scalar.to_double();
}

}  // namespace dtrain
