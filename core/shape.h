#pragma once
// Shape: the sizes of a tensor's dimensions. A std::vector<int64_t> with a name, so messages
// can print it ("[2, 3]") and helpers can take it.
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

namespace dtrain {

class Shape : public std::vector<int64_t> {
 public:
  using std::vector<int64_t>::vector;
  Shape() = default;
  Shape(const std::vector<int64_t>& sizes) : std::vector<int64_t>(sizes) {}  // NOLINT
  int64_t numel() const;
  std::string str() const;
};

using Strides = std::vector<int64_t>;

std::ostream& operator<<(std::ostream& stream, const Shape& shape);
std::string strides_str(const Strides& strides);

Strides contiguous_strides(const Shape& shape);
// NumPy broadcasting of two shapes; raises naming both shapes and the op when they don't fit.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Maps a possibly negative dim into [0, ndim); raises naming the op, the dim and the rank.
int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op);

}  // namespace dtrain
