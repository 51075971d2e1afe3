// Tensor handle basics: shapes, dtypes, conversion, printing, memory accounting, storage release.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dtrain.h"

using namespace dtrain;
using Catch::Contains;

TEST_CASE("a tensor is a value handle: copies share data and identity") {
  Tensor a = zeros({2, 3});
  Tensor b = a;
  b.fill_(5);
  REQUIRE(a.to_vector<float>() == std::vector<float>(6, 5.0f));
  REQUIRE(a.is_same(b));
  REQUIRE(a.shape() == Shape{2, 3});
  REQUIRE(a.strides() == Strides{3, 1});
  REQUIRE(a.numel() == 6);
  REQUIRE(a.dim() == 2);
  REQUIRE(a.size(-1) == 3);
  REQUIRE(a.dtype() == kFloat32);
  REQUIRE(a.device() == Device::cpu());
  REQUIRE(a.nbytes() == 24);
}

TEST_CASE("from_vector keeps values in row-major order and checks the count") {
  Tensor t = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  REQUIRE(t.dtype() == kFloat64);
  REQUIRE(t.select(0, 1).to_vector<double>() == std::vector<double>{4, 5, 6});
  REQUIRE_THROWS_WITH(from_vector<float>({1, 2, 3}, {2, 2}), Contains("3 values do not fill shape [2, 2]"));
}

TEST_CASE("every dtype converts to every other with rounding as expected") {
  Tensor f = from_vector<float>({1.5f, -2.25f, 3.0f, 0.0f});
  for (DType dtype : {kFloat32, kFloat64, kBFloat16, kFloat16}) {
    REQUIRE(f.to(dtype).to_vector<double>() == std::vector<double>{1.5, -2.25, 3.0, 0.0});
  }
  REQUIRE(f.to(kInt32).to_vector<int32_t>() == std::vector<int32_t>{1, -2, 3, 0});  // truncation
  REQUIRE(f.to(kInt64).to_vector<int64_t>() == std::vector<int64_t>{1, -2, 3, 0});
  REQUIRE(f.to(kBool).to_vector<bool>() == std::vector<bool>{true, true, true, false});
  // bf16 keeps 8 significant bits: 1 + 2^-9 rounds to 1; f16 keeps it.
  Tensor fine = from_vector<float>({1.0f + 1.0f / 512});
  REQUIRE(fine.to(kBFloat16).item() == 1.0);
  REQUIRE(fine.to(kFloat16).item() == 1.0 + 1.0 / 512);
}

TEST_CASE("dtype promotion follows torch.result_type") {
  REQUIRE(promote_types(kInt32, kFloat32) == kFloat32);
  REQUIRE(promote_types(kInt64, kInt32) == kInt64);
  REQUIRE(promote_types(kBFloat16, kFloat16) == kFloat32);
  REQUIRE(promote_types(kFloat64, kBFloat16) == kFloat64);
  REQUIRE(promote_types(kBool, kInt32) == kInt32);
  REQUIRE((ones({2}, {.dtype = kInt32}) + ones({2}, {.dtype = kFloat64})).dtype() == kFloat64);
  REQUIRE((ones({2}, {.dtype = kInt64}) * 2.5).dtype() == kFloat32);
  REQUIRE((ones({2}, {.dtype = kBFloat16}) * 2.5).dtype() == kBFloat16);
}

TEST_CASE("item requires exactly one element") {
  REQUIRE(full({1, 1}, 7).item() == 7.0);
  REQUIRE_THROWS_WITH(zeros({2}).item(), Contains("exactly one element, got shape [2]"));
}

TEST_CASE("data_ptr checks the element type") {
  Tensor t = zeros({2});
  REQUIRE(t.data_ptr<float>() != nullptr);
  REQUIRE_THROWS_WITH(t.data_ptr<double>(), Contains("expected a tensor of dtype float64, got float32"));
}

// Found by the sanitizer build (UBSan: "applying non-zero offset 16 to null pointer", in stack of
// two [0, 4] tensors): the second piece of an empty [2, 0, 4] has an offset into storage with no bytes.
TEST_CASE("a view at an offset into an empty tensor has no address, not an offset from null") {
  Tensor whole = empty({2, 0, 4});
  REQUIRE(whole.data() == nullptr);
  CHECK(whole.narrow(0, 1, 1).data() == nullptr);
  CHECK(stack({zeros({0, 4}), zeros({0, 4})}, 0).shape() == Shape{2, 0, 4});
}

// Found by tests/fuzz/fuzz_idx under UBSan ("signed integer overflow: 7555749589769256960 * 2" in
// contiguous_strides): an empty shape's other sizes can be anything a damaged file says.
TEST_CASE("shapes whose element count or strides overflow int64 raise instead of wrapping") {
  const int64_t huge = int64_t{1} << 40;
  const Shape empty_shape = {huge, huge, 0};
  const Shape too_many = {huge, huge};
  CHECK(empty_shape.numel() == 0);
  REQUIRE_THROWS_WITH(too_many.numel(), Contains("has more elements than int64 can count"));
  REQUIRE_THROWS_WITH(empty(Shape({0, huge, huge})), Contains("shape [0, 1099511627776, 1099511627776] is too large"));
  const Strides expected = {huge, 1};  // the outermost size is never multiplied
  CHECK(contiguous_strides(too_many) == expected);
}

TEST_CASE("an undefined tensor is named, not dereferenced") {
  Tensor undefined;
  REQUIRE_FALSE(undefined.defined());
  REQUIRE_THROWS_WITH(undefined.shape(), Contains("undefined tensor"));
  REQUIRE_THROWS_WITH(add(undefined, ones({1})), Contains("add: argument 'a' is an undefined tensor"));
}

TEST_CASE("printing shows values, shape, dtype and device") {
  Tensor t = from_vector<float>({1, 2, 3, 4}, {2, 2});
  std::string text = t.str();
  REQUIRE(text == "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=[2, 2], dtype=float32, device=cpu)");
  REQUIRE(arange(3).str() == "tensor([0, 1, 2], shape=[3], dtype=int64, device=cpu)");
  std::string large = arange(5000).str();
  REQUIRE_THAT(large, Contains("[0, 1, 2, ..., 4997, 4998, 4999]"));
  Tensor w = ones({1}).set_requires_grad();
  REQUIRE_THAT(w.str(), Contains("requires_grad=true"));
}

TEST_CASE("the allocator counts bytes per tag, current and peak") {
  MemoryStats before = memory_stats();
  {
    MemoryTagScope scope(MemoryTag::OptimizerState);
    Tensor state = zeros({256});  // 1 KiB
    MemoryStats during = memory_stats();
    REQUIRE(during[MemoryTag::OptimizerState].current - before[MemoryTag::OptimizerState].current == 1024);
    REQUIRE(during.total.current - before.total.current == 1024);
    state.storage()->set_tag(MemoryTag::Gradients);
    MemoryStats retagged = memory_stats();
    REQUIRE(retagged[MemoryTag::OptimizerState].current == before[MemoryTag::OptimizerState].current);
    REQUIRE(retagged[MemoryTag::Gradients].current - before[MemoryTag::Gradients].current == 1024);
  }
  MemoryStats after = memory_stats();
  REQUIRE(after.total.current == before.total.current);
  REQUIRE(after[MemoryTag::OptimizerState].peak >= before[MemoryTag::OptimizerState].current + 1024);
  reset_peak_memory_stats();
  REQUIRE(memory_stats().total.peak == memory_stats().total.current);
}

TEST_CASE("storage can be released and materialised in place, and views see the new bytes") {
  Tensor parameter = from_vector<float>({1, 2, 3, 4});
  Tensor view = parameter.narrow(0, 1, 2);
  MemoryStats before = memory_stats();
  parameter.storage()->release();
  REQUIRE(memory_stats().total.current == before.total.current - 16);
  REQUIRE_THROWS_WITH(view.to_vector<float>(), Contains("was released"));
  REQUIRE_THAT(parameter.str(), Contains("<released>"));
  parameter.storage()->materialize();
  parameter.copy_(from_vector<float>({5, 6, 7, 8}));
  REQUIRE(view.to_vector<float>() == std::vector<float>{6, 7});
}

TEST_CASE("a saved tensor sees data re-materialised after release") {
  Tensor weight = from_vector<double>({2.0, 3.0}).set_requires_grad();
  Tensor gathered = from_vector<double>({5.0, 7.0});  // plays ZeRO-3's gathered full parameter
  Tensor out = (weight * gathered).sum();
  gathered.storage()->release();
  gathered.storage()->materialize();
  std::memcpy(gathered.data(), std::vector<double>{5.0, 7.0}.data(), 16);  // re-gathered bytes
  out.backward();
  REQUIRE(weight.grad().to_vector<double>() == std::vector<double>{5.0, 7.0});
}

TEST_CASE("set_num_threads rejects zero threads") {
  REQUIRE_THROWS_WITH(set_num_threads(0), Contains("at least 1 thread"));
}
