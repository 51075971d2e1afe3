#pragma once
// The CUDA kernel table, registered with core when libdtrain_cuda.so loads. Its methods are spread
// over one file per kernel family (cuda/kernels/*.cu, cuda/matmul.cpp, cuda/host_transfer.cpp), as
// on the CPU. Every method runs on the tensors' device (a DeviceGuard) and queues its work on that
// device's current stream; only copies to the host and index checks wait for the device.
#include "core/backend.h"

namespace dtrain::cuda {

class CudaBackend final : public Backend {
 public:
  void fill(Tensor& out, Scalar value) override;
  void arange(Tensor& out, double start, double step) override;
  void copy(const Tensor& source, Tensor& destination) override;
  void copy_to_host(const Tensor& source, Tensor& host_destination) override;
  void copy_from_host(const Tensor& host_source, Tensor& destination) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void unary(UnaryOp op, const Tensor& a, Tensor& out, double parameter) override;
  void where(const Tensor& condition, const Tensor& a, const Tensor& b, Tensor& out) override;
  void reduce(ReductionKind op, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out) override;
  void reduce_with_index(ReductionKind op, const Tensor& input, int64_t dim, Tensor& values, Tensor& indices) override;
  void matmul(const Tensor& a, const Tensor& b, Tensor& out) override;
  void softmax(const Tensor& input, int64_t dim, bool log, Tensor& out) override;
  void softmax_backward(const Tensor& grad_output, const Tensor& output, int64_t dim, bool log,
                        Tensor& grad_input) override;
  void gather(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) override;
  void scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source) override;
  void index_select(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) override;
  void index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source) override;
  void random(RandomKind kind, RandomStream stream, double a, double b, Tensor& out) override;
};

Backend& backend();

// TF32 for float32 matmuls (core/cuda_device.h: set_allow_tf32).
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace dtrain::cuda
