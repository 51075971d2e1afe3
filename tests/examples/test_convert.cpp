// dtrain-convert: transformers' GPT-2 file to dtrain's layout and back through the program, the
// config.json transformers needs, and usage errors (one line, exit code 2).
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/dtype.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "example_programs.h"
#include "tests/examples/run_program.h"
#include "train/gpt2_conversion.h"

using namespace dtrain::examples::testing;
using Catch::Contains;

namespace {

bool same_bytes(const dtrain::Tensor& a, const dtrain::Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const dtrain::Tensor x = a.contiguous(), y = b.contiguous();
  const size_t bytes = static_cast<size_t>(x.numel()) * dtrain::dtype_size(x.dtype());
  return bytes == 0 || std::memcmp(x.data(), y.data(), bytes) == 0;
}

}  // namespace

TEST_CASE("dtrain-convert: transformers' GPT-2 to dtrain and back, with the config transformers loads") {
  const std::filesystem::path folder =
      std::filesystem::temp_directory_path() / ("dtrain-convert-test-" + std::to_string(getpid()));
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  const std::string original = std::string(kTestDataDir) + "/gpt2_tiny/model.safetensors";

  ProgramResult in = run_program(kConvertProgram, {"from-hugging-face", original, (folder / "dtrain.safetensors").string(),
                                                   "--vocabulary", "384"});
  INFO(in.out << in.err);
  REQUIRE(in.exit_code == 0);
  CHECK_THAT(in.out, Contains("2 layers, d_model 32, context 16, vocabulary 384"));
  dtrain::SafetensorsFile hugging_face = dtrain::load_safetensors(original);
  dtrain::SafetensorsFile converted = dtrain::load_safetensors(folder / "dtrain.safetensors");
  CHECK(converted.verified);  // dtrain's writer adds the checksums
  dtrain::train::NamedTensors expected = dtrain::train::gpt2_from_hugging_face(hugging_face.tensors, 384);
  REQUIRE(converted.tensors.size() == expected.size());
  for (const auto& [name, tensor] : expected) {  // under the checkpoint naming, "model.<name>"
    INFO(name);
    CHECK(same_bytes(converted.tensors.at("model." + name), tensor));
  }

  ProgramResult out = run_program(kConvertProgram, {"to-hugging-face", (folder / "dtrain.safetensors").string(),
                                                    (folder / "hf").string(), "--heads", "4", "--vocabulary", "300"});
  INFO(out.out << out.err);
  REQUIRE(out.exit_code == 0);
  dtrain::SafetensorsFile back = dtrain::load_safetensors(folder / "hf" / "model.safetensors");
  CHECK(back.metadata.at("format") == "pt");  // transformers refuses a file without it
  REQUIRE(back.tensors.size() == hugging_face.tensors.size());
  for (const auto& [name, tensor] : hugging_face.tensors) {
    INFO(name);
    CHECK(same_bytes(back.tensors.at(name.substr(std::string("transformer.").size())), tensor));
  }
  std::stringstream config;
  config << std::ifstream(folder / "hf" / "config.json").rdbuf();
  for (const char* field : {"\"n_head\": 4", "\"n_layer\": 2", "\"n_embd\": 32", "\"n_positions\": 16",
                            "\"vocab_size\": 300", "\"activation_function\": \"gelu_new\""}) {
    CHECK_THAT(config.str(), Contains(field));
  }
  std::filesystem::remove_all(folder);
}

TEST_CASE("dtrain-convert: usage errors are one line and exit 2, unreadable input exits 1") {
  for (const std::vector<std::string>& arguments :
       {std::vector<std::string>{"sideways", "a", "b"}, {"to-hugging-face", "a", "b"}, {"from-hugging-face", "a"},
        {"from-hugging-face", "a", "b", "--vocabulary", "-3"}, {"from-hugging-face", "a", "b", "--colour"}}) {
    ProgramResult result = run_program(kConvertProgram, arguments);
    INFO(result.err);
    CHECK(result.exit_code == 2);
    CHECK(lines_of(result.err).size() == 1);
  }
  ProgramResult missing = run_program(kConvertProgram, {"from-hugging-face", "/no/such/file.safetensors", "/tmp/x"});
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.err, Contains("/no/such/file.safetensors"));
}
