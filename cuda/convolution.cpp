// CudaBackend::convolution2d and its backward through cuDNN 9's convolution API (forward,
// backward data, backward filter), NCHW, float32 / float64 / bfloat16 / float16 with float32
// accumulation (float64 in float64). Algorithms come from cuDNN's heuristics; the first
// deterministic one whose workspace fits is taken, so results repeat run to run. Float32 uses
// TF32 tensor cores only when allowed (set_allow_tf32), as matmul. convolution_support answers
// Backend::supports: without cuDNN in the build, or when cuDNN cannot start, cannot describe the
// problem or offers no algorithm one way (forward, backward data, backward filter), it declines and
// layers/conv.cpp runs its im2col path instead; the answers are cached per thread and problem.
#include "cuda/cuda_backend.h"

#include <string>

#include "core/backend.h"
#include "core/error.h"

#ifdef DTRAIN_WITH_CUDNN

#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <tuple>
#include <vector>

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
  ConvolutionSetup(const Tensor& x, const Tensor& weight, int64_t out_h, int64_t out_w, Convolution2d geometry) {
    ready_ = describe(x, weight, out_h, out_w, geometry);
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
  bool describe(const Tensor& x, const Tensor& weight, int64_t out_h, int64_t out_w, Convolution2d geometry) {
    cudnnDataType_t data, compute;
    if (!data_type(x.dtype(), data, compute)) return false;
    bool fits = true;
    const int n = as_int(x.size(0), fits), c = as_int(x.size(1), fits), h = as_int(x.size(2), fits),
              w = as_int(x.size(3), fits);
    const int o = as_int(weight.size(0), fits), k = as_int(weight.size(2), fits);
    const int oh = as_int(out_h, fits), ow = as_int(out_w, fits);
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

int64_t output_size(int64_t input, int64_t kernel, Convolution2d geometry) {
  return (input + 2 * geometry.padding - geometry.dilation * (kernel - 1) - 1) / geometry.stride + 1;
}

// The three algorithms of one problem, or the reason cuDNN has none.
struct Algorithms {
  std::string refusal;  // empty when all three were found
  cudnnConvolutionFwdAlgo_t forward{};
  cudnnConvolutionBwdDataAlgo_t backward_data{};
  cudnnConvolutionBwdFilterAlgo_t backward_filter{};
  size_t forward_bytes = 0, backward_data_bytes = 0, backward_filter_bytes = 0;
};

Algorithms find_algorithms(cudnnHandle_t handle, const ConvolutionSetup& setup) {
  Algorithms found;
  int count = 0;
  std::vector<cudnnConvolutionFwdAlgoPerf_t> forward(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  if (cudnnGetConvolutionForwardAlgorithm_v7(handle, setup.input(), setup.filter(), setup.convolution(), setup.output(),
                                             static_cast<int>(forward.size()), &count, forward.data()) !=
          CUDNN_STATUS_SUCCESS ||
      !choose(forward, count, found.forward, found.forward_bytes)) {
    found.refusal = "cuDNN offers no forward algorithm within the workspace limit";
    return found;
  }
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  if (cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, setup.filter(), setup.output(), setup.convolution(),
                                                  setup.input(), static_cast<int>(data.size()), &count,
                                                  data.data()) != CUDNN_STATUS_SUCCESS ||
      !choose(data, count, found.backward_data, found.backward_data_bytes)) {
    found.refusal = "cuDNN offers no backward-data algorithm within the workspace limit";
    return found;
  }
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
  if (cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, setup.input(), setup.output(), setup.convolution(),
                                                    setup.filter(), static_cast<int>(filter.size()), &count,
                                                    filter.data()) != CUDNN_STATUS_SUCCESS ||
      !choose(filter, count, found.backward_filter, found.backward_filter_bytes)) {
    found.refusal = "cuDNN offers no backward-filter algorithm within the workspace limit";
  }
  return found;
}

// One problem: device, dtype, the sizes of x and weight, the geometry and whether TF32 is allowed.
using ProblemKey = std::tuple<int, DType, std::array<int64_t, 6>, std::array<int64_t, 3>, bool>;

ProblemKey key_of(const Tensor& x, const Tensor& weight, Convolution2d geometry) {
  return ProblemKey(x.device().index, x.dtype(),
                    std::array<int64_t, 6>{x.size(0), x.size(1), x.size(2), x.size(3), weight.size(0), weight.size(2)},
                    std::array<int64_t, 3>{geometry.stride, geometry.padding, geometry.dilation}, tf32_matmul_allowed());
}

// Per thread, as the cuDNN handles the algorithms were found with. Never destroyed, as attention's.
std::map<ProblemKey, Algorithms>& algorithm_cache() {
  thread_local auto* cache = new std::map<ProblemKey, Algorithms>();
  return *cache;
}

// Why cuDNN's kernels cannot take x and weight as they are (before asking cuDNN), or "".
std::string shape_problem(const Tensor& x, const Tensor& weight, Convolution2d geometry) {
  if (!x.device().is_cuda() || weight.device() != x.device()) {
    return detail::concat("x and weight must be on one CUDA device, got ", x.device(), " and ", weight.device());
  }
  if (!is_floating(x.dtype()) || weight.dtype() != x.dtype()) {
    return detail::concat("x and weight must share one floating dtype, got ", x.dtype(), " and ", weight.dtype());
  }
  if (x.dim() != 4 || weight.dim() != 4 || weight.size(1) != x.size(1) || weight.size(2) != weight.size(3)) {
    return detail::concat("expected x [N, C, H, W] and weight [O, C, k, k], got ", x.shape(), " and ", weight.shape());
  }
  if (!x.is_contiguous() || !weight.is_contiguous()) return "x and weight must be contiguous";
  if (geometry.stride < 1 || geometry.padding < 0 || geometry.dilation < 1) return "a stride or dilation below 1";
  if (x.numel() == 0 || weight.numel() == 0 || output_size(x.size(2), weight.size(2), geometry) <= 0 ||
      output_size(x.size(3), weight.size(2), geometry) <= 0) {
    return "an empty input, weight or output";
  }
  return "";
}

// The algorithms cuDNN offers for the problem, found once per thread; throws when cuDNN declines,
// which the query ruled out for the entries that call this.
const Algorithms& algorithms_for(cudnnHandle_t handle, const Tensor& x, const Tensor& weight, Convolution2d geometry,
                                 const ConvolutionSetup& setup) {
  std::map<ProblemKey, Algorithms>& cache = algorithm_cache();
  const ProblemKey key = key_of(x, weight, geometry);
  auto found = cache.find(key);
  if (found == cache.end()) found = cache.emplace(key, find_algorithms(handle, setup)).first;
  return found->second;
}

}  // namespace

KernelSupport convolution_support(const Tensor& x, const Tensor& weight, Convolution2d geometry) {
  if (std::string problem = shape_problem(x, weight, geometry); !problem.empty()) return kernel_declines_case(problem);
  DeviceGuard guard(x.device().index);
  cudnnHandle_t handle = cudnn_handle(x.device().index);
  if (handle == nullptr) return kernel_declines_case(detail::concat("cuDNN could not start on ", x.device()));
  const int64_t out_h = output_size(x.size(2), weight.size(2), geometry);
  const int64_t out_w = output_size(x.size(3), weight.size(2), geometry);
  ConvolutionSetup setup(x, weight, out_h, out_w, geometry);
  if (!setup.ready()) {
    return kernel_declines_case(detail::concat("cuDNN cannot describe the convolution of ", x.shape(), " ", x.dtype(),
                                               " by ", weight.shape()));
  }
  const Algorithms& algorithms = algorithms_for(handle, x, weight, geometry, setup);
  if (!algorithms.refusal.empty()) return kernel_declines_case(algorithms.refusal);
  return kernel_takes_case();
}

void CudaBackend::convolution2d(const Tensor& x, const Tensor& weight, Convolution2d geometry, Tensor& out) {
  require_kernel_support(*this, {.kernel = FusedKernel::Convolution2d, .tensors = {x, weight}, .geometry = geometry},
                         "convolution2d");
  if (out.dim() != 4 || !out.is_contiguous() || out.size(2) != output_size(x.size(2), weight.size(2), geometry) ||
      out.size(3) != output_size(x.size(3), weight.size(2), geometry)) {
    fail("convolution2d: expected a contiguous out of the convolution's output shape, got ", out.shape());
  }
  DeviceGuard guard(x.device().index);
  cudnnHandle_t handle = cudnn_handle(x.device().index);
  ConvolutionSetup setup(x, weight, out.size(2), out.size(3), geometry);
  if (!setup.ready()) fail("convolution2d: cuDNN cannot describe on this thread a problem the query took");
  const Algorithms& algorithms = algorithms_for(handle, x, weight, geometry, setup);
  if (!algorithms.refusal.empty()) {
    fail("convolution2d: cuDNN refused on this thread a problem the query took: ", algorithms.refusal);
  }
  DTRAIN_CUDNN_CHECK(cudnnSetStream(handle, current_stream(x.device().index)));
  ScratchBuffer workspace(x.device().index, algorithms.forward_bytes);
  DTRAIN_CUDNN_CHECK(cudnnConvolutionForward(handle, setup.one(), setup.input(), x.data(), setup.filter(), weight.data(),
                                             setup.convolution(), algorithms.forward, workspace.data(),
                                             algorithms.forward_bytes, setup.zero(), setup.output(), out.data()));
}

void CudaBackend::convolution2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                                         Convolution2d geometry, Tensor& grad_x, Tensor& grad_weight) {
  require_kernel_support(*this, {.kernel = FusedKernel::Convolution2d, .tensors = {x, weight}, .geometry = geometry},
                         "convolution2d_backward");
  for (const Tensor* t : std::initializer_list<const Tensor*>{&grad_out, &grad_x, &grad_weight}) {
    if (t->defined() && (t->dim() != 4 || !t->is_contiguous())) {
      fail("convolution2d_backward: expected contiguous 4-d grad_out, grad_x and grad_weight, got ", t->shape(),
           " with strides ", strides_str(t->strides()));
    }
  }
  DeviceGuard guard(x.device().index);
  cudnnHandle_t handle = cudnn_handle(x.device().index);
  ConvolutionSetup setup(x, weight, grad_out.size(2), grad_out.size(3), geometry);
  if (!setup.ready()) fail("convolution2d_backward: cuDNN cannot describe on this thread a problem the query took");
  const Algorithms& algorithms = algorithms_for(handle, x, weight, geometry, setup);
  if (!algorithms.refusal.empty()) {
    fail("convolution2d_backward: cuDNN refused on this thread a problem the query took: ", algorithms.refusal);
  }
  DTRAIN_CUDNN_CHECK(cudnnSetStream(handle, current_stream(x.device().index)));
  ScratchBuffer workspace(x.device().index, std::max(algorithms.backward_data_bytes, algorithms.backward_filter_bytes));
  if (grad_x.defined()) {
    DTRAIN_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, setup.one(), setup.filter(), weight.data(), setup.output(),
                                                    grad_out.data(), setup.convolution(), algorithms.backward_data,
                                                    workspace.data(), algorithms.backward_data_bytes, setup.zero(),
                                                    setup.input(), grad_x.data()));
  }
  if (grad_weight.defined()) {
    DTRAIN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, setup.one(), setup.input(), x.data(), setup.output(),
                                                      grad_out.data(), setup.convolution(), algorithms.backward_filter,
                                                      workspace.data(), algorithms.backward_filter_bytes, setup.zero(),
                                                      setup.filter(), grad_weight.data()));
  }
}

}  // namespace dtrain::cuda

#else  // no cuDNN in this build: layers/conv.cpp's im2col path runs on CUDA too

namespace dtrain::cuda {

KernelSupport convolution_support(const Tensor&, const Tensor&, Convolution2d) {
  return kernel_declines_case("this build has no cuDNN (DTRAIN_WITH_CUDNN is off)");
}

void CudaBackend::convolution2d(const Tensor& x, const Tensor& weight, Convolution2d geometry, Tensor&) {
  require_kernel_support(*this, {.kernel = FusedKernel::Convolution2d, .tensors = {x, weight}, .geometry = geometry},
                         "convolution2d");
}

void CudaBackend::convolution2d_backward(const Tensor&, const Tensor& x, const Tensor& weight, Convolution2d geometry,
                                         Tensor&, Tensor&) {
  require_kernel_support(*this, {.kernel = FusedKernel::Convolution2d, .tensors = {x, weight}, .geometry = geometry},
                         "convolution2d_backward");
}

}  // namespace dtrain::cuda

#endif
