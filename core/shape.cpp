#include "core/shape.h"

#include <algorithm>
#include <cstddef>
#include <sstream>

#include "core/error.h"

namespace dtrain {

int64_t Shape::numel() const {
  // A zero size anywhere makes the count 0, even after sizes whose product overflows int64.
  if (std::find(begin(), end(), int64_t{0}) != end()) return 0;
  int64_t count = 1;
  for (int64_t size : *this) {
    if (__builtin_mul_overflow(count, size, &count)) fail("shape ", *this, " has more elements than int64 can count");
  }
  return count;
}

std::string Shape::str() const {
  std::ostringstream stream;
  stream << '[';
  for (size_t i = 0; i < size(); ++i) stream << (i ? ", " : "") << (*this)[i];
  stream << ']';
  return stream.str();
}

std::ostream& operator<<(std::ostream& stream, const Shape& shape) { return stream << shape.str(); }

std::string strides_str(const Strides& strides) { return Shape(strides).str(); }

Strides contiguous_strides(const Shape& shape) {
  Strides strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    // Zero sizes count as 1, so an empty shape's other sizes can still overflow (a damaged file's).
    if (i > 0 && __builtin_mul_overflow(stride, shape[i] > 0 ? shape[i] : 1, &stride)) {
      fail("shape ", shape, " is too large: its strides do not fit int64");
    }
  }
  return strides;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t ndim = std::max(a.size(), b.size());
  Shape out(ndim);
  for (size_t i = 0; i < ndim; ++i) {
    int64_t size_a = i < ndim - a.size() ? 1 : a[i - (ndim - a.size())];
    int64_t size_b = i < ndim - b.size() ? 1 : b[i - (ndim - b.size())];
    if (size_a != size_b && size_a != 1 && size_b != 1) {
      fail(op, ": shapes ", a, " and ", b, " cannot be broadcast together (dimension ", i,
           " is ", size_a, " vs ", size_b, ")");
    }
    out[i] = size_a == 1 ? size_b : size_a;
  }
  return out;
}

int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t lowest = ndim == 0 ? -1 : -ndim;
  int64_t highest = ndim == 0 ? 0 : ndim - 1;
  if (dim < lowest || dim > highest) {
    fail(op, ": dimension ", dim, " is out of range for a tensor of rank ", ndim, " (expected ",
         lowest, " to ", highest, ")");
  }
  return dim < 0 ? dim + std::max<int64_t>(ndim, 1) : dim;
}

}  // namespace dtrain
