// Deferred initialisation (layers/deferred_init.h): a model built under a DeferredInit holds no
// parameter bytes, and its recorded draws give, bit for bit, the values of a whole build from the
// same seed — materialised whole, or written range by range (any start, odd ones included) into
// tensors of other dtypes. The whole build is the reference: its values come from the ordinary
// random ops (uniform, normal, normal_), not from the recorded draws.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using dtrain::test::same_bits;

namespace {

const GPTConfig kConfig{.vocabulary = 37, .context = 9, .d_model = 12, .layers = 2, .heads = 3};

// Everything layers/init.h offers: uniform (Linear, Conv2d), normal (Embedding), constants
// (LayerNorm) and GPT's in-place redraw of its embeddings; tied weights too.
std::shared_ptr<Module> whole_gpt(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<GPT>(kConfig);
}

DeferredModel<GPT> deferred_gpt(uint64_t seed, DType dtype = kFloat32) {
  manual_seed(seed);
  return build_deferred_as<GPT>(dtype, kConfig);
}

std::shared_ptr<Module> conv_model() {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(3, 5, 3), std::make_shared<Flatten>(), std::make_shared<Linear>(7, 3)});
}

bool same_state(const Module& actual, const Module& expected, DType dtype) {
  StateDict a = actual.state_dict(), b = expected.state_dict();
  if (a.size() != b.size()) return false;
  for (const auto& [name, tensor] : b) {
    const Tensor* other = a.find(name);
    if (other == nullptr || other->dtype() != tensor.dtype() || other->shape() != tensor.shape()) return false;
    const bool same = dtype == kFloat64 ? same_bits<double>(*other, tensor) : same_bits<float>(*other, tensor);
    if (!same) {
      UNSCOPED_INFO("parameter " << name << " differs");
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("A deferred GPT holds no parameter bytes and materialises to the whole build's values", "[deferred_init]") {
  std::shared_ptr<Module> whole = whole_gpt(5);
  const uint64_t whole_offset = default_generator().offset();

  const MemoryStats before = memory_stats();
  reset_peak_memory_stats();
  DeferredModel<GPT> deferred = deferred_gpt(5);
  const MemoryStats built = memory_stats();
  // The generator moved exactly as in the whole build, so whatever is drawn next is the same too.
  CHECK(default_generator().offset() == whole_offset);
  CHECK(built[MemoryTag::Parameters].current == before[MemoryTag::Parameters].current);
  // Building holds one parameter's bytes for a moment (the size its storage records), no more.
  int64_t largest = 0;
  for (const Tensor& parameter : whole->parameters()) largest = std::max<int64_t>(largest, parameter.nbytes());
  CHECK(built[MemoryTag::Parameters].peak - before[MemoryTag::Parameters].current <= largest);
  for (const auto& [name, parameter] : deferred.model->named_parameters()) {
    INFO(name);
    CHECK_FALSE(parameter.storage()->is_resident());
    CHECK(deferred.parameters->contains(parameter));
  }
  // 2 embeddings, per block 2 norms x 2 + attention (qkv, proj) x 2 + MLP (fc, proj) x 2; final
  // norm x 2; the output layer's weight is the token embedding's.
  CHECK(deferred.parameters->size() == 2 + 2 * 12 + 2);
  CHECK(deferred.model->named_parameters().size() == deferred.parameters->size());

  // Reading one before materialising is an error, not garbage.
  Tensor tokens = zeros({1, 4}, {.dtype = kInt64});
  CHECK_THROWS_WITH((*deferred.model)(tokens), Catch::Contains("released"));

  deferred.parameters->materialize(*deferred.model);
  CHECK(deferred.parameters->size() == 0);
  CHECK(same_state(*deferred.model, *whole, kFloat32));
  // The tied output weight is still the token embedding's, and the model runs as the whole one.
  CHECK(same_bits<float>((*deferred.model)(tokens), (*whole)(tokens)));
  CHECK(memory_stats()[MemoryTag::Parameters].current - before[MemoryTag::Parameters].current ==
        static_cast<int64_t>(whole->parameter_count()) * 4);
}

TEST_CASE("A deferred model of another dtype equals the whole build converted with to()", "[deferred_init]") {
  std::shared_ptr<Module> whole = whole_gpt(17);
  whole->to(kFloat64);
  DeferredModel<GPT> deferred = deferred_gpt(17, kFloat64);
  for (const auto& [name, parameter] : deferred.model->named_parameters()) CHECK(parameter.dtype() == kFloat64);
  deferred.parameters->materialize(*deferred.model);
  CHECK(same_state(*deferred.model, *whole, kFloat64));

  // Conv2d and Linear (uniform draws) outside a GPT, and a seed that is not the first.
  manual_seed(3);
  std::shared_ptr<Module> whole_conv = conv_model();
  manual_seed(3);
  std::shared_ptr<DeferredParameters> recorded;
  std::shared_ptr<Module> deferred_conv;
  {
    DeferredInit scope;
    deferred_conv = conv_model();
    recorded = scope.parameters();
  }
  recorded->materialize(*deferred_conv);
  CHECK(same_state(*deferred_conv, *whole_conv, kFloat32));
}

TEST_CASE("Any range of a deferred parameter is written with the whole build's bits, in any dtype",
          "[deferred_init]") {
  std::shared_ptr<Module> whole = whole_gpt(23);
  DeferredModel<GPT> deferred = deferred_gpt(23);
  const std::vector<NamedTensor> expected = whole->named_parameters();
  const std::vector<NamedTensor> recorded = deferred.model->named_parameters();
  REQUIRE(expected.size() == recorded.size());
  for (size_t p = 0; p < expected.size(); ++p) {
    const Tensor flat = expected[p].second.reshape({expected[p].second.numel()});
    const int64_t total = flat.numel();
    // Odd and even starts, lengths of one, of a few and up to the end.
    for (int64_t begin : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{5}, total / 2, total - 1}) {
      for (int64_t length : {int64_t{1}, int64_t{3}, total - begin}) {
        if (begin < 0 || begin + length > total || length <= 0) continue;
        INFO(expected[p].first << " [" << begin << ", " << begin + length << ")");
        Tensor float32 = empty({length});
        deferred.parameters->write(recorded[p].second, begin, float32);
        CHECK(same_bits<float>(float32, flat.narrow(0, begin, length).contiguous()));
        Tensor bfloat16 = empty({length}, {.dtype = kBFloat16});
        deferred.parameters->write(recorded[p].second, begin, bfloat16);
        const Tensor converted = flat.narrow(0, begin, length).to(kBFloat16);
        CHECK(same_bits<float>(bfloat16.to(kFloat32), converted.to(kFloat32)));
      }
    }
  }
  // Past the end, or into a strided tensor: errors that say what was expected.
  const Tensor& first = recorded.front().second;
  CHECK_THROWS_WITH(deferred.parameters->write(first, first.numel(), empty({1})), Catch::Contains("within"));
  CHECK_THROWS_WITH(deferred.parameters->write(first, 0, empty({2, 2}).t()), Catch::Contains("contiguous"));
  CHECK_THROWS_WITH(deferred.parameters->write(expected.front().second, 0, empty({1})),
                    Catch::Contains("did not record"));
}

TEST_CASE("DeferredInit scopes do not nest, end with their scope and refuse foreign redraws", "[deferred_init]") {
  {
    DeferredInit outer;
    CHECK(active_deferred_init() == &outer);
    CHECK_THROWS_WITH(DeferredInit(), Catch::Contains("already alive"));
    CHECK(active_deferred_init() == &outer);
    const Tensor foreign = zeros({3});
    CHECK_THROWS_WITH(reinitialize_normal(foreign, 0.0, 1.0), Catch::Contains("built under it"));
    CHECK_THROWS_WITH(DeferredInit(kInt64), Catch::Contains("floating"));
  }
  CHECK(active_deferred_init() == nullptr);
  // Outside any scope parameters hold their values at once.
  manual_seed(1);
  Linear eager(4, 2);
  CHECK(eager.weight().storage()->is_resident());
}
