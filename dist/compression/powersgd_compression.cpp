#include "dist/compression/powersgd_compression.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/matmul.h"
#include "dist/comm_hooks.h"

namespace dtrain::dist {
namespace {

DType working_dtype(DType dtype) { return dtype == kFloat64 ? kFloat64 : kFloat32; }

// Modified Gram-Schmidt on the columns of a row-major rows x columns matrix at data (PyTorch's
// _orthogonalize): each column is divided by (its norm + epsilon) — a zero column stays zero
// rather than becoming NaN — then projected out of the columns after it. Sums in double.
template <typename T>
void orthogonalize_columns(T* data, int64_t rows, int64_t columns, double epsilon) {
  for (int64_t column = 0; column < columns; ++column) {
    double squares = 0;
    for (int64_t row = 0; row < rows; ++row) {
      double value = data[row * columns + column];
      squares += value * value;
    }
    double divisor = std::sqrt(squares) + epsilon;
    if (divisor > 0) {
      for (int64_t row = 0; row < rows; ++row) {
        data[row * columns + column] = static_cast<T>(data[row * columns + column] / divisor);
      }
    }
    for (int64_t later = column + 1; later < columns; ++later) {
      double projection = 0;
      for (int64_t row = 0; row < rows; ++row) {
        projection += static_cast<double>(data[row * columns + column]) * data[row * columns + later];
      }
      for (int64_t row = 0; row < rows; ++row) {
        data[row * columns + later] =
            static_cast<T>(data[row * columns + later] - projection * data[row * columns + column]);
      }
    }
  }
}

// A host copy of tensor in the working dtype (tensor itself when it already is one), and the
// way back.
Tensor on_host(const Tensor& tensor) {
  MemoryTagScope tag(MemoryTag::Communication);
  return tensor.to(Device::cpu()).to(working_dtype(tensor.dtype())).contiguous();
}
void write_back(const Tensor& host, Tensor& tensor) {
  if (!host.is_same(tensor)) tensor.copy_(host);
}

// Orthogonalizes the packed matrices of packed: matrix i starts at offsets[i] with shape
// rows[i] x columns[i].
struct PackedMatrix {
  int64_t offset;
  int64_t rows;
  int64_t columns;
};
void orthogonalize_packed(Tensor& packed, const std::vector<PackedMatrix>& matrices, double epsilon) {
  Tensor host = on_host(packed);
  for (const PackedMatrix& matrix : matrices) {
    if (host.dtype() == kFloat64) {
      orthogonalize_columns(host.data_ptr<double>() + matrix.offset, matrix.rows, matrix.columns, epsilon);
    } else {
      orthogonalize_columns(host.data_ptr<float>() + matrix.offset, matrix.rows, matrix.columns, epsilon);
    }
  }
  write_back(host, packed);
}

template <typename T>
bool all_finite(const Tensor& host) {
  const T* data = host.data_ptr<T>();
  for (int64_t i = 0; i < host.numel(); ++i) {
    if (!std::isfinite(data[i])) return false;
  }
  return true;
}

std::optional<int64_t> read_int64(const optim::StateDict& state, const std::string& key,
                                  optim::StateDictProblems& problems) {
  auto found = state.find(key);
  if (found == state.end() || !found->second.defined() || found->second.dtype() != kInt64 ||
      found->second.numel() != 1) {
    problems.add(detail::concat(found == state.end() ? "missing key '" : "key '", key,
                                "': expected a one-element int64 tensor"));
    return std::nullopt;
  }
  return found->second.contiguous().to(Device::cpu()).data_ptr<int64_t>()[0];
}

constexpr const char* kQPrefix = "q.";

}  // namespace

PowerSgdCompression::PowerSgdCompression(PowerSgdOptions options)
    : GradientCompression(options.start_step), options_(options), generator_(options.seed) {
  if (options_.rank < 1) fail("PowerSgdCompression: expected rank >= 1, got ", options_.rank);
  if (!(options_.min_compression_rate >= 0) || !std::isfinite(options_.min_compression_rate)) {
    fail("PowerSgdCompression: expected min_compression_rate >= 0, got ", options_.min_compression_rate);
  }
  if (!(options_.orthogonalization_epsilon >= 0) || !std::isfinite(options_.orthogonalization_epsilon)) {
    fail("PowerSgdCompression: expected orthogonalization_epsilon >= 0, got ", options_.orthogonalization_epsilon);
  }
}

std::string PowerSgdCompression::name() const { return "powersgd rank " + std::to_string(options_.rank); }

const PowerSgdCompression::BucketPlan& PowerSgdCompression::plan_for(const HookBucket& bucket) {
  std::vector<Shape> shapes;
  for (const Tensor& gradient : bucket.gradients) shapes.push_back(gradient.shape());
  auto found = plans_.find(bucket.index);
  if (found != plans_.end()) {
    if (found->second.shapes != shapes) {
      fail("PowerSgdCompression: bucket ", bucket.index, " holds other tensors than in an earlier step; ",
           "register a new compression for another model or bucket layout");
    }
    return found->second;
  }
  BucketPlan plan;
  plan.shapes = shapes;
  int64_t buffer_offset = 0;
  for (size_t member = 0; member < shapes.size(); ++member) {
    const Shape& shape = shapes[member];
    int64_t elements = shape.numel();
    bool compressed = false;
    if (shape.size() >= 2 && elements > 0) {
      int64_t rows = shape[0];
      int64_t columns = elements / rows;
      int64_t rank = std::min({rows, columns, options_.rank});
      double compressed_elements = static_cast<double>((rows + columns) * rank);
      if (compressed_elements * options_.min_compression_rate < static_cast<double>(elements)) {
        plan.matrices.push_back({member, rows, columns, rank, buffer_offset, plan.p_elements, plan.q_elements});
        plan.p_elements += rows * rank;
        plan.q_elements += columns * rank;
        compressed = true;
      }
    }
    if (!compressed) {
      plan.uncompressed.push_back({member, plan.uncompressed_elements});
      plan.uncompressed_elements += elements;
    }
    buffer_offset += elements;
  }
  if (buffer_offset != bucket.buffer.numel()) {
    fail("PowerSgdCompression: expected the gradients of bucket ", bucket.index, " to fill its buffer of ",
         bucket.buffer.numel(), " elements, got ", buffer_offset);
  }
  return plans_.emplace(bucket.index, std::move(plan)).first->second;
}

WorkHandle PowerSgdCompression::compress(ProcessGroup& group, HookBucket& bucket) {
  NoGradGuard no_grad;
  const BucketPlan& plan = plan_for(bucket);
  Tensor buffer = bucket.buffer;
  error_feedback_.compensate(bucket.index, buffer);  // the gradients (views of it) too

  if (!plan.matrices.empty()) {
    Tensor& q = q_memory_[bucket.index];
    if (!options_.warm_start || !q.defined()) {
      // Drawn on the host as PyTorch does, so every device gets the same values, in the working
      // dtype (random draws need not exist in half precision).
      MemoryTagScope tag(MemoryTag::Communication);
      q = randn({plan.q_elements}, {.dtype = working_dtype(buffer.dtype())}, &generator_)
              .to(buffer.dtype())
              .to(buffer.device());
    } else if (q.numel() != plan.q_elements) {
      fail("PowerSgdCompression: the Q matrices of bucket ", bucket.index, " hold ", q.numel(),
           " elements but its plan needs ", plan.q_elements, " (a state loaded from another model or rank)");
    } else if (q.dtype() != buffer.dtype() || q.device() != buffer.device()) {
      q = q.to(buffer.device()).to(buffer.dtype()).contiguous();
    }
    std::vector<PackedMatrix> q_layout;
    for (const Matrix& matrix : plan.matrices) q_layout.push_back({matrix.q_offset, matrix.columns, matrix.rank});
    orthogonalize_packed(q, q_layout, options_.orthogonalization_epsilon);
  }

  Tensor packed;
  {
    MemoryTagScope tag(MemoryTag::Communication);
    packed = empty({plan.p_elements + plan.uncompressed_elements}, {.dtype = buffer.dtype(), .device = buffer.device()});
  }
  for (const Matrix& matrix : plan.matrices) {
    Tensor m = bucket.gradients[matrix.member].view({matrix.rows, matrix.columns});
    Tensor q = q_memory_[bucket.index].narrow(0, matrix.q_offset, matrix.columns * matrix.rank).view({matrix.columns, matrix.rank});
    packed.narrow(0, matrix.p_offset, matrix.rows * matrix.rank).view({matrix.rows, matrix.rank}).copy_(matmul(m, q));
  }
  for (const Uncompressed& tensor : plan.uncompressed) {
    const Tensor& gradient = bucket.gradients[tensor.member];
    packed.narrow(0, plan.p_elements + tensor.offset, gradient.numel()).copy_(gradient.view({gradient.numel()}));
  }
  WorkHandle work = all_reduce(group, packed);
  ProcessGroup* group_pointer = &group;
  // The compression outlives the work: the hook that DDP holds (as_hook) holds the compression.
  return then_on_wait(std::move(work), [this, group_pointer, bucket, packed] { finish(*group_pointer, bucket, packed); });
}

void PowerSgdCompression::finish(ProcessGroup& group, HookBucket bucket, Tensor packed) {
  NoGradGuard no_grad;
  const BucketPlan& plan = plans_.at(bucket.index);
  const double ranks = group.size();

  Tensor sums = packed.narrow(0, plan.p_elements, plan.uncompressed_elements);
  sums.div_(ranks);  // as allreduce_hook: the sum divided once
  for (const Uncompressed& tensor : plan.uncompressed) {
    Tensor gradient = bucket.gradients[tensor.member];
    gradient.copy_(sums.narrow(0, tensor.offset, gradient.numel()).view(gradient.shape()));
  }
  Tensor residual = error_feedback_.residual(bucket.index);
  if (plan.matrices.empty()) {
    residual.zero_();  // everything was sent whole
    return;
  }

  Tensor host = on_host(packed);
  bool finite = host.dtype() == kFloat64 ? all_finite<double>(host) : all_finite<float>(host);
  if (!finite) {
    // Some rank's gradient overflowed: every rank sees it in the sums and gives NaN alike.
    for (const Matrix& matrix : plan.matrices) {
      Tensor gradient = bucket.gradients[matrix.member];
      gradient.fill_(std::numeric_limits<double>::quiet_NaN());
    }
    return;
  }
  std::vector<PackedMatrix> p_layout;
  for (const Matrix& matrix : plan.matrices) p_layout.push_back({matrix.p_offset, matrix.rows, matrix.rank});
  orthogonalize_packed(packed, p_layout, options_.orthogonalization_epsilon);

  Tensor q_packed = q_memory_.at(bucket.index);
  residual.zero_();  // the uncompressed tensors leave none
  for (const Matrix& matrix : plan.matrices) {
    Tensor m = bucket.gradients[matrix.member].view({matrix.rows, matrix.columns});
    Tensor p = packed.narrow(0, matrix.p_offset, matrix.rows * matrix.rank).view({matrix.rows, matrix.rank});
    Tensor q = q_packed.narrow(0, matrix.q_offset, matrix.columns * matrix.rank).view({matrix.columns, matrix.rank});
    Tensor local_q = matmul(m.t(), p);
    q.copy_(local_q);
    // What this rank's contribution P Q_rank^T leaves out of its compensated gradient.
    Tensor left_out = residual.narrow(0, matrix.buffer_offset, matrix.rows * matrix.columns).view({matrix.rows, matrix.columns});
    left_out.copy_(m - matmul(p, local_q.t()));
  }
  all_reduce(group, q_packed)->wait();
  q_packed.div_(ranks);
  for (const Matrix& matrix : plan.matrices) {
    Tensor m = bucket.gradients[matrix.member].view({matrix.rows, matrix.columns});
    Tensor p = packed.narrow(0, matrix.p_offset, matrix.rows * matrix.rank).view({matrix.rows, matrix.rank});
    Tensor q = q_packed.narrow(0, matrix.q_offset, matrix.columns * matrix.rank).view({matrix.columns, matrix.rank});
    m.copy_(matmul(p, q.t()));
  }
}

size_t PowerSgdCompression::compressed_matrix_count(size_t bucket_index) const {
  auto found = plans_.find(bucket_index);
  return found == plans_.end() ? 0 : found->second.matrices.size();
}

StateDict PowerSgdCompression::state_dict() const {
  StateDict state = GradientCompression::state_dict();  // steps, residuals
  state.insert("generator.seed", optim::int64_scalar(std::bit_cast<int64_t>(generator_.seed())));
  state.insert("generator.offset", optim::int64_scalar(std::bit_cast<int64_t>(generator_.offset())));
  if (options_.warm_start) {
    for (const auto& [bucket, q] : q_memory_) state.insert(kQPrefix + std::to_string(bucket), q.clone());
  }
  return state;
}

void PowerSgdCompression::load_state_dict(const StateDict& state) {
  optim::StateDict entries = state.to_map();
  optim::StateDictProblems problems;
  std::optional<int64_t> steps = read_steps(entries, problems);
  std::optional<int64_t> seed = read_int64(entries, "generator.seed", problems);
  std::optional<int64_t> offset = read_int64(entries, "generator.offset", problems);
  std::map<size_t, Tensor> residuals = error_feedback_.read(entries, problems);
  std::map<size_t, Tensor> q_memory;
  for (const auto& [key, tensor] : entries) {
    if (key.rfind(kQPrefix, 0) != 0) continue;
    std::string number = key.substr(std::string(kQPrefix).size());
    char* end = nullptr;
    unsigned long long bucket = std::strtoull(number.c_str(), &end, 10);
    if (number.empty() || end != number.c_str() + number.size() || !tensor.defined() || tensor.dim() != 1 ||
        !is_floating(tensor.dtype())) {
      problems.add(detail::concat("key '", key, "': expected 'q.<bucket index>' holding a flat floating-point tensor"));
      continue;
    }
    q_memory.emplace(static_cast<size_t>(bucket), tensor.clone());
  }
  problems.raise_if_any("PowerSgdCompression (" + name() + ")::load_state_dict");
  set_steps(*steps);
  generator_.manual_seed(std::bit_cast<uint64_t>(*seed));
  generator_.set_offset(std::bit_cast<uint64_t>(*offset));
  error_feedback_.replace(std::move(residuals));
  q_memory_ = std::move(q_memory);
}

}  // namespace dtrain::dist
