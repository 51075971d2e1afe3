// The examples train: a few steps of tiny models run end to end, write their metrics, and a run
// interrupted, saved and resumed in a new process ends bitwise identical to one that never
// stopped.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "core/json.h"
#include "dist/checkpoint/sharded_checkpoint.h"
#include "dtrain.h"
#include "example_programs.h"
#include "tests/examples/example_runs.h"
#include "tests/examples/run_program.h"

using namespace dtrain;
using namespace dtrain::examples::testing;
using Catch::Contains;

namespace {

class ScratchDirectory {
 public:
  ScratchDirectory() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("dtrain-examples-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Tiny configurations: each run takes a fraction of a second. Both have dropout, so a resumed
// run is only identical if the random generator's position was restored too.
const std::vector<std::string> kTinyMlp = {"--hidden", "32,16", "--dropout", "0.2", "--batch", "32", "--threads", "2"};
const std::vector<std::string> kTinyGpt = {"--context", "16", "--d-model", "16", "--layers",  "2",
                                           "--heads",   "2",  "--batch",   "4",  "--dropout", "0.1",
                                           "--threads", "2",  "--eval-batches", "8"};

std::vector<JsonValue> read_metrics(const std::string& path) {
  std::vector<JsonValue> records;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) records.push_back(parse_json(line));
  return records;
}

double number(const JsonValue& record, const char* key) {
  const JsonValue* value = record.find(key);
  return value != nullptr && value->is_number() ? value->as_double() : std::nan("");
}

// Every tensor and metadata entry of two checkpoints, byte for byte.
void require_identical_checkpoints(const std::string& expected_path, const std::string& actual_path) {
  SafetensorsFile expected = load_safetensors(expected_path);
  SafetensorsFile actual = load_safetensors(actual_path);
  CHECK(expected.metadata == actual.metadata);
  REQUIRE(expected.tensors.size() == actual.tensors.size());
  for (const auto& [name, tensor] : expected.tensors) {
    INFO("tensor " << name);
    REQUIRE(actual.tensors.count(name) == 1);
    const Tensor& other = actual.tensors.at(name);
    REQUIRE(other.shape() == tensor.shape());
    REQUIRE(other.dtype() == tensor.dtype());
    CHECK(std::memcmp(other.data(), tensor.data(), tensor.nbytes()) == 0);
  }
}

// N steps straight, against N/2 steps, a checkpoint, and the other N/2 in a new process.
void check_bitwise_resume(const std::string& program, const std::vector<std::string>& tiny, const std::string& steps,
                          const std::string& half) {
  ScratchDirectory directory;
  const std::string straight = directory / "straight.safetensors";
  const std::string resumed = directory / "resumed.safetensors";
  run_ok(program, tiny + std::vector<std::string>{"--steps", steps, "--checkpoint", straight});
  run_ok(program, tiny + std::vector<std::string>{"--steps", steps, "--stop-after", half, "--checkpoint", resumed});
  ProgramResult second_half =
      run_ok(program, tiny + std::vector<std::string>{"--steps", steps, "--resume", resumed, "--checkpoint", resumed});
  CHECK_THAT(second_half.out, Contains("resumed from " + resumed + " at step " + half));
  require_identical_checkpoints(straight, resumed);
}

}  // namespace

TEST_CASE("mlp trains a few steps, evaluates and writes JSONL metrics") {
  ScratchDirectory directory;
  ProgramResult result =
      run_ok(kMlpProgram, kTinyMlp + std::vector<std::string>{"--steps", "6", "--log-every", "2", "--metrics",
                                                              directory / "metrics.jsonl"});
  CHECK_THAT(result.out, Contains("step 6/6") && Contains("test accuracy"));
  std::vector<JsonValue> records = read_metrics(directory / "metrics.jsonl");
  REQUIRE(records.size() == 4);  // losses at steps 2, 4, 6, then the evaluation at step 6
  for (int i = 0; i < 3; ++i) {
    CHECK(number(records[i], "step") == 2.0 * (i + 1));
    CHECK(std::isfinite(number(records[i], "loss")));
    CHECK(number(records[i], "lr") > 0);
    CHECK(number(records[i], "samples_per_s") > 0);
  }
  CHECK(number(records[3], "step") == 6);
  CHECK(std::isfinite(number(records[3], "val_loss")));
  CHECK(number(records[3], "accuracy") > 0.1);  // above chance (10 classes) after 6 steps
  CHECK(number(records[3], "accuracy") <= 1.0);
}

TEST_CASE("gpt trains a few steps, reports validation loss against the unigram entropy and samples text") {
  ScratchDirectory directory;
  ProgramResult result = run_ok(
      kGptProgram, kTinyGpt + std::vector<std::string>{"--steps", "4", "--eval-every", "2", "--sample-bytes", "20",
                                                       "--prompt", "Q: ", "--metrics", directory / "metrics.jsonl"});
  CHECK_THAT(result.out, Contains("unigram entropy") && Contains("step 2: validation loss") &&
                             Contains("step 4: validation loss") && Contains("sampled") && Contains("Q: "));
  std::vector<JsonValue> records = read_metrics(directory / "metrics.jsonl");
  int val_losses = 0;
  for (const JsonValue& record : records) {
    if (record.find("val_loss") != nullptr) {
      ++val_losses;
      CHECK(number(record, "val_loss") > 0);
      CHECK(number(record, "val_loss") < 6.0);  // about ln 256 = 5.55 untrained
    } else {
      CHECK(number(record, "tokens_per_s") > 0);
    }
  }
  CHECK(val_losses == 2);
}

TEST_CASE("gpt resumed from a checkpoint in a new process ends bitwise identical to a straight run") {
  check_bitwise_resume(kGptProgram, kTinyGpt + std::vector<std::string>{"--sample-bytes", "0", "--eval-every", "3"},
                       "8", "4");
}

TEST_CASE("mlp resumed from a checkpoint in a new process ends bitwise identical to a straight run") {
  check_bitwise_resume(kMlpProgram, kTinyMlp, "8", "4");
}

TEST_CASE("gpt --keep-checkpoints 2 keeps the newest two complete checkpoints and resumes from the newest") {
  ScratchDirectory directory;
  const std::filesystem::path root = directory / "run";
  // Before the run: a user's file, a save that crashed (no index) and a directory newer than any
  // save this run makes, also without index.
  std::filesystem::create_directories(root / "step-00000002");
  std::filesystem::create_directories(root / "step-00000099");
  std::ofstream(root / "notes.txt") << "the user's";
  std::ofstream(root / "step-00000002" / "rank-00000-of-00001.0123456789abcdef.safetensors") << "half";
  auto listing = [&] {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(root)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  const std::vector<std::string> tiny =
      kTinyGpt + std::vector<std::string>{"--sample-bytes", "0", "--eval-every", "100", "--checkpoint-every", "1",
                                          "--keep-checkpoints", "2", "--checkpoint", root.string()};
  run_ok(kGptProgram, tiny + std::vector<std::string>{"--steps", "5"});
  CHECK(listing() == std::vector<std::string>{"notes.txt", "step-00000004", "step-00000005", "step-00000099"});
  for (int64_t step : {4, 5}) {
    char name[32];
    std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
    dist::ShardedCheckpoint checkpoint = dist::ShardedCheckpoint::open(root / name);
    CHECK(checkpoint.step() == step);
    checkpoint.verify();
  }

  ProgramResult resumed = run_ok(kGptProgram, tiny + std::vector<std::string>{"--steps", "7", "--resume", root.string()});
  CHECK_THAT(resumed.out, Contains("resumed from " + (root / "step-00000005").string() + " at step 5\n"));
  CHECK(listing() == std::vector<std::string>{"notes.txt", "step-00000006", "step-00000007", "step-00000099"});
}
