#include "examples/common/gpt_data.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "tools/command_line/program_exit.h"

namespace dtrain::examples {

namespace {

constexpr double kValidationFraction = 0.1;

const char* unit(bool byte_level) { return byte_level ? "bytes" : "tokens"; }

}  // namespace

GptCorpus read_gpt_corpus(const std::string& data, const std::string& validation_data, int64_t context) {
  TokenCorpus train = read_input([&] { return read_token_corpus(data); });
  GptCorpus corpus;
  corpus.byte_level = train.byte_level;
  if (validation_data.empty()) {
    TokenSplit split = split_tokens(train.tokens, kValidationFraction);
    corpus.train = std::move(split.train);
    corpus.validation = std::move(split.validation);
    corpus.description = data + ": " + std::to_string(corpus.train.size() + corpus.validation.size()) + " " +
                         unit(corpus.byte_level) + " (" + std::to_string(corpus.train.size()) + " train, " +
                         std::to_string(corpus.validation.size()) + " validation: the last tenth)";
  } else {
    TokenCorpus validation = read_input([&] { return read_token_corpus(validation_data); });
    if (validation.byte_level != train.byte_level) {
      usage_error("--data ", data, " is ", train.byte_level ? "text" : "token files", " but --val-data ", validation_data,
                  " is ", validation.byte_level ? "text" : "token files", ": both must be the same kind");
    }
    corpus.train = std::move(train.tokens);
    corpus.validation = std::move(validation.tokens);
    corpus.description = data + ": " + std::to_string(corpus.train.size()) + " " + unit(corpus.byte_level) +
                         "; validation " + validation_data + ": " + std::to_string(corpus.validation.size());
  }
  if (static_cast<int64_t>(corpus.validation.size()) <= context) {
    usage_error("the validation tokens (", corpus.validation.size(), " from ",
                validation_data.empty() ? "the last tenth of " + data : validation_data, ") must exceed the context (",
                context, ")");
  }
  if (static_cast<int64_t>(corpus.train.size()) <= context) {
    usage_error("the training tokens of ", data, " (", corpus.train.size(), ") must exceed the context (", context, ")");
  }
  corpus.vocabulary =
      vocabulary_for(std::max(max_token(corpus.train), max_token(corpus.validation)), corpus.byte_level);
  return corpus;
}

double unigram_entropy(const GptCorpus& corpus) {
  std::vector<double> counts(static_cast<size_t>(corpus.vocabulary), 0.0);
  for (const Tokens* tokens : {&corpus.train, &corpus.validation}) {
    for (int32_t token : *tokens) counts[static_cast<size_t>(token)] += 1;
  }
  const auto total = static_cast<double>(corpus.train.size() + corpus.validation.size());
  double entropy = 0;
  for (double count : counts) {
    if (count == 0) continue;
    double p = count / total;
    entropy -= p * std::log(p);
  }
  return entropy;
}

}  // namespace dtrain::examples
