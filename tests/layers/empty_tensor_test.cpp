// Every op on tensors with a zero-size dim, on the CPU: the result's shape and values as worked
// out by hand (tests/support/empty_tensor_cases.h), a backward through it that gives each input a
// gradient of its own shape (zeros: nothing flowed), and a named error where a reduction has no
// value. The GPU test runs the same cases against these CPU results.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "tests/support/empty_tensor_cases.h"

using namespace dtrain;
using dtrain::test::EmptyExpected;

namespace {

void require_values(const Tensor& out, const std::vector<Tensor>& inputs, EmptyExpected expected) {
  switch (expected) {
    case EmptyExpected::NoElements: REQUIRE(out.numel() == 0); return;
    case EmptyExpected::Zeros:
      for (double value : out.to_vector<double>()) REQUIRE(value == 0.0);
      return;
    case EmptyExpected::NaN:
      for (double value : out.to_vector<double>()) REQUIRE(std::isnan(value));
      return;
    case EmptyExpected::FirstInput: REQUIRE(out.to_vector<double>() == inputs[0].to_vector<double>()); return;
  }
}

}  // namespace

TEST_CASE("an empty tensor is contiguous, whatever its strides") {
  CHECK(zeros({3, 0}).is_contiguous());
  CHECK(zeros({0}).is_contiguous());
  CHECK(zeros({2, 0, 5}).transpose(0, 2).is_contiguous());
  CHECK(zeros({4, 3}).narrow(1, 1, 0).is_contiguous());
  CHECK_FALSE(zeros({4, 3}).transpose(0, 1).is_contiguous());  // not every tensor: a real transpose is not
}

TEST_CASE("every op works on tensors with a zero-size dim, forward and backward, on the CPU") {
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const test::EmptyOpCase& op : test::empty_op_cases()) {
      INFO(op.name << " " << dtype);
      std::vector<Tensor> inputs = test::empty_case_inputs(op.input_shapes, dtype, Device::cpu());
      Tensor out = op.fn(inputs, Device::cpu());
      REQUIRE(out.shape() == op.expected_shape);
      if (out.numel() == 0) REQUIRE(out.is_contiguous());
      require_values(out, inputs, op.expected);
      if (!is_floating(out.dtype()) || !out.requires_grad()) continue;
      // Weighted by zero, so even a NaN result (a mean of nothing) sends back zeros: every
      // gradient that reaches an input is zero, in the input's own shape.
      sum(mul(out, 0.0)).backward();
      for (size_t i = 0; i < inputs.size(); ++i) {
        INFO("gradient of input " << i);
        const Tensor grad = inputs[i].grad();
        if (!grad.defined()) {
          REQUIRE(inputs[i].numel() == 0);  // only an empty input may be left without a gradient
          continue;
        }
        REQUIRE(grad.shape() == inputs[i].shape());
        for (double value : grad.to_vector<double>()) REQUIRE(value == 0.0);
      }
    }
  }
}

TEST_CASE("reductions with no value over an empty dim raise, naming the op") {
  for (const test::EmptyOpError& op : test::empty_op_errors()) {
    INFO(op.name);
    std::vector<Tensor> inputs = test::empty_case_inputs(op.input_shapes, kFloat32, Device::cpu());
    CHECK_THROWS_WITH(op.fn(inputs, Device::cpu()), Catch::Contains(op.message) && Catch::Contains("the extreme of no elements is undefined"));
  }
}

TEST_CASE("empty tensors travel through every transfer and copy") {
  Tensor x = zeros({3, 0});
  CHECK(x.to(kInt64).shape() == Shape{3, 0});
  CHECK(x.contiguous().shape() == Shape{3, 0});
  CHECK(x.clone().nbytes() == 0);
  CHECK(x.to(Device::cpu()).shape() == Shape{3, 0});
  CHECK(from_vector(std::vector<float>{}, {0, 2}).shape() == Shape{0, 2});
  CHECK(x.to_vector<float>().empty());
}
