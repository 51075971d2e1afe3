// CpuBackend::matmul: batched GEMM on Eigen. Each batch's matrix is mapped in place when one of
// its dims has unit stride (row- or column-major with any leading stride), else copied to a
// contiguous temporary; bf16/f16 go through float temporaries. Many small matrices are spread
// over OpenMP threads (Eigen then runs single-threaded inside); few large ones use Eigen's own
// threading.

// GCC 12's -mtune=znver2/znver3 (what -march=native picks on AMD Zen 2/3) folds the lhs loads of
// Eigen's 24x4 float micro-kernel into every FMA, which makes it load-port bound: about 65% of
// OpenBLAS instead of 95-100% (measured, see bench/README.md). Generic tuning keeps those loads in
// registers. It must precede every include so all of this file's code (Eigen's templates included)
// has one tuning and inlines freely. The instruction set (-march) is unchanged.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#pragma GCC target("tune=generic")
#endif

#include <omp.h>

#include <Eigen/Core>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided_loop.h"

namespace dtrain::cpu {

namespace {

// Below this many multiply-adds per matrix Eigen's own threading costs more than it gains, so a
// batch of such matrices is always split over threads by whole matrices.
constexpr int64_t kSmallMatrixWork = int64_t{128} * 128 * 128;
// Splitting a batch over threads by whole matrices must keep at least this share of them busy
// (3 large matrices on 2 threads would leave one idle half the time: Eigen's threading wins).
constexpr double kMinBatchSplitEfficiency = 0.9;

// One matrix in memory: first element and element strides of its two dims.
template <typename S>
struct MatrixView {
  const S* data;
  int64_t rows, cols;
  int64_t row_stride, col_stride;
};

template <typename S>
using RowMajorMap =
    Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, Eigen::Unaligned,
               Eigen::OuterStride<>>;
template <typename S>
using ColMajorMap =
    Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>, Eigen::Unaligned,
               Eigen::OuterStride<>>;
template <typename S>
using OutputMap = Eigen::Map<Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// A size-1 dim's stride never moves a pointer; give it the value that makes the matrix look
// contiguous so it cannot spoil the layout test.
template <typename S>
MatrixView<S> normalized(MatrixView<S> matrix) {
  if (matrix.cols == 1) matrix.col_stride = 1;
  if (matrix.rows == 1) matrix.row_stride = matrix.cols;
  return matrix;
}

template <typename S>
bool is_row_major(const MatrixView<S>& matrix) { return matrix.col_stride == 1; }
template <typename S>
bool is_col_major(const MatrixView<S>& matrix) { return matrix.row_stride == 1; }
template <typename S>
bool is_mappable(const MatrixView<S>& matrix) { return is_row_major(matrix) || is_col_major(matrix); }

template <typename S>
RowMajorMap<S> row_major_map(const MatrixView<S>& m) {
  return RowMajorMap<S>(m.data, m.rows, m.cols, Eigen::OuterStride<>(m.row_stride));
}
template <typename S>
ColMajorMap<S> col_major_map(const MatrixView<S>& m) {
  return ColMajorMap<S>(m.data, m.rows, m.cols, Eigen::OuterStride<>(m.col_stride));
}

// out (contiguous, rows x cols of the product) = a @ b; both mappable.
template <typename S>
void gemm(const MatrixView<S>& a, const MatrixView<S>& b, S* out) {
  OutputMap<S> result(out, a.rows, b.cols);
  // noalias: out never overlaps the inputs, so Eigen writes into it without a temporary.
  if (is_row_major(a)) {
    if (is_row_major(b)) result.noalias() = row_major_map(a) * row_major_map(b);
    else result.noalias() = row_major_map(a) * col_major_map(b);
  } else {
    if (is_row_major(b)) result.noalias() = col_major_map(a) * row_major_map(b);
    else result.noalias() = col_major_map(a) * col_major_map(b);
  }
}

// Hands out one batch's matrix of an operand in the compute type S: the tensor's own memory when
// Eigen can map it, else a contiguous (converted) copy. A broadcast operand gives the same
// matrix for many batches; its copy is made once. One reader per thread.
template <typename T>
class OperandReader {
 public:
  using S = compute_t<T>;

  OperandReader(const T* base, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride)
      : base_(base), rows_(rows), cols_(cols), row_stride_(row_stride), col_stride_(col_stride) {}

  MatrixView<S> matrix(int64_t offset) {
    MatrixView<T> source = normalized(MatrixView<T>{base_ + offset, rows_, cols_, row_stride_, col_stride_});
    if constexpr (std::is_same_v<T, S>) {
      if (is_mappable(source)) return source;
    }
    if (offset != copied_offset_) {
      copy_contiguous(source);
      copied_offset_ = offset;
    }
    return MatrixView<S>{copy_.data(), rows_, cols_, cols_, 1};
  }

 private:
  void copy_contiguous(const MatrixView<T>& source) {
    copy_.resize(static_cast<size_t>(rows_ * cols_));
    S* to = copy_.data();
    for (int64_t i = 0; i < rows_; ++i) {
      const T* row = source.data + i * source.row_stride;
      S* to_row = to + i * cols_;
      if (source.col_stride == 1) {  // the common bf16/f16 case: a plain loop the compiler vectorises
        for (int64_t j = 0; j < cols_; ++j) to_row[j] = static_cast<S>(row[j]);
      } else {
        for (int64_t j = 0; j < cols_; ++j) to_row[j] = static_cast<S>(row[j * source.col_stride]);
      }
    }
  }

  const T* base_;
  int64_t rows_, cols_, row_stride_, col_stride_;
  std::vector<S> copy_;
  int64_t copied_offset_ = -1;
};

// Element offset of each batch's matrix in operand, for out's batch dims in row-major order.
// The operand's batch dims align to the right; missing and size-1 dims broadcast.
std::vector<int64_t> batch_offsets(const Tensor& operand, const Shape& batch_shape, const char* name) {
  int64_t batch_dims = static_cast<int64_t>(batch_shape.size());
  int64_t operand_batch_dims = operand.dim() - 2;
  std::vector<int64_t> strides(batch_shape.size(), 0);
  for (int64_t d = 0; d < operand_batch_dims; ++d) {
    int64_t out_dim = batch_dims - operand_batch_dims + d;
    if (out_dim < 0 || (operand.size(d) != batch_shape[out_dim] && operand.size(d) != 1)) {
      fail("matmul kernel: operand ", name, " of shape ", operand.shape(), " does not broadcast to batch shape ",
           batch_shape);
    }
    if (operand.size(d) != 1) strides[out_dim] = operand.stride(d);
  }
  std::vector<int64_t> offsets(static_cast<size_t>(batch_shape.numel()));
  std::vector<int64_t> index(batch_shape.size(), 0);
  int64_t offset = 0;
  for (int64_t& entry : offsets) {
    entry = offset;
    for (int64_t d = batch_dims - 1; d >= 0; --d) {  // odometer step, carrying into outer dims
      offset += strides[d];
      if (++index[d] < batch_shape[d]) break;
      offset -= strides[d] * batch_shape[d];
      index[d] = 0;
    }
  }
  return offsets;
}

// True when every batch's a-matrix follows the previous one row after row (row-major, batch
// stride rows * row_stride) and b is one matrix for all: the batch is then one tall GEMM.
template <typename T>
bool batch_folds_into_rows(const std::vector<int64_t>& a_offsets, const std::vector<int64_t>& b_offsets,
                           const MatrixView<T>& a_matrix) {
  if (a_offsets.size() <= 1 || !is_row_major(a_matrix)) return false;
  int64_t matrix_stride = a_matrix.rows * a_matrix.row_stride;
  for (size_t i = 1; i < a_offsets.size(); ++i) {
    if (a_offsets[i] != a_offsets[0] + static_cast<int64_t>(i) * matrix_stride) return false;
    if (b_offsets[i] != b_offsets[0]) return false;
  }
  return true;
}

// Splitting count matrices over threads by whole matrices: the share of thread time used.
double batch_split_efficiency(int64_t count, int threads) {
  int64_t rounds = (count + threads - 1) / threads;
  return static_cast<double>(count) / static_cast<double>(rounds * threads);
}

template <typename T>
void batched_matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  using S = compute_t<T>;
  int64_t rows = out.size(-2), cols = out.size(-1), depth = a.size(-1);
  Shape batch_shape(out.shape().begin(), out.shape().end() - 2);
  std::vector<int64_t> a_offsets = batch_offsets(a, batch_shape, "a");
  std::vector<int64_t> b_offsets = batch_offsets(b, batch_shape, "b");
  int64_t batch = static_cast<int64_t>(a_offsets.size());
  MatrixView<T> a_matrix = normalized(MatrixView<T>{a.data_ptr<T>(), rows, depth, a.stride(-2), a.stride(-1)});
  MatrixView<T> b_matrix = normalized(MatrixView<T>{b.data_ptr<T>(), depth, cols, b.stride(-2), b.stride(-1)});
  if (batch_folds_into_rows(a_offsets, b_offsets, a_matrix)) {
    rows *= batch;
    batch = 1;
  }

  T* out_base = out.data_ptr<T>();
  // Multiplies batches [begin, end); the readers and output buffer belong to the calling thread.
  auto multiply_range = [&](int64_t begin, int64_t end) {
    OperandReader<T> a_reader(a_matrix.data, rows, depth, a_matrix.row_stride, a_matrix.col_stride);
    OperandReader<T> b_reader(b_matrix.data, depth, cols, b_matrix.row_stride, b_matrix.col_stride);
    std::vector<S> converted_out;
    if constexpr (!std::is_same_v<T, S>) converted_out.resize(static_cast<size_t>(rows * cols));
    for (int64_t i = begin; i < end; ++i) {
      T* out_matrix = out_base + i * rows * cols;
      MatrixView<S> lhs = a_reader.matrix(a_offsets[i]);
      MatrixView<S> rhs = b_reader.matrix(b_offsets[i]);
      if constexpr (std::is_same_v<T, S>) {
        gemm(lhs, rhs, out_matrix);
      } else {
        gemm(lhs, rhs, converted_out.data());
        for (int64_t e = 0; e < rows * cols; ++e) out_matrix[e] = static_cast<T>(converted_out[e]);
      }
    }
  };

  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  bool small_matrices = rows * cols * depth < kSmallMatrixWork;
  bool split_batch = threads > 1 && batch > 1 &&
                     (small_matrices || batch_split_efficiency(batch, threads) >= kMinBatchSplitEfficiency);
  if (split_batch) {
    parallel_for(batch, 1, multiply_range);  // Eigen sees the parallel region and stays serial
  } else {
    multiply_range(0, batch);  // Eigen threads each GEMM itself
  }
}

}  // namespace

void CpuBackend::matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  check_matmul_contract(a, b, out);
  if (out.numel() == 0) return;
  if (a.size(-1) == 0) {  // empty sum: every floating dtype's zero is all-zero bits
    std::memset(out.data(), 0, out.nbytes());
    return;
  }
  visit_dtype(a.dtype(), [&]<typename T>() {
    if constexpr (std::is_floating_point_v<compute_t<T>>) batched_matmul<T>(a, b, out);
  });
}

}  // namespace dtrain::cpu
