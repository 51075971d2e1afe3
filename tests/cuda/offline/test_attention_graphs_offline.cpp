// The fused-attention operation graphs (cuda/attention_graphs.h) checked without a GPU: each must
// finalize and get at least one engine config from cuDNN's heuristics (mode A, as build_plan asks)
// for an H100 that a device-property descriptor describes (GraphBuilder::check_offline). A graph
// cuDNN stops recognising as its fused flash-attention pattern fails here on every run, not only on
// a GPU machine. cuDNN loads libcuda.so.1 for its runtime-compiled engines; tests/CMakeLists.txt
// runs this test with the CUDA toolkit's stub, so it never needs a driver. What it checks is that
// cuDNN takes the graphs; what they compute is tests/cuda/test_attention.cpp's job (on a GPU).
#include <catch2/catch.hpp>
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/attention_graphs.h"
#include "cuda/cudnn_graph.h"

using namespace dtrain;
using namespace dtrain::cuda;
using attention_graphs::IndexMath;
using attention_graphs::Problem;
using cudnn_graph::GraphBuilder;
using cudnn_graph::OfflineCheck;

namespace {

// A cuDNN device-property descriptor in its JSON form (CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION,
// which cuDNN 9.19 reads back unchanged; it refuses JSON with fields missing) for an NVIDIA H100
// SXM5 80GB HBM3, the GPU the CUDA backend targets (sm_90). Written by hand from
// cudaGetDeviceProperties' fields on that GPU and NVIDIA's H100 specifications:
//   deviceVer 900                      compute capability 9.0 (major * 100 + minor * 10)
//   multiProcessorCount 132            SMs of the SXM5 part
//   l2CacheSize 52428800               50 MiB L2
//   maxSharedMemoryPerBlockOptin       227 KiB (232448 B) per block with opt-in; 48 KiB without;
//     232448, reservedSharedMemory-    1 KiB reserved per block by the system
//     PerBlock 1024
//   regsPerBlock / maxRegistersPerSM   64 Ki 32-bit registers
//   maxThreadsPerSM 2048, maxCtasPerSM 32, maxThreadsPerBlock 1024, warpSize 32, grid and block
//     limits as on every GPU since compute capability 3.0
//   smClockRateKHz 1980000             1.98 GHz boost clock
//   memClockRateKHz 2619000            HBM3 at 2.619 GHz
//   totalGlobalMem 85097971712         79.25 GiB, as the runtime reports the 80 GB part
//   pciDeviceId 9008                   0x2330, the H100 SXM5 80GB's PCI device id
//   driverVer 12080                    a CUDA 12.8 driver
constexpr const char* kH100DeviceProperties =
    R"({"cudaDeviceId":0,"deviceVer":900,"driverVer":12080,"isTccDriver":0,"l2CacheSize":52428800,)"
    R"("maxCtasPerSM":32,"maxRegistersPerSM":65536,"maxSharedMemoryPerBlock":49152,)"
    R"("maxSharedMemoryPerBlockOptin":232448,"maxThreadsPerBlock":1024,"maxThreadsPerSM":2048,)"
    R"("memClockRateKHz":2619000,"multiProcessorCount":132,"pciDeviceId":9008,"regsPerBlock":65536,)"
    R"("reservedSharedMemoryPerBlock":1024,"smClockRateKHz":1980000,"supportCoopLaunch":1,)"
    R"("totalGlobalMem":85097971712,"warpSize":32,"maxGridSize":[2147483647,65535,65535],)"
    R"("maxBlockSize":[1024,1024,64],"deviceName":"NVIDIA H100 80GB HBM3"})";

enum class Layout { Contiguous, Strided };

constexpr int64_t kBatch = 2, kHeads = 4;

// The problem CudaBackend::attention(_backward) describes for q, k, v of [B, H, T, D]: contiguous,
// or the q, k, v slices of one [B, T, 3, H, D] projection seen as [B, H, T, D] (a GPT block's), with
// then dO the gradient of an output transposed back to [B, T, H, D].
Problem problem(bool backward, DType dtype, Layout layout, int64_t tokens, int64_t head_size) {
  const int64_t t = tokens, d = head_size, h = kHeads;
  Problem p;
  p.backward = backward;
  p.dtype = dtype;
  p.batch = kBatch;
  p.heads = h;
  p.tokens = t;
  p.head_size = d;
  const attention_graphs::Strides4 packed{h * t * d, t * d, d, 1};
  if (layout == Layout::Contiguous) {
    p.q = p.k = p.v = packed;
    p.out = p.grad_out = packed;
  } else {
    p.q = p.k = p.v = {t * 3 * h * d, d, 3 * h * d, 1};
    p.out = packed;
    p.grad_out = {t * h * d, d, h * d, 1};
  }
  return p;
}

struct Verdict {
  bool supported = false;
  std::string detail;  // the variant and engine counts when supported, else every refusal
};

// As attention.cpp's build(): the graph with float mask indices, then with int32 ones.
Verdict check(const Problem& p) {
  std::string refusals;
  for (IndexMath math : {IndexMath::Float, IndexMath::Int32}) {
    const char* variant = math == IndexMath::Float ? "float mask indices" : "int32 mask indices";
    GraphBuilder graph;
    if (p.backward) {
      attention_graphs::describe_backward(graph, p, math);
    } else {
      attention_graphs::describe_forward(graph, p, math);
    }
    const OfflineCheck result = graph.check_offline(kH100DeviceProperties);
    if (result.supported()) {
      return {true, detail::concat(variant, ": ", result.supported_configs, " of ", result.engine_configs,
                                   " engine configs supported")};
    }
    refusals += detail::concat(refusals.empty() ? "" : " | ", variant, ": ", result.failure);
  }
  if (refusals.find("libcuda == nullptr") != std::string::npos) {
    refusals += " [cuDNN found no libcuda.so.1: run this test through ctest, which puts the CUDA stub first]";
  }
  return {false, refusals};
}

// attention.cpp declines T % 128 != 0 up to cuDNN 9.15 (the fused backward needs a padding mask).
std::vector<int64_t> token_counts() {
  if (cudnnGetVersion() <= 91500) return {128, 1024};
  return {100, 128, 1024};
}

void check_all(bool backward, DType dtype) {
  for (Layout layout : {Layout::Contiguous, Layout::Strided}) {
    for (int64_t tokens : token_counts()) {
      for (int64_t head_size : {64, 128}) {
        const Problem p = problem(backward, dtype, layout, tokens, head_size);
        const Verdict verdict = check(p);
        INFO((backward ? "backward " : "forward ") << dtype << ", "
             << (layout == Layout::Contiguous ? "contiguous" : "strided [B, T, 3, H, D]") << " q, k, v, B "
             << kBatch << ", H " << kHeads << ", T " << tokens << ", D " << head_size << ", cuDNN "
             << cudnnGetVersion() << ": " << verdict.detail);
        CHECK(verdict.supported);
      }
    }
  }
}

// The causal forward graph as describe_forward builds it (bfloat16, B 2, H 4, T 128, D 64, packed,
// float mask indices), written out here so that one type can be made wrong: P, the second
// matmul's A operand, in p_type (cuDNN's pattern wants the input dtype).
OfflineCheck forward_with_probabilities_in(cudnnDataType_t p_type) {
  using cudnn_graph::kNoTensor;
  using cudnn_graph::Shape4;
  using cudnn_graph::Uid;
  const int64_t b = kBatch, h = kHeads, t = 128, d = 64;
  const cudnnDataType_t io = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const auto packed = [](std::array<int64_t, 4> dims) {
    return Shape4{dims, {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1}};
  };
  const Shape4 bhtd = packed({b, h, t, d}), scores = packed({b, h, t, t}), rows = packed({b, h, t, 1});
  enum : Uid { kQ = 1, kKTransposed, kV, kOut, kStats, kScale, kFill };
  GraphBuilder g;
  g.tensor(kQ, io, bhtd, "Q");
  g.tensor(kKTransposed, io, Shape4{{b, h, d, t}, {h * t * d, t * d, 1, d}}, "K^T");
  g.tensor(kV, io, bhtd, "V");
  g.tensor(kOut, io, bhtd, "O");
  g.tensor(kStats, f32, rows, "stats");
  g.scalar(kScale, "scale");
  g.scalar(kFill, "mask fill");
  const auto op = [&](cudnnPointwiseMode_t mode, Uid x, Uid y, Uid z, cudnnDataType_t type, const Shape4& shape,
                      int64_t axis, const char* name) {
    const Uid out = g.virtual_tensor(type, shape, name);
    g.pointwise(mode, x, y, z, out, f32, axis, name);
    return out;
  };
  const Uid product = g.virtual_tensor(f32, scores, "Q K^T");
  g.matmul(kQ, kKTransposed, product, "Q K^T");
  const Uid scaled = op(CUDNN_POINTWISE_MUL, product, kScale, kNoTensor, f32, scores, -1, "S * scale");
  const Uid row = op(CUDNN_POINTWISE_GEN_INDEX, scaled, kNoTensor, kNoTensor, CUDNN_DATA_INT32, scores, 2, "row");
  const Uid column = op(CUDNN_POINTWISE_GEN_INDEX, scaled, kNoTensor, kNoTensor, CUDNN_DATA_INT32, scores, 3, "column");
  const Uid keep = g.virtual_tensor(CUDNN_DATA_BOOLEAN, scores, "row >= column");
  g.pointwise(CUDNN_POINTWISE_CMP_GE, row, column, kNoTensor, keep, CUDNN_DATA_BOOLEAN, -1, "row >= column");
  const Uid masked = op(CUDNN_POINTWISE_BINARY_SELECT, scaled, kFill, keep, f32, scores, -1, "causal mask");
  const Uid max = g.virtual_tensor(f32, rows, "row max");
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, masked, max, "row max");
  const Uid shifted = op(CUDNN_POINTWISE_SUB, masked, max, kNoTensor, f32, scores, -1, "S - max");
  const Uid exponentials = op(CUDNN_POINTWISE_EXP, shifted, kNoTensor, kNoTensor, f32, scores, -1, "exp");
  const Uid sum = g.virtual_tensor(f32, rows, "row sum");
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, exponentials, sum, "row sum");
  const Uid log_sum = op(CUDNN_POINTWISE_LOG, sum, kNoTensor, kNoTensor, f32, rows, -1, "log(row sum)");
  g.pointwise(CUDNN_POINTWISE_ADD, max, log_sum, kNoTensor, kStats, f32, -1, "stats");
  const Uid probabilities = op(CUDNN_POINTWISE_DIV, exponentials, sum, kNoTensor, p_type, scores, -1, "P");
  g.matmul(probabilities, kV, kOut, "P V");
  return g.check_offline(kH100DeviceProperties);
}

}  // namespace

TEST_CASE("cudnn graphs offline: bfloat16 forward attention graphs get sm_90 engines") {
  check_all(false, kBFloat16);
}

TEST_CASE("cudnn graphs offline: bfloat16 backward attention graphs get sm_90 engines") {
  check_all(true, kBFloat16);
}

TEST_CASE("cudnn graphs offline: float16 forward attention graphs get sm_90 engines") {
  check_all(false, kFloat16);
}

TEST_CASE("cudnn graphs offline: float16 backward attention graphs get sm_90 engines") {
  check_all(true, kFloat16);
}


// Negative controls: graphs cuDNN has no fused kernel for must be refused, or the checks above
// could pass on a check that accepts anything.
TEST_CASE("cudnn graphs offline: a head size of 60 (rows not 16-byte multiples) gets no sm_90 engine") {
  for (bool backward : {false, true}) {
    const Verdict verdict = check(problem(backward, kBFloat16, Layout::Contiguous, 128, 60));
    INFO((backward ? "backward" : "forward") << ": " << verdict.detail);
    CHECK_FALSE(verdict.supported);
    CHECK(verdict.detail.find("none supported on the described GPU") != std::string::npos);
  }
}

TEST_CASE("cudnn graphs offline: the forward graph with P in float32 instead of bfloat16 gets no sm_90 engine") {
  // The hand-written graph with the right type must pass, as describe_forward's does.
  const OfflineCheck right = forward_with_probabilities_in(CUDNN_DATA_BFLOAT16);
  INFO("P in bfloat16: " << right.supported_configs << " of " << right.engine_configs << " configs; "
                         << right.failure);
  REQUIRE(right.supported());
  const OfflineCheck wrong = forward_with_probabilities_in(CUDNN_DATA_FLOAT);
  INFO("P in float32: " << wrong.supported_configs << " of " << wrong.engine_configs << " configs; " << wrong.failure);
  CHECK_FALSE(wrong.supported());
  CHECK(wrong.engine_configs > 0);  // the graph finalized; heuristics listed configs and cuDNN refused each
  CHECK(wrong.supported_configs == 0);
}
