#pragma once
// ParameterBuckets: the model averagers' view of the parameters as a few flat buffers, each
// holding the parameters of one dtype and device back to back, so that averaging a model costs a
// few large collectives instead of one small one per tensor (as DDP's gradient buckets).
//
// The buffers are copies: pack() copies the parameters in, unpack() copies the buffers back out.
// The parameters stay separate tensors that the optimizer and autograd own; the copy is cheap next
// to the communication the averagers exist to make rare.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace dtrain::dist {

class ParameterBuckets {
 public:
  // Buckets cut by dist/bucket_assignment.h from sizes and dtypes alone, so every rank with the
  // same parameters cuts the same buckets. A cap of 0 gives every parameter a bucket of its own.
  // Raises when a parameter is undefined.
  ParameterBuckets(std::vector<Tensor> parameters, size_t bucket_cap_bytes, const char* who);

  size_t bucket_count() const { return buffers_.size(); }
  const std::vector<Tensor>& buffers() const { return buffers_; }
  const std::vector<Tensor>& parameters() const { return parameters_; }
  int64_t element_count() const;

  // Parameters -> buffers, and back.
  void pack();
  void unpack();

 private:
  struct Slot {
    size_t parameter = 0;
    size_t bucket = 0;
    Tensor view;  // the parameter's place in its bucket's buffer, shaped like the parameter
  };

  std::vector<Tensor> parameters_;
  std::vector<Tensor> buffers_;
  std::vector<Slot> slots_;
};

}  // namespace dtrain::dist
