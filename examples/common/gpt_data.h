#pragma once
// The GPT example's data: a training and a validation token stream from --data and --val-data
// (text or llm.c token files, data/token_corpus.h), or a split of --data alone, and the unigram
// entropy the validation loss is compared with.
#include <cstdint>
#include <string>

#include "data/token_corpus.h"

namespace dtrain::examples {

struct GptCorpus {
  Tokens train;
  Tokens validation;
  bool byte_level = true;
  int64_t vocabulary = kByteVocabulary;  // what the tokens need (vocabulary_for)
  std::string description;               // "train.bin: 1000 tokens; val.bin: 100 tokens" for the start
};

// Reads data (and validation_data when not empty; else the last tenth of data validates). A
// missing or broken file, text mixed with token files, or a validation stream no longer than
// context is a usage error (exit 2) naming the file.
GptCorpus read_gpt_corpus(const std::string& data, const std::string& validation_data, int64_t context);

// -sum p log p over the token frequencies of the whole corpus (training and validation), in
// nats: the cross-entropy of the best model that ignores context. A language model's loss must
// fall below it to have learned anything more.
double unigram_entropy(const GptCorpus& corpus);

}  // namespace dtrain::examples
