// The examples' command line: --help, bad flags, missing data. Each failure must be one line on
// stderr and exit code 2, never an abort.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "example_programs.h"
#include "tests/examples/run_program.h"

using namespace dtrain::examples::testing;
using Catch::Contains;
using Catch::StartsWith;

namespace {

void require_usage_error(const ProgramResult& result, const std::string& program, const std::string& reason) {
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  CHECK(result.exit_code == 2);
  REQUIRE(lines_of(result.err).size() == 1);
  CHECK_THAT(result.err, StartsWith(program + ": ") && Contains(reason));
}

}  // namespace

TEST_CASE("each program's --help prints every flag and exits 0") {
  for (const char* program : {kMlpProgram, kGptProgram}) {
    ProgramResult result = run_program(program, {"--help"});
    INFO(program << " stderr: " << result.err);
    CHECK(result.exit_code == 0);
    CHECK(result.err.empty());
    for (const char* flag : {"--batch", "--lr", "--optimizer", "--seed", "--threads", "--checkpoint ",
                             "--checkpoint-every", "--resume", "--metrics", "--data", "--zero-stage", "--precision"}) {
      CHECK_THAT(result.out, Contains(flag));
    }
  }
  CHECK_THAT(run_program(kMlpProgram, {"--help"}).out, Contains("--hidden") && Contains("--epochs"));
  CHECK_THAT(run_program(kGptProgram, {"--help"}).out,
             Contains("--d-model") && Contains("--layers") && Contains("--temperature") && Contains("--top-k") &&
                 Contains("--model") && Contains("--val-data") && Contains("--generate") && Contains("--prompt-tokens"));
  for (const char* program : {kMlpProgram, kGptProgram}) {
    CHECK_THAT(run_program(program, {"--help"}).out, Contains("--device") && Contains("--grad-accum"));
  }
}

TEST_CASE("an unknown flag, a missing or malformed value exit 2 with a one-line reason") {
  require_usage_error(run_program(kMlpProgram, {"--no-such-flag"}), "mlp", "unknown flag --no-such-flag");
  require_usage_error(run_program(kGptProgram, {"--no-such-flag", "3"}), "gpt", "unknown flag --no-such-flag");
  require_usage_error(run_program(kMlpProgram, {"--batch"}), "mlp", "--batch needs a value");
  require_usage_error(run_program(kMlpProgram, {"--batch", "many"}), "mlp", "--batch expects an integer, got 'many'");
  require_usage_error(run_program(kGptProgram, {"--lr=fast"}), "gpt", "--lr expects a number, got 'fast'");
  require_usage_error(run_program(kGptProgram, {"--optimizer", "lion"}), "gpt", "one of adamw, adam, sgd");
  require_usage_error(run_program(kMlpProgram, {"--batch", "0"}), "mlp", "--batch must be >= 1");
  require_usage_error(run_program(kGptProgram, {"--heads", "3"}), "gpt", "--heads (3) must divide --d-model (256)");
  require_usage_error(run_program(kMlpProgram, {"stray"}), "mlp", "unexpected argument 'stray'");
  require_usage_error(run_program(kMlpProgram, {"--zero-stage", "4"}), "mlp", "--zero-stage must be 0, 1, 2 or 3, got 4");
  require_usage_error(run_program(kGptProgram, {"--precision", "fp8"}), "gpt", "one of fp32, bf16, fp16");
  require_usage_error(run_program(kGptProgram, {"--device", "tpu"}), "gpt", "one of auto, cpu, cuda");
  require_usage_error(run_program(kGptProgram, {"--model", "gpt5"}), "gpt", "one of tiny, gpt2-124m, gpt2-350m");
  require_usage_error(run_program(kMlpProgram, {"--grad-accum", "0"}), "mlp", "--grad-accum must be >= 1, got 0");
}

TEST_CASE("a missing dataset exits 2 with a one-line reason naming it") {
  require_usage_error(run_program(kMlpProgram, {"--data", "/nonexistent/fashion-mnist"}), "mlp",
                      "/nonexistent/fashion-mnist/train-images-idx3-ubyte.gz");
  require_usage_error(run_program(kGptProgram, {"--data", "/nonexistent/corpus.txt"}), "gpt",
                      "/nonexistent/corpus.txt");
}

TEST_CASE("a checkpoint that cannot be read exits 2 with a one-line reason naming it") {
  require_usage_error(run_program(kGptProgram, {"--steps", "1", "--d-model", "8", "--heads", "1", "--layers", "1",
                                                "--context", "8", "--resume", "/nonexistent/run.safetensors"}),
                      "gpt", "/nonexistent/run.safetensors");
  // A ZeRO run resumes from a sharded checkpoint directory, not a single file.
  require_usage_error(run_program(kMlpProgram, {"--steps", "1", "--hidden", "8", "--zero-stage", "1", "--resume",
                                                "/nonexistent/run.safetensors"}),
                      "mlp", "a ZeRO run resumes from a sharded checkpoint directory");
}
