// The fused training kernels (core/backend.h: layer_norm, cross_entropy, adam_update) on CUDA
// against the CPU, forward and backward, per floating dtype. The CPU runs float32 and float64 in
// the same dtype; for bfloat16 and float16 (which the CPU computes through composed ops) the
// reference is float64 on the CPU from the same 16-bit-rounded inputs, rounded to the dtype at the
// end, so only the kernels' own rounding separates the two. Ends with a bfloat16 training run
// with float32 masters next to the same run in float32.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "cuda/attention.h"
#include "layers/layers.h"
#include "optim/optim.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;

namespace {


// Leaves with the same (dtype-rounded) values on the CPU, in the reference dtype, and on the GPU.
struct LeafPair {
  Tensor cpu;
  Tensor gpu;
};

LeafPair leaves(const Shape& shape, DType dtype, double scale, double phase) {
  const Tensor rounded = wavy(shape, kFloat64, scale, phase).to(dtype);
  return {rounded.to(reference_dtype(dtype)).detach().set_requires_grad(true),
          rounded.to(gpu()).detach().set_requires_grad(true)};
}

void require_parity(const Tensor& gpu_result, const Tensor& cpu_result, DType dtype, const std::string& what) {
  require_match(gpu_result, cpu_result.to(dtype), fused_tolerance(dtype), what);
}

}  // namespace

TEST_CASE("cuda fused kernels: layer_norm forward and backward match the CPU in every floating dtype") {
  struct Case {
    Shape shape;
    bool affine;
  };
  // 1000 columns: more than the block's threads; 150 rows: more than one chunk of weight partials.
  const std::vector<Case> cases{{{4, 6}, true}, {{3, 50, 1000}, true}, {{150, 24}, true}, {{7, 33}, false}};
  for (DType dtype : floating_dtypes()) {
    for (const Case& c : cases) {
      const int64_t size = c.shape.back();
      const std::string what = std::string("layer_norm ") + dtype_name(dtype) + " rows of " + std::to_string(size);
      LeafPair x = leaves(c.shape, dtype, 2.0, 0.3);
      LeafPair weight = leaves({size}, dtype, 1.0, 1.1);
      LeafPair bias = leaves({size}, dtype, 0.5, 2.0);
      const Tensor cpu_weight = c.affine ? weight.cpu : Tensor(), gpu_weight = c.affine ? weight.gpu : Tensor();
      const Tensor cpu_bias = c.affine ? bias.cpu : Tensor(), gpu_bias = c.affine ? bias.gpu : Tensor();
      Tensor cpu_out = layer_norm(x.cpu, {size}, cpu_weight, cpu_bias);
      Tensor gpu_out = layer_norm(x.gpu, {size}, gpu_weight, gpu_bias);
      require_parity(gpu_out, cpu_out, dtype, what + " output");

      const Tensor upstream = wavy(c.shape, kFloat64, 1.0, 2.1).to(dtype);
      sum(mul(cpu_out, upstream.to(reference_dtype(dtype)))).backward();
      sum(mul(gpu_out, upstream.to(gpu()))).backward();
      require_parity(x.gpu.grad(), x.cpu.grad(), dtype, what + " grad input");
      if (c.affine) {
        // Sums over up to 150 rows: a 16-bit result a hair across a rounding boundary is one ulp off.
        require_parity(weight.gpu.grad(), weight.cpu.grad(), dtype, what + " grad weight");
        require_parity(bias.gpu.grad(), bias.cpu.grad(), dtype, what + " grad bias");
      }
    }
  }
}

TEST_CASE("cuda fused kernels: cross_entropy forward and backward match the CPU in every floating dtype") {
  const int64_t batch = 3, positions = 5, classes = 1000;  // wider than a row-block's threads
  std::vector<int64_t> target_values;
  const Tensor drawn = integers({batch * positions}, 0, classes);
  for (int64_t value : drawn.to_vector<int64_t>()) target_values.push_back(value);
  target_values[4] = -100;  // one ignored position
  const Tensor targets = from_vector(target_values, {batch, positions}, {.dtype = kInt64});
  for (DType dtype : floating_dtypes()) {
    for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
      for (double smoothing : {0.0, 0.1}) {
        const std::string what = std::string("cross_entropy ") + dtype_name(dtype) + " reduction " +
                                 std::to_string(static_cast<int>(reduction)) + " smoothing " + std::to_string(smoothing);
        LeafPair logits = leaves({batch, positions, classes}, dtype, 4.0, 0.2);
        const CrossEntropyOptions options{.label_smoothing = smoothing, .reduction = reduction};
        Tensor cpu_loss = cross_entropy(logits.cpu, targets, options);
        Tensor gpu_loss = cross_entropy(logits.gpu, targets.to(gpu()), options);
        require_parity(gpu_loss, cpu_loss, dtype, what + " loss");

        const Tensor upstream = reduction == Reduction::None ? wavy(cpu_loss.shape(), kFloat64, 1.0, 0.9).to(dtype)
                                                             : full({}, 0.75, {.dtype = dtype});
        sum(mul(cpu_loss, upstream.to(reference_dtype(dtype)))).backward();
        sum(mul(gpu_loss, upstream.to(gpu()))).backward();
        // Gradients are probabilities of order 1 / classes: compare with a margin to scale.
        Tolerance tolerance = fused_tolerance(dtype);
        if (is_16_bit(dtype)) tolerance.absolute = 1e-4;
        require_match(logits.gpu.grad(), logits.cpu.grad().to(dtype), tolerance, what + " gradient");
      }
    }
  }
}

TEST_CASE("cuda fused kernels: cross_entropy raises for a target out of range on CUDA as on the CPU") {
  const Tensor logits = zeros({2, 4}, {.device = gpu()});
  const Tensor targets = from_vector(std::vector<int64_t>{1, 7}, {2}, {.dtype = kInt64}).to(gpu());
  CHECK_THROWS_WITH(cross_entropy(logits, targets), Catch::Contains("expected targets in [0, 4)") && Catch::Contains("got 7"));
}

TEST_CASE("cuda fused kernels: linear and linear_gelu (cuBLASLt epilogues) match the CPU forward and backward") {
  struct Case {
    Shape input;
    int64_t out_features;
    bool bias;
  };
  // 128 outputs: the GELU epilogue applies (its leading dim is a multiple of 8); 6: GELU falls back.
  const std::vector<Case> cases{{{3, 7, 64}, 128, true}, {{5, 12}, 6, true}, {{4, 32}, 16, false}};
  for (DType dtype : floating_dtypes()) {
    for (const Case& c : cases) {
      for (bool with_gelu : {false, true}) {
        const int64_t in_features = c.input.back();
        const std::string what = std::string(with_gelu ? "linear_gelu " : "linear ") + dtype_name(dtype) + " " +
                                 std::to_string(in_features) + " -> " + std::to_string(c.out_features);
        LeafPair x = leaves(c.input, dtype, 1.0, 0.4);
        LeafPair weight = leaves({c.out_features, in_features}, dtype, 0.2, 1.7);
        LeafPair bias = leaves({c.out_features}, dtype, 0.5, 0.9);
        const Tensor cpu_bias = c.bias ? bias.cpu : Tensor(), gpu_bias = c.bias ? bias.gpu : Tensor();
        Tensor cpu_out = with_gelu ? linear_gelu(x.cpu, weight.cpu, cpu_bias) : linear(x.cpu, weight.cpu, cpu_bias);
        Tensor gpu_out = with_gelu ? linear_gelu(x.gpu, weight.gpu, gpu_bias) : linear(x.gpu, weight.gpu, gpu_bias);
        // Sums of up to 128 products: float32 as the matmul tests, 16-bit within two of their ulps.
        Tolerance tolerance = fused_tolerance(dtype);
        if (dtype == kBFloat16) tolerance = {2e-2, 2e-2};
        if (dtype == kFloat16) tolerance = {4e-3, 4e-3};
        require_match(gpu_out, cpu_out.to(dtype), tolerance, what + " output");
        const Tensor upstream = wavy(cpu_out.shape(), kFloat64, 1.0, 2.5).to(dtype);
        sum(mul(cpu_out, upstream.to(reference_dtype(dtype)))).backward();
        sum(mul(gpu_out, upstream.to(gpu()))).backward();
        require_match(x.gpu.grad(), x.cpu.grad().to(dtype), tolerance, what + " grad input");
        require_match(weight.gpu.grad(), weight.cpu.grad().to(dtype), tolerance, what + " grad weight");
        if (c.bias) require_match(bias.gpu.grad(), bias.cpu.grad().to(dtype), tolerance, what + " grad bias");
      }
    }
  }
}

TEST_CASE("cuda fused kernels: the embedding gradient (index_add by sorted rows) matches the CPU bit for bit in float32") {
  // 2000 positions over 300 rows (repeats included): more than the 256 that take the sorted path.
  const int64_t vocabulary = 300, width = 96;
  for (DType index_dtype : {kInt64, kInt32}) {
    const Tensor tokens = integers({4, 500}, 0, vocabulary, index_dtype, 17);
    const Tensor weights = wavy({vocabulary, width}, kFloat32, 1.0, 0.5);
    Tensor cpu_weight = weights.detach().set_requires_grad(true);
    Tensor gpu_weight = weights.to(gpu()).detach().set_requires_grad(true);
    const Tensor upstream = wavy({4, 500, width}, kFloat32, 1.0, 1.9);
    sum(mul(embedding(tokens, cpu_weight), upstream)).backward();
    sum(mul(embedding(tokens.to(gpu()), gpu_weight), upstream.to(gpu()))).backward();
    // The same additions in the same (index) order on both devices: equal bits.
    require_match(gpu_weight.grad(), cpu_weight.grad(), Tolerance{0.0, 0.0},
                  std::string("embedding gradient, ") + dtype_name(index_dtype) + " tokens");
  }
  // index_add directly in bfloat16, and a bad index raises the generic message.
  const Tensor index = integers({400}, 0, 50, kInt64, 3);
  const Tensor source = wavy({400, 16}, kBFloat16, 1.0, 0.1);
  const Tensor base = wavy({50, 16}, kBFloat16, 1.0, 0.2);
  require_match(index_add(base.to(gpu()), 0, index.to(gpu()), source.to(gpu())), index_add(base, 0, index, source),
                "index_add bfloat16 by sorted rows");
  std::vector<int64_t> bad = index.to_vector<int64_t>();
  bad[300] = 50;
  CHECK_THROWS_WITH(index_add(base.to(gpu()), 0, from_vector(bad, {400}, {.dtype = kInt64}).to(gpu()), source.to(gpu())),
                    Catch::Contains("index 50 is out of bounds for dimension 0 with size 50"));
}

TEST_CASE("cuda fused kernels: conv2d (cuDNN, or the im2col fallback) matches the CPU forward and backward") {
  struct Case {
    Shape input;
    Shape weight;
    int64_t stride, padding, dilation;
  };
  const std::vector<Case> cases{{{2, 3, 9, 9}, {4, 3, 3, 3}, 1, 1, 1},
                                {{2, 5, 11, 10}, {6, 5, 3, 3}, 2, 0, 1},
                                {{1, 4, 12, 12}, {8, 4, 3, 3}, 1, 2, 2}};
  for (DType dtype : floating_dtypes()) {
    for (const Case& c : cases) {
      const std::string what = std::string("conv2d ") + dtype_name(dtype) + " stride " + std::to_string(c.stride) +
                               " padding " + std::to_string(c.padding) + " dilation " + std::to_string(c.dilation);
      LeafPair x = leaves(c.input, dtype, 1.0, 0.3);
      LeafPair weight = leaves(c.weight, dtype, 0.3, 1.2);
      LeafPair bias = leaves({c.weight[0]}, dtype, 0.5, 2.4);
      Tensor cpu_out = conv2d(x.cpu, weight.cpu, bias.cpu, c.stride, c.padding, c.dilation);
      Tensor gpu_out = conv2d(x.gpu, weight.gpu, bias.gpu, c.stride, c.padding, c.dilation);
      // Sums of up to 45 products, and over the batch and positions for the weight's gradient;
      // cuDNN may pick an FFT or Winograd algorithm, whose rounding is not a GEMM's.
      Tolerance tolerance = fused_tolerance(dtype);
      if (dtype == kFloat64) tolerance = {1e-10, 1e-10};
      if (dtype == kFloat32) tolerance = {2e-4, 1e-4};
      if (dtype == kBFloat16) tolerance = {2e-2, 2e-2};
      if (dtype == kFloat16) tolerance = {4e-3, 4e-3};
      require_match(gpu_out, cpu_out.to(dtype), tolerance, what + " output");
      const Tensor upstream = wavy(cpu_out.shape(), kFloat64, 1.0, 0.8).to(dtype);
      sum(mul(cpu_out, upstream.to(reference_dtype(dtype)))).backward();
      sum(mul(gpu_out, upstream.to(gpu()))).backward();
      require_match(x.gpu.grad(), x.cpu.grad().to(dtype), tolerance, what + " grad input");
      require_match(weight.gpu.grad(), weight.cpu.grad().to(dtype), tolerance, what + " grad weight");
      require_match(bias.gpu.grad(), bias.cpu.grad().to(dtype), tolerance, what + " grad bias");
    }
  }
}

namespace {

// Parameters of assorted sizes (more than one launch's 24), their gradients and moments.
std::vector<AdamTensors> adam_parameters(DType dtype, Device device, bool amsgrad, bool master) {
  std::vector<AdamTensors> parameters;
  const DType state_dtype = statistics_dtype(dtype);
  for (int i = 0; i < 30; ++i) {
    const int64_t n = 1 + (i * 7919) % 3000;
    const Tensor start = wavy({n}, kFloat64, 1.0, 0.1 * i);
    AdamTensors tensors;
    tensors.param = start.to(dtype).to(device);
    tensors.grad = wavy({n}, kFloat64, 0.3, 1.0 + 0.2 * i).to(dtype).to(device);
    tensors.exp_avg = wavy({n}, kFloat64, 0.01, 0.5 * i).to(state_dtype).to(device);
    tensors.exp_avg_sq = abs(wavy({n}, kFloat64, 0.001, 0.7 * i)).to(state_dtype).to(device);
    if (amsgrad) tensors.max_exp_avg_sq = abs(wavy({n}, kFloat64, 0.002, 0.3 * i)).to(state_dtype).to(device);
    if (master) tensors.master = start.to(state_dtype).to(device);
    parameters.push_back(tensors);
  }
  return parameters;
}

}  // namespace

TEST_CASE("cuda fused kernels: multi-tensor adam_update matches the CPU loop") {
  for (DType dtype : floating_dtypes()) {
    for (bool amsgrad : {false, true}) {
      for (bool l2 : {false, true}) {
        const bool master = is_16_bit(dtype);  // 16-bit parameters keep a float32 master
        const std::string what = std::string("adam_update ") + dtype_name(dtype) + (amsgrad ? " amsgrad" : "") +
                                 (l2 ? " L2" : " decoupled");
        optim::AdamHyperParameters hyper{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                                         .weight_decay_kind = l2 ? optim::WeightDecayKind::L2
                                                                 : optim::WeightDecayKind::Decoupled,
                                         .amsgrad = amsgrad};
        const AdamStepScalars scalars = optim::adam_step_scalars(hyper, 3);
        std::vector<AdamTensors> on_cpu = adam_parameters(dtype, Device::cpu(), amsgrad, master);
        std::vector<AdamTensors> on_gpu = adam_parameters(dtype, gpu(), amsgrad, master);
        backend_for(Device::cpu()).adam_update(on_cpu, scalars);
        backend_for(gpu()).adam_update(on_gpu, scalars);
        // Every operation is rounded the same way on both devices: equal up to an ulp of the state.
        const Tolerance state_tolerance = statistics_dtype(dtype) == kFloat64 ? Tolerance{1e-15, 1e-15} : Tolerance{3e-7, 1e-9};
        for (size_t i = 0; i < on_cpu.size(); ++i) {
          const std::string which = what + " parameter " + std::to_string(i);
          require_match(on_gpu[i].exp_avg, on_cpu[i].exp_avg, state_tolerance, which + " exp_avg");
          require_match(on_gpu[i].exp_avg_sq, on_cpu[i].exp_avg_sq, state_tolerance, which + " exp_avg_sq");
          if (amsgrad) require_match(on_gpu[i].max_exp_avg_sq, on_cpu[i].max_exp_avg_sq, state_tolerance, which + " max");
          if (master) require_match(on_gpu[i].master, on_cpu[i].master, state_tolerance, which + " master");
          require_match(on_gpu[i].param, on_cpu[i].param, master ? tolerance_for(dtype) : state_tolerance, which);
        }
      }
    }
  }
}

TEST_CASE("cuda fused kernels: AdamW on CUDA parameters takes the fused kernel and matches the CPU optimizer") {
  for (DType dtype : {kFloat32, kFloat64}) {
    std::vector<Tensor> cpu_params, gpu_params;
    for (int i = 0; i < 3; ++i) {
      const Tensor start = wavy({40 + i, 3}, kFloat64, 1.0, 0.4 * i).to(dtype);
      cpu_params.push_back(start.detach().set_requires_grad(true));
      gpu_params.push_back(start.to(gpu()).detach().set_requires_grad(true));
    }
    optim::AdamW cpu_optimizer(cpu_params, {.lr = 1e-2, .weight_decay = 0.1});
    optim::AdamW gpu_optimizer(gpu_params, {.lr = 1e-2, .weight_decay = 0.1});
    for (int step = 0; step < 4; ++step) {
      for (size_t i = 0; i < cpu_params.size(); ++i) {
        const Tensor grad = wavy(cpu_params[i].shape(), kFloat64, 0.5, 0.3 * step + i).to(dtype);
        cpu_params[i].set_grad(grad);
        gpu_params[i].set_grad(grad.to(gpu()));
      }
      cpu_optimizer.step();
      gpu_optimizer.step();
    }
    const Tolerance tolerance = dtype == kFloat64 ? Tolerance{1e-14, 1e-14} : Tolerance{1e-6, 1e-7};
    for (size_t i = 0; i < cpu_params.size(); ++i) {
      require_match(gpu_params[i].detach(), cpu_params[i].detach(), tolerance,
                    std::string("AdamW ") + dtype_name(dtype) + " parameter " + std::to_string(i));
    }
  }
}

namespace {

// A one-block GPT-like model: token embedding, a pre-norm transformer block, LayerNorm, output
// layer. Trained on one fixed batch (next token of a fixed pattern), so the loss must fall.
class TinyLanguageModel : public Module {
 public:
  TinyLanguageModel(int64_t vocabulary, int64_t d_model) : Module("TinyLanguageModel") {
    embedding_ = register_module("embedding", std::make_shared<Embedding>(vocabulary, d_model));
    block_ = register_module("block", std::make_shared<TransformerBlock>(TransformerConfig{.d_model = d_model, .heads = 4}));
    norm_ = register_module("norm", std::make_shared<LayerNorm>(d_model));
    head_ = register_module("head", std::make_shared<Linear>(d_model, vocabulary));
  }

 protected:
  Tensor forward(const Tensor& tokens) override { return (*head_)((*norm_)((*block_)((*embedding_)(tokens)))); }

 private:
  std::shared_ptr<Embedding> embedding_;
  std::shared_ptr<TransformerBlock> block_;
  std::shared_ptr<LayerNorm> norm_;
  std::shared_ptr<Linear> head_;
};

constexpr int64_t kTinyVocabulary = 64;

// A model with the same initial weights on every call (drawn on the CPU in float32), on device
// in dtype.
std::shared_ptr<TinyLanguageModel> tiny_model(Device device, DType dtype) {
  manual_seed(4321);
  auto model = std::make_shared<TinyLanguageModel>(kTinyVocabulary, 64);
  model->to(device);
  model->to(dtype);
  return model;
}

// The fixed batch: 4 rows of `positions` tokens (a stride-5 pattern) and their next tokens.
std::pair<Tensor, Tensor> tiny_batch(Device device, int64_t positions = 16) {
  const int64_t batch = 4;
  std::vector<int64_t> tokens, targets;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < positions; ++t) {
      tokens.push_back((5 * t + 11 * b) % kTinyVocabulary);
      targets.push_back((5 * (t + 1) + 11 * b) % kTinyVocabulary);
    }
  }
  return {from_vector(tokens, {batch, positions}, {.dtype = kInt64}).to(device),
          from_vector(targets, {batch, positions}, {.dtype = kInt64}).to(device)};
}

// Losses of `steps` steps on the GPU with compute dtype `dtype` (float32 masters for bfloat16).
std::vector<double> train_tiny_model(DType dtype, int steps, int64_t positions = 16) {
  auto model = tiny_model(gpu(), dtype);
  const auto [input, target] = tiny_batch(gpu(), positions);
  optim::MasterWeightAdamW optimizer(model->parameters(), {.lr = 3e-3, .weight_decay = 0.01});
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    Tensor loss = cross_entropy((*model)(input), target);
    loss.backward();
    optimizer.step();
    losses.push_back(loss.to(kFloat64).item());
  }
  return losses;
}

struct TinyRun {
  std::vector<double> losses;
  std::vector<Tensor> parameters;  // after the last step, on the device that trained them
};

// `steps` optim::AdamW steps (multi-tensor on CUDA) of the model in dtype on device.
TinyRun train_tiny_model_with_adamw(Device device, DType dtype, int steps) {
  auto model = tiny_model(device, dtype);
  const auto [input, target] = tiny_batch(device);
  // eps 1e-3, as in the MLP parity test: a gradient that is zero up to rounding must not get a
  // full-size step whose sign is the rounding's.
  optim::AdamW optimizer(model->parameters(), {.lr = 3e-3, .eps = 1e-3, .weight_decay = 0.01});
  TinyRun run;
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    Tensor loss = cross_entropy((*model)(input), target);
    loss.backward();
    optimizer.step();
    run.losses.push_back(loss.to(kFloat64).item());
  }
  // Left on their device: require_match takes the CUDA result first (and checks it is on CUDA).
  for (const Tensor& parameter : model->parameters()) run.parameters.push_back(parameter.detach());
  return run;
}

}  // namespace

TEST_CASE("cuda mixed precision: bfloat16 training with float32 masters follows the float32 run") {
  const int steps = 30;
  const std::vector<double> float32_losses = train_tiny_model(kFloat32, steps);
  const std::vector<double> bfloat16_losses = train_tiny_model(kBFloat16, steps);
  REQUIRE(float32_losses.back() < 0.5 * float32_losses.front());  // the reference run learned
  for (int step = 0; step < steps; ++step) {
    INFO("step " << step << ": float32 loss " << float32_losses[step] << ", bfloat16 loss " << bfloat16_losses[step]);
    // bfloat16 keeps 8 bits of mantissa: a few percent apart, never diverging.
    CHECK(std::fabs(bfloat16_losses[step] - float32_losses[step]) <= 0.05 * float32_losses[step] + 0.02);
  }
  CHECK(bfloat16_losses.back() < 0.5 * bfloat16_losses.front());
}

TEST_CASE("cuda training: a few GPT steps (attention, add_layer_norm, AdamW) match the CPU, step by step") {
  for (DType dtype : {kFloat64, kFloat32}) {
    const TinyRun cpu_run = train_tiny_model_with_adamw(Device::cpu(), dtype, 5);
    const TinyRun gpu_run = train_tiny_model_with_adamw(gpu(), dtype, 5);
    const double tolerance = dtype == kFloat64 ? 1e-10 : 5e-4;
    for (size_t step = 0; step < cpu_run.losses.size(); ++step) {
      INFO(dtype_name(dtype) << " step " << step);
      CHECK(gpu_run.losses[step] == Approx(cpu_run.losses[step]).epsilon(tolerance).margin(tolerance));
    }
    CHECK(cpu_run.losses.back() < cpu_run.losses.front());
    for (size_t i = 0; i < cpu_run.parameters.size(); ++i) {
      require_match(gpu_run.parameters[i], cpu_run.parameters[i], Tolerance{tolerance, tolerance},
                    std::string("GPT ") + dtype_name(dtype) + " parameter " + std::to_string(i));
    }
  }
}

TEST_CASE("cuda training: bfloat16 GPT steps with cuDNN's fused attention follow the plain attention path") {
  // 4 heads of size 16 over 128 positions in bfloat16: a case cuDNN's fused kernel takes (checked
  // first, with its reason if not). Both runs start from the same weights; bfloat16 rounding
  // alone separates them.
  const int64_t positions = 128;
  {
    const Tensor q = wavy({4, 4, positions, 16}, kFloat32, 1.0).to(kBFloat16).to(gpu());
    if (!backend_for(gpu()).supports({.kernel = FusedKernel::Attention, .tensors = {q, q, q}}).supported) {
      FAIL("the fused attention declined the model's shape: " << cuda::last_attention_decline_reason());
    }
  }
  const int steps = 10;
  set_fused_attention_enabled(false);
  const std::vector<double> plain = train_tiny_model(kBFloat16, steps, positions);
  set_fused_attention_enabled(true);
  const std::vector<double> fused = train_tiny_model(kBFloat16, steps, positions);
  for (int step = 0; step < steps; ++step) {
    INFO("step " << step << ": plain " << plain[step] << ", fused " << fused[step]);
    CHECK(std::fabs(fused[step] - plain[step]) <= 0.03 * plain[step] + 0.01);
  }
  CHECK(fused.back() < fused.front());
}
