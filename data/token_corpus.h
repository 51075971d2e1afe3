#pragma once
// A language model's corpus as one token stream, and the vocabulary its model needs. Text is
// byte-level (every byte a token, vocabulary 256, no tokenizer needed); llm.c token files
// (data/tokens.h) carry tokens from any tokenizer (GPT-2's, Llama 3's).
//
//   TokenCorpus corpus = read_token_corpus("fineweb_train.bin");
//   int64_t vocabulary = vocabulary_for(corpus);  // 50304 for GPT-2 tokens
#include <cstdint>
#include <filesystem>

#include "data/tokens.h"

namespace dtrain {

inline constexpr int64_t kByteVocabulary = 256;
inline constexpr int64_t kGpt2Vocabulary = 50257;
// GPT-2's vocabulary rounded up to a multiple of 128, as llm.c and nanoGPT pad it: the extra rows
// of the embedding are never a target, and the output layer's width divides evenly into GPU tiles.
inline constexpr int64_t kGpt2PaddedVocabulary = 50304;

struct TokenCorpus {
  Tokens tokens;
  bool byte_level = true;  // text read as bytes; false: llm.c token files
};

// Whether path is an llm.c token file: its extension is ".bin" or it starts with the token-file
// magic. Such a file is read as tokens (and refused when its header is wrong), never as text.
bool is_token_file(const std::filesystem::path& path);

// The corpus at path:
//   - a token file (is_token_file): its tokens;
//   - a folder: its token files (sorted by name) when it holds any, as llm.c's shards; else
//     every other regular file (sorted, leaving out the fortune index files *.dat and symbolic
//     links, which repeat a file) as text bytes;
//   - any other file: its bytes.
// Raises a dtrain::Error naming the file for a missing file, a bad token file or an empty folder.
TokenCorpus read_token_corpus(const std::filesystem::path& path);

// The vocabulary a model for these tokens needs (the rule, in order):
//   byte-level text, or token files whose tokens are all below 256    256
//   tokens all below 50304 (GPT-2's 50257, padded)                     50304
//   otherwise: the largest token + 1, rounded up to a multiple of 128
int64_t vocabulary_for(const TokenCorpus& corpus);
// The same for a stream whose largest token is max_token (-1: empty).
int64_t vocabulary_for(int32_t max_token, bool byte_level);

// The largest token, -1 for an empty stream.
int32_t max_token(const Tokens& tokens);

}  // namespace dtrain
