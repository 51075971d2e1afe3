// gpt on llm.c token files, its checkpoints carrying the model's shape (resuming and generating
// with no size flags, contradicting flags refused), deterministic generation, the warmup of a
// short run, gradient accumulation, and --device cuda without a GPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/cuda_device.h"
#include "core/json.h"
#include "dtrain.h"
#include "example_programs.h"
#include "tests/examples/example_runs.h"
#include "tests/examples/run_program.h"
#include "tests/support/file_bytes.h"
#include "tests/support/temporary_directory.h"

using namespace dtrain;
using namespace dtrain::examples::testing;
using dtrain::testing::TemporaryDirectory;
using dtrain::testing::write_bytes;
using Catch::Contains;
using Catch::StartsWith;

namespace {

const std::vector<std::string> kTiny = {"--context", "16", "--d-model", "16", "--layers", "2", "--heads", "2",
                                        "--batch",   "4",  "--threads", "2",  "--eval-batches", "4"};

void require_usage_error(const ProgramResult& result, const std::string& reason) {
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  CHECK(result.exit_code == 2);
  REQUIRE(lines_of(result.err).size() == 1);
  CHECK_THAT(result.err, Contains(reason));
}

// A 13-token phrase of GPT-2-range ids repeated to count tokens.
Tokens phrase_tokens(size_t count) {
  const Tokens phrase = {300, 50000, 1234, 4321, 777, 50256, 999, 31337, 2024, 40000, 512, 8888, 12345};
  Tokens tokens(count);
  for (size_t i = 0; i < count; ++i) tokens[i] = phrase[i % phrase.size()];
  return tokens;
}

// The line after "sampled (...):" in a run's output.
std::string sampled_line(const std::string& out) {
  std::vector<std::string> lines = lines_of(out);
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    if (lines[i].rfind("sampled (", 0) == 0) return lines[i + 1];
  }
  FAIL("no sample in:\n" << out);
  return "";
}

std::vector<int64_t> parse_ids(const std::string& line) {
  std::vector<int64_t> ids;
  std::stringstream list(line);
  for (std::string item; std::getline(list, item, ',');) ids.push_back(std::stoll(item));
  return ids;
}

std::vector<JsonValue> read_metrics(const std::filesystem::path& path) {
  std::vector<JsonValue> records;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) records.push_back(parse_json(line));
  return records;
}

}  // namespace

TEST_CASE("gpt on llm.c token files: vocabulary 50304, resume and generation need no size flags") {
  TemporaryDirectory directory;
  const std::string train = (directory / "train.bin").string();
  const std::string validation = (directory / "val.bin").string();
  const std::string checkpoint = (directory / "run.safetensors").string();
  write_token_file(train, phrase_tokens(2000));
  write_token_file(validation, phrase_tokens(300));
  const std::vector<std::string> data = {"--data", train, "--val-data", validation};

  ProgramResult trained =
      run_ok(kGptProgram, kTiny + data + std::vector<std::string>{"--steps", "4", "--sample-bytes", "0", "--checkpoint", checkpoint});
  CHECK_THAT(trained.out, Contains("vocabulary 50304:") && Contains("validation " + validation + ": 300"));

  // Training resumes with the data flags alone: the shape comes from the checkpoint.
  ProgramResult resumed = run_ok(
      kGptProgram, data + std::vector<std::string>{"--steps", "6", "--threads", "2", "--eval-batches", "4",
                                                   "--sample-bytes", "0", "--resume", checkpoint});
  CHECK_THAT(resumed.out, Contains("resumed from " + checkpoint + " at step 4") &&
                              Contains("gpt: 2 layers, d_model 16, 2 heads, context 16, vocabulary 50304:"));

  // Generation: no data, no size flags; the same seed gives the same ids, another seed others.
  auto generate = [&](const std::string& seed) {
    ProgramResult result = run_ok(kGptProgram, {"--resume", checkpoint, "--generate", "12", "--prompt-tokens",
                                                "300,50000", "--seed", seed, "--temperature", "1", "--top-k", "0",
                                                "--threads", "2"});
    CHECK_THAT(result.out, Contains("loaded " + checkpoint + " (step 4)"));
    return sampled_line(result.out);
  };
  std::string first = generate("5");
  std::vector<int64_t> ids = parse_ids(first);
  REQUIRE(ids.size() == 14);
  CHECK(ids[0] == 300);
  CHECK(ids[1] == 50000);
  for (int64_t id : ids) CHECK((id >= 0 && id < 50304));
  CHECK(generate("5") == first);
  CHECK(generate("6") != first);

  // A size flag that contradicts the checkpoint is refused, naming both values; so is text for a
  // token model.
  require_usage_error(run_program(kGptProgram, {"--resume", checkpoint, "--generate", "3", "--prompt-tokens", "1",
                                                "--d-model", "32"}),
                      "--d-model 32 contradicts the checkpoint " + checkpoint + ", whose model has d_model 16");
  require_usage_error(run_program(kGptProgram, {"--resume", checkpoint, "--generate", "3", "--prompt-tokens", "1",
                                                "--model", "gpt2-124m"}),
                      "--model gpt2-124m (context 1024) contradicts the checkpoint " + checkpoint +
                          ", whose model has context 16");
  require_usage_error(run_program(kGptProgram, {"--resume", checkpoint, "--generate", "3", "--prompt", "hi"}),
                      "--prompt is text, but this model's tokens are a tokenizer's ids (vocabulary 50304)");
  require_usage_error(run_program(kGptProgram, {"--resume", checkpoint, "--generate", "3", "--prompt-tokens", "50304"}),
                      "--prompt-tokens expects token ids in [0, 50304)");
  // Text data cannot continue a token model.
  require_usage_error(run_program(kGptProgram, {"--resume", checkpoint, "--steps", "6", "--data", "/usr/share/games/fortunes"}),
                      "needs a byte-level model of vocabulary 256, but the checkpoint " + checkpoint +
                          " has a token model of vocabulary 50304");
}

TEST_CASE("gpt byte-level checkpoints generate from --prompt text, the same for the same seed") {
  TemporaryDirectory directory;
  const std::string checkpoint = (directory / "bytes.safetensors").string();
  run_ok(kGptProgram, kTiny + std::vector<std::string>{"--steps", "2", "--sample-bytes", "0", "--checkpoint", checkpoint});
  auto generate = [&](const std::string& seed) {
    return sampled_line(run_ok(kGptProgram, {"--resume", checkpoint, "--generate", "20", "--prompt", "Q: A",
                                             "--seed", seed, "--threads", "2"})
                            .out);
  };
  std::string first = generate("1");
  CHECK_THAT(first, StartsWith("Q: A"));
  CHECK(generate("1") == first);
  require_usage_error(run_program(kGptProgram, {"--generate", "5"}), "--generate needs --resume CHECKPOINT");
  require_usage_error(run_program(kGptProgram, {"--resume", checkpoint, "--generate", "5", "--heads", "4"}),
                      "--heads 4 contradicts the checkpoint " + checkpoint + ", whose model has heads 2");
}

TEST_CASE("gpt refuses a broken token file with the reason, never reading it as text") {
  TemporaryDirectory directory;
  write_bytes(directory / "text.bin", std::string(2000, 'a'));
  require_usage_error(run_program(kGptProgram, kTiny + std::vector<std::string>{"--data", (directory / "text.bin").string()}),
                      "expected magic 20240520 (an llm.c token file), got 1633771873");
  write_token_file(directory / "train.bin", phrase_tokens(500));
  std::filesystem::resize_file(directory / "train.bin", 1024 + 2 * 400);
  require_usage_error(run_program(kGptProgram, kTiny + std::vector<std::string>{"--data", (directory / "train.bin").string()}),
                      "the header promises 500 tokens of 2 bytes (2024 bytes in all), got a file of 1824 bytes (truncated?)");
  write_token_file(directory / "good.bin", phrase_tokens(500));
  require_usage_error(run_program(kGptProgram, kTiny + std::vector<std::string>{"--data", (directory / "good.bin").string(),
                                                                                "--val-data", "/usr/share/games/fortunes"}),
                      "is token files but --val-data /usr/share/games/fortunes is text");
}

TEST_CASE("gpt warms the learning rate up for a tenth of a short run, then decays it") {
  TemporaryDirectory directory;
  ProgramResult result = run_ok(kGptProgram, kTiny + std::vector<std::string>{"--steps", "20", "--log-every", "1",
                                                                             "--eval-every", "20", "--sample-bytes", "0",
                                                                             "--metrics", (directory / "m.jsonl").string()});
  CHECK_THAT(result.out, Contains("20 steps (warmup 2)"));
  std::vector<double> lrs;
  for (const JsonValue& record : read_metrics(directory / "m.jsonl")) {
    if (const JsonValue* lr = record.find("lr")) lrs.push_back(lr->as_double());
  }
  REQUIRE(lrs.size() == 20);
  CHECK(lrs[0] < lrs[1]);                  // warming up
  CHECK(lrs[2] == Approx(1e-3).epsilon(0.01));  // the peak right after warmup
  for (size_t i = 3; i < lrs.size(); ++i) CHECK(lrs[i] < lrs[i - 1]);  // cosine decay for the rest
}

// SGD without clipping, so that a gradient twice too large would show (Adam would hide it).
TEST_CASE("gpt with --grad-accum 2 of batch 4 trains as batch 8 does") {
  TemporaryDirectory directory;
  const std::vector<std::string> common = {"--context", "16", "--d-model", "16", "--layers", "1", "--heads", "2",
                                           "--optimizer", "sgd", "--lr", "0.1", "--grad-clip", "0",
                                           "--dropout", "0", "--threads", "1", "--steps", "3", "--eval-every", "100",
                                           "--sample-bytes", "0"};
  ProgramResult whole = run_ok(kGptProgram, common + std::vector<std::string>{"--batch", "8", "--checkpoint",
                                                                             (directory / "whole.safetensors").string()});
  ProgramResult accumulated =
      run_ok(kGptProgram, common + std::vector<std::string>{"--batch", "4", "--grad-accum", "2", "--checkpoint",
                                                           (directory / "accumulated.safetensors").string()});
  CHECK_THAT(accumulated.out, Contains("global batch 8 = 4 per rank x 1 ranks x 2 micro-batches"));
  SafetensorsFile a = load_safetensors(directory / "whole.safetensors");
  SafetensorsFile b = load_safetensors(directory / "accumulated.safetensors");
  int compared = 0;
  for (const auto& [name, tensor] : a.tensors) {
    if (name.rfind("model.", 0) != 0) continue;
    INFO(name);
    REQUIRE(b.tensors.count(name) == 1);
    std::vector<float> x = tensor.to_vector<float>();
    std::vector<float> y = b.tensors.at(name).to_vector<float>();
    REQUIRE(x.size() == y.size());
    double largest = 0;
    for (size_t i = 0; i < x.size(); ++i) largest = std::max(largest, std::abs(static_cast<double>(x[i] - y[i])));
    CHECK(largest < 1e-5);
    ++compared;
  }
  CHECK(compared > 5);
}

TEST_CASE("gpt and mlp with --device cuda and no usable GPU exit 2 with a one-line reason") {
  if (cuda::is_available()) {
    WARN("skipped: a GPU is visible, so --device cuda is usable here");
    return;
  }
  for (const char* program : {kGptProgram, kMlpProgram}) {
    ProgramResult result = run_program(program, {"--device", "cuda", "--steps", "1"});
    require_usage_error(result, "--device cuda: no usable GPU (");
  }
}
