#pragma once
// TensorFragment: a contiguous run of one logical tensor's elements that one rank holds — the
// unit in which sharded state is saved and loaded. A ZeRO shard cuts tensors anywhere (a flat
// buffer is split into equal runs, whatever tensors they cross), so a rank holds, of each
// tensor, at most one run of its row-major element numbering: [begin, begin + data.numel()).
// A whole tensor is the fragment with begin 0 and every element.
//
// Saved state is named independently of how it was sharded, so a checkpoint written by N ranks
// at one ZeRO stage loads on M ranks at another (or on one process without ZeRO):
//   "model.<parameter or buffer name>"               values (fp32 masters in mixed precision)
//   "optimizer.state.<parameter name>.<state name>"  per-parameter state: exp_avg, exp_avg_sq,
//                                                    momentum_buffer, ... (shaped as the parameter)
//   "optimizer.state.<parameter name>.step"          int64, 0-d: updates applied so far
//   "optimizer.param_groups.<group>.<name>"          float64, 0-d: hyper-parameters
//   "optimizer.param_groups.<group>.params"          int64, 1-d: the group's parameter indices
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace dtrain::dist {

struct TensorFragment {
  std::string name;   // the whole tensor's name, as above
  Shape shape;        // the whole tensor's shape
  int64_t begin = 0;  // index of the first element held here, in row-major order of the whole
  Tensor data;        // 1-D and contiguous, data.dtype() is the whole tensor's dtype

  int64_t end() const { return begin + data.numel(); }
};

// Where saved state is read back from (a sharded checkpoint on disk, or tensors in memory): any
// element range of any whole tensor, whichever ranks wrote it.
class FragmentSource {
 public:
  virtual ~FragmentSource() = default;
  virtual bool contains(const std::string& name) const = 0;
  // Every whole tensor's name, sorted (optimizer state is found by its names, whatever they are).
  virtual std::vector<std::string> names() const = 0;
  // The whole tensor's shape and dtype; raise a dtrain::Error naming the tensor when absent.
  virtual Shape shape(const std::string& name) const = 0;
  virtual DType dtype(const std::string& name) const = 0;
  // Elements [begin, end) of the whole tensor in row-major order: a new 1-D contiguous CPU
  // tensor of its dtype. Raises (naming the tensor, the range and the source) when the range is
  // outside the tensor or not fully covered by what was saved.
  virtual Tensor read(const std::string& name, int64_t begin, int64_t end) const = 0;
};

}  // namespace dtrain::dist
