// mlp: a multi-layer perceptron (784-1024-1024-10, ReLU) trained on Fashion-MNIST, the 28x28
// clothing images Debian's dataset-fashion-mnist installs. Two epochs reach about 88% test
// accuracy. It shows a whole dtrain training run: model, optimizer, data loader, learning-rate
// schedule, evaluation, checkpoints and resuming — the loop itself is the library's
// train::Trainer; this program adds the data, the model, evaluation and its reports.
//
//   build/mlp                          # 2 epochs, AdamW, batch 128
//   build/mlp --hidden 256 --epochs 1 --optimizer sgd --lr 0.05
//   build/mlp --checkpoint run.safetensors --checkpoint-every 200    # then: --resume run.safetensors
//   build/mlp --init-from weights.safetensors --epochs 1    # start from weights only
//   build/mlp --help
//   mpirun -np 2 build/mlp --threads 1        # data-parallel (DDP): --batch is per rank
//   mpirun -np 2 build/mlp --threads 1 --comm powersgd:4   # a slow network: README, "Slow networks"
//   mpirun -np 4 build/mlp --zero-stage 3 --precision bf16 --checkpoint run-dir   # ZeRO, sharded
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "dtrain.h"
#include "examples/common/parallel_flags.h"
#include "examples/common/run_flags.h"
#include "tools/command_line/flags.h"
#include "tools/command_line/program_exit.h"
#include "train/optimizer_choice.h"
#include "train/trainer.h"
#include "train/trainer_step_log.h"

using namespace dtrain;
using namespace dtrain::examples;

namespace {

struct Config {
  std::string data = kFashionMnistDebianRoot;
  std::string hidden = "1024,1024";  // widths of the hidden layers
  double dropout = 0.0;              // after each hidden layer, while training
  int64_t batch = 128;
  int64_t epochs = 2;
  int64_t steps = 0;  // when > 0, stop after this many steps instead
  train::OptimizerChoice optimizer;
  ParallelChoice parallel;
  RunFlags run;
  Device device;
};

std::vector<int64_t> parse_widths(const std::string& text) {
  std::vector<int64_t> widths;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) {
    try {
      size_t used = 0;
      int64_t width = std::stoll(item, &used);
      if (used != item.size() || width < 1) throw std::invalid_argument(item);
      widths.push_back(width);
    } catch (const std::exception&) {
      usage_error("--hidden expects positive widths separated by commas, like 1024,1024; got '", text, "'");
    }
  }
  return widths;
}

Config parse_flags(int argc, char** argv) {
  Config config;
  FlagParser flags("mlp", "Trains an MLP on Fashion-MNIST and reports test accuracy after each epoch.");
  flags.add("data", config.data, "folder with the Fashion-MNIST IDX files");
  flags.add("hidden", config.hidden, "hidden layer widths, comma-separated");
  flags.add("dropout", config.dropout, "dropout probability after each hidden layer");
  flags.add("batch", config.batch, "examples per step");
  flags.add("epochs", config.epochs, "passes over the training set");
  flags.add("steps", config.steps, "stop after this many steps instead (0: run all epochs)");
  add_optimizer_flags(flags, config.optimizer);
  add_parallel_flags(flags, config.parallel);
  config.run.add_to(flags);
  flags.parse(argc, argv);

  parse_widths(config.hidden);  // reports a bad list now, before the data is read
  if (!(config.dropout >= 0 && config.dropout < 1)) usage_error("--dropout must be in [0, 1), got ", config.dropout);
  if (config.batch < 1) usage_error("--batch must be >= 1, got ", config.batch);
  if (config.epochs < 1) usage_error("--epochs must be >= 1, got ", config.epochs);
  if (config.steps < 0) usage_error("--steps must be >= 0, got ", config.steps);
  check_optimizer_flags(config.optimizer);
  config.device = resolve_parallel_flags(config.parallel);
  config.run.check_and_apply();
  return config;
}

// Flatten, then Linear + ReLU (+ Dropout) per hidden width, then Linear to the 10 classes.
std::shared_ptr<Sequential> make_mlp(const std::vector<int64_t>& hidden, double dropout) {
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<Flatten>());
  int64_t width = 28 * 28;
  for (int64_t next : hidden) {
    model->push_back(std::make_shared<Linear>(width, next));
    model->push_back(std::make_shared<ReLU>());
    if (dropout > 0) model->push_back(std::make_shared<Dropout>(dropout));
    width = next;
  }
  model->push_back(std::make_shared<Linear>(width, FashionMnist::kClasses));
  return model;
}

// Pixels in [0, 1], shifted and scaled by the training set's mean and standard deviation.
Tensor normalize(const Tensor& images) { return (images - 0.2860) / 0.3530; }

struct Evaluation {
  double loss = 0;
  double accuracy = 0;  // fraction of test images classified correctly
};

Evaluation evaluate(Module& model, train::Trainer& training, const std::shared_ptr<const FashionMnist>& test_set) {
  NoGradGuard no_grad;
  model.eval();  // no dropout
  DataLoader loader(test_set, {.batch_size = 1000});
  double loss_sum = 0;
  int64_t correct = 0;
  for (Batch& batch : loader) {
    Tensor logits = training(normalize(batch.inputs));
    Tensor targets = batch.targets.to(training.device());
    loss_sum += cross_entropy(logits, targets, {.reduction = Reduction::Sum}).item();
    correct += static_cast<int64_t>(sum(eq(argmax(logits, 1), targets)).item());
  }
  model.train();
  auto count = static_cast<double>(test_set->size());
  return {loss_sum / count, static_cast<double>(correct) / count};
}

template <typename... Values>
std::string format(const char* pattern, Values... values) {
  char text[256];
  std::snprintf(text, sizeof text, pattern, values...);
  return text;
}

void run_training(const Config& config) {
  // Under mpirun every rank trains on its own share of the data and says where it runs; rank 0
  // alone reports and saves.
  const bool reporting_rank = dist::rank() == 0;
  const int64_t global_batch = config.batch * dist::world_size() * config.parallel.grad_accum;
  std::printf("mlp: %s, %s; global batch %lld = %lld per rank x %d ranks x %lld micro-batches\n",
              dist::placement_text(config.device).c_str(), config.parallel.precision.c_str(),
              static_cast<long long>(global_batch), static_cast<long long>(config.batch), dist::world_size(),
              static_cast<long long>(config.parallel.grad_accum));
  std::fflush(stdout);
  if (!reporting_rank) std::freopen("/dev/null", "w", stdout);
  manual_seed(config.run.seed);
  // A missing or unreadable dataset is a usage error: exit code 2 with the reason.
  using Split = FashionMnist::Split;
  auto train_set = read_input([&] { return std::make_shared<const FashionMnist>(config.data, Split::Train); });
  auto test_set = read_input([&] { return std::make_shared<const FashionMnist>(config.data, Split::Test); });

  std::shared_ptr<Sequential> model = make_mlp(parse_widths(config.hidden), config.dropout);
  const int64_t parameter_count = model->parameter_count();
  DataLoader loader(train_set, {.batch_size = config.batch,
                                .sampler = dist::distributed_sampler(train_set->size(), {.seed = config.run.seed})});
  // Each step takes --grad-accum batches.
  const int64_t total_steps = config.steps > 0 ? config.steps
                                               : std::max<int64_t>(1, config.epochs * loader.batches_per_epoch() /
                                                                          config.parallel.grad_accum);
  const int64_t last_step = config.run.last_step(total_steps);

  train::TrainerOptions options = trainer_options(config.parallel, config.device);  // DDP or ZeRO
  // Cosine decay from --lr to a tenth of it: a pure function of the step, so resuming needs
  // nothing but the step.
  options.schedule = optim::warmup_cosine_lr(
      {.max_lr = config.optimizer.lr, .min_lr = config.optimizer.lr / 10, .total_steps = total_steps});
  config.run.apply_to(options);  // --checkpoint, --checkpoint-every, --keep-checkpoints, --init-from
  options.checkpoint_metadata = {{"example", "mlp"}, {"hidden", config.hidden}};
  options.settings = {{"data", config.data},     {"hidden", config.hidden},
                      {"dropout", setting_text(config.dropout)},
                      {"batch", std::to_string(config.batch)}, {"epochs", std::to_string(config.epochs)},
                      {"steps", std::to_string(config.steps)}};
  for (const auto& settings : {optimizer_settings(config.optimizer), config.run.settings()}) {
    options.settings.insert(options.settings.end(), settings.begin(), settings.end());
  }
  // Progress and metrics: rank 0's.
  train::StepLog log = read_input([&] {
    return train::StepLog(last_step, "samples", config.run.log_every, reporting_rank ? config.run.metrics : "");
  });
  int64_t samples = 0;  // this step's, over all ranks
  train::Trainer training(
      model, [&](std::vector<Tensor> parameters) { return train::make_optimizer(config.optimizer, std::move(parameters)); },
      options);
  // What the trainer's loop reports after each step, and what the program adds: evaluation.
  auto after_step = [&](const train::StepReport& report) {
    log.record(report, samples);
    samples = 0;
    bool epoch_done = !loader.epoch_has_next();
    if ((reporting_rank || training.forward_is_collective()) && (epoch_done || report.step == last_step)) {
      Evaluation test = evaluate(*model, training, test_set);
      log.metrics().write({{"step", report.step}, {"val_loss", test.loss}, {"accuracy", test.accuracy}});
      std::string when = epoch_done ? format("epoch %lld", static_cast<long long>(loader.epoch() + 1))
                                    : format("step %lld", static_cast<long long>(report.step));
      log.progress().print(when + format(": test loss %.4f, test accuracy %.2f%%", test.loss, 100 * test.accuracy));
      log.progress().exclude_pause();  // evaluation counts neither in the throughput nor in the ETA
    }
  };
  training.set_callbacks(after_step, [&](const std::string&, int64_t) { log.progress().exclude_pause(); });
  config.run.start(training, loader);  // --resume or --init-from

  std::string layers = config.hidden;
  std::replace(layers.begin(), layers.end(), ',', '-');
  std::printf("mlp: 784-%s-10, %lld parameters, %s lr %g, batch %lld, %lld steps (%lld per epoch), %d threads, %s\n",
              layers.c_str(), static_cast<long long>(parameter_count),
              training.optimizer_name().c_str(), config.optimizer.lr, static_cast<long long>(config.batch),
              static_cast<long long>(total_steps), static_cast<long long>(loader.batches_per_epoch()), num_threads(),
              training.description().c_str());

  log.progress().exclude_pause();  // setup is not training
  training.fit(loader, last_step, [&](const Batch& batch) {
    samples += batch.inputs.size(0) * dist::world_size();
    return cross_entropy(training(normalize(batch.inputs)), batch.targets.to(training.device()));
  });
  std::printf("memory: %s\n", training.memory_line().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  return run_program("mlp", [&] {
    dist::init(&argc, &argv);  // a world of one without mpirun
    run_training(parse_flags(argc, argv));
  });
}
