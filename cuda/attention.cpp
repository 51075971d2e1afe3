// CudaBackend::attention and attention_backward: causal scaled-dot-product attention on cuDNN's
// fused flash-attention kernels, reached through the backend (graph) API. cuDNN has no single
// "attention" call in the versions we target; it recognises its fused pattern in an operation
// graph, the one cuda/attention_graphs.h describes.
//
// lse is the forward graph's softmax statistics as they are: stats = max + log(sum exp(S - max))
// over the visible columns of S = scale * q k^T, the natural-log log-sum-exp the kernel table asks
// for (the backward graph recomputes P = exp(S - stats) from it). The backward's float32 row dots
// and dQ accumulator live after cuDNN's workspace in one scratch buffer of the caching allocator.
//
// Plans are found once per problem (device, dtype, B, H, T, D and the input strides, forward or
// backward) and cached per thread with the thread's cuDNN handle; a decline is cached too, with its
// reason. The scale and the mask's fill value are by-value operands given at each run, so one plan
// serves every scale. Backend::supports (attention_support) builds both the forward and the backward
// plan (for contiguous out and grad_out, as layers/attention.cpp passes them): anything cuDNN
// refuses there declines the case, reason kept for last_attention_decline_reason(). The entries
// raise for a case it declined, and a failure while running raises.
#include "cuda/attention.h"

#include <string>
#include <utility>

#include "core/backend.h"
#include "cuda/cuda_backend.h"

namespace dtrain::cuda {
namespace {
std::string& decline_reason() {
  thread_local std::string reason;
  return reason;
}
}  // namespace

std::string last_attention_decline_reason() { return decline_reason(); }

}  // namespace dtrain::cuda

#ifdef DTRAIN_WITH_CUDNN

#include <cudnn.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "cuda/attention_graphs.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/cudnn_graph.h"
#include "cuda/cudnn_handle.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

using namespace attention_graphs;
using cudnn_graph::GraphBuilder;
using cudnn_graph::Plan;

KernelSupport decline(std::string reason) {
  decline_reason() = reason;
  return kernel_declines_case(std::move(reason));
}

struct CacheEntry {
  std::optional<Plan> plan;  // empty: declined
  std::string decline_reason;
};

// Per thread, as the cuDNN handles the plans were built with. Never destroyed: plans may hold GPU
// resources and the driver may be gone when threads and statics end.
std::map<Problem, CacheEntry>& plan_cache() {
  thread_local auto* cache = new std::map<Problem, CacheEntry>();
  return *cache;
}

std::string describe(const Problem& p) {
  return detail::concat(p.backward ? "backward" : "forward", " (B ", p.batch, ", H ", p.heads, ", T ", p.tokens,
                        ", D ", p.head_size, ", ", p.dtype, ", cuDNN ", cudnnGetVersion(), ")");
}

CacheEntry build(const Problem& p, cudnnHandle_t handle) {
  std::string refusals;
  for (IndexMath math : {IndexMath::Float, IndexMath::Int32}) {
    GraphBuilder graph;
    if (p.backward) {
      describe_backward(graph, p, math);
    } else {
      describe_forward(graph, p, math);
    }
    std::optional<Plan> plan = graph.build_plan(handle);
    if (plan) return {std::move(plan), ""};
    refusals += detail::concat(refusals.empty() ? "" : " | ", math == IndexMath::Float ? "float" : "int32",
                               " mask indices: ", graph.failure());
  }
  return {std::nullopt, detail::concat("cuDNN declined the fused attention ", describe(p), ": ", refusals)};
}

const CacheEntry& plan_for(const Problem& problem, cudnnHandle_t handle) {
  std::map<Problem, CacheEntry>& cache = plan_cache();
  auto found = cache.find(problem);
  if (found == cache.end()) found = cache.emplace(problem, build(problem, handle)).first;
  return found->second;
}

// The tensor's strides with those of size-1 dims replaced by the packed value: they never move
// the address, and cuDNN checks every stride's alignment.
Strides4 strides_of(const Tensor& t) {
  Strides4 strides{t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
  for (int d = 2; d >= 0; --d) {
    if (t.size(d) == 1) strides[d] = strides[d + 1] * t.size(d + 1);
  }
  return strides;
}

bool aligned(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data()) % 16 == 0; }

// Empty when the fused kernels can read the 4-d tensor as it is laid out, else why not: rows of D
// contiguous values, and addresses and strides on 16 bytes (the kernels' vector loads).
std::string layout_problem(const Tensor& t, const char* name) {
  const Strides4 strides = strides_of(t);
  if (strides[3] != 1) return detail::concat(name, "'s last dim has stride ", strides[3], ", not 1");
  for (int d = 0; d < 3; ++d) {
    if (strides[d] % 8 != 0) {
      return detail::concat(name, "'s strides ", strides_str(t.strides()), " are not all multiples of 16 bytes");
    }
  }
  if (!aligned(t)) return detail::concat(name, "'s address is not 16-byte aligned");
  return "";
}

int compute_capability_major(int device) {
  thread_local std::array<int, kMaxDevices> majors{};
  if (majors[device] == 0) {
    DTRAIN_CUDA_CHECK(cudaDeviceGetAttribute(&majors[device], cudaDevAttrComputeCapabilityMajor, device));
  }
  return majors[device];
}

// Empty when the fused kernels may take q, k, v, else why not. Builds no cuDNN graph.
std::string unsupported(const Tensor& q, const Tensor& k, const Tensor& v) {
  if (q.dtype() != kBFloat16 && q.dtype() != kFloat16) {
    return detail::concat("dtype ", q.dtype(), ": the fused kernels take bfloat16 and float16 only");
  }
  if (k.dtype() != q.dtype() || v.dtype() != q.dtype()) return "q, k and v differ in dtype";
  if (q.dim() != 4 || k.shape() != q.shape() || v.shape() != q.shape()) {
    return detail::concat("q, k, v must be [B, H, T, D] alike, got ", q.shape(), ", ", k.shape(), ", ", v.shape());
  }
  if (!q.device().is_cuda() || k.device() != q.device() || v.device() != q.device()) {
    return "q, k and v must be on one CUDA device";
  }
  const int64_t tokens = q.size(2), head_size = q.size(3);
  if (q.numel() == 0) return "empty input";
  if (head_size % 8 != 0 || head_size > 128) {
    return detail::concat("head size ", head_size, ": the fused kernels take multiples of 8 up to 128");
  }
  if (tokens < 2) return "a single token: cuDNN's fused backward does not take T = 1";
  for (const auto& [t, name] : {std::pair{&q, "q"}, std::pair{&k, "k"}, std::pair{&v, "v"}}) {
    std::string problem = layout_problem(*t, name);
    if (!problem.empty()) return problem;
  }
  const int major = compute_capability_major(q.device().index);
  if (major < 8) return detail::concat("compute capability ", major, ".x: the fused kernels need 8.0 or newer");
  const size_t version = cudnnGetVersion();
  if (version == 91000 || version == 91001) return "cuDNN 9.10.0 and 9.10.1 have known bugs in fused attention";
  // Up to 9.15 the fused backward needs a padding-mask workaround when T is not a multiple of 128.
  if (version <= 91500 && tokens % 128 != 0) {
    return detail::concat("cuDNN ", version, " needs T a multiple of 128 for the fused backward, T is ", tokens);
  }
  return "";
}

Problem problem_of(bool backward, const Tensor& q, const Tensor& k, const Tensor& v) {
  Problem p;
  p.backward = backward;
  p.device = q.device().index;
  p.dtype = q.dtype();
  p.batch = q.size(0);
  p.heads = q.size(1);
  p.tokens = q.size(2);
  p.head_size = q.size(3);
  p.q = strides_of(q);
  p.k = strides_of(k);
  p.v = strides_of(v);
  return p;
}

// A contiguous, aligned copy when the tensor's layout is one the kernels cannot read.
Tensor readable(const Tensor& t, const char* name) {
  if (layout_problem(t, name).empty()) return t;
  NoGradGuard no_grad;
  Tensor copy = empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
  copy.copy_(t);
  return copy;
}

size_t round_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

// The causal mask's fill: -inf from cuDNN 9.10 on, the lowest float before (what cuDNN's frontend
// passes to each version).
float mask_fill() {
  return cudnnGetVersion() >= 91000 ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::lowest();
}

void set_stream(cudnnHandle_t handle, int device) {
  const cudnnStatus_t status = cudnnSetStream(handle, current_stream(device));
  if (status != CUDNN_STATUS_SUCCESS) fail("cuDNN call ", cudnn_graph::describe_failure(status, "cudnnSetStream"));
}

// The strides of a contiguous [B, H, T, D] tensor, as strides_of gives them.
Strides4 contiguous_strides(const Tensor& q) {
  const int64_t d = q.size(3), t = q.size(2), h = q.size(1);
  return Strides4{h * t * d, t * d, d, 1};
}

}  // namespace

KernelSupport attention_support(const Tensor& q, const Tensor& k, const Tensor& v) {
  decline_reason().clear();
  if (std::string problem = unsupported(q, k, v); !problem.empty()) return decline(problem);
  const int device = q.device().index;
  DeviceGuard guard(device);
  cudnnHandle_t handle = cudnn_handle(device);
  if (handle == nullptr) return decline(detail::concat("cuDNN could not start on cuda:", device));
  const CacheEntry& forward = plan_for(problem_of(false, q, k, v), handle);
  if (!forward.plan) return decline(forward.decline_reason);
  Problem backward = problem_of(true, q, k, v);
  backward.out = contiguous_strides(q);
  backward.grad_out = contiguous_strides(q);
  const CacheEntry& entry = plan_for(backward, handle);
  if (!entry.plan) return decline(entry.decline_reason);
  return kernel_takes_case();
}

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, Tensor& out, Tensor& lse) {
  require_kernel_support(*this, {.kernel = FusedKernel::Attention, .tensors = {q, k, v}}, "attention");
  const Shape rows_shape{q.size(0), q.size(1), q.size(2)};
  if (out.shape() != q.shape() || out.dtype() != q.dtype() || !out.is_contiguous() || out.device() != q.device() ||
      !aligned(out)) {
    fail("attention: expected out contiguous and aligned ", q.shape(), " ", q.dtype(), " on ", q.device(), ", got ",
         out.shape(), " ", out.dtype(), " on ", out.device());
  }
  if (lse.shape() != rows_shape || lse.dtype() != kFloat32 || !lse.is_contiguous() || lse.device() != q.device() ||
      !aligned(lse)) {
    fail("attention: expected lse contiguous and aligned float32 ", rows_shape, ", got ", lse.dtype(), " ",
         lse.shape());
  }
  const int device = q.device().index;
  DeviceGuard guard(device);
  cudnnHandle_t handle = cudnn_handle(device);  // started by the query
  const CacheEntry& entry = plan_for(problem_of(false, q, k, v), handle);  // built by the query (this thread's cache)
  if (!entry.plan) fail("attention: cuDNN refused on this thread a plan the query built: ", entry.decline_reason);

  set_stream(handle, device);
  float scale_value = static_cast<float>(scale), fill = mask_fill();
  std::unique_ptr<ScratchBuffer> workspace;
  if (entry.plan->workspace_bytes > 0) {
    workspace = std::make_unique<ScratchBuffer>(device, static_cast<size_t>(entry.plan->workspace_bytes));
  }
  cudnn_graph::execute(handle, *entry.plan, {kQ, kKTransposed, kV, kOut, kStats, kScale, kMaskFill},
                       {q.data(), k.data(), v.data(), out.data(), lse.data(), &scale_value, &fill},
                       workspace ? workspace->data() : nullptr);
}

void CudaBackend::attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& out, const Tensor& lse, double scale, Tensor& grad_q,
                                     Tensor& grad_k, Tensor& grad_v) {
  require_kernel_support(*this, {.kernel = FusedKernel::Attention, .tensors = {q, k, v}}, "attention_backward");
  const Shape rows_shape{q.size(0), q.size(1), q.size(2)};
  for (const Tensor* t : std::initializer_list<const Tensor*>{&grad_out, &out, &grad_q, &grad_k, &grad_v}) {
    if (t->shape() != q.shape() || t->dtype() != q.dtype() || t->device() != q.device()) {
      fail("attention_backward: expected ", q.shape(), " ", q.dtype(), " on ", q.device(), " like q, got ",
           t->shape(), " ", t->dtype(), " on ", t->device());
    }
  }
  for (const Tensor* t : std::initializer_list<const Tensor*>{&grad_q, &grad_k, &grad_v}) {
    if (!t->is_contiguous() || !aligned(*t)) fail("attention_backward: the gradients must be contiguous and aligned");
  }
  if (lse.shape() != rows_shape || lse.dtype() != kFloat32 || lse.device() != q.device()) {
    fail("attention_backward: expected lse float32 ", rows_shape, ", got ", lse.dtype(), " ", lse.shape());
  }
  const int device = q.device().index;
  DeviceGuard guard(device);
  cudnnHandle_t handle = cudnn_handle(device);

  const Tensor grad_out_readable = readable(grad_out, "grad_out"), out_readable = readable(out, "out");
  Tensor stats = lse;
  if (!lse.is_contiguous() || !aligned(lse)) {
    NoGradGuard no_grad;
    stats = empty(rows_shape, {.dtype = kFloat32, .device = lse.device()});
    stats.copy_(lse);
  }
  Problem problem = problem_of(true, q, k, v);
  problem.out = strides_of(out_readable);
  problem.grad_out = strides_of(grad_out_readable);
  // The query built this plan for contiguous out and grad_out; other strides may still be refused.
  const CacheEntry& entry = plan_for(problem, handle);
  if (!entry.plan) {
    decline_reason() = entry.decline_reason;
    fail("attention_backward: expected out and grad_out in a layout cuDNN takes, got strides ",
         strides_str(out.strides()), " and ", strides_str(grad_out.strides()), ": ", entry.decline_reason);
  }

  set_stream(handle, device);
  // One scratch buffer: cuDNN's workspace, then the float32 dQ accumulator and row dots.
  const size_t workspace_bytes = round_up(static_cast<size_t>(entry.plan->workspace_bytes));
  const size_t accumulator_bytes = round_up(static_cast<size_t>(q.numel()) * sizeof(float));
  const size_t row_dot_bytes = static_cast<size_t>(stats.numel()) * sizeof(float);
  ScratchBuffer scratch(device, workspace_bytes + accumulator_bytes + row_dot_bytes);
  char* base = static_cast<char*>(scratch.data());
  void* accumulator = base + workspace_bytes;
  void* row_dot = base + workspace_bytes + accumulator_bytes;
  // cuDNN clears the accumulator itself from 9.6 on; before, its frontend cleared it. Cheap either way.
  DTRAIN_CUDA_CHECK(cudaMemsetAsync(accumulator, 0, accumulator_bytes, current_stream(device)));

  float scale_value = static_cast<float>(scale), fill = mask_fill(), one = 1.0f;
  cudnn_graph::execute(handle, *entry.plan,
                       {kQ, kKTransposed, kV, kOut, kGradOut, kStats, kGradQ, kGradK, kGradV, kRowDot,
                        kGradQAccumulator, kScale, kMaskFill, kOne},
                       {q.data(), k.data(), v.data(), out_readable.data(), grad_out_readable.data(), stats.data(),
                        grad_q.data(), grad_k.data(), grad_v.data(), row_dot, accumulator, &scale_value, &fill, &one},
                       workspace_bytes > 0 ? base : nullptr);
}

}  // namespace dtrain::cuda

#else  // no cuDNN in this build: the composed path (matmul, causal_softmax, matmul) runs on CUDA too

namespace dtrain::cuda {

KernelSupport attention_support(const Tensor&, const Tensor&, const Tensor&) {
  decline_reason() = "this build has no cuDNN (DTRAIN_WITH_CUDNN is off)";
  return kernel_declines_case(decline_reason());
}

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, double, Tensor&, Tensor&) {
  require_kernel_support(*this, {.kernel = FusedKernel::Attention, .tensors = {q, k, v}}, "attention");
}

void CudaBackend::attention_backward(const Tensor&, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor&,
                                     const Tensor&, double, Tensor&, Tensor&, Tensor&) {
  require_kernel_support(*this, {.kernel = FusedKernel::Attention, .tensors = {q, k, v}}, "attention_backward");
}

}  // namespace dtrain::cuda

#endif
