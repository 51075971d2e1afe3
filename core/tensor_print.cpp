// Printing: values laid out like PyTorch's, with long dims summarised as "...".
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/tensor.h"

namespace dtrain {
namespace {

constexpr int64_t kSummariseAbove = 1000;  // elements
constexpr int64_t kEdgeItems = 3;

struct Printer {
  std::vector<double> values;
  Shape shape;
  Strides strides;
  bool floating;
  bool summarise;
  std::ostringstream out;

  void number(double value) {
    if (!floating) {
      out << static_cast<int64_t>(value);
    } else if (std::isnan(value) || std::isinf(value)) {
      out << value;
    } else {
      out << std::fixed << std::setprecision(4) << value;
    }
  }

  void dimension(size_t d, int64_t offset, int indent) {
    if (d == shape.size()) {
      number(values[static_cast<size_t>(offset)]);
      return;
    }
    out << '[';
    int64_t size = shape[d];
    for (int64_t i = 0; i < size; ++i) {
      if (summarise && size > 2 * kEdgeItems && i == kEdgeItems) {
        out << "...";
        i = size - kEdgeItems - 1;
        out << (d + 1 == shape.size() ? ", " : ",\n" + std::string(static_cast<size_t>(indent + 1), ' '));
        continue;
      }
      dimension(d + 1, offset + i * strides[d], indent + 1);
      if (i + 1 < size) {
        if (d + 1 == shape.size()) out << ", ";
        else out << ',' << std::string(shape.size() - d - 1, '\n') << std::string(static_cast<size_t>(indent + 1), ' ');
      }
    }
    out << ']';
  }
};

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  Printer printer;
  printer.shape = shape();
  printer.strides = contiguous_strides(shape());
  printer.floating = is_floating(dtype());
  printer.summarise = numel() > kSummariseAbove;
  if (!storage()->is_resident()) {
    printer.out << "tensor(<released>";
  } else {
    NoGradGuard no_grad;
    printer.values = to_vector<double>();
    printer.out << "tensor(";
    printer.dimension(0, 0, 7);
  }
  printer.out << ", shape=" << shape() << ", dtype=" << dtype() << ", device=" << device();
  if (grad_fn()) printer.out << ", grad_fn=" << grad_fn()->name();
  else if (requires_grad()) printer.out << ", requires_grad=true";
  printer.out << ')';
  return printer.out.str();
}

std::ostream& operator<<(std::ostream& stream, const Tensor& tensor) { return stream << tensor.str(); }

}  // namespace dtrain
