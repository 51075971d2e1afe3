// A corpus read from text, token files or folders, and the vocabulary its model needs.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "dtrain.h"
#include "tests/support/file_bytes.h"
#include "tests/support/temporary_directory.h"

using namespace dtrain;
using dtrain::testing::TemporaryDirectory;
using dtrain::testing::write_bytes;
using Catch::Contains;

namespace {

// The 1024-byte header of an llm.c token file (magic, version, count), without tokens.
std::string token_file_header(int32_t magic, int32_t version, int32_t count) {
  std::vector<int32_t> header(256, 0);
  header[0] = magic;
  header[1] = version;
  header[2] = count;
  return std::string(reinterpret_cast<const char*>(header.data()), header.size() * 4);
}

TokenCorpus tokens_only(Tokens tokens) { return {.tokens = std::move(tokens), .byte_level = false}; }

}  // namespace

TEST_CASE("token corpus: text is byte-level, token files are tokens, recognised by extension or magic") {
  TemporaryDirectory directory;
  write_bytes(directory / "story.txt", "ab");
  TokenCorpus text = read_token_corpus(directory / "story.txt");
  CHECK(text.byte_level);
  CHECK(text.tokens == Tokens{'a', 'b'});

  write_token_file(directory / "train.bin", {300, 7, 50256});
  TokenCorpus tokens = read_token_corpus(directory / "train.bin");
  CHECK_FALSE(tokens.byte_level);
  CHECK(tokens.tokens == Tokens{300, 7, 50256});

  // A token file under another name is still one: its magic says so.
  write_token_file(directory / "shard.tokens", {1, 2});
  CHECK(is_token_file(directory / "shard.tokens"));
  CHECK(read_token_corpus(directory / "shard.tokens").tokens == Tokens{1, 2});
  CHECK_FALSE(is_token_file(directory / "story.txt"));
}

TEST_CASE("token corpus: a broken token file is refused with the reason, never read as text") {
  TemporaryDirectory directory;
  write_bytes(directory / "short.bin", "not a header");
  REQUIRE_THROWS_WITH(read_token_corpus(directory / "short.bin"),
                      Contains("short.bin") && Contains("expected at least the 1024-byte header, got a file of 12 bytes"));
  // The magic alone makes it a token file: a truncated one named .tokens is refused too.
  write_bytes(directory / "cut.tokens", token_file_header(20240520, 1, 5) + std::string(4, '\0'));
  REQUIRE_THROWS_WITH(read_token_corpus(directory / "cut.tokens"),
                      Contains("cut.tokens") && Contains("promises 5 tokens") && Contains("truncated?"));
  write_bytes(directory / "wrong.bin", token_file_header(1234, 1, 0));
  REQUIRE_THROWS_WITH(read_token_corpus(directory / "wrong.bin"), Contains("expected magic 20240520") && Contains("got 1234"));
}

TEST_CASE("token corpus: a folder of token shards, or of text files") {
  TemporaryDirectory directory;
  std::filesystem::create_directories(directory / "shards");
  write_token_file(directory / "shards" / "b_000001.bin", {3, 4});
  write_token_file(directory / "shards" / "a_000000.bin", {1, 2});
  write_bytes(directory / "shards" / "README.txt", "ignored: the folder holds token files");
  TokenCorpus shards = read_token_corpus(directory / "shards");
  CHECK_FALSE(shards.byte_level);
  CHECK(shards.tokens == Tokens{1, 2, 3, 4});

  std::filesystem::create_directories(directory / "text");
  write_bytes(directory / "text" / "2", "cd");
  write_bytes(directory / "text" / "1", "ab");
  write_bytes(directory / "text" / "1.dat", "index");
  TokenCorpus text = read_token_corpus(directory / "text");
  CHECK(text.byte_level);
  CHECK(text.tokens == Tokens{'a', 'b', 'c', 'd'});

  std::filesystem::create_directories(directory / "empty");
  REQUIRE_THROWS_WITH(read_token_corpus(directory / "empty"), Contains("holds no text or token files"));
}

TEST_CASE("token corpus: the vocabulary is 256 for bytes, GPT-2's padded 50304, or the largest token's") {
  CHECK(vocabulary_for({.tokens = {255, 0}, .byte_level = true}) == 256);
  CHECK(vocabulary_for(tokens_only({255, 3})) == 256);
  CHECK(vocabulary_for(tokens_only({256})) == 50304);
  CHECK(vocabulary_for(tokens_only({50256, 1})) == 50304);
  CHECK(vocabulary_for(tokens_only({50303})) == 50304);
  CHECK(vocabulary_for(tokens_only({50304})) == 50304 + 128);  // 50305 rounded up to 128s: 393 * 128 + 128
  CHECK(vocabulary_for(tokens_only({128255})) == 128256);      // Llama 3's 128256 = 1002 * 128
  CHECK(max_token({}) == -1);
  CHECK(max_token({4, 9, 2}) == 9);
}
