#include "layers/pooling.h"

#include <limits>

#include "core/ops/reduce.h"
#include "layers/conv.h"

namespace dtrain {

Tensor max_pool2d(const Tensor& x, int64_t kernel_size, int64_t stride, int64_t padding) {
  check_defined(x, "max_pool2d", "x");
  if (!is_floating(x.dtype())) fail("max_pool2d: expected a floating tensor, got ", x.dtype());
  if (padding * 2 > kernel_size) {
    fail("max_pool2d: expected padding at most half the kernel, got padding ", padding, " for kernel ", kernel_size);
  }
  const Window2d window{.kernel = kernel_size, .stride = stride, .padding = padding};
  // [N, C, k*k, OH, OW] -> max over the window dim.
  return max(sliding_windows(x, window, -std::numeric_limits<double>::infinity()), 2).values;
}

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding)
    : Module("MaxPool2d"), kernel_size_(kernel_size), stride_(stride == 0 ? kernel_size : stride), padding_(padding) {
  if (kernel_size <= 0 || stride_ <= 0 || padding < 0) {
    fail("MaxPool2d: expected positive kernel_size and stride and non-negative padding, got kernel_size ", kernel_size,
         ", stride ", stride, ", padding ", padding);
  }
}

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel_size_, stride_, padding_); }

}  // namespace dtrain
