// gpt: a byte-level GPT (GPT-2's architecture: token and position embeddings, pre-norm
// transformer blocks, GELU-tanh MLPs, a tied output layer) trained on the fortune cookies
// Debian's fortunes-min package installs. Every byte is a token (vocabulary 256), so no tokenizer
// is needed. It reports the validation loss every --eval-every steps next to the corpus's unigram
// (byte) entropy — the loss of a model that knows only byte frequencies — and ends with text
// sampled from the model.
//
//   build/gpt                                  # the reference model (4 layers, d_model 256), 300 steps
//   build/gpt --layers 2 --d-model 128 --steps 200
//   build/gpt --checkpoint gpt.safetensors --checkpoint-every 100    # then: --resume gpt.safetensors
//   build/gpt --help
//   mpirun -np 2 build/gpt --threads 1        # data-parallel (DDP): --batch is per rank
//   mpirun -np 4 build/gpt --zero-stage 2 --precision bf16 --checkpoint run-dir   # ZeRO, sharded
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "dtrain.h"
#include "examples/common/flags.h"
#include "examples/common/metrics_log.h"
#include "examples/common/parallel_training.h"
#include "examples/common/program_exit.h"
#include "examples/common/progress_line.h"
#include "examples/common/run_flags.h"

using namespace dtrain;
using namespace dtrain::examples;

namespace {

constexpr int64_t kVocabulary = 256;  // one token per byte value
constexpr const char* kFortunesFolder = "/usr/share/games/fortunes";

struct GptConfig {
  int64_t context = 128;  // tokens the model sees at once
  int64_t d_model = 256;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t mlp_ratio = 4;
  double dropout = 0.1;
};

struct Config {
  std::string data = kFortunesFolder;
  GptConfig model;
  int64_t batch = 16;
  int64_t steps = 300;
  int64_t warmup = 30;  // steps of linear learning-rate warmup, then cosine decay
  double grad_clip = 1.0;
  int64_t eval_every = 50;
  int64_t eval_batches = 0;  // 0: the whole validation split
  int64_t sample_bytes = 300;
  double temperature = 0.8;
  int64_t top_k = 40;
  std::string prompt = "\n";
  OptimizerChoice optimizer{.lr = 1e-3, .weight_decay = 0.1};
  ParallelChoice parallel;
  RunFlags run;
};

Config parse_flags(int argc, char** argv) {
  Config config;
  FlagParser flags("gpt", "Trains a byte-level GPT on a text corpus, reports validation loss and samples text.");
  flags.add("data", config.data, "a text file, or a folder whose files (except *.dat) are concatenated");
  flags.add("context", config.model.context, "context length in bytes");
  flags.add("d-model", config.model.d_model, "model width");
  flags.add("layers", config.model.layers, "transformer blocks");
  flags.add("heads", config.model.heads, "attention heads (must divide --d-model)");
  flags.add("mlp-ratio", config.model.mlp_ratio, "MLP hidden width as a multiple of --d-model");
  flags.add("dropout", config.model.dropout, "dropout probability (embeddings, attention, MLP)");
  flags.add("batch", config.batch, "sequences per step");
  flags.add("steps", config.steps, "optimizer steps");
  flags.add("warmup", config.warmup, "learning-rate warmup steps");
  flags.add("grad-clip", config.grad_clip, "clip the gradients' total norm to this (0: off)");
  flags.add("eval-every", config.eval_every, "steps between validation losses");
  flags.add("eval-batches", config.eval_batches, "batches per validation loss (0: the whole validation split)");
  flags.add("sample-bytes", config.sample_bytes, "bytes of text to sample at the end (0: none)");
  flags.add("temperature", config.temperature, "sampling temperature (0: always the likeliest byte)");
  flags.add("top-k", config.top_k, "sample among the k likeliest bytes (0: all)");
  flags.add("prompt", config.prompt, "text the sample continues");
  add_optimizer_flags(flags, config.optimizer);
  add_parallel_flags(flags, config.parallel);
  config.run.add_to(flags);
  flags.parse(argc, argv);

  const GptConfig& model = config.model;
  if (model.context < 1 || model.d_model < 1 || model.layers < 0 || model.heads < 1 || model.mlp_ratio < 1) {
    usage_error("--context, --d-model, --heads and --mlp-ratio must be >= 1 and --layers >= 0");
  }
  if (model.d_model % model.heads != 0) {
    usage_error("--heads (", model.heads, ") must divide --d-model (", model.d_model, ")");
  }
  if (!(model.dropout >= 0 && model.dropout < 1)) usage_error("--dropout must be in [0, 1), got ", model.dropout);
  if (config.batch < 1) usage_error("--batch must be >= 1, got ", config.batch);
  if (config.steps < 0) usage_error("--steps must be >= 0, got ", config.steps);
  if (config.warmup < 0) usage_error("--warmup must be >= 0, got ", config.warmup);
  if (!(config.grad_clip >= 0)) usage_error("--grad-clip must be >= 0, got ", config.grad_clip);
  if (config.eval_every < 1) usage_error("--eval-every must be >= 1, got ", config.eval_every);
  if (config.eval_batches < 0) usage_error("--eval-batches must be >= 0, got ", config.eval_batches);
  if (config.sample_bytes < 0) usage_error("--sample-bytes must be >= 0, got ", config.sample_bytes);
  if (!(config.temperature >= 0)) usage_error("--temperature must be >= 0, got ", config.temperature);
  if (config.top_k < 0) usage_error("--top-k must be >= 0, got ", config.top_k);
  if (config.prompt.empty()) usage_error("--prompt must not be empty");
  check_optimizer_flags(config.optimizer);
  check_parallel_flags(config.parallel);
  config.run.check_and_apply();
  return config;
}

// The model. Parameters are named as in GPT-2 checkpoints where the structure allows:
// token_embedding, position_embedding, blocks.<i>.{ln1,attn,ln2,mlp}, final_norm (and output,
// the tied output layer, whose weight is token_embedding.weight).
class Gpt : public Module {
 public:
  explicit Gpt(const GptConfig& config) : Module("Gpt") {
    token_embedding_ = register_module("token_embedding", std::make_shared<Embedding>(kVocabulary, config.d_model));
    position_embedding_ =
        register_module("position_embedding", std::make_shared<Embedding>(config.context, config.d_model));
    dropout_ = register_module("dropout", std::make_shared<Dropout>(config.dropout));
    blocks_ = register_module("blocks", std::make_shared<ModuleList>());
    for (int64_t i = 0; i < config.layers; ++i) {
      blocks_->push_back(std::make_shared<TransformerBlock>(TransformerConfig{
          .d_model = config.d_model, .heads = config.heads, .mlp_ratio = config.mlp_ratio, .dropout = config.dropout}));
    }
    final_norm_ = register_module("final_norm", std::make_shared<LayerNorm>(config.d_model));
    // The output layer reuses the token embedding's weight (weight tying, as GPT-2), as a module
    // of its own, so that ZeRO stage 3 gathers the weight around it.
    output_ = register_module("output", Linear::tied(token_embedding_->weight()));
    // GPT-2 draws embeddings from N(0, 0.02^2). PyTorch's Embedding default, N(0, 1), would make
    // the first logits (through the tied output layer) so large that training starts far off.
    NoGradGuard no_grad;
    for (Tensor weight : {token_embedding_->weight(), position_embedding_->weight()}) normal_(weight, 0.0, 0.02);
  }

 protected:
  // tokens [B, T] int64 -> logits [B, T, 256]
  Tensor forward(const Tensor& tokens) override {
    Tensor positions = arange(tokens.size(1));
    Tensor x = (*dropout_)((*token_embedding_)(tokens) + (*position_embedding_)(positions));
    for (const std::shared_ptr<Module>& block : *blocks_) x = (*block)(x);
    return (*output_)((*final_norm_)(x));
  }

 private:
  std::shared_ptr<Embedding> token_embedding_;
  std::shared_ptr<Embedding> position_embedding_;
  std::shared_ptr<Dropout> dropout_;
  std::shared_ptr<ModuleList> blocks_;
  std::shared_ptr<Linear> output_;
  std::shared_ptr<LayerNorm> final_norm_;
};

// The bytes of path, or of every file in the folder path (sorted by name, leaving out the
// fortune index files *.dat and symbolic links, which repeat a file).
Tokens read_corpus(const std::filesystem::path& path) {
  if (!std::filesystem::is_directory(path)) return read_text_bytes(path);
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    if (entry.is_regular_file() && !entry.is_symlink() && entry.path().extension() != ".dat") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  Tokens corpus;
  for (const auto& file : files) {
    Tokens bytes = read_text_bytes(file);
    corpus.insert(corpus.end(), bytes.begin(), bytes.end());
  }
  if (corpus.empty()) fail("gpt: '", path.string(), "' holds no text files");
  return corpus;
}

// -sum p log p over the byte frequencies, in nats: the cross-entropy of the best model that
// ignores context. A language model's loss must fall below it to have learned anything more.
double unigram_entropy(const Tokens& tokens) {
  std::vector<double> counts(kVocabulary, 0.0);
  for (int32_t token : tokens) counts[static_cast<size_t>(token)] += 1;
  double entropy = 0;
  for (double count : counts) {
    if (count == 0) continue;
    double p = count / static_cast<double>(tokens.size());
    entropy -= p * std::log(p);
  }
  return entropy;
}

// Mean cross-entropy over the first max_batches batches of the validation set (all when 0),
// without dropout or autograd.
double validation_loss(Module& model, ParallelTraining& training, const std::shared_ptr<const TokenDataset>& validation,
                       int64_t batch_size, int64_t max_batches) {
  NoGradGuard no_grad;
  model.eval();
  DataLoader loader(validation, {.batch_size = batch_size});
  double loss_sum = 0;
  double tokens = 0;
  int64_t batches = 0;
  for (Batch& batch : loader) {
    if (max_batches > 0 && batches++ == max_batches) break;
    Tensor logits = training(batch.inputs);
    loss_sum += cross_entropy(logits, batch.targets, {.reduction = Reduction::Sum}).item();
    tokens += static_cast<double>(batch.targets.numel());
  }
  model.train();
  return loss_sum / tokens;
}

// One byte drawn from logits [256]: scaled by 1 / temperature, restricted to the top_k
// likeliest, softmax-normalised. Temperature 0 takes the likeliest byte.
int32_t sample_byte(const std::vector<float>& logits, double temperature, int64_t top_k, Generator& generator) {
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  if (temperature == 0) return order[0];
  size_t keep = top_k > 0 ? std::min(order.size(), static_cast<size_t>(top_k)) : order.size();
  std::vector<double> weights(keep);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    weights[i] = std::exp((logits[order[i]] - logits[order[0]]) / temperature);
    total += weights[i];
  }
  double u = rand({1}, {.dtype = kFloat64}, &generator).item() * total;
  for (size_t i = 0; i < keep; ++i) {
    if ((u -= weights[i]) < 0) return order[i];
  }
  return order[keep - 1];
}

// prompt continued by count sampled bytes, the model seeing at most context bytes back.
std::string sample_text(Module& model, ParallelTraining& training, const Config& config) {
  NoGradGuard no_grad;
  model.eval();
  Generator generator(config.run.seed);  // its own stream: sampling leaves training's untouched
  std::vector<int64_t> tokens(config.prompt.begin(), config.prompt.end());
  for (int64_t& token : tokens) token = static_cast<uint8_t>(token);
  std::string text = config.prompt;
  for (int64_t i = 0; i < config.sample_bytes; ++i) {
    auto start = tokens.size() > static_cast<size_t>(config.model.context) ? tokens.end() - config.model.context
                                                                            : tokens.begin();
    std::vector<int64_t> window(start, tokens.end());
    auto length = static_cast<int64_t>(window.size());
    Tensor logits = training(from_vector(window, {1, length})).select(1, length - 1).reshape({kVocabulary});
    int32_t next = sample_byte(logits.to_vector<float>(), config.temperature, config.top_k, generator);
    tokens.push_back(next);
    text.push_back(static_cast<char>(next));
  }
  model.train();
  return text;
}

void run_training(const Config& config) {
  // Under mpirun every rank trains on its own share of the data; rank 0 alone reports and saves.
  const bool reporting_rank = dist::rank() == 0;
  if (!reporting_rank) std::freopen("/dev/null", "w", stdout);
  manual_seed(config.run.seed);
  Tokens corpus = read_input([&] { return read_corpus(config.data); });
  TokenSplit split = split_tokens(corpus, 0.1);  // the last 10% for validation
  if (static_cast<int64_t>(split.validation.size()) <= config.model.context) {
    usage_error("the corpus '", config.data, "' is too small: its validation tenth (", split.validation.size(),
                " bytes) must exceed --context (", config.model.context, ")");
  }
  // Every byte starts a training window (stride 1), so a shuffled epoch is a stream of random
  // crops; validation windows lie side by side, each byte predicted once.
  auto train_set = std::make_shared<TokenDataset>(split.train, config.model.context, 1);
  auto validation_set = std::make_shared<TokenDataset>(split.validation, config.model.context);
  const double entropy = unigram_entropy(corpus);

  auto model = std::make_shared<Gpt>(config.model);
  const int64_t parameter_count = model->parameter_count();
  dist::RunSettings settings{{"data", config.data},
                             {"context", std::to_string(config.model.context)},
                             {"d_model", std::to_string(config.model.d_model)},
                             {"layers", std::to_string(config.model.layers)},
                             {"heads", std::to_string(config.model.heads)},
                             {"mlp_ratio", std::to_string(config.model.mlp_ratio)},
                             {"dropout", setting_text(config.model.dropout)},
                             {"batch", std::to_string(config.batch)},
                             {"steps", std::to_string(config.steps)},
                             {"warmup", std::to_string(config.warmup)},
                             {"grad_clip", setting_text(config.grad_clip)},
                             {"eval_every", std::to_string(config.eval_every)},
                             {"eval_batches", std::to_string(config.eval_batches)},
                             {"sample_bytes", std::to_string(config.sample_bytes)}};
  dist::RunSettings run_settings = config.run.settings();
  settings.insert(settings.end(), run_settings.begin(), run_settings.end());
  ParallelTraining training(model, config.optimizer, config.parallel, std::move(settings));  // DDP or ZeRO
  DataLoader loader(train_set, {.batch_size = config.batch,
                                .sampler = dist::distributed_sampler(train_set->size(), {.seed = config.run.seed})});
  optim::LrSchedule schedule = optim::warmup_cosine_lr({.max_lr = config.optimizer.lr,
                                                        .min_lr = config.optimizer.lr / 10,
                                                        .warmup_steps = std::min(config.warmup, config.steps),
                                                        .total_steps = config.steps});

  int64_t step = config.run.resume.empty() ? 0 : training.resume(config.run.resume, loader);

  std::printf("gpt: %lld layers, d_model %lld, %lld heads, context %lld: %lld parameters; %s lr %g, batch %lld, "
              "%lld steps, %d threads, %s\n",
              static_cast<long long>(config.model.layers), static_cast<long long>(config.model.d_model),
              static_cast<long long>(config.model.heads), static_cast<long long>(config.model.context),
              static_cast<long long>(parameter_count), training.optimizer_name().c_str(), config.optimizer.lr,
              static_cast<long long>(config.batch), static_cast<long long>(config.steps), num_threads(),
              training.description().c_str());
  std::printf("corpus %s: %zu bytes (%zu train, %zu validation); unigram entropy %.4f nats/byte (%.3f bits)\n",
              config.data.c_str(), corpus.size(), split.train.size(), split.validation.size(), entropy,
              entropy / std::log(2.0));
  MetricsLog metrics(reporting_rank ? config.run.metrics : "");
  const int64_t last_step = config.run.last_step(config.steps);
  ProgressLine progress(last_step, "tokens/s", config.run.log_every);
  const int64_t tokens_per_step = config.batch * config.model.context * dist::world_size();

  while (step < last_step) {
    Batch batch = loader.next();
    double lr = schedule(step);
    training.set_lr(lr);
    training.zero_grad();
    Tensor loss = cross_entropy(training(batch.inputs), batch.targets);
    training.backward(loss);
    if (config.grad_clip > 0) training.clip_grad_norm(config.grad_clip);
    training.step();
    ++step;

    progress.update(step, loss.item(), tokens_per_step);
    if (step % config.run.log_every == 0 || step == last_step) {
      metrics.write(
          {{"step", step}, {"loss", progress.mean_loss()}, {"lr", lr}, {"tokens_per_s", progress.throughput()}});
      progress.reset_window();
    }
    if ((reporting_rank || training.forward_is_collective()) && (step % config.eval_every == 0 || step == last_step)) {
      double loss_value = validation_loss(*model, training, validation_set, config.batch, config.eval_batches);
      metrics.write({{"step", step}, {"val_loss", loss_value}});
      char line[160];
      std::snprintf(line, sizeof line, "step %lld: validation loss %.4f nats/byte (unigram entropy %.4f)",
                    static_cast<long long>(step), loss_value, entropy);
      progress.print(line);
      progress.exclude_pause();
    }
    if (config.run.checkpoint_due(step, last_step)) {
      training.save_checkpoint(config.run.checkpoint, step, loader, {{"example", "gpt"}}, config.run.keep_checkpoints);
      progress.exclude_pause();
    }
  }

  std::printf("memory: %s\n", training.memory_line().c_str());
  if ((reporting_rank || training.forward_is_collective()) && config.sample_bytes > 0 && step == config.steps) {
    std::string text = sample_text(*model, training, config);
    std::printf("\nsampled (temperature %g, top-k %lld):\n%s\n", config.temperature,
                static_cast<long long>(config.top_k), text.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  return run_program("gpt", [&] {
    dist::init(&argc, &argv);  // a world of one without mpirun
    run_training(parse_flags(argc, argv));
  });
}
