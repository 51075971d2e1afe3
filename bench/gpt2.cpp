// bench_gpt2: GPT-2 124M training on one GPU — tokens/s, MFU, peak memory and where the step's
// time goes — next to PyTorch on the same model and batch (bench/gpt2_torch.py; scripts/gpu-check
// runs both and writes the table).
//
//   bench_gpt2 [--batch 8] [--context 1024] [--vocabulary 50304] [--layers 12] [--heads 12]
//              [--d-model 768] [--steps 10] [--warmup 3] [--dtype bf16|fp32] [--no-breakdown]
//              [--peak-tflops 989]
//
// The model is dtrain's GPT (layers/gpt.h: token + position embeddings, pre-norm blocks with
// causal attention and a GELU-tanh MLP, a final LayerNorm, the output layer tied to the token
// embedding), dropout 0.
// bf16: the model computes in bfloat16 and optim::MasterWeightAdamW keeps float32 masters and
// moments (one fused multi-tensor step); fp32: everything float32 (TF32 matmuls off).
// AdamW lr 6e-4, betas (0.9, 0.95), weight decay 0.1. Tokens are uniform random.
//
// Timing: cudaEvents around the three phases of each step (forward with the loss, backward,
// optimizer), medians over the measured steps; tokens/s from the whole step's median.
// MFU = tokens/s * (6N + 6 L d T) / peak, N the parameter count (tied weight once), L layers, d
// d_model, T context; peak = the dense bf16 tensor-core peak (H100 SXM and H200: 989 TFLOP/s).
// Peak memory: the caching allocator's peak reserved bytes and the peak bytes tensors held.
// The breakdown then times each kind of module alone at the step's shapes (forward, and backward
// from a fixed upstream gradient), times its count in the model: embedding, LayerNorm, attention,
// MLP, output layer + cross-entropy, optimizer step.
//
// Prints key=value lines: one `result` line, then `breakdown` lines.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "cuda/stream.h"
#include "dtrain.h"

using dtrain::bench::median;

namespace {

using namespace dtrain;

struct Arguments {
  int64_t batch = 8;
  int64_t context = 1024;
  int64_t vocabulary = 50304;
  int64_t layers = 12;
  int64_t heads = 12;
  int64_t d_model = 768;
  int steps = 10;
  int warmup = 3;
  bool bf16 = true;
  bool breakdown = true;
  double peak_tflops = 989.0;
};

Arguments parse(int argc, char** argv) {
  Arguments arguments;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("bench_gpt2: ", flag, " expects a value");
      return argv[++i];
    };
    if (flag == "--batch") arguments.batch = std::stoll(value());
    else if (flag == "--context") arguments.context = std::stoll(value());
    else if (flag == "--vocabulary") arguments.vocabulary = std::stoll(value());
    else if (flag == "--layers") arguments.layers = std::stoll(value());
    else if (flag == "--heads") arguments.heads = std::stoll(value());
    else if (flag == "--d-model") arguments.d_model = std::stoll(value());
    else if (flag == "--steps") arguments.steps = std::stoi(value());
    else if (flag == "--warmup") arguments.warmup = std::stoi(value());
    else if (flag == "--peak-tflops") arguments.peak_tflops = std::stod(value());
    else if (flag == "--no-breakdown") arguments.breakdown = false;
    else if (flag == "--dtype") {
      const std::string dtype = value();
      if (dtype != "bf16" && dtype != "fp32") fail("bench_gpt2: expected --dtype bf16 or fp32, got ", dtype);
      arguments.bf16 = dtype == "bf16";
    } else {
      fail("bench_gpt2: unknown flag ", flag, " (see the header of bench/gpt2.cpp)");
    }
  }
  if (arguments.steps < 1 || arguments.warmup < 0) fail("bench_gpt2: expected --steps >= 1 and --warmup >= 0");
  return arguments;
}

// The token embedding's weight (also the tied output layer's): the breakdown times the
// embedding and the head on it.
Tensor token_embedding_weight(const GPT& model) {
  for (const auto& [name, parameter] : model.named_parameters()) {
    if (name == "token_embedding.weight") return parameter.detach();
  }
  fail("bench_gpt2: the GPT has no parameter token_embedding.weight");
}

// Milliseconds of fn's GPU work, median over repeats (after one unmeasured run).
double time_gpu_ms(Device device, int repeats, const std::function<void()>& fn) {
  cudaStream_t stream = cuda::current_stream(device.index);
  fn();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    cuda::Event start(true), end(true);
    start.record(stream);
    fn();
    end.record(stream);
    end.synchronize();
    times.push_back(start.elapsed_ms(end));
  }
  return median(times);
}

// Forward and backward milliseconds of one module kind alone, on an input like the step's.
struct PhaseTimes {
  double forward_ms;
  double backward_ms;
};

PhaseTimes time_module(Device device, const std::function<Tensor()>& make_input, const std::function<Tensor(const Tensor&)>& fn) {
  const int repeats = 5;
  Tensor input = make_input();
  const double forward_ms = time_gpu_ms(device, repeats, [&] {
    NoGradGuard no_grad;
    (void)fn(input);
  });
  // Backward alone: the forward is rebuilt each time outside the timed region.
  std::vector<double> times;
  cudaStream_t stream = cuda::current_stream(device.index);
  for (int i = 0; i < repeats + 1; ++i) {
    Tensor leaf = input.detach().set_requires_grad(true);
    Tensor out = fn(leaf);
    Tensor upstream = full_like(out, 1e-3);
    cuda::Event start(true), end(true);
    start.record(stream);
    out.backward(upstream);
    end.record(stream);
    end.synchronize();
    if (i > 0) times.push_back(start.elapsed_ms(end));
  }
  return {forward_ms, median(times)};
}

void print_breakdown(const Arguments& arguments, Device device, DType dtype, const GPT& model, optim::MasterWeightAdamW& optimizer,
                     const Tensor& tokens, const Tensor& targets) {
  const Shape hidden{arguments.batch, arguments.context, arguments.d_model};
  auto activations = [&] { return (randn(hidden, {.dtype = kFloat32, .device = device}) * 0.5).to(dtype); };
  auto report = [&](const char* name, int64_t count, PhaseTimes times) {
    std::printf("breakdown op=%s count=%lld forward_ms=%.3f backward_ms=%.3f total_ms=%.3f\n", name,
                static_cast<long long>(count), times.forward_ms * count, times.backward_ms * count,
                (times.forward_ms + times.backward_ms) * count);
  };
  // Fresh modules of the step's kinds (same shapes and dtype; their values do not matter).
  auto norm = std::make_shared<LayerNorm>(arguments.d_model);
  auto attention = std::make_shared<CausalSelfAttention>(AttentionConfig{.d_model = arguments.d_model, .heads = arguments.heads});
  auto mlp = std::make_shared<MLP>(arguments.d_model, 4 * arguments.d_model, GeluApproximation::Tanh);
  for (Module* module : std::initializer_list<Module*>{norm.get(), attention.get(), mlp.get()}) {
    module->to(device);
    module->to(dtype);
  }
  report("embedding", 1, time_module(device, [&] { return token_embedding_weight(model); },
                                     [&](const Tensor& weight) { return embedding(tokens, weight); }));
  // Per block: ln1 alone, ln2 fused with the first residual add (add_layer_norm), the second
  // residual add alone; plus the final LayerNorm.
  report("layer_norm", arguments.layers + 1, time_module(device, activations, [&](const Tensor& x) { return (*norm)(x); }));
  report("add_layer_norm", arguments.layers, time_module(device, activations, [&](const Tensor& x) {
           return norm->add_and_normalize(x, x).normalized;
         }));
  report("attention", arguments.layers, time_module(device, activations, [&](const Tensor& x) { return (*attention)(x); }));
  // The same module on the plain path (matmul, causal softmax, matmul), for comparison only: not
  // part of the step when the fused kernel runs.
  const bool fused_attention = fused_attention_enabled();
  set_fused_attention_enabled(false);
  report("attention_plain_path_not_in_step", arguments.layers,
         time_module(device, activations, [&](const Tensor& x) { return (*attention)(x); }));
  set_fused_attention_enabled(fused_attention);
  report("mlp", arguments.layers, time_module(device, activations, [&](const Tensor& x) { return (*mlp)(x); }));
  report("residual_add", arguments.layers, time_module(device, activations, [&](const Tensor& x) { return x + x; }));
  const Tensor head_weight = token_embedding_weight(model);
  report("head_and_cross_entropy", 1, time_module(device, activations, [&](const Tensor& x) {
           return cross_entropy(linear(x, head_weight), targets);
         }));
  const double optimizer_ms = time_gpu_ms(device, 5, [&] { optimizer.step(); });
  std::printf("breakdown op=adamw_step count=1 forward_ms=0 backward_ms=0 total_ms=%.3f\n", optimizer_ms);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Arguments arguments = parse(argc, argv);
    if (!cuda::is_available()) {
      std::printf("result skipped=1 reason=\"%s\"\n", cuda::unavailable_reason().c_str());
      return 0;
    }
    const Device device = Device::cuda(0);
    const DType dtype = arguments.bf16 ? kBFloat16 : kFloat32;
    manual_seed(0);
    auto model = std::make_shared<GPT>(GPTConfig{.vocabulary = arguments.vocabulary, .context = arguments.context,
                                                 .d_model = arguments.d_model, .layers = arguments.layers,
                                                 .heads = arguments.heads});
    model->to(device);
    model->to(dtype);
    std::vector<Tensor> parameters = model->parameters();
    int64_t parameter_count = 0;
    for (const Tensor& parameter : parameters) parameter_count += parameter.numel();
    optim::MasterWeightAdamW optimizer(parameters, {.lr = 6e-4, .betas = {0.9, 0.95}, .weight_decay = 0.1});

    auto random_tokens = [&] {  // uniform in [0, vocabulary): floor of U[0, vocabulary) in float64
      return uniform({arguments.batch, arguments.context}, 0.0, static_cast<double>(arguments.vocabulary),
                     {.dtype = kFloat64})
          .to(kInt64)
          .to(device);
    };
    const Tensor tokens = random_tokens();
    const Tensor targets = random_tokens();
    cudaStream_t stream = cuda::current_stream(device.index);

    std::vector<double> forward_ms, backward_ms, optimizer_ms, step_ms;
    double last_loss = 0.0;
    reset_peak_memory_stats(device);
    for (int step = 0; step < arguments.warmup + arguments.steps; ++step) {
      cuda::Event start(true), after_forward(true), after_backward(true), end(true);
      start.record(stream);
      optimizer.zero_grad();
      Tensor loss = cross_entropy((*model)(tokens), targets);
      after_forward.record(stream);
      loss.backward();
      after_backward.record(stream);
      optimizer.step();
      end.record(stream);
      end.synchronize();
      last_loss = loss.to(kFloat64).item();
      if (step < arguments.warmup) continue;
      forward_ms.push_back(start.elapsed_ms(after_forward));
      backward_ms.push_back(after_forward.elapsed_ms(after_backward));
      optimizer_ms.push_back(after_backward.elapsed_ms(end));
      step_ms.push_back(start.elapsed_ms(end));
    }
    const double step = median(step_ms);
    const double tokens_per_step = static_cast<double>(arguments.batch * arguments.context);
    const double tokens_per_second = tokens_per_step / (step / 1000.0);
    const double flops_per_token = 6.0 * static_cast<double>(parameter_count) +
                                   6.0 * static_cast<double>(arguments.layers * arguments.d_model * arguments.context);
    const double mfu = tokens_per_second * flops_per_token / (arguments.peak_tflops * 1e12);
    const cuda::CacheStats cache = cuda::cache_stats(device);
    const MemoryStats memory = memory_stats(device);
    std::printf(
        "result framework=dtrain mode=%s batch=%lld context=%lld parameters=%lld steps=%d step_ms=%.2f forward_ms=%.2f "
        "backward_ms=%.2f optimizer_ms=%.2f tokens_per_s=%.0f mfu=%.4f peak_reserved_mb=%.0f peak_tensor_mb=%.0f "
        "loss=%.4f\n",
        arguments.bf16 ? "bf16" : "fp32", static_cast<long long>(arguments.batch), static_cast<long long>(arguments.context),
        static_cast<long long>(parameter_count), arguments.steps, step, median(forward_ms), median(backward_ms),
        median(optimizer_ms), tokens_per_second, mfu, cache.peak_reserved_bytes / 1048576.0,
        memory.total.peak / 1048576.0, last_loss);
    std::fflush(stdout);
    if (arguments.breakdown) print_breakdown(arguments, device, dtype, *model, optimizer, tokens, targets);
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_gpt2: %s\n", error.what());
    return 1;
  }
}
