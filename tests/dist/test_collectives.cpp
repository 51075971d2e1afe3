// Every collective at the world size mpirun gave (1 to 4), every dtype, sizes that do not divide
// by the world size and zero-size tensors, against values computed in closed form.
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include "dist/wait_all.h"
#include "tests/dist/collective_test_support.h"

// Inside dist's namespace: dist::ReduceOp, not core's kernel-table enum of the same name.
namespace dtrain::dist::collective_testing {

TEST_CASE("all_reduce sums, averages and takes the maximum across ranks", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  for (DType dtype : kNumericDtypes) {
    for (int64_t numel : kSizes) {
      INFO(dtype_name(dtype) << ", " << numel << " elements, " << n << " ranks");
      Tensor summed = make_tensor(numel, dtype, [&](int64_t i) { return contribution(r, i); });
      group.all_reduce(summed, ReduceOp::Sum)->wait();
      check_values(summed, [&](int64_t i) { return sum_over_ranks(n, i); });

      Tensor maximum = make_tensor(numel, dtype, [&](int64_t i) { return contribution(r, i); });
      group.all_reduce(maximum, ReduceOp::Max)->wait();
      check_values(maximum, [&](int64_t i) { return max_over_ranks(n, i); });

      if (is_floating(dtype)) {
        Tensor averaged = make_tensor(numel, dtype, [&](int64_t i) { return contribution(r, i); });
        group.all_reduce(averaged, ReduceOp::Average)->wait();
        check_values(averaged, [&](int64_t i) { return sum_over_ranks(n, i) / n; });
      }
    }
  }
}

TEST_CASE("all_reduce of bool tensors is a logical or for sum and max", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max}) {
    for (int64_t numel : kSizes) {
      INFO(reduce_op_name(op) << ", " << numel << " elements");
      Tensor flags = make_tensor(numel, kBool, [&](int64_t i) { return truth(r, n, i); });
      group.all_reduce(flags, op)->wait();
      REQUIRE(flags.dtype() == kBool);
      check_values(flags, [&](int64_t i) { return i % (n + 1) != n ? 1.0 : 0.0; });
    }
  }
}

TEST_CASE("all_reduce works on any contiguous shape, in place", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  Tensor matrix = full({3, 5}, group.rank() + 1.0, {.dtype = kFloat64});
  const void* bytes = matrix.data();
  group.all_reduce(matrix)->wait();
  REQUIRE(matrix.shape() == Shape{3, 5});
  REQUIRE(matrix.data() == bytes);
  check_values(matrix, [&](int64_t) { return n * (n + 1) / 2.0; });
}

TEST_CASE("broadcast copies the root's tensor to every rank, from every root", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  for (int root = 0; root < n; ++root) {
    for (DType dtype : kAllDtypes) {
      for (int64_t numel : kSizes) {
        INFO("root " << root << ", " << dtype_name(dtype) << ", " << numel << " elements");
        auto value = [&](int rank, int64_t i) { return dtype == kBool ? truth(rank, n, i) : contribution(rank, i); };
        Tensor tensor = make_tensor(numel, dtype, [&](int64_t i) { return value(r, i); });
        group.broadcast(tensor, root)->wait();
        check_values(tensor, [&](int64_t i) { return value(root, i); });
      }
    }
  }
}

TEST_CASE("all_gather places rank s's input at [s * n, (s + 1) * n) of every rank's output", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  for (DType dtype : kAllDtypes) {
    for (int64_t numel : kSizes) {
      INFO(dtype_name(dtype) << ", " << numel << " elements per rank");
      auto value = [&](int rank, int64_t i) { return dtype == kBool ? truth(rank, n, i) : contribution(rank, i); };
      Tensor input = make_tensor(numel, dtype, [&](int64_t i) { return value(r, i); });
      Tensor output = zeros({n * numel}, {.dtype = dtype});
      group.all_gather(input, output)->wait();
      check_values(output, [&](int64_t j) { return value(static_cast<int>(j / numel), j % numel); });
    }
  }
}

TEST_CASE("all_gather in place: the input is this rank's slot of the output", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  const int64_t shard = 1001;
  Tensor output = zeros({n * shard}, {.dtype = kFloat32});
  Tensor input = output.narrow(0, r * shard, shard);
  input.copy_(make_tensor(shard, kFloat32, [&](int64_t i) { return contribution(r, i); }));
  group.all_gather(input, output)->wait();
  check_values(output, [&](int64_t j) { return contribution(static_cast<int>(j / shard), j % shard); });
}

TEST_CASE("all_gather with an input that overlaps the output elsewhere still gathers the input", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  if (n == 1) return;  // one slot: any overlap is the in-place case
  const int64_t shard = 7;
  Tensor output = zeros({n * shard}, {.dtype = kFloat64});
  // The slot of the next rank: MPI would overwrite it while reading.
  Tensor input = output.narrow(0, ((r + 1) % n) * shard, shard);
  input.copy_(make_tensor(shard, kFloat64, [&](int64_t i) { return contribution(r, i); }));
  group.all_gather(input, output)->wait();
  check_values(output, [&](int64_t j) { return contribution(static_cast<int>(j / shard), j % shard); });
}

TEST_CASE("reduce_scatter gives rank r the reduction of every rank's [r * m, (r + 1) * m)", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  for (DType dtype : kNumericDtypes) {
    for (int64_t per_rank : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1001}, int64_t{75001}}) {
      INFO(dtype_name(dtype) << ", " << per_rank << " elements per rank, " << n << " ranks");
      auto global = [&](int64_t i) { return r * per_rank + i; };  // the input index of output element i
      std::vector<ReduceOp> ops = {ReduceOp::Sum, ReduceOp::Max};
      if (is_floating(dtype)) ops.push_back(ReduceOp::Average);
      for (ReduceOp op : ops) {
        INFO(reduce_op_name(op));
        Tensor input = make_tensor(n * per_rank, dtype, [&](int64_t j) { return contribution(r, j); });
        Tensor output = zeros({per_rank}, {.dtype = dtype});
        group.reduce_scatter(input, output, op)->wait();
        check_values(output, [&](int64_t i) {
          switch (op) {
            case ReduceOp::Sum: return sum_over_ranks(n, global(i));
            case ReduceOp::Max: return max_over_ranks(n, global(i));
            case ReduceOp::Average: return sum_over_ranks(n, global(i)) / n;
          }
          return 0.0;
        });
      }
    }
  }
}

TEST_CASE("reduce_scatter of bool tensors is a logical or", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  const int64_t per_rank = 13;
  Tensor input = make_tensor(n * per_rank, kBool, [&](int64_t j) { return truth(r, n, j); });
  Tensor output = zeros({per_rank}, {.dtype = kBool});
  group.reduce_scatter(input, output)->wait();
  check_values(output, [&](int64_t i) { return (r * per_rank + i) % (n + 1) != n ? 1.0 : 0.0; });
}

TEST_CASE("reduce_scatter in place: the output is this rank's slot of the input (ZeRO's shard)", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  const int64_t per_rank = 1001;
  Tensor input = make_tensor(n * per_rank, kFloat32, [&](int64_t j) { return contribution(r, j); });
  Tensor output = input.narrow(0, r * per_rank, per_rank);
  group.reduce_scatter(input, output, ReduceOp::Average)->wait();
  check_values(output, [&](int64_t i) { return sum_over_ranks(n, r * per_rank + i) / n; });
}

TEST_CASE("barrier returns on no rank before every rank has entered it", "[dist]") {
  ProcessGroup& group = world();
  group.barrier()->wait();  // line the ranks up
  const auto late_by = std::chrono::milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  if (group.rank() == 0) std::this_thread::sleep_for(late_by);
  group.barrier()->wait();
  auto waited = std::chrono::steady_clock::now() - start;
  // Every rank, rank 0 included, leaves the barrier only after rank 0's sleep.
  if (group.size() > 1) REQUIRE(waited >= late_by / 2);
}

TEST_CASE("collectives run in issue order and several can be outstanding", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  std::vector<Tensor> tensors;
  std::vector<WorkHandle> works;
  for (int k = 0; k < 12; ++k) {
    tensors.push_back(full({1000 + k}, (r + 1) * (k + 1), {.dtype = kFloat64}));
    works.push_back(k % 3 == 2 ? group.broadcast(tensors.back(), k % n) : group.all_reduce(tensors.back()));
  }
  for (int k = 11; k >= 0; --k) works[k]->wait();  // waiting out of order is fine
  for (int k = 0; k < 12; ++k) {
    INFO("collective " << k);
    double expected = k % 3 == 2 ? (k % n + 1) * (k + 1) : (k + 1) * n * (n + 1) / 2.0;
    check_values(tensors[k], [&](int64_t) { return expected; });
    REQUIRE(works[k]->is_completed());
  }
}

TEST_CASE("an all_reduce progresses while the issuing thread computes, without wait()", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  group.barrier()->wait();
  // Rank 0 issues at once; the others join 300 ms later. Rank 0's call must return at once, and
  // its collective must complete while rank 0 only computes (no MPI call, no wait) — progress
  // comes from the communication thread.
  if (r != 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Tensor tensor = full({1 << 18}, r + 1.0, {.dtype = kFloat32});
  auto issued = std::chrono::steady_clock::now();
  WorkHandle work = group.all_reduce(tensor);
  auto issue_time = std::chrono::steady_clock::now() - issued;
  // Debug mode gives the overlap up: the cross-rank check waits for every rank to issue.
  const bool asynchronous = n > 1 && !collective_checks_enabled();
  if (asynchronous) REQUIRE(issue_time < std::chrono::milliseconds(100));
  if (r == 0 && asynchronous) REQUIRE_FALSE(work->is_completed());

  Tensor a = randn({64, 64});
  Tensor accumulated = zeros({64, 64});
  int computed = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!work->is_completed() && std::chrono::steady_clock::now() < deadline) {
    accumulated.add_(matmul(a, a));
    ++computed;
  }
  REQUIRE(work->is_completed());
  if (r == 0 && asynchronous) REQUIRE(computed > 0);
  work->wait();
  check_values(tensor, [&](int64_t) { return n * (n + 1) / 2.0; });
}

TEST_CASE("Work::wait rethrows the collective's error on every call", "[dist]") {
  auto work = std::make_shared<PendingWork>();
  REQUIRE_FALSE(work->is_completed());
  work->fail(std::make_exception_ptr(Error("all_reduce failed: broken link")));
  REQUIRE(work->is_completed());
  REQUIRE_THROWS_WITH(work->wait(), Catch::Matchers::Contains("broken link"));
  REQUIRE_THROWS_AS(work->wait(), Error);
  REQUIRE(completed_work()->is_completed());
  REQUIRE_NOTHROW(completed_work()->wait());
}

TEST_CASE("wait_all waits for every work even after one fails, then rethrows the first error", "[dist]") {
  auto failing_first = std::make_shared<PendingWork>();
  auto failing_second = std::make_shared<PendingWork>();
  auto late = std::make_shared<PendingWork>();
  failing_first->fail(std::make_exception_ptr(Error("reduce_scatter of bucket 0 failed")));
  failing_second->fail(std::make_exception_ptr(Error("reduce_scatter of bucket 1 failed")));
  // Finished by another thread only after a delay: wait_all must still be waiting for it when
  // it has already seen both errors.
  std::thread finisher([late] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    late->complete();
  });
  std::vector<WorkHandle> works{failing_first, nullptr, failing_second, late};
  REQUIRE_THROWS_WITH(wait_all(works), Catch::Matchers::Contains("bucket 0"));
  const bool late_was_completed = late->is_completed();  // before join(): wait_all waited for it
  finisher.join();
  REQUIRE(late_was_completed);
  for (const WorkHandle& work : works) REQUIRE(work == nullptr);  // every handle was reset

  std::vector<WorkHandle> succeeding{completed_work(), completed_work()};
  REQUIRE_NOTHROW(wait_all(succeeding));

  FirstError first_error;
  int ran = 0;
  first_error.run([&] { ++ran; throw Error("first"); });
  first_error.run([&] { ++ran; throw Error("second"); });
  first_error.run([&] { ++ran; });
  REQUIRE(ran == 3);
  REQUIRE(first_error.failed());
  REQUIRE_THROWS_WITH(first_error.rethrow(), Catch::Matchers::EndsWith(": first"));
}

}  // namespace dtrain::dist::collective_testing
