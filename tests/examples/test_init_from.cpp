// --init-from FILE: mlp and gpt start from weights only. A run started from another run's final
// weights reports that run's validation loss (its first step moves nothing at a learning rate
// of 1e-12), unlike a run from fresh weights; a file that does not fit the model ends the run
// naming the tensors; a missing file or --init-from with --resume is a usage error.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <regex>
#include <string>
#include <system_error>
#include <vector>

#include "example_programs.h"
#include "tests/examples/example_runs.h"
#include "tests/examples/run_program.h"

using namespace dtrain::examples::testing;
using Catch::Contains;
using Catch::StartsWith;

namespace {

class ScratchFolder {
 public:
  explicit ScratchFolder(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("dtrain-init-from-" + std::to_string(::getpid()) + "-" + name)) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

const std::vector<std::string> kTinyGpt = {"--context", "16", "--d-model", "16",   "--layers",       "2",
                                           "--heads",   "2",  "--batch",   "4",    "--threads",      "2",
                                           "--eval-batches", "8", "--sample-bytes", "0"};
const std::vector<std::string> kTinyMlp = {"--hidden", "32,16", "--batch", "32", "--threads", "2"};

// The validation loss printed for step `step`.
std::string validation_loss_at(const std::string& out, int step) {
  std::smatch match;
  std::regex pattern("step " + std::to_string(step) + ": validation loss ([0-9.]+)");
  REQUIRE(std::regex_search(out, match, pattern));
  return match[1];
}

}  // namespace

TEST_CASE("gpt --init-from starts from a checkpoint's weights, not its optimizer or step") {
  ScratchFolder folder("gpt");
  const std::string weights = folder / "first.safetensors";
  ProgramResult first = run_ok(kGptProgram, kTinyGpt + std::vector<std::string>{"--steps", "6", "--eval-every", "6",
                                                                                 "--checkpoint", weights});
  ProgramResult continued = run_ok(kGptProgram, kTinyGpt + std::vector<std::string>{"--steps", "1", "--lr", "1e-12",
                                                                                     "--init-from", weights});
  ProgramResult fresh = run_ok(kGptProgram, kTinyGpt + std::vector<std::string>{"--steps", "1", "--lr", "1e-12"});
  CHECK_THAT(continued.out, Contains("initialised from " + weights + " (weights only)"));
  // A new run: step 1 of 1, not step 7.
  CHECK(validation_loss_at(continued.out, 1) == validation_loss_at(first.out, 6));
  CHECK(validation_loss_at(fresh.out, 1) != validation_loss_at(first.out, 6));
}

TEST_CASE("mlp --init-from refuses weights of another shape, naming the tensors, and changes nothing") {
  ScratchFolder folder("mlp");
  const std::string weights = folder / "first.safetensors";
  run_ok(kMlpProgram, kTinyMlp + std::vector<std::string>{"--steps", "2", "--checkpoint", weights});
  ProgramResult narrower =
      run_program(kMlpProgram, {"--hidden", "32,8", "--batch", "32", "--steps", "2", "--init-from", weights});
  INFO("stdout: " << narrower.out << "\nstderr: " << narrower.err);
  CHECK(narrower.exit_code == 1);
  CHECK_THAT(narrower.err, StartsWith("mlp: error: dtrain: loading weights from " + weights + ": shapes differ: ") &&
                               Contains("'3.weight': the model's [8, 32], the file's [16, 32]") &&
                               Contains("'3.bias': the model's [8], the file's [16]"));
  CHECK_THAT(narrower.out, !Contains("step 1"));

  // gpt's weights are not an MLP's: the MLP's tensors are missing from the file.
  const std::string gpt_weights = folder / "gpt.safetensors";
  run_ok(kGptProgram, kTinyGpt + std::vector<std::string>{"--steps", "1", "--checkpoint", gpt_weights});
  ProgramResult foreign = run_program(kMlpProgram, kTinyMlp + std::vector<std::string>{"--init-from", gpt_weights});
  INFO("stdout: " << foreign.out << "\nstderr: " << foreign.err);
  CHECK(foreign.exit_code == 1);
  CHECK_THAT(foreign.err, Contains("the model's '1.weight', '1.bias'") && Contains("are not in the file"));
}

TEST_CASE("a missing --init-from file, or --init-from with --resume, is a usage error") {
  for (const char* program : {kMlpProgram, kGptProgram}) {
    ProgramResult missing = run_program(program, {"--steps", "1", "--init-from", "/nonexistent/weights.safetensors"});
    INFO("stderr: " << missing.err);
    CHECK(missing.exit_code == 2);
    CHECK_THAT(missing.err, Contains("--init-from /nonexistent/weights.safetensors: no such file"));
    ProgramResult both =
        run_program(program, {"--steps", "1", "--init-from", "a.safetensors", "--resume", "b.safetensors"});
    CHECK(both.exit_code == 2);
    CHECK_THAT(both.err, Contains("give only one"));
  }
}
