#include "dist/mpi_backend.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/ops/factory.h"
#include "dist/mpi_error.h"
#include "dist/mpi_point_to_point.h"

namespace dtrain::dist {
namespace {

static_assert(sizeof(bool) == 1, "bool tensors travel as MPI_C_BOOL, one byte each");

// MPI counts are int; all_reduce and broadcast go in chunks of this many elements.
constexpr int64_t kMaxChunkElements = int64_t{1} << 30;

}  // namespace

MPI_Datatype mpi_datatype(DType dtype) {
  switch (dtype) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int32: return MPI_INT32_T;
    case DType::Int64: return MPI_INT64_T;
    case DType::Bool: return MPI_C_BOOL;
    case DType::BFloat16:
    case DType::Float16: return MPI_UINT16_T;  // reduced by the ops below
  }
  fail("MPI backend: no MPI datatype for dtype ", dtype);
}

namespace {

// Element-wise reductions of 16-bit floats for MPI: compute in float, round once per step.
template <typename Half, typename Combine>
void reduce_halves(void* in, void* inout, int* length, Combine combine) {
  auto* source = static_cast<const Half*>(in);
  auto* target = static_cast<Half*>(inout);
  for (int i = 0; i < *length; ++i) target[i] = Half(combine(float(source[i]), float(target[i])));
}
template <typename Half>
void sum_halves(void* in, void* inout, int* length, MPI_Datatype*) {
  reduce_halves<Half>(in, inout, length, [](float a, float b) { return a + b; });
}
template <typename Half>
void max_halves(void* in, void* inout, int* length, MPI_Datatype*) {
  reduce_halves<Half>(in, inout, length, [](float a, float b) { return std::max(a, b); });
}

// Created on the communication thread at first use (the only thread that calls MPI after init);
// MPI_Finalize frees them.
struct HalfOps {
  MPI_Op bfloat16_sum, bfloat16_max, float16_sum, float16_max;
};
const HalfOps& half_ops() {
  static const HalfOps ops = [] {
    HalfOps created{};
    const int commutative = 1;
    check_mpi(MPI_Op_create(&sum_halves<bfloat16>, commutative, &created.bfloat16_sum), "MPI_Op_create");
    check_mpi(MPI_Op_create(&max_halves<bfloat16>, commutative, &created.bfloat16_max), "MPI_Op_create");
    check_mpi(MPI_Op_create(&sum_halves<float16>, commutative, &created.float16_sum), "MPI_Op_create");
    check_mpi(MPI_Op_create(&max_halves<float16>, commutative, &created.float16_max), "MPI_Op_create");
    return created;
  }();
  return ops;
}

// Average is a sum here; the caller divides afterwards.
MPI_Op mpi_op(ReduceOp op, DType dtype) {
  bool is_max = op == ReduceOp::Max;
  switch (dtype) {
    case DType::Bool: return MPI_LOR;  // sum and max of truth values: or (as PyTorch)
    case DType::BFloat16: return is_max ? half_ops().bfloat16_max : half_ops().bfloat16_sum;
    case DType::Float16: return is_max ? half_ops().float16_max : half_ops().float16_sum;
    default: return is_max ? MPI_MAX : MPI_SUM;
  }
}

// data[i] /= divisor for a floating dtype (16-bit floats divide in float and round once).
void divide_in_place(void* data, int64_t count, DType dtype, int divisor) {
  visit_dtype(dtype, [&]<typename T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      T* values = static_cast<T*>(data);
      const T denominator = static_cast<T>(divisor);
      for (int64_t i = 0; i < count; ++i) values[i] /= denominator;
    } else if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) {
      T* values = static_cast<T*>(data);
      const float denominator = static_cast<float>(divisor);
      for (int64_t i = 0; i < count; ++i) values[i] = T(float(values[i]) / denominator);
    } else {
      fail("average: expected a floating dtype, got ", dtype);  // the group refuses these first
    }
  });
}

int checked_count(int64_t count, const char* collective) {
  if (count > INT_MAX) {
    fail(collective, ": ", count, " elements per rank exceed what one MPI call can carry (", INT_MAX,
         "); split the tensor");
  }
  return static_cast<int>(count);
}

bool overlaps(const Tensor& a, const Tensor& b) {
  auto* a_begin = static_cast<const char*>(a.data());
  auto* b_begin = static_cast<const char*>(b.data());
  return a_begin < b_begin + b.nbytes() && b_begin < a_begin + a.nbytes();
}

}  // namespace

MpiBackend::MpiBackend(MPI_Comm comm, int size, int rank, std::shared_ptr<CommunicationThread> thread)
    : comm_(comm), size_(size), rank_(rank), thread_(std::move(thread)) {}

MpiBackend::~MpiBackend() {
  // Behind the collectives still queued on it. After dist::finalize the thread is gone and
  // MPI_Finalize has freed the communicator. A destructor cannot raise, and a communicator that
  // failed to free costs only its memory: the return code is not checked.
  thread_->enqueue_if_running("MPI_Comm_free", [comm = comm_]() mutable { MPI_Comm_free(&comm); });
}

std::string MpiBackend::describe(const char* collective, const Tensor& tensor, const char* suffix) const {
  return detail::concat("MPI ", collective, "(", dtype_name(tensor.dtype()), ", ", tensor.numel(), " elements",
                        suffix, ") over ", size_, size_ == 1 ? " rank" : " ranks");
}

WorkHandle MpiBackend::all_reduce(Tensor& tensor, ReduceOp op) {
  std::string description = describe("all_reduce", tensor, detail::concat(", ", reduce_op_name(op)).c_str());
  return thread_->enqueue(std::move(description), [tensor, op, comm = comm_, size = size_] {
    MPI_Datatype datatype = mpi_datatype(tensor.dtype());
    MPI_Op mpi_reduction = mpi_op(op, tensor.dtype());
    char* data = static_cast<char*>(tensor.data());
    const int64_t total = tensor.numel();
    for (int64_t start = 0; start < total; start += kMaxChunkElements) {
      int count = static_cast<int>(std::min(kMaxChunkElements, total - start));
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + start * tensor.element_size(), count, datatype, mpi_reduction, comm),
                "MPI_Allreduce");
    }
    if (op == ReduceOp::Average) divide_in_place(data, total, tensor.dtype(), size);
  });
}

WorkHandle MpiBackend::reduce(Tensor& tensor, ReduceOp op, int root) {
  std::string description =
      describe("reduce", tensor, detail::concat(", ", reduce_op_name(op), ", root ", root).c_str());
  return thread_->enqueue(std::move(description), [tensor, op, root, comm = comm_, size = size_, rank = rank_] {
    MPI_Datatype datatype = mpi_datatype(tensor.dtype());
    MPI_Op mpi_reduction = mpi_op(op, tensor.dtype());
    char* data = static_cast<char*>(tensor.data());
    const int64_t total = tensor.numel();
    const bool is_root = rank == root;
    for (int64_t start = 0; start < total; start += kMaxChunkElements) {
      int count = static_cast<int>(std::min(kMaxChunkElements, total - start));
      char* chunk = data + start * tensor.element_size();
      // The root reduces into its own tensor; the others only send theirs (the receive buffer is
      // not read on them).
      check_mpi(MPI_Reduce(is_root ? MPI_IN_PLACE : chunk, is_root ? chunk : nullptr, count, datatype, mpi_reduction,
                           root, comm),
                "MPI_Reduce");
    }
    if (op == ReduceOp::Average && is_root) divide_in_place(data, total, tensor.dtype(), size);
  });
}

WorkHandle MpiBackend::divide(Tensor& tensor, int divisor) {
  std::string description = detail::concat("divide(", dtype_name(tensor.dtype()), ", ", tensor.numel(),
                                           " elements) by ", divisor);
  return thread_->enqueue(std::move(description),
                          [tensor, divisor] { divide_in_place(tensor.data(), tensor.numel(), tensor.dtype(), divisor); });
}

WorkHandle MpiBackend::broadcast(Tensor& tensor, int root) {
  std::string description = describe("broadcast", tensor, detail::concat(", root ", root).c_str());
  return thread_->enqueue(std::move(description), [tensor, root, comm = comm_] {
    MPI_Datatype datatype = mpi_datatype(tensor.dtype());
    char* data = static_cast<char*>(tensor.data());
    const int64_t total = tensor.numel();
    for (int64_t start = 0; start < total; start += kMaxChunkElements) {
      int count = static_cast<int>(std::min(kMaxChunkElements, total - start));
      check_mpi(MPI_Bcast(data + start * tensor.element_size(), count, datatype, root, comm), "MPI_Bcast");
    }
  });
}

WorkHandle MpiBackend::all_gather(const Tensor& input, Tensor& output) {
  const int count = checked_count(input.numel(), "all_gather");
  const char* my_slot = static_cast<const char*>(output.data()) + rank_ * input.nbytes();
  // input already in this rank's slot of output is what MPI_IN_PLACE means; any other overlap
  // would have MPI read bytes it is overwriting, so such an input travels as a copy.
  const bool in_place = input.data() == my_slot;
  Tensor source = input;
  if (!in_place && overlaps(input, output)) {
    MemoryTagScope communication(MemoryTag::Communication);
    source = input.clone();
  }
  return thread_->enqueue(describe("all_gather", input, " per rank"), [source, output, count, in_place, comm = comm_] {
    MPI_Datatype datatype = mpi_datatype(source.dtype());
    const void* send = in_place ? MPI_IN_PLACE : source.data();
    check_mpi(MPI_Allgather(send, count, datatype, output.data(), count, datatype, comm), "MPI_Allgather");
  });
}

WorkHandle MpiBackend::reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) {
  const int count = checked_count(output.numel(), "reduce_scatter");
  // MPI must not write into bytes it still reads; an output inside the input (ZeRO's own shard)
  // receives into a separate buffer first.
  Tensor receive = output;
  if (overlaps(input, output)) {
    MemoryTagScope communication(MemoryTag::Communication);
    receive = empty(output.shape(), {.dtype = output.dtype()});
  }
  std::string description = describe("reduce_scatter", input, detail::concat(", ", reduce_op_name(op)).c_str());
  return thread_->enqueue(std::move(description), [input, output, receive, op, count, comm = comm_, size = size_] {
    MPI_Datatype datatype = mpi_datatype(input.dtype());
    check_mpi(MPI_Reduce_scatter_block(input.data(), receive.data(), count, datatype, mpi_op(op, input.dtype()), comm),
              "MPI_Reduce_scatter_block");
    if (op == ReduceOp::Average) divide_in_place(receive.data(), count, receive.dtype(), size);
    if (!receive.is_same(output)) std::memcpy(output.data(), receive.data(), output.nbytes());
  });
}

WorkHandle MpiBackend::barrier() {
  std::string description = detail::concat("MPI barrier over ", size_, size_ == 1 ? " rank" : " ranks");
  return thread_->enqueue(std::move(description), [comm = comm_] { check_mpi(MPI_Barrier(comm), "MPI_Barrier"); });
}

WorkHandle MpiBackend::send_receive(const std::vector<PointToPoint>& operations) {
  std::string description =
      detail::concat("MPI send_receive(", describe_point_to_point(operations), ") on rank ", rank_, " of ", size_);
  return thread_->enqueue(std::move(description), [operations, comm = comm_, size = size_] {
    exchange_point_to_point(operations, comm, size);
  });
}

std::unique_ptr<CommunicationBackend> MpiBackend::split(int color, int key) {
  MPI_Comm subgroup = MPI_COMM_NULL;
  int subgroup_size = 0;
  int subgroup_rank = 0;
  // On the communication thread, in order with the collectives already queued on this group.
  thread_->enqueue("MPI_Comm_split", [&, comm = comm_] {
    check_mpi(MPI_Comm_split(comm, color < 0 ? MPI_UNDEFINED : color, key, &subgroup), "MPI_Comm_split");
    if (subgroup == MPI_COMM_NULL) return;
    check_mpi(MPI_Comm_set_errhandler(subgroup, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check_mpi(MPI_Comm_size(subgroup, &subgroup_size), "MPI_Comm_size");
    check_mpi(MPI_Comm_rank(subgroup, &subgroup_rank), "MPI_Comm_rank");
  })->wait();
  if (subgroup == MPI_COMM_NULL) return nullptr;
  return std::make_unique<MpiBackend>(subgroup, subgroup_size, subgroup_rank, thread_);
}

}  // namespace dtrain::dist
