// Every program's command line (the examples and the tools share tools/command_line/): --help,
// bad flags and arguments, missing data. Each failure must be one line on
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

TEST_CASE("every program, examples and tools, shares the parser: --help lists its flags and exits 0") {
  struct Program {
    std::string path, name;
    std::vector<std::string> listed;
  };
  std::vector<Program> programs{
      {kDemoProgram, "demo", {"--steps", "--seed", "--lr"}},
      {kMlpProgram, "mlp", {"--batch", "--epochs"}},
      {kGptProgram, "gpt", {"--batch", "--d-model"}},
      {kConvertProgram, "dtrain-convert", {"<direction>", "<input>", "<output>", "--vocabulary", "--heads"}}};
  if (std::string(kConsolidateProgram).empty()) {
    WARN("dtrain-consolidate is not built (no dtrain_dist): its --help is not checked");
  } else {
    programs.push_back(
        {kConsolidateProgram,
         "dtrain-consolidate",
         {"<checkpoint directory>", "<output.safetensors>", "--all", "--verify"}});
  }
  for (const Program& program : programs) {
    ProgramResult result = run_program(program.path, {"--help"});
    INFO(program.name << " stdout: " << result.out << "\nstderr: " << result.err);
    CHECK(result.exit_code == 0);
    CHECK(result.err.empty());
    // One style: the usage line, the flags' section, --help last.
    CHECK_THAT(result.out, StartsWith("usage: " + program.name + " [flags]") && Contains("\nflags:\n"));
    const std::vector<std::string> lines = lines_of(result.out);
    REQUIRE_FALSE(lines.empty());
    CHECK_THAT(lines.back(), StartsWith("  --help") && Contains("show this text"));
    for (const std::string& flag : program.listed) CHECK_THAT(result.out, Contains("  " + flag + " "));
  }
}

TEST_CASE("every program's usage error is one line naming the bad flag or argument, exit code 2") {
  require_usage_error(run_program(kDemoProgram, {"--no-such-flag"}), "demo", "unknown flag --no-such-flag");
  require_usage_error(run_program(kDemoProgram, {"--steps", "x"}), "demo", "--steps expects an integer, got 'x'");
  require_usage_error(run_program(kDemoProgram, {"--steps", "0"}), "demo", "--steps must be >= 1, got 0");
  require_usage_error(run_program(kDemoProgram, {"stray"}), "demo", "unexpected argument 'stray'");

  require_usage_error(run_program(kConvertProgram, {"--colour"}), "dtrain-convert", "unknown flag --colour");
  require_usage_error(run_program(kConvertProgram, {"sideways", "a", "b"}), "dtrain-convert",
                      "<direction> expects one of from-hugging-face, to-hugging-face, got 'sideways'");
  require_usage_error(run_program(kConvertProgram, {"from-hugging-face", "a"}), "dtrain-convert", "missing <output>");
  require_usage_error(run_program(kConvertProgram, {"to-hugging-face", "a", "b"}), "dtrain-convert",
                      "to-hugging-face needs --heads N");
  require_usage_error(run_program(kConvertProgram, {"from-hugging-face", "a", "b", "--vocabulary", "-3"}),
                      "dtrain-convert", "--vocabulary must be >= 1, got -3");
  require_usage_error(run_program(kConvertProgram, {"from-hugging-face", "a", "b", "--heads"}), "dtrain-convert",
                      "--heads needs a value");

  if (std::string(kConsolidateProgram).empty()) {
    WARN("dtrain-consolidate is not built (no dtrain_dist): its usage errors are not checked");
    return;
  }
  require_usage_error(run_program(kConsolidateProgram, {"--colour", "a", "b"}), "dtrain-consolidate",
                      "unknown flag --colour");
  require_usage_error(run_program(kConsolidateProgram, {"a"}), "dtrain-consolidate", "missing <output.safetensors>");
  require_usage_error(run_program(kConsolidateProgram, {"a", "b", "c"}), "dtrain-consolidate",
                      "unexpected argument 'c'");
  require_usage_error(run_program(kConsolidateProgram, {"a", "b", "--all=maybe"}), "dtrain-consolidate",
                      "--all expects true or false, got 'maybe'");
  // Not a usage error: a checkpoint that cannot be read exits 1, one line naming it.
  ProgramResult missing = run_program(kConsolidateProgram, {"/nonexistent/ckpt", "/nonexistent/out.safetensors"});
  CHECK(missing.exit_code == 1);
  CHECK(lines_of(missing.err).size() == 1);
  CHECK_THAT(missing.err, StartsWith("dtrain-consolidate: error: ") && Contains("/nonexistent/ckpt"));
}
