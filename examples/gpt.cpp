// gpt: a GPT (GPT-2's architecture, examples/common/gpt_model.h) trained on text — byte-level,
// every byte a token (vocabulary 256), by default the fortune cookies Debian's fortunes-min
// package installs — or on llm.c token files from any tokenizer (GPT-2's: vocabulary 50304). It
// reports the validation loss every --eval-every steps next to the corpus's unigram entropy — the
// loss of a model that knows only token frequencies — and ends with a sample from the model. The
// training loop is the library's train::Trainer.
//
//   build/gpt                                  # the tiny preset (4 layers, d_model 256), 300 steps
//   build/gpt --layers 2 --d-model 128 --steps 200
//   build/gpt --checkpoint gpt.safetensors --checkpoint-every 100    # then: --resume gpt.safetensors
//   build/gpt --resume gpt.safetensors --generate 200 --prompt "Q: "  # sample, no training
//   build/gpt --init-from weights.safetensors --steps 100   # start from weights only (same shape flags)
//   build/gpt --help
//   mpirun -np 2 build/gpt --threads 1        # data-parallel (DDP): --batch is per rank
//   mpirun -np 2 build/gpt --threads 1 --comm powersgd:4   # a slow network: README, "Slow networks"
//   mpirun -np 8 build/gpt --model gpt2-124m --data train.bin --val-data val.bin   # one GPU per rank
//   mpirun -np 4 build/gpt --zero-stage 2 --precision bf16 --checkpoint run-dir   # ZeRO, sharded
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "dtrain.h"
#include "examples/common/gpt_data.h"
#include "examples/common/gpt_model.h"
#include "examples/common/parallel_flags.h"
#include "examples/common/run_flags.h"
#include "tools/command_line/flags.h"
#include "tools/command_line/program_exit.h"
#include "train/optimizer_choice.h"
#include "train/trainer.h"
#include "train/trainer_checkpoint_source.h"
#include "train/trainer_step_log.h"

using namespace dtrain;
using namespace dtrain::examples;

namespace {

constexpr const char* kFortunesFolder = "/usr/share/games/fortunes";

struct Config {
  std::string data = kFortunesFolder;
  std::string val_data;
  std::string model = "tiny";  // a preset (examples/common/gpt_model.h)
  GptShape shape;              // the size flags' values
  double dropout = 0.1;
  int64_t batch = 16;
  int64_t steps = 300;
  int64_t warmup = 0;  // steps of linear learning-rate warmup, then cosine decay; default below
  double grad_clip = 1.0;
  int64_t eval_every = 50;
  int64_t eval_batches = 0;  // 0: the whole validation split
  int64_t sample_bytes = 300;
  int64_t generate = 0;
  double temperature = 0.8;
  int64_t top_k = 40;
  std::string prompt = "\n";
  std::string prompt_tokens;
  train::OptimizerChoice optimizer{.lr = 1e-3, .weight_decay = 0.1};
  ParallelChoice parallel;
  RunFlags run;
  std::set<std::string> given;  // the flags on the command line
  Device device;
};

Config parse_flags(int argc, char** argv) {
  Config config;
  FlagParser flags("gpt", "Trains a GPT on text (bytes) or llm.c token files, reports validation loss and samples.");
  flags.add("data", config.data,
            "a text file, an llm.c token file (.bin), or a folder of token files (else of text files, except *.dat)");
  flags.add("val-data", config.val_data, "a validation file of the same kind (empty: the last tenth of --data)");
  flags.add_choice("model", config.model, gpt_preset_names(),
                   "preset shape: tiny, gpt2-124m (12 layers, 12 heads, 768, context 1024), gpt2-350m (24, 16, 1024, "
                   "1024); size flags override it");
  flags.add("context", config.shape.context, "context length in tokens");
  flags.add("d-model", config.shape.d_model, "model width");
  flags.add("layers", config.shape.layers, "transformer blocks");
  flags.add("heads", config.shape.heads, "attention heads (must divide --d-model)");
  flags.add("mlp-ratio", config.shape.mlp_ratio, "MLP hidden width as a multiple of --d-model");
  for (const GptShapeFlag& flag : kGptShapeFlags) {
    flags.describe_default(flag.flag, "the preset's; with --resume the checkpoint's");
  }
  flags.add("dropout", config.dropout, "dropout probability (embeddings, attention, MLP)");
  flags.add("batch", config.batch, "sequences per micro-batch and rank");
  flags.add("steps", config.steps, "optimizer steps");
  flags.add("warmup", config.warmup, "learning-rate warmup steps");
  flags.describe_default("warmup", "a tenth of --steps");
  flags.add("grad-clip", config.grad_clip, "clip the gradients' total norm to this (0: off)");
  flags.add("eval-every", config.eval_every, "steps between validation losses");
  flags.add("eval-batches", config.eval_batches, "batches per validation loss (0: the whole validation split)");
  flags.add("sample-bytes", config.sample_bytes, "tokens (bytes of text) to sample after training (0: none)");
  flags.add("generate", config.generate, "with --resume: sample this many tokens from the checkpoint, no training");
  flags.add("temperature", config.temperature, "sampling temperature (0: always the likeliest token)");
  flags.add("top-k", config.top_k, "sample among the k likeliest tokens (0: all)");
  flags.add("prompt", config.prompt, "text the sample continues (byte-level models)");
  flags.add("prompt-tokens", config.prompt_tokens,
            "token ids the sample continues, comma-separated (token models; default after training: the first "
            "validation token)");
  add_optimizer_flags(flags, config.optimizer);
  add_parallel_flags(flags, config.parallel);
  config.run.add_to(flags);
  config.given = flags.parse(argc, argv);

  if (config.given.count("warmup") == 0) config.warmup = config.steps / 10;
  if (!(config.dropout >= 0 && config.dropout < 1)) usage_error("--dropout must be in [0, 1), got ", config.dropout);
  if (config.batch < 1) usage_error("--batch must be >= 1, got ", config.batch);
  if (config.steps < 0) usage_error("--steps must be >= 0, got ", config.steps);
  if (config.warmup < 0) usage_error("--warmup must be >= 0, got ", config.warmup);
  if (!(config.grad_clip >= 0)) usage_error("--grad-clip must be >= 0, got ", config.grad_clip);
  if (config.eval_every < 1) usage_error("--eval-every must be >= 1, got ", config.eval_every);
  if (config.eval_batches < 0) usage_error("--eval-batches must be >= 0, got ", config.eval_batches);
  if (config.sample_bytes < 0) usage_error("--sample-bytes must be >= 0, got ", config.sample_bytes);
  if (config.generate < 0) usage_error("--generate must be >= 0, got ", config.generate);
  if (config.generate > 0 && config.run.resume.empty()) usage_error("--generate needs --resume CHECKPOINT");
  if (!(config.temperature >= 0)) usage_error("--temperature must be >= 0, got ", config.temperature);
  if (config.top_k < 0) usage_error("--top-k must be >= 0, got ", config.top_k);
  if (config.prompt.empty()) usage_error("--prompt must not be empty");
  check_optimizer_flags(config.optimizer);
  config.device = resolve_parallel_flags(config.parallel);
  config.run.check_and_apply();
  return config;
}

void check_shape(const GptShape& shape) {
  if (shape.context < 1 || shape.d_model < 1 || shape.layers < 0 || shape.heads < 1 || shape.mlp_ratio < 1) {
    usage_error("--context, --d-model, --heads and --mlp-ratio must be >= 1 and --layers >= 0");
  }
  if (shape.d_model % shape.heads != 0) {
    usage_error("--heads (", shape.heads, ") must divide --d-model (", shape.d_model, ")");
  }
}

// The shape saved with --resume's checkpoint, if it has one.
std::optional<GptShape> saved_shape(const Config& config) {
  if (config.run.resume.empty()) return std::nullopt;
  std::string checkpoint = train::resolve_checkpoint_path(config.run.resume);
  return read_input([&] { return gpt_shape_from_metadata(train::checkpoint_run_metadata(checkpoint), checkpoint); });
}

std::vector<int64_t> parse_token_list(const std::string& text, int64_t vocabulary) {
  std::vector<int64_t> tokens;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) {
    size_t used = 0;
    int64_t token = -1;
    try {
      token = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || token < 0 || token >= vocabulary) {
      usage_error("--prompt-tokens expects token ids in [0, ", vocabulary, ") separated by commas, got '", text, "'");
    }
    tokens.push_back(token);
  }
  if (tokens.empty()) usage_error("--prompt-tokens must not be empty");
  return tokens;
}

// What the sample continues: --prompt-tokens when given; for a byte-level model --prompt's
// bytes; for a token model first_token (after training: the first validation token).
std::vector<int64_t> prompt_of(const Config& config, const GptShape& shape, std::optional<int64_t> first_token) {
  if (config.given.count("prompt-tokens") != 0) return parse_token_list(config.prompt_tokens, shape.vocabulary);
  if (shape.byte_level) {
    std::vector<int64_t> tokens;
    for (char c : config.prompt) tokens.push_back(static_cast<uint8_t>(c));
    return tokens;
  }
  if (config.given.count("prompt") != 0) {
    usage_error("--prompt is text, but this model's tokens are a tokenizer's ids (vocabulary ", shape.vocabulary,
                "): give them with --prompt-tokens, e.g. --prompt-tokens 50256 (GPT-2's <|endoftext|>)");
  }
  if (!first_token) usage_error("a token model's sample needs --prompt-tokens (its tokenizer's ids, comma-separated)");
  return {*first_token};
}

// Samples count tokens after prompt and prints them: as text for a byte-level model, as ids
// otherwise. Every rank calls it when the forward is collective (ZeRO stage 3); rank 0 prints.
void print_sample(Module& model, train::Trainer& training, const Config& config, const GptShape& shape,
                  const std::vector<int64_t>& prompt, int64_t count) {
  NoGradGuard no_grad;
  model.eval();
  Generator generator(config.run.seed);  // its own stream: sampling leaves training's untouched
  std::vector<int64_t> tokens =
      generate_tokens([&](const Tensor& input) { return training(input); }, prompt, count, shape.context,
                      {.temperature = config.temperature, .top_k = config.top_k}, generator, training.device());
  model.train();
  std::string text;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (shape.byte_level) {
      text.push_back(static_cast<char>(tokens[i]));
    } else {
      if (i > 0) text += ',';
      text += std::to_string(tokens[i]);
    }
  }
  std::printf("\nsampled (temperature %g, top-k %lld, seed %llu)%s:\n%s\n", config.temperature,
              static_cast<long long>(config.top_k), static_cast<unsigned long long>(config.run.seed),
              shape.byte_level ? "" : ", token ids", text.c_str());
}

// Mean cross-entropy over the first max_batches batches of the validation set (all when 0),
// without dropout or autograd.
double validation_loss(Module& model, train::Trainer& training, const std::shared_ptr<const TokenDataset>& validation,
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
    loss_sum += cross_entropy(logits, batch.targets.to(training.device()), {.reduction = Reduction::Sum}).item();
    tokens += static_cast<double>(batch.targets.numel());
  }
  model.train();
  return loss_sum / tokens;
}

dist::RunSettings run_settings(const Config& config, const GptShape& shape) {
  dist::RunSettings settings{{"data", config.data}, {"val_data", config.val_data}};
  for (const auto& [key, value] : gpt_shape_metadata(shape)) settings.emplace_back(key, value);
  dist::RunSettings rest{{"dropout", setting_text(config.dropout)},
                         {"batch", std::to_string(config.batch)},
                         {"steps", std::to_string(config.steps)},
                         {"warmup", std::to_string(config.warmup)},
                         {"eval_every", std::to_string(config.eval_every)},
                         {"eval_batches", std::to_string(config.eval_batches)},
                         {"sample_bytes", std::to_string(config.sample_bytes)},
                         {"generate", std::to_string(config.generate)}};
  settings.insert(settings.end(), rest.begin(), rest.end());
  for (const auto& more : {optimizer_settings(config.optimizer), config.run.settings()}) {
    settings.insert(settings.end(), more.begin(), more.end());
  }
  return settings;
}

void print_header(const Config& config, const GptShape& shape, int64_t parameters, train::Trainer& training) {
  std::printf("gpt: %lld layers, d_model %lld, %lld heads, context %lld, vocabulary %lld%s: %lld parameters; ",
              static_cast<long long>(shape.layers), static_cast<long long>(shape.d_model),
              static_cast<long long>(shape.heads), static_cast<long long>(shape.context),
              static_cast<long long>(shape.vocabulary), shape.byte_level ? " (bytes)" : "",
              static_cast<long long>(parameters));
  if (config.generate > 0) {
    std::printf("generating %lld tokens, %s\n", static_cast<long long>(config.generate), training.description().c_str());
    return;
  }
  std::printf("%s lr %g, %lld steps (warmup %lld), %d threads, %s\n", training.optimizer_name().c_str(),
              config.optimizer.lr, static_cast<long long>(config.steps), static_cast<long long>(config.warmup),
              num_threads(), training.description().c_str());
}

void run(Config config) {
  // Every rank says where it runs; then rank 0 alone reports and writes metrics.
  const bool reporting_rank = dist::rank() == 0;
  const int64_t global_batch = config.batch * dist::world_size() * config.parallel.grad_accum;
  std::printf("gpt: %s, %s", dist::placement_text(config.device).c_str(), config.parallel.precision.c_str());
  if (config.generate == 0) {
    std::printf("; global batch %lld = %lld per rank x %d ranks x %lld micro-batches",
                static_cast<long long>(global_batch), static_cast<long long>(config.batch), dist::world_size(),
                static_cast<long long>(config.parallel.grad_accum));
  }
  std::printf("\n");
  std::fflush(stdout);
  if (!reporting_rank) std::freopen("/dev/null", "w", stdout);
  manual_seed(config.run.seed);

  const std::optional<GptShape> saved = saved_shape(config);
  const std::string checkpoint = config.run.resume.empty() ? "" : train::resolve_checkpoint_path(config.run.resume);
  GptShape shape = resolve_gpt_shape(config.shape, config.given, config.model, saved, checkpoint);
  if (config.generate > 0 && !saved) {
    usage_error("--resume ", checkpoint, ": the checkpoint does not store the model's shape (saved by an older gpt)");
  }
  std::optional<GptCorpus> corpus;
  if (config.generate == 0) {
    check_shape(shape);
    corpus = read_gpt_corpus(config.data, config.val_data, shape.context);
    if (saved && (saved->byte_level != corpus->byte_level || corpus->vocabulary > saved->vocabulary)) {
      usage_error("--data ", config.data, " needs a ", corpus->byte_level ? "byte-level" : "token", " model of vocabulary ",
                  corpus->vocabulary, ", but the checkpoint ", checkpoint, " has a ",
                  saved->byte_level ? "byte-level" : "token", " model of vocabulary ", saved->vocabulary);
    }
    if (!saved) {
      shape.vocabulary = corpus->vocabulary;
      shape.byte_level = corpus->byte_level;
    }
  }

  auto model = std::make_shared<GPT>(gpt_config(shape, config.dropout));
  const int64_t parameter_count = model->parameter_count();
  train::TrainerOptions options = trainer_options(config.parallel, config.device);  // DDP or ZeRO
  options.grad_clip = config.grad_clip;
  // Linear warmup, then cosine decay to a tenth of --lr: a pure function of the step.
  options.schedule = optim::warmup_cosine_lr({.max_lr = config.optimizer.lr,
                                              .min_lr = config.optimizer.lr / 10,
                                              .warmup_steps = std::min(config.warmup, config.steps),
                                              .total_steps = config.steps});
  config.run.apply_to(options);  // --checkpoint, --checkpoint-every, --keep-checkpoints, --init-from
  options.checkpoint_metadata = gpt_shape_metadata(shape);
  options.checkpoint_metadata["example"] = "gpt";
  options.settings = run_settings(config, shape);
  train::Trainer training(
      model, [&](std::vector<Tensor> parameters) { return train::make_optimizer(config.optimizer, std::move(parameters)); },
      options);
  print_header(config, shape, parameter_count, training);

  if (config.generate > 0) {
    train::TrainingState state = read_input([&] { return training.load(checkpoint); });
    std::printf("loaded %s (step %lld)\n", checkpoint.c_str(), static_cast<long long>(state.step));
    if (reporting_rank || training.forward_is_collective()) {
      print_sample(*model, training, config, shape, prompt_of(config, shape, std::nullopt), config.generate);
    }
    return;
  }

  // Every token starts a training window (stride 1), so a shuffled epoch is a stream of random
  // crops; validation windows lie side by side, each token predicted once.
  auto train_set = std::make_shared<TokenDataset>(corpus->train, shape.context, 1);
  auto validation_set = std::make_shared<TokenDataset>(corpus->validation, shape.context);
  const double entropy = unigram_entropy(*corpus);
  DataLoader loader(train_set, {.batch_size = config.batch,
                                .sampler = dist::distributed_sampler(train_set->size(), {.seed = config.run.seed})});
  config.run.start(training, loader);  // --resume or --init-from
  const char* unit = shape.byte_level ? "byte" : "token";
  std::printf("corpus %s; unigram entropy %.4f nats/%s (%.3f bits)\n", corpus->description.c_str(), entropy, unit,
              entropy / std::log(2.0));

  const int64_t last_step = config.run.last_step(config.steps);
  // Progress and metrics: rank 0's.
  train::StepLog log = read_input([&] {
    return train::StepLog(last_step, "tokens", config.run.log_every, reporting_rank ? config.run.metrics : "");
  });
  const int64_t tokens_per_step = global_batch * shape.context;
  const Device device = training.device();

  // What the trainer's loop reports after each step, and what the program adds: validation.
  auto after_step = [&](const train::StepReport& report) {
    log.record(report, tokens_per_step);
    if ((reporting_rank || training.forward_is_collective()) &&
        (report.step % config.eval_every == 0 || report.step == last_step)) {
      double loss_value = validation_loss(*model, training, validation_set, config.batch, config.eval_batches);
      log.metrics().write({{"step", report.step}, {"val_loss", loss_value}});
      char line[160];
      std::snprintf(line, sizeof line, "step %lld: validation loss %.4f nats/%s (unigram entropy %.4f)",
                    static_cast<long long>(report.step), loss_value, unit, entropy);
      log.progress().print(line);
      log.progress().exclude_pause();  // validation counts neither in the throughput nor in the ETA
    }
  };
  training.set_callbacks(after_step, [&](const std::string&, int64_t) { log.progress().exclude_pause(); });
  log.progress().exclude_pause();  // setup is not training
  training.fit(loader, last_step, [&](const Batch& batch) {
    return cross_entropy(training(batch.inputs), batch.targets.to(device));
  });
  const int64_t step = training.steps_done();

  std::printf("memory: %s\n", training.memory_line().c_str());
  if ((reporting_rank || training.forward_is_collective()) && config.sample_bytes > 0 && step == config.steps) {
    print_sample(*model, training, config, shape, prompt_of(config, shape, corpus->validation.front()),
                 config.sample_bytes);
  }
}

}  // namespace

int main(int argc, char** argv) {
  return run_program("gpt", [&] {
    dist::init(&argc, &argv);  // a world of one without mpirun
    run(parse_flags(argc, argv));
  });
}
