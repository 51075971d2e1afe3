#pragma once
// Token streams from files: raw text read as bytes (a byte-level vocabulary of 256), and token
// files in the llm.c layout, so corpora tokenized elsewhere (GPT-2, Llama 3) load as they are:
//   256 x int32 header, little-endian: [0] magic 20240520, [1] version (1: uint16 tokens,
//   2: uint32 tokens), [2] token count, the rest zero; then the tokens, little-endian.
#include <cstdint>
#include <filesystem>
#include <vector>

namespace dtrain {

using Tokens = std::vector<int32_t>;

inline constexpr int32_t kTokenFileMagic = 20240520;
inline constexpr int kTokenFileHeaderInts = 256;

// Every byte of the file as a token in [0, 256).
Tokens read_text_bytes(const std::filesystem::path& path);

// The tokens of an llm.c token file. Raises naming the file for a bad magic or version, a count
// that disagrees with the file's size, or a token too large for int32.
Tokens read_token_file(const std::filesystem::path& path);

// Writes an llm.c token file: version 1 (uint16) when every token fits, else version 2 (uint32).
void write_token_file(const std::filesystem::path& path, const Tokens& tokens);

// A ".bin" file as a token file, anything else as text bytes.
Tokens read_tokens(const std::filesystem::path& path);

// The first (1 - validation_fraction) of the stream for training, the rest for validation (a
// contiguous cut, as nanoGPT's prepare scripts do, so no window spans both).
struct TokenSplit {
  Tokens train;
  Tokens validation;
};
TokenSplit split_tokens(const Tokens& tokens, double validation_fraction);

}  // namespace dtrain
