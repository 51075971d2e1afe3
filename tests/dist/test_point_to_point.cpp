// Point-to-point (ProcessGroup::send_receive): ring exchanges with values known by hand, several
// messages between one pair in order, ranks with nothing to exchange, argument errors raised on
// every rank, and debug mode — no false alarm when every rank has other peers, an error on every
// rank when a send and its receive disagree.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/dist/collective_test_support.h"

// Inside dist's namespace: dist::ReduceOp, not core's kernel-table enum of the same name.
namespace dtrain::dist::collective_testing {
using Catch::Matchers::Contains;

namespace {

int right_of(int rank, int n) { return (rank + 1) % n; }
int left_of(int rank, int n) { return (rank + n - 1) % n; }

}  // namespace

TEST_CASE("a ring exchange gives every rank its left neighbour's tensor, in every dtype and size", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  for (bool checks : {false, true}) {
    CollectiveChecksScope scope(checks);
    for (DType dtype : kNumericDtypes) {
      for (int64_t size : kSizes) {
        INFO("dtype " << dtype << ", " << size << " elements, checks " << checks);
        Tensor mine = make_tensor(size, dtype, [&](int64_t i) { return contribution(r, i); });
        Tensor from_left = full({size}, -100.0, {.dtype = dtype});
        group.send_receive({{PointToPoint::Send, mine, right_of(r, n)}, {PointToPoint::Receive, from_left, left_of(r, n)}})
            ->wait();
        // Rank r's left neighbour is (r - 1) mod n: its value is (left + 1) * m(i).
        check_values(from_left, [&](int64_t i) { return contribution(left_of(r, n), i); });
        check_values(mine, [&](int64_t i) { return contribution(r, i); });  // a send leaves its tensor alone
      }
    }
  }
}

TEST_CASE("both ways around the ring at once: one tensor sent to both neighbours", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  Tensor mine = make_tensor(7, kFloat32, [&](int64_t i) { return 10.0 * r + i; });
  Tensor from_left = zeros({7});
  Tensor from_right = zeros({7});
  // Sends before receives on even ranks, the other way on odd ones: the order inside a call must
  // not matter, since everything is posted before anything is waited for.
  std::vector<PointToPoint> sends = {{PointToPoint::Send, mine, right_of(r, n)}, {PointToPoint::Send, mine, left_of(r, n)}};
  std::vector<PointToPoint> receives = {{PointToPoint::Receive, from_left, left_of(r, n)},
                                        {PointToPoint::Receive, from_right, right_of(r, n)}};
  std::vector<PointToPoint> operations = r % 2 == 0 ? sends : receives;
  const std::vector<PointToPoint>& second = r % 2 == 0 ? receives : sends;
  operations.insert(operations.end(), second.begin(), second.end());
  group.send_receive(operations)->wait();
  // With n = 2 left and right are the same rank, which sends two messages: they pair in order,
  // so the first (to its right, rank r) lands in from_left and the second in from_right — the
  // same values either way. With n = 1 everything comes from rank 0 itself.
  check_values(from_left, [&](int64_t i) { return 10.0 * left_of(r, n) + i; });
  check_values(from_right, [&](int64_t i) { return 10.0 * right_of(r, n) + i; });
}

TEST_CASE("several messages between one pair of ranks pair up in the order they were posted", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  std::vector<Tensor> sent;
  std::vector<Tensor> received;
  std::vector<PointToPoint> operations;
  for (int k = 0; k < 3; ++k) {
    sent.push_back(full({k + 1}, 100.0 * r + k, {.dtype = kFloat64}));
    received.push_back(full({k + 1}, -1.0, {.dtype = kFloat64}));
    operations.push_back({PointToPoint::Send, sent.back(), right_of(r, n)});
  }
  for (int k = 2; k >= 0; --k) operations.insert(operations.begin(), {PointToPoint::Receive, received[k], left_of(r, n)});
  group.send_receive(operations)->wait();
  for (int k = 0; k < 3; ++k) check_values(received[k], [&](int64_t) { return 100.0 * left_of(r, n) + k; });
}

TEST_CASE("ranks with nothing to exchange pass an empty list", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  for (bool checks : {false, true}) {
    CollectiveChecksScope scope(checks);
    // Rank n - 1 sends to rank 0; everyone else stands by (in a world of one, rank 0 to itself).
    Tensor payload = from_vector<int64_t>({7, 8, 9});
    Tensor landing = zeros({3}, {.dtype = kInt64});
    std::vector<PointToPoint> operations;
    if (r == n - 1) operations.push_back({PointToPoint::Send, payload, 0});
    if (r == 0) operations.push_back({PointToPoint::Receive, landing, n - 1});
    group.send_receive(operations)->wait();
    if (r == 0) check_values(landing, [&](int64_t i) { return 7.0 + i; });
    require_group_still_works(group);
  }
}

TEST_CASE("a peer outside the group raises on every rank that names it, naming the range", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  for (bool checks : {false, true}) {
    CollectiveChecksScope scope(checks);
    for (int bad_peer : {n, -1}) {
      Tensor tensor = zeros({4});
      std::string message = error_of([&] { group.send_receive({{PointToPoint::Send, tensor, bad_peer}}); });
      CHECK_THAT(message, Contains(detail::concat("expected a peer rank in [0, ", n, ")")));
      CHECK_THAT(message, Contains(detail::concat("got ", bad_peer)));
    }
    require_group_still_works(group);
  }
}

TEST_CASE("with the checks on, one rank's bad peer raises on every rank, the others' calls being fine", "[dist]") {
  CollectiveChecksScope checks(true);
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  Tensor mine = full({5}, static_cast<double>(r));
  Tensor from_left = zeros({5});
  std::vector<PointToPoint> operations = {{PointToPoint::Send, mine, right_of(r, n)},
                                          {PointToPoint::Receive, from_left, left_of(r, n)}};
  if (r == 0) operations[0].peer = n + 3;
  std::string message = error_of([&] { group.send_receive(operations); });
  CHECK_THAT(message, Contains("rank 0 could not issue send_receive"));
  CHECK_THAT(message, Contains(detail::concat("expected a peer rank in [0, ", n, ")")));
  require_group_still_works(group);
}

TEST_CASE("with the checks on, a send and its receive of different sizes raise on every rank", "[dist]") {
  CollectiveChecksScope checks(true);
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  // Rank 0 expects one element more than its left neighbour sends (in a world of one the local
  // check refuses the pair before any exchange; the message is the same).
  Tensor mine = zeros({6});
  Tensor from_left = zeros({r == 0 ? 7 : 6});
  std::string message = error_of([&] {
    group.send_receive({{PointToPoint::Send, mine, right_of(r, n)}, {PointToPoint::Receive, from_left, left_of(r, n)}});
  });
  CHECK_THAT(message, Contains(detail::concat("send #0 from rank ", left_of(0, n), " to rank 0 carries 6 elements of "
                                              "float32 but its receive on rank 0 expects 7 elements of float32")));
  // A send with no receive at all.
  std::vector<PointToPoint> unmatched;
  if (r == 0) unmatched.push_back({PointToPoint::Send, mine, n - 1});
  message = error_of([&] { group.send_receive(unmatched); });
  CHECK_THAT(message, Contains(detail::concat("rank 0 sends 1 tensor to rank ", n - 1, " but rank ", n - 1,
                                              " receives 0 from rank 0")));
  require_group_still_works(group);
}

TEST_CASE("without the checks, a receive of another size than the message raises from the receiver's wait",
          "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  if (n < 2) return;  // in a world of one the argument check sees both ends (below)
  CollectiveChecksScope checks(false);
  const int r = group.rank();
  // Rank 0 posts a receive longer, then shorter, than the 3 elements its left neighbour sends,
  // then an empty one.
  for (int64_t expected : {5, 2, 0}) {
    INFO("rank 0 expects " << expected);
    Tensor mine = full({3}, 1.0);
    Tensor from_left = zeros({r == 0 ? expected : 3});
    WorkHandle work =
        group.send_receive({{PointToPoint::Send, mine, right_of(r, n)}, {PointToPoint::Receive, from_left, left_of(r, n)}});
    if (r == 0) {
      std::string message = error_of([&] { work->wait(); });
      CHECK_THAT(message, Contains(detail::concat("the receive of operation 1 from rank ", n - 1, " expected a message of ",
                                                  expected, " elements of float32 (", 4 * expected,
                                                  " bytes), got 12 bytes")));
    } else {
      work->wait();
      check_values(from_left, [](int64_t) { return 1.0; });
    }
    require_group_still_works(group);
  }
  // The wrong messages were consumed: the next exchange between the same ranks gets its own.
  Tensor mine = full({4}, static_cast<double>(r));
  Tensor from_left = zeros({4});
  group.send_receive({{PointToPoint::Send, mine, right_of(r, n)}, {PointToPoint::Receive, from_left, left_of(r, n)}})
      ->wait();
  check_values(from_left, [&](int64_t) { return static_cast<double>(left_of(r, n)); });
}

TEST_CASE("argument errors: undefined, strided, overlapping receives, unpaired self sends", "[dist]") {
  ProcessGroup& group = world();
  const int r = group.rank();
  for (bool checks : {false, true}) {
    CollectiveChecksScope scope(checks);
    // Every rank's call is wrong; with the checks on every rank reports the first (rank 0's).
    const int reported = checks ? 0 : r;
    std::string message = error_of([&] { group.send_receive({{PointToPoint::Send, Tensor(), r}}); });
    CHECK_THAT(message, Contains("expected a defined tensor in operation 0 (send), got an undefined one"));

    Tensor matrix = zeros({3, 4});
    message = error_of([&] { group.send_receive({{PointToPoint::Receive, matrix.t(), r}}); });
    CHECK_THAT(message, Contains("expected a contiguous tensor in operation 0 (receive)"));

    // Two receives into overlapping bytes, and a receive into a tensor that is also sent.
    Tensor buffer = zeros({8});
    Tensor self_payload = zeros({5});
    message = error_of([&] {
      group.send_receive({{PointToPoint::Send, self_payload, r},
                          {PointToPoint::Send, self_payload, r},
                          {PointToPoint::Receive, buffer.narrow(0, 0, 5), r},
                          {PointToPoint::Receive, buffer.narrow(0, 3, 5), r}});
    });
    CHECK_THAT(message, Contains("the receive of operation 2 (from rank " + std::to_string(reported) +
                                 ") writes bytes that operation 3 (receive) also uses"));
    message = error_of([&] {
      group.send_receive({{PointToPoint::Send, buffer, r}, {PointToPoint::Receive, buffer, r}});
    });
    CHECK_THAT(message, Contains("writes bytes that operation 0 (send) also uses"));

    // Sends to oneself pair with receives from oneself, which are all in this call.
    Tensor small = zeros({2});
    Tensor wrong_dtype = zeros({2}, {.dtype = kFloat64});
    message = error_of([&] { group.send_receive({{PointToPoint::Send, small, r}}); });
    CHECK_THAT(message, Contains(detail::concat("rank ", reported, " sends 1 tensor to rank ", reported, " but rank ",
                                                reported, " receives 0 from rank ", reported)));
    message = error_of([&] {
      group.send_receive({{PointToPoint::Send, small, r}, {PointToPoint::Receive, wrong_dtype, r}});
    });
    CHECK_THAT(message, Contains("carries 2 elements of float32 but its receive on rank " + std::to_string(reported) +
                                 " expects 2 elements of float64"));
    require_group_still_works(group);
  }
}

TEST_CASE("a send to oneself lands in the receive from oneself", "[dist]") {
  ProcessGroup& group = world();
  const int r = group.rank();
  Tensor first = from_vector<float>({1, 2, 3});
  Tensor second = from_vector<float>({4, 5});
  Tensor into_first = zeros({3});
  Tensor into_second = zeros({2});
  group.send_receive({{PointToPoint::Receive, into_first, r},
                      {PointToPoint::Send, first, r},
                      {PointToPoint::Receive, into_second, r},
                      {PointToPoint::Send, second, r}})
      ->wait();
  check_values(into_first, [](int64_t i) { return 1.0 + i; });
  check_values(into_second, [](int64_t i) { return 4.0 + i; });
}

}  // namespace dtrain::dist::collective_testing
