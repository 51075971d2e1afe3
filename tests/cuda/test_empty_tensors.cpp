// Every op on tensors with a zero-size dim on CUDA against the CPU (the cases and their hand-worked
// results are tests/support/empty_tensor_cases.h; the CPU test checks those results): shape,
// dtype, values, gradients, and the same named errors. Also every transfer of an empty tensor.
#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "tests/cuda/cuda_test_support.h"
#include "tests/support/empty_tensor_cases.h"

using namespace dtrain;
using namespace dtrain::cuda_test;

TEST_CASE("cuda empty tensors: transfers both ways and copies on the device") {
  for (const Shape& shape : {Shape{3, 0}, Shape{0}, Shape{2, 0, 5}}) {
    INFO(shape);
    Tensor on_gpu = zeros(shape).to(gpu());
    REQUIRE(on_gpu.device() == gpu());
    REQUIRE(on_gpu.shape() == shape);
    CHECK(on_gpu.to(Device::cpu()).shape() == shape);
    CHECK(on_gpu.to(kBFloat16).to(Device::cpu()).shape() == shape);
    CHECK(on_gpu.transpose(0, -1).contiguous().shape().numel() == 0);
    CHECK(on_gpu.to_vector<float>().empty());
  }
}

TEST_CASE("cuda empty tensors: every op matches the CPU forward and backward") {
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const test::EmptyOpCase& op : test::empty_op_cases()) {
      const std::string what = std::string(op.name) + " " + dtype_name(dtype);
      INFO(what);
      std::vector<Tensor> cpu_inputs = test::empty_case_inputs(op.input_shapes, dtype, Device::cpu());
      std::vector<Tensor> gpu_inputs = test::empty_case_inputs(op.input_shapes, dtype, gpu());
      Tensor cpu_out = op.fn(cpu_inputs, Device::cpu());
      Tensor gpu_out = op.fn(gpu_inputs, gpu());
      require_match(gpu_out, cpu_out, what);
      if (!is_floating(cpu_out.dtype()) || !cpu_out.requires_grad()) continue;
      sum(mul(cpu_out, 0.0)).backward();
      sum(mul(gpu_out, 0.0)).backward();
      for (size_t i = 0; i < cpu_inputs.size(); ++i) {
        const Tensor cpu_grad = cpu_inputs[i].grad(), gpu_grad = gpu_inputs[i].grad();
        INFO("gradient of input " << i);
        REQUIRE(cpu_grad.defined() == gpu_grad.defined());
        if (cpu_grad.defined()) require_match(gpu_grad, cpu_grad, what + " gradient " + std::to_string(i));
      }
    }
  }
}

TEST_CASE("cuda empty tensors: reductions with no value raise as on the CPU") {
  for (const test::EmptyOpError& op : test::empty_op_errors()) {
    INFO(op.name);
    std::vector<Tensor> inputs = test::empty_case_inputs(op.input_shapes, kFloat32, gpu());
    CHECK_THROWS_WITH(op.fn(inputs, gpu()), Catch::Contains(op.message) && Catch::Contains("the extreme of no elements is undefined"));
  }
}
