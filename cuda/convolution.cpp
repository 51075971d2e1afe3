// CudaBackend::convolution2d and its backward through cuDNN 9's convolution API (forward,
// backward data, backward filter), NCHW, float32 / float64 / bfloat16 / float16 with float32
// accumulation (float64 in float64). Algorithms come from cuDNN's heuristics; the first
// deterministic one whose workspace fits is taken, so results repeat run to run. Float32 uses
// TF32 tensor cores only when allowed (set_allow_tf32), as matmul. Without cuDNN in the build, or
// when cuDNN cannot start or offers no algorithm, these return false and layers/conv.cpp runs its
// im2col path instead.
#include "cuda/cuda_backend.h"

#ifdef DTRAIN_WITH_CUDNN

#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "cuda/caching_allocator.h"
#include "cuda/cudnn_handle.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

constexpr size_t kMaxWorkspaceBytes = size_t{256} << 20;

void check_cudnn(cudnnStatus_t status, const char* call) {
  if (status != CUDNN_STATUS_SUCCESS) fail("cuDNN call ", call, " failed: ", cudnnGetErrorString(status));
}
#define DTRAIN_CUDNN_CHECK(call) check_cudnn((call), #call)
// Describing the problem may fail for a case cuDNN does not take: then decline, do not raise.
#define DTRAIN_CUDNN_OR_DECLINE(call)                 \
  do {                                                 \
    if ((call) != CUDNN_STATUS_SUCCESS) return false;  \
  } while (0)

bool data_type(DType dtype, cudnnDataType_t& data, cudnnDataType_t& compute) {
  switch (dtype) {
    case DType::Float32: data = CUDNN_DATA_FLOAT; compute = CUDNN_DATA_FLOAT; return true;
    case DType::Float64: data = CUDNN_DATA_DOUBLE; compute = CUDNN_DATA_DOUBLE; return true;
    case DType::BFloat16: data = CUDNN_DATA_BFLOAT16; compute = CUDNN_DATA_FLOAT; return true;
    case DType::Float16: data = CUDNN_DATA_HALF; compute = CUDNN_DATA_FLOAT; return true;
    default: return false;
  }
}

int as_int(int64_t value, bool& fits) {
  if (value < 0 || value > INT32_MAX) fits = false;
  return static_cast<int>(value);
}

// The descriptors of one convolution, destroyed with it.
class ConvolutionSetup {
 public:
  ConvolutionSetup(const Tensor& x, const Tensor& weight, const Tensor& out, Convolution2d geometry) {
    ready_ = describe(x, weight, out, geometry);
  }
  ~ConvolutionSetup() {
    if (convolution_ != nullptr) cudnnDestroyConvolutionDescriptor(convolution_);
    if (filter_ != nullptr) cudnnDestroyFilterDescriptor(filter_);
    if (output_ != nullptr) cudnnDestroyTensorDescriptor(output_);
    if (input_ != nullptr) cudnnDestroyTensorDescriptor(input_);
  }
  ConvolutionSetup(const ConvolutionSetup&) = delete;
  ConvolutionSetup& operator=(const ConvolutionSetup&) = delete;

  bool ready() const { return ready_; }
  cudnnTensorDescriptor_t input() const { return input_; }
  cudnnTensorDescriptor_t output() const { return output_; }
  cudnnFilterDescriptor_t filter() const { return filter_; }
  cudnnConvolutionDescriptor_t convolution() const { return convolution_; }
  // alpha = 1, beta = 0 in the scaling type cuDNN expects (double for double data, else float).
  const void* one() const { return double_scale_ ? static_cast<const void*>(&one_double_) : &one_float_; }
  const void* zero() const { return double_scale_ ? static_cast<const void*>(&zero_double_) : &zero_float_; }

 private:
  bool describe(const Tensor& x, const Tensor& weight, const Tensor& out, Convolution2d geometry) {
    cudnnDataType_t data, compute;
    if (!data_type(x.dtype(), data, compute)) return false;
    bool fits = true;
    const int n = as_int(x.size(0), fits), c = as_int(x.size(1), fits), h = as_int(x.size(2), fits),
              w = as_int(x.size(3), fits);
    const int o = as_int(weight.size(0), fits), k = as_int(weight.size(2), fits);
    const int oh = as_int(out.size(2), fits), ow = as_int(out.size(3), fits);
    const int stride = as_int(geometry.stride, fits), padding = as_int(geometry.padding, fits),
              dilation = as_int(geometry.dilation, fits);
    if (!fits) return false;
    DTRAIN_CUDNN_OR_DECLINE(cudnnCreateTensorDescriptor(&input_));
    DTRAIN_CUDNN_OR_DECLINE(cudnnCreateTensorDescriptor(&output_));
    DTRAIN_CUDNN_OR_DECLINE(cudnnCreateFilterDescriptor(&filter_));
    DTRAIN_CUDNN_OR_DECLINE(cudnnCreateConvolutionDescriptor(&convolution_));
    DTRAIN_CUDNN_OR_DECLINE(cudnnSetTensor4dDescriptor(input_, CUDNN_TENSOR_NCHW, data, n, c, h, w));
    DTRAIN_CUDNN_OR_DECLINE(cudnnSetTensor4dDescriptor(output_, CUDNN_TENSOR_NCHW, data, n, o, oh, ow));
    DTRAIN_CUDNN_OR_DECLINE(cudnnSetFilter4dDescriptor(filter_, data, CUDNN_TENSOR_NCHW, o, c, k, k));
    DTRAIN_CUDNN_OR_DECLINE(cudnnSetConvolution2dDescriptor(convolution_, padding, padding, stride, stride, dilation, dilation,
                                                       CUDNN_CROSS_CORRELATION, compute));
    // Float32: plain FMA unless TF32 is allowed; the 16-bit types: tensor cores.
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    if (x.dtype() == kFloat32) math = tf32_matmul_allowed() ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
    if (x.dtype() == kBFloat16 || x.dtype() == kFloat16) math = CUDNN_TENSOR_OP_MATH;
    DTRAIN_CUDNN_OR_DECLINE(cudnnSetConvolutionMathType(convolution_, math));
    double_scale_ = x.dtype() == kFloat64;
    return true;
  }

  bool ready_ = false;
  bool double_scale_ = false;
  float one_float_ = 1.0f, zero_float_ = 0.0f;
  double one_double_ = 1.0, zero_double_ = 0.0;
  cudnnTensorDescriptor_t input_ = nullptr;
  cudnnTensorDescriptor_t output_ = nullptr;
  cudnnFilterDescriptor_t filter_ = nullptr;
  cudnnConvolutionDescriptor_t convolution_ = nullptr;
};

// The first usable deterministic algorithm of cuDNN's ranked list (else the first usable one);
// false when none.
template <typename Perf, typename Algorithm>
bool choose(const std::vector<Perf>& ranked, int count, Algorithm& algorithm, size_t& workspace) {
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < count; ++i) {
      const Perf& perf = ranked[static_cast<size_t>(i)];
      if (perf.status != CUDNN_STATUS_SUCCESS || perf.memory > kMaxWorkspaceBytes) continue;
      if (pass == 0 && perf.determinism != CUDNN_DETERMINISTIC) continue;
      algorithm = perf.algo;
      workspace = perf.memory;
      return true;
    }
  }
  return false;
}

bool usable(const Tensor& tensor) { return tensor.dim() == 4 && tensor.is_contiguous(); }

}  // namespace

bool CudaBackend::convolution2d(const Tensor& x, const Tensor& weight, Convolution2d geometry, Tensor& out) {
  if (!usable(x) || !usable(weight) || !usable(out) || x.numel() == 0 || out.numel() == 0) return false;
  DeviceGuard guard(x.device().index);
  const cudaStream_t stream = current_stream(x.device().index);
  cudnnHandle_t handle = cudnn_handle(x.device().index);
  if (handle == nullptr) return false;  // cuDNN cannot start here: the im2col path instead
  ConvolutionSetup setup(x, weight, out, geometry);
  if (!setup.ready()) return false;
  DTRAIN_CUDNN_OR_DECLINE(cudnnSetStream(handle, stream));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> ranked(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  int count = 0;
  DTRAIN_CUDNN_OR_DECLINE(cudnnGetConvolutionForwardAlgorithm_v7(handle, setup.input(), setup.filter(), setup.convolution(),
                                                            setup.output(), static_cast<int>(ranked.size()), &count,
                                                            ranked.data()));
  cudnnConvolutionFwdAlgo_t algorithm{};
  size_t workspace_bytes = 0;
  if (!choose(ranked, count, algorithm, workspace_bytes)) return false;
  ScratchBuffer workspace(x.device().index, workspace_bytes);
  DTRAIN_CUDNN_CHECK(cudnnConvolutionForward(handle, setup.one(), setup.input(), x.data(), setup.filter(), weight.data(),
                                             setup.convolution(), algorithm, workspace.data(), workspace_bytes,
                                             setup.zero(), setup.output(), out.data()));
  return true;
}

bool CudaBackend::convolution2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                                         Convolution2d geometry, Tensor& grad_x, Tensor& grad_weight) {
  if (!usable(grad_out) || !usable(x) || !usable(weight) || (grad_x.defined() && !usable(grad_x)) ||
      (grad_weight.defined() && !usable(grad_weight))) {
    return false;
  }
  DeviceGuard guard(x.device().index);
  const cudaStream_t stream = current_stream(x.device().index);
  cudnnHandle_t handle = cudnn_handle(x.device().index);
  if (handle == nullptr) return false;
  ConvolutionSetup setup(x, weight, grad_out, geometry);
  if (!setup.ready()) return false;
  DTRAIN_CUDNN_OR_DECLINE(cudnnSetStream(handle, stream));
  // Both algorithms are chosen before anything runs, so a decline leaves nothing half done.
  cudnnConvolutionBwdDataAlgo_t data_algorithm{};
  cudnnConvolutionBwdFilterAlgo_t filter_algorithm{};
  size_t data_bytes = 0, filter_bytes = 0;
  if (grad_x.defined()) {
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> ranked(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
    int count = 0;
    DTRAIN_CUDNN_OR_DECLINE(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, setup.filter(), setup.output(),
                                                                   setup.convolution(), setup.input(),
                                                                   static_cast<int>(ranked.size()), &count, ranked.data()));
    if (!choose(ranked, count, data_algorithm, data_bytes)) return false;
  }
  if (grad_weight.defined()) {
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> ranked(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
    int count = 0;
    DTRAIN_CUDNN_OR_DECLINE(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, setup.input(), setup.output(),
                                                                     setup.convolution(), setup.filter(),
                                                                     static_cast<int>(ranked.size()), &count,
                                                                     ranked.data()));
    if (!choose(ranked, count, filter_algorithm, filter_bytes)) return false;
  }
  ScratchBuffer workspace(x.device().index, std::max(data_bytes, filter_bytes));
  if (grad_x.defined()) {
    DTRAIN_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, setup.one(), setup.filter(), weight.data(), setup.output(),
                                                    grad_out.data(), setup.convolution(), data_algorithm,
                                                    workspace.data(), data_bytes, setup.zero(), setup.input(),
                                                    grad_x.data()));
  }
  if (grad_weight.defined()) {
    DTRAIN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, setup.one(), setup.input(), x.data(), setup.output(),
                                                      grad_out.data(), setup.convolution(), filter_algorithm,
                                                      workspace.data(), filter_bytes, setup.zero(), setup.filter(),
                                                      grad_weight.data()));
  }
  return true;
}

}  // namespace dtrain::cuda

#else  // no cuDNN in this build: layers/conv.cpp's im2col path runs on CUDA too

namespace dtrain::cuda {

bool CudaBackend::convolution2d(const Tensor&, const Tensor&, Convolution2d, Tensor&) { return false; }

bool CudaBackend::convolution2d_backward(const Tensor&, const Tensor&, const Tensor&, Convolution2d, Tensor&, Tensor&) {
  return false;
}

}  // namespace dtrain::cuda

#endif
