// Token streams (text bytes, llm.c token files) and the windows TokenDataset cuts from them.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "dtrain.h"
#include "tests/support/file_bytes.h"
#include "tests/support/temporary_directory.h"

using namespace dtrain;
using dtrain::testing::TemporaryDirectory;
using dtrain::testing::write_bytes;
using Catch::Contains;

namespace {

// An llm.c token file built by hand from the layout: 256 int32 header, then the tokens.
std::string token_file_bytes(int32_t magic, int32_t version, int32_t count, const std::string& body) {
  std::vector<int32_t> header(256, 0);
  header[0] = magic;
  header[1] = version;
  header[2] = count;
  return std::string(reinterpret_cast<const char*>(header.data()), header.size() * 4) + body;
}

template <typename T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

}  // namespace

TEST_CASE("tokens: text is read as bytes, a vocabulary of 256") {
  TemporaryDirectory directory;
  write_bytes(directory / "corpus.txt", std::string("hi \xc3\xa9\n", 6));
  Tokens tokens = read_text_bytes(directory / "corpus.txt");
  CHECK(tokens == Tokens{'h', 'i', ' ', 0xc3, 0xa9, '\n'});
  CHECK(read_tokens(directory / "corpus.txt") == tokens);
  REQUIRE_THROWS_WITH(read_text_bytes(directory / "absent.txt"), Contains("absent.txt") && Contains("cannot open"));
}

TEST_CASE("tokens: llm.c token files, uint16 and uint32") {
  TemporaryDirectory directory;
  // Hand-built from the layout, version 1: uint16 tokens.
  write_bytes(directory / "gpt2.bin", token_file_bytes(20240520, 1, 4, raw<uint16_t>({50256, 0, 11, 65535})));
  CHECK(read_token_file(directory / "gpt2.bin") == Tokens{50256, 0, 11, 65535});
  CHECK(read_tokens(directory / "gpt2.bin") == Tokens{50256, 0, 11, 65535});
  // Version 2: uint32 tokens (Llama 3's vocabulary).
  write_bytes(directory / "llama.bin", token_file_bytes(20240520, 2, 2, raw<uint32_t>({128000, 7})));
  CHECK(read_token_file(directory / "llama.bin") == Tokens{128000, 7});

  // The writer picks the narrow layout when it can, and its bytes are the layout's.
  write_token_file(directory / "written.bin", {1, 2, 65535});
  std::ifstream in(directory / "written.bin", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(bytes == token_file_bytes(20240520, 1, 3, raw<uint16_t>({1, 2, 65535})));
  write_token_file(directory / "wide.bin", {70000, 3});
  CHECK(read_token_file(directory / "wide.bin") == Tokens{70000, 3});
  REQUIRE_THROWS_WITH(write_token_file(directory / "negative.bin", {1, -4}), Contains("non-negative tokens, got -4"));
}

TEST_CASE("tokens: bad token files name the file and the problem") {
  TemporaryDirectory directory;
  auto refused = [&](const std::string& name, const std::string& bytes, const std::string& problem) {
    INFO(name);
    write_bytes(directory / name, bytes);
    REQUIRE_THROWS_WITH(read_token_file(directory / name), Contains((directory / name).string()) && Contains(problem));
  };
  refused("short.bin", std::string(100, '\0'), "expected at least the 1024-byte header, got a file of 100 bytes");
  refused("magic.bin", token_file_bytes(12345, 1, 0, ""), "expected magic 20240520 (an llm.c token file), got 12345");
  refused("version.bin", token_file_bytes(20240520, 3, 0, ""), "expected version 1 (uint16 tokens) or 2 (uint32 tokens), got 3");
  refused("truncated.bin", token_file_bytes(20240520, 1, 4, raw<uint16_t>({1, 2, 3})),
          "the header promises 4 tokens of 2 bytes (1032 bytes in all), got a file of 1030 bytes (truncated?)");
  refused("long.bin", token_file_bytes(20240520, 1, 1, raw<uint16_t>({1, 2})), "promises 1 tokens");
  refused("huge.bin", token_file_bytes(20240520, 2, 1, raw<uint32_t>({0x80000000u})), "token 0 is 2147483648");
}

TEST_CASE("tokens: a train/validation split cuts the stream once") {
  Tokens tokens(100);
  for (int i = 0; i < 100; ++i) tokens[static_cast<size_t>(i)] = i;
  TokenSplit split = split_tokens(tokens, 0.1);
  REQUIRE(split.train.size() == 90);
  REQUIRE(split.validation.size() == 10);
  CHECK(split.train.back() == 89);
  CHECK(split.validation.front() == 90);
  CHECK(split_tokens(tokens, 0.0).validation.empty());
  CHECK(split_tokens(tokens, 1.0).train.empty());
  REQUIRE_THROWS_WITH(split_tokens(tokens, 1.5), Contains("validation fraction in [0, 1], got 1.5"));
}

TEST_CASE("token dataset: windows of T inputs, targets shifted by one") {
  Tokens tokens(11);
  for (int i = 0; i < 11; ++i) tokens[static_cast<size_t>(i)] = 100 + i;
  TokenDataset dataset(tokens, 4);  // windows start at 0 and 4: 8 + 1 <= 11, 12 + 1 > 11
  REQUIRE(dataset.size() == 2);
  Example first = dataset.get(0);
  CHECK(first.input.dtype() == kInt64);
  CHECK(first.input.shape() == Shape{4});
  CHECK(first.input.to_vector<int64_t>() == std::vector<int64_t>{100, 101, 102, 103});
  CHECK(first.target.to_vector<int64_t>() == std::vector<int64_t>{101, 102, 103, 104});

  Batch batch = dataset.get_batch({1, 0});
  CHECK(batch.inputs.shape() == Shape{2, 4});
  CHECK(batch.targets.shape() == Shape{2, 4});
  CHECK(batch.inputs.to_vector<int64_t>() == std::vector<int64_t>{104, 105, 106, 107, 100, 101, 102, 103});
  CHECK(batch.targets.to_vector<int64_t>() == std::vector<int64_t>{105, 106, 107, 108, 101, 102, 103, 104});

  TokenDataset overlapping(tokens, 4, 1);  // every start from 0 to 6
  CHECK(overlapping.size() == 7);
  CHECK(overlapping.get(6).target.to_vector<int64_t>() == std::vector<int64_t>{107, 108, 109, 110});

  REQUIRE_THROWS_WITH(dataset.get(2), Contains("index in [0, 2), got 2"));
  REQUIRE_THROWS_WITH(TokenDataset(Tokens{1, 2, 3}, 4), Contains("expected at least 5 tokens for one window of context length 4, got 3"));
  REQUIRE_THROWS_WITH(TokenDataset(tokens, 0), Contains("context length of at least 1"));
}

TEST_CASE("token dataset: a text file through a loader, with a validation split") {
  TemporaryDirectory directory;
  std::string text;
  for (int i = 0; i < 50; ++i) text += "abcdefghij";
  write_bytes(directory / "corpus.txt", text);
  TokenSplit split = split_tokens(read_tokens(directory / "corpus.txt"), 0.2);
  auto train = std::make_shared<TokenDataset>(split.train, 8);
  auto validation = std::make_shared<TokenDataset>(split.validation, 8);
  CHECK(train->size() == (400 - 9) / 8 + 1);
  CHECK(validation->size() == (100 - 9) / 8 + 1);
  DataLoader loader(train, {.batch_size = 4, .shuffle = true, .seed = 3});
  Batch batch = loader.next();
  CHECK(batch.inputs.shape() == Shape{4, 8});
  std::vector<int64_t> inputs = batch.inputs.to_vector<int64_t>();
  std::vector<int64_t> targets = batch.targets.to_vector<int64_t>();
  for (size_t i = 0; i < inputs.size(); ++i) {
    // The corpus repeats "a".."j", so the target is always the next letter.
    CHECK(targets[i] == 'a' + (inputs[i] - 'a' + 1) % 10);
  }
}
