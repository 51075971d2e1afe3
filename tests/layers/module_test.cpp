// Module: hierarchical names and their order, state_dict round trips and strict loading,
// hooks, train/eval, zero_grad, dtype conversion and memory accounting.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/safetensors.h"

#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using dtrain::test::names_of;
using dtrain::test::random_tensor;
using Catch::Matchers::Contains;

namespace {

// embed -> blocks (Linear, ReLU, Linear) -> head, with an integer buffer of its own.
class TinyModel : public Module {
 public:
  TinyModel() : Module("TinyModel") {
    steps = register_buffer("steps", zeros({1}, {.dtype = kInt64}));
    embed = register_module("embed", std::make_shared<Embedding>(5, 4));
    blocks = register_module("blocks", std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
                                           std::make_shared<Linear>(4, 4), std::make_shared<ReLU>(),
                                           std::make_shared<Linear>(4, 3)}));
    head = register_module("head", std::make_shared<Linear>(3, 2, false));
  }
  Tensor steps;
  std::shared_ptr<Embedding> embed;
  std::shared_ptr<Sequential> blocks;
  std::shared_ptr<Linear> head;

 protected:
  Tensor forward(const Tensor& ids) override { return (*head)((*blocks)((*embed)(ids))); }
};

Tensor token_ids() { return from_vector<int64_t>({0, 3, 4, 1}, {2, 2}); }

}  // namespace

TEST_CASE("named_parameters lists a nested model's parameters by path in registration order") {
  TinyModel model;
  std::vector<std::string> expected{"embed.weight", "blocks.0.weight", "blocks.0.bias",
                                    "blocks.2.weight", "blocks.2.bias", "head.weight"};
  REQUIRE(names_of(model.named_parameters()) == expected);
  REQUIRE(model.parameters().size() == expected.size());
  REQUIRE(model.parameters()[0].is_same(model.embed->weight()));
  REQUIRE(model.parameter_count() == 5 * 4 + 4 * 4 + 4 + 4 * 3 + 3 + 3 * 2);
  REQUIRE(names_of(model.named_buffers()) == std::vector<std::string>{"steps"});

  std::vector<std::string> module_names;
  for (const auto& [name, module] : model.named_modules()) module_names.push_back(name + ":" + module->type_name());
  REQUIRE(module_names == std::vector<std::string>{":TinyModel", "embed:Embedding", "blocks:Sequential",
                                                   "blocks.0:Linear", "blocks.1:ReLU", "blocks.2:Linear",
                                                   "head:Linear"});
  REQUIRE(model.children().size() == 3);
}

TEST_CASE("a transformer stack names its parameters as blocks.N.attn.qkv.weight") {
  auto blocks = std::make_shared<Sequential>();
  for (int i = 0; i < 2; ++i) blocks->push_back(std::make_shared<TransformerBlock>(TransformerConfig{.d_model = 8, .heads = 2}));
  std::vector<std::string> names = names_of(blocks->named_parameters());
  std::vector<std::string> one_block{"ln1.weight",      "ln1.bias",      "attn.qkv.weight", "attn.qkv.bias",
                                     "attn.proj.weight", "attn.proj.bias", "ln2.weight",      "ln2.bias",
                                     "mlp.fc.weight",   "mlp.fc.bias",   "mlp.proj.weight", "mlp.proj.bias"};
  REQUIRE(names.size() == 2 * one_block.size());
  for (size_t i = 0; i < names.size(); ++i) {
    REQUIRE(names[i] == std::to_string(i / one_block.size()) + "." + one_block[i % one_block.size()]);
  }
  REQUIRE(blocks->named_parameters()[14].second.shape() == Shape{24, 8});  // 1.attn.qkv.weight
}

TEST_CASE("a parameter shared by two modules is listed once, under its first name") {
  class Tied : public Module {
   public:
    Tied() : Module("Tied") {
      embed = register_module("embed", std::make_shared<Embedding>(6, 4));
      auto head = std::make_shared<Sequential>();
      head->register_parameter("weight", embed->weight());
      register_module("head", head);
    }
    std::shared_ptr<Embedding> embed;

   protected:
    Tensor forward(const Tensor& x) override { return x; }
  };
  Tied model;
  REQUIRE(names_of(model.named_parameters()) == std::vector<std::string>{"embed.weight"});
  // state_dict too (PyTorch's repeats it; a safetensors file cannot hold two names for one tensor).
  REQUIRE(model.state_dict().keys() == std::vector<std::string>{"embed.weight"});
}

TEST_CASE("registration refuses taken, empty and dotted names") {
  Linear layer(2, 3);
  REQUIRE_THROWS_WITH(layer.register_parameter("weight", zeros({1})), Contains("'weight'") && Contains("already taken"));
  REQUIRE_THROWS_WITH(layer.register_buffer("a.b", zeros({1})), Contains("contain no '.'"));
  REQUIRE_THROWS_WITH(layer.register_module("", std::make_shared<ReLU>()), Contains("non-empty"));
}

TEST_CASE("state_dict holds parameters and buffers, load_state_dict copies them into another model") {
  manual_seed(1);
  TinyModel source;
  manual_seed(2);
  TinyModel target;
  REQUIRE_FALSE(equal(source.head->weight(), target.head->weight()));

  StateDict state = source.state_dict();
  REQUIRE(state.keys() == std::vector<std::string>{"steps", "embed.weight", "blocks.0.weight", "blocks.0.bias",
                                                   "blocks.2.weight", "blocks.2.bias", "head.weight"});
  REQUIRE_FALSE(state.at("head.weight").requires_grad());
  // The entries share storage with the model: the state dict is a view, not a copy.
  REQUIRE(state.at("head.weight").storage() == source.head->weight().storage());

  Tensor target_weight = target.head->weight();  // a handle held from before the load
  {
    NoGradGuard no_grad;
    source.steps.fill_(7);
  }
  LoadStateDictResult result = target.load_state_dict(source.state_dict());
  REQUIRE(result.missing_keys.empty());
  REQUIRE(result.unexpected_keys.empty());
  for (const auto& [name, tensor] : source.state_dict()) REQUIRE(equal(tensor, target.state_dict().at(name)));
  REQUIRE(equal(target_weight, source.head->weight()));
  REQUIRE(target_weight.requires_grad());
  REQUIRE(target.steps.item<int64_t>() == 7);
  REQUIRE(equal(target(token_ids()), source(token_ids())));
}

TEST_CASE("a strict load reports every missing, unexpected and mismatched key at once and loads nothing") {
  manual_seed(3);
  TinyModel model;
  StateDict before = model.state_dict();
  std::vector<Tensor> saved_values;
  for (const auto& [name, tensor] : before) saved_values.push_back(tensor.clone());

  StateDict bad;
  bad.insert("embed.weight", zeros({5, 4}));               // fine
  bad.insert("blocks.0.weight", zeros({4, 5}));            // wrong shape
  bad.insert("blocks.0.bias", zeros({4}, {.dtype = kFloat64}));  // wrong dtype
  bad.insert("blocks.2.weight", zeros({3, 4}));            // fine
  bad.insert("head.weight", zeros({2, 3}));                // fine
  bad.insert("head.bias", zeros({2}));                     // unexpected
  bad.insert("extra", zeros({1}));                         // unexpected
  // missing: steps, blocks.2.bias

  REQUIRE_THROWS_WITH(model.load_state_dict(bad),
                      Contains("TinyModel") && Contains("2 missing keys: steps, blocks.2.bias") &&
                          Contains("2 unexpected keys: head.bias, extra") && Contains("2 mismatched keys") &&
                          Contains("blocks.0.weight (expected shape [4, 4] float32, got shape [4, 5] float32)") &&
                          Contains("blocks.0.bias (expected shape [4] float32, got shape [4] float64)"));
  size_t i = 0;
  for (const auto& [name, tensor] : model.state_dict()) REQUIRE(equal(tensor, saved_values[i++]));

  SECTION("non-strict loading returns the missing and unexpected keys but still refuses mismatches") {
    REQUIRE_THROWS_WITH(model.load_state_dict(bad, /*strict=*/false),
                        Contains("2 mismatched keys") && !Contains("missing") && !Contains("unexpected"));
    StateDict partial;
    partial.insert("head.weight", ones({2, 3}));
    partial.insert("unknown", ones({1}));
    LoadStateDictResult result = model.load_state_dict(partial, /*strict=*/false);
    REQUIRE(result.missing_keys.size() == 6);
    REQUIRE(result.unexpected_keys == std::vector<std::string>{"unknown"});
    REQUIRE(equal(model.head->weight(), ones({2, 3})));
  }
}

TEST_CASE("forward hooks fire around forward in registration order and can be removed") {
  auto model = std::make_shared<Sequential>(
      std::vector<std::shared_ptr<Module>>{std::make_shared<Linear>(3, 3), std::make_shared<ReLU>()});
  std::vector<std::string> events;
  HookHandle outer_pre = model->register_forward_pre_hook([&](Module& m, const Tensor&) { events.push_back("pre " + m.type_name()); });
  HookHandle outer_post = model->register_forward_hook([&](Module& m, const Tensor&, const Tensor& out) {
    events.push_back("post " + m.type_name() + " " + out.shape().str());
  });
  HookHandle second_post = model->register_forward_hook([&](Module&, const Tensor&, const Tensor&) { events.push_back("post 2"); });
  HookHandle inner_pre = (*model)[0]->register_forward_pre_hook([&](Module& m, const Tensor& in) {
    events.push_back("pre " + m.type_name() + " " + in.shape().str());
  });

  (*model)(zeros({2, 3}));
  REQUIRE(events == std::vector<std::string>{"pre Sequential", "pre Linear [2, 3]", "post Sequential [2, 3]", "post 2"});

  events.clear();
  outer_post.remove();
  inner_pre.remove();
  inner_pre.remove();  // removing twice is harmless
  (*model)(zeros({2, 3}));
  REQUIRE(events == std::vector<std::string>{"pre Sequential", "post 2"});
}

TEST_CASE("backward pre-hooks fire once the output's gradient is complete, before the module's own backward") {
  manual_seed(4);
  auto first = std::make_shared<Linear>(3, 4);
  auto second = std::make_shared<Linear>(4, 2);
  Sequential model(std::vector<std::shared_ptr<Module>>{first, second});
  std::vector<std::string> events;
  auto record_hook = [&events](const std::string& label, const Shape& expected_shape, const Tensor& weight) {
    return [&events, label, expected_shape, weight](Module&, const Tensor& grad_output) {
      REQUIRE(grad_output.shape() == expected_shape);
      REQUIRE_FALSE(weight.grad().defined());  // the module's parameters have no gradient yet
      events.push_back(label);
    };
  };
  HookHandle first_hook = first->register_backward_pre_hook(record_hook("first", {5, 4}, first->weight()));
  second->register_backward_pre_hook(record_hook("second", {5, 2}, second->weight()));
  Tensor x = randn({5, 3});
  model(x).sum().backward();
  REQUIRE(events == std::vector<std::string>{"second", "first"});
  REQUIRE(first->weight().grad().defined());

  SECTION("removed hooks stay silent and no hook fires without a backward") {
    events.clear();
    model.zero_grad();
    first_hook.remove();
    Tensor out = model(x);
    REQUIRE(events.empty());
    out.sum().backward();
    REQUIRE(events == std::vector<std::string>{"second"});
  }
  SECTION("an identity module's hook sees its own output gradient, not its input's leaf") {
    Dropout identity(0.5);
    identity.eval();
    int fired = 0;
    identity.register_backward_pre_hook([&fired](Module&, const Tensor&) { ++fired; });
    Tensor leaf = random_tensor(Shape{3}, 9);
    mul(identity(leaf), 2.0).sum().backward();
    mul(leaf, 3.0).sum().backward();  // a graph without the module: the hook must not fire
    REQUIRE(fired == 1);
  }
}

TEST_CASE("train and eval switch the whole tree, zero_grad drops every gradient") {
  TinyModel model;
  REQUIRE(model.is_training());
  model.eval();
  for (const auto& [name, module] : model.named_modules()) REQUIRE_FALSE(module->is_training());
  model.train();
  for (const auto& [name, module] : model.named_modules()) REQUIRE(module->is_training());

  model(token_ids()).sum().backward();
  for (const Tensor& parameter : model.parameters()) REQUIRE(parameter.grad().defined());
  model.zero_grad();
  for (const Tensor& parameter : model.parameters()) REQUIRE_FALSE(parameter.grad().defined());
}

TEST_CASE("to(dtype) converts parameters in place: handles held elsewhere see the new data") {
  manual_seed(5);
  TinyModel model;
  Tensor weight = model.head->weight();
  std::vector<float> before = weight.to_vector<float>();
  model(token_ids()).sum().backward();
  model.to(kFloat64);
  REQUIRE(weight.dtype() == kFloat64);
  REQUIRE(weight.requires_grad());
  REQUIRE(weight.grad().dtype() == kFloat64);
  REQUIRE(model.steps.dtype() == kInt64);  // integer buffers keep their type
  std::vector<double> after = weight.to_vector<double>();
  for (size_t i = 0; i < before.size(); ++i) REQUIRE(after[i] == static_cast<double>(before[i]));
  REQUIRE(model(token_ids()).dtype() == kFloat64);
  REQUIRE(weight.storage()->tag() == MemoryTag::Parameters);
  REQUIRE_THROWS_WITH(model.to(kInt64), Contains("expected a floating dtype"));
}

TEST_CASE("parameters are counted as MemoryTag::Parameters") {
  const int64_t before = memory_stats()[MemoryTag::Parameters].current;
  {
    Linear layer(10, 20);
    REQUIRE(memory_stats()[MemoryTag::Parameters].current - before == (10 * 20 + 20) * 4);
    REQUIRE(layer.weight().storage()->tag() == MemoryTag::Parameters);
  }
  REQUIRE(memory_stats()[MemoryTag::Parameters].current == before);
}

TEST_CASE("the same seed builds the same model") {
  manual_seed(42);
  TinyModel a;
  manual_seed(42);
  TinyModel b;
  for (const auto& [name, tensor] : a.state_dict()) REQUIRE(equal(tensor, b.state_dict().at(name)));
}

TEST_CASE("a state dict goes through a safetensors file and back into a fresh model") {
  manual_seed(6);
  TinyModel saved;
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("dtrain_layers_state_" + std::to_string(::getpid()) + ".safetensors");
  save_safetensors(path, saved.state_dict().to_map());
  manual_seed(7);
  TinyModel loaded;
  loaded.load_state_dict(load_safetensors(path).tensors);
  std::filesystem::remove(path);
  for (const auto& [name, tensor] : saved.state_dict()) REQUIRE(equal(tensor, loaded.state_dict().at(name)));
}
