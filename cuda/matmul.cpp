// CudaBackend::matmul through cuBLAS. cuBLAS is column-major: the row-major product
// C[M, N] = A[M, K] @ B[K, N] is computed as the column-major C^T = B^T A^T, so B goes first.
// Each operand is used in place when one of its matrix dims has unit stride (as a transposed or
// plain column-major matrix, with its other stride as the leading dimension), else a contiguous
// copy is made. Batches whose matrices are evenly spaced (broadcast ones too: spacing 0) run as
// one strided-batched GEMM; others through pointer arrays; a batch of row-major A against one
// shared B folds into a single taller GEMM. bf16 and fp16 accumulate in float32; float32 uses
// TF32 tensor cores only when allowed (set_allow_tf32), so by default it matches the CPU.
#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

std::atomic<bool> tf32_allowed{false};

// One handle per device and thread: a handle must not be used by two threads at once.
cublasHandle_t handle_for(int device) {
  thread_local std::array<cublasHandle_t, kMaxDevices> handles{};
  if (handles[device] == nullptr) {
    DeviceGuard guard(device);
    DTRAIN_CUBLAS_CHECK(cublasCreate(&handles[device]));  // never destroyed: the driver may be gone at exit
  }
  return handles[device];
}

// A matrix as cuBLAS sees it: the column-major op and leading dimension that give the row-major
// [rows, cols] matrix transposed (what the C^T = B^T A^T form needs).
struct ColumnMajorView {
  bool usable = false;
  cublasOperation_t op = CUBLAS_OP_N;
  int64_t leading = 1;
};

ColumnMajorView transposed_view(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  // A size-1 dim's stride never moves a pointer: give it the value that makes the layout plain.
  if (cols == 1) col_stride = 1;
  if (rows == 1) row_stride = std::max<int64_t>(cols, 1);
  ColumnMajorView view;
  if (col_stride == 1 && row_stride >= std::max<int64_t>(cols, 1)) {
    view = {true, CUBLAS_OP_N, row_stride};  // row-major [rows, cols] is column-major [cols, rows]
  } else if (row_stride == 1 && col_stride >= std::max<int64_t>(rows, 1)) {
    view = {true, CUBLAS_OP_T, col_stride};  // column-major [rows, cols], transposed by cuBLAS
  }
  return view;
}

// Element offset of each batch's matrix, for out's batch dims in row-major order (broadcast dims: 0).
std::vector<int64_t> batch_offsets(const Tensor& operand, const Shape& batch_shape) {
  const int64_t batch_dims = static_cast<int64_t>(batch_shape.size());
  const int64_t operand_batch_dims = operand.dim() - 2;
  std::vector<int64_t> strides(batch_shape.size(), 0);
  for (int64_t d = 0; d < operand_batch_dims; ++d) {
    const int64_t out_dim = batch_dims - operand_batch_dims + d;
    if (out_dim < 0 || (operand.size(d) != batch_shape[out_dim] && operand.size(d) != 1)) {
      fail("matmul kernel: operand of shape ", operand.shape(), " does not broadcast to batch shape ", batch_shape);
    }
    if (operand.size(d) != 1) strides[out_dim] = operand.stride(d);
  }
  std::vector<int64_t> offsets(static_cast<size_t>(batch_shape.numel()));
  std::vector<int64_t> index(batch_shape.size(), 0);
  int64_t offset = 0;
  for (int64_t& entry : offsets) {
    entry = offset;
    for (int64_t d = batch_dims - 1; d >= 0; --d) {
      offset += strides[d];
      if (++index[d] < batch_shape[d]) break;
      offset -= strides[d] * batch_shape[d];
      index[d] = 0;
    }
  }
  return offsets;
}

// The common spacing of offsets, if they are evenly spaced from 0.
bool evenly_spaced(const std::vector<int64_t>& offsets, int64_t* spacing) {
  *spacing = offsets.size() > 1 ? offsets[1] - offsets[0] : 0;
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i] != static_cast<int64_t>(i) * *spacing) return false;
  }
  return true;
}

int checked_int(int64_t value, const char* what) {
  if (value < 0 || value > INT_MAX) fail("matmul: ", what, " ", value, " exceeds what cuBLAS accepts (", INT_MAX, ")");
  return static_cast<int>(value);
}

struct GemmTypes {
  cudaDataType_t data;
  cublasComputeType_t compute;
  bool double_scalars;
};

GemmTypes gemm_types(DType dtype) {
  switch (dtype) {
    case DType::Float64: return {CUDA_R_64F, CUBLAS_COMPUTE_64F, true};
    case DType::Float32:
      return {CUDA_R_32F, tf32_allowed.load() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, false};
    case DType::BFloat16: return {CUDA_R_16BF, CUBLAS_COMPUTE_32F, false};
    case DType::Float16: return {CUDA_R_16F, CUBLAS_COMPUTE_32F, false};
    default: fail("matmul kernel: expected a floating dtype, got ", dtype);
  }
}

}  // namespace

void set_tf32_matmul_allowed(bool allow) { tf32_allowed.store(allow); }
bool tf32_matmul_allowed() { return tf32_allowed.load(); }

void CudaBackend::matmul(const Tensor& a_in, const Tensor& b_in, Tensor& out) {
  check_matmul_contract(a_in, b_in, out);
  if (out.numel() == 0) return;
  const int device = out.device().index;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  int64_t rows = out.size(-2);
  const int64_t cols = out.size(-1), depth = a_in.size(-1);
  if (depth == 0) {  // an empty sum: every floating dtype's zero is all-zero bits
    DTRAIN_CUDA_CHECK(cudaMemsetAsync(out.data(), 0, out.nbytes(), stream));
    return;
  }

  // Operands cuBLAS cannot read in place are copied to contiguous tensors first.
  Tensor a = a_in, b = b_in;
  ColumnMajorView a_view = transposed_view(rows, depth, a.stride(-2), a.stride(-1));
  if (!a_view.usable) {
    a = a.contiguous();
    a_view = transposed_view(rows, depth, a.stride(-2), a.stride(-1));
  }
  ColumnMajorView b_view = transposed_view(depth, cols, b.stride(-2), b.stride(-1));
  if (!b_view.usable) {
    b = b.contiguous();
    b_view = transposed_view(depth, cols, b.stride(-2), b.stride(-1));
  }

  const Shape batch_shape(out.shape().begin(), out.shape().end() - 2);
  std::vector<int64_t> a_offsets = batch_offsets(a, batch_shape), b_offsets = batch_offsets(b, batch_shape);
  int64_t batch = static_cast<int64_t>(a_offsets.size());
  int64_t a_spacing = 0, b_spacing = 0;
  const bool a_even = evenly_spaced(a_offsets, &a_spacing), b_even = evenly_spaced(b_offsets, &b_spacing);
  // Row-major A matrices stacked back to back against one B: one GEMM with batch * M rows.
  if (batch > 1 && a_even && b_even && b_spacing == 0 && a_view.op == CUBLAS_OP_N && a_spacing == rows * a_view.leading) {
    rows *= batch;
    batch = 1;
  }

  const GemmTypes types = gemm_types(out.dtype());
  const double alpha_double = 1.0, beta_double = 0.0;
  const float alpha_float = 1.0f, beta_float = 0.0f;
  const void* alpha = types.double_scalars ? static_cast<const void*>(&alpha_double) : static_cast<const void*>(&alpha_float);
  const void* beta = types.double_scalars ? static_cast<const void*>(&beta_double) : static_cast<const void*>(&beta_float);
  const int m = checked_int(cols, "N"), n = checked_int(rows, "M"), k = checked_int(depth, "K");
  const int ldb_as_a = checked_int(b_view.leading, "B's leading dimension");
  const int lda_as_b = checked_int(a_view.leading, "A's leading dimension");
  const int element = static_cast<int>(out.element_size());
  cublasHandle_t handle = handle_for(device);
  DTRAIN_CUBLAS_CHECK(cublasSetStream(handle, stream));
  const char* a_data = static_cast<const char*>(a.data());
  const char* b_data = static_cast<const char*>(b.data());
  char* out_data = static_cast<char*>(out.data());

  if (batch == 1) {
    DTRAIN_CUBLAS_CHECK(cublasGemmEx(handle, b_view.op, a_view.op, m, n, k, alpha, b_data, types.data, ldb_as_a, a_data,
                                     types.data, lda_as_b, beta, out_data, types.data, m, types.compute, CUBLAS_GEMM_DEFAULT));
  } else if (a_even && b_even) {
    DTRAIN_CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, b_view.op, a_view.op, m, n, k, alpha, b_data, types.data, ldb_as_a,
                                                   b_spacing, a_data, types.data, lda_as_b, a_spacing, beta, out_data,
                                                   types.data, m, rows * cols, checked_int(batch, "batch"), types.compute,
                                                   CUBLAS_GEMM_DEFAULT));
  } else {
    // Pointer arrays (B's, A's, out's matrices), copied to the device on the same stream.
    std::vector<const void*> pointers(static_cast<size_t>(3 * batch));
    for (int64_t i = 0; i < batch; ++i) {
      pointers[i] = b_data + b_offsets[i] * element;
      pointers[batch + i] = a_data + a_offsets[i] * element;
      pointers[2 * batch + i] = out_data + i * rows * cols * element;
    }
    ScratchBuffer device_pointers(device, pointers.size() * sizeof(void*));
    DTRAIN_CUDA_CHECK(cudaMemcpyAsync(device_pointers.data(), pointers.data(), pointers.size() * sizeof(void*),
                                      cudaMemcpyHostToDevice, stream));
    auto** table = static_cast<const void**>(device_pointers.data());
    DTRAIN_CUBLAS_CHECK(cublasGemmBatchedEx(handle, b_view.op, a_view.op, m, n, k, alpha, table, types.data, ldb_as_a,
                                            table + batch, types.data, lda_as_b, beta, const_cast<void**>(table + 2 * batch),
                                            types.data, m, checked_int(batch, "batch"), types.compute, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace dtrain::cuda
