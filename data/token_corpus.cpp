#include "data/token_corpus.h"

#include <algorithm>
#include <fstream>
#include <vector>

#include "core/error.h"

namespace dtrain {

namespace {

constexpr int64_t kVocabularyPadding = 128;

bool starts_with_token_file_magic(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  int32_t magic = 0;
  if (!stream.read(reinterpret_cast<char*>(&magic), sizeof magic)) return false;
  return magic == kTokenFileMagic;
}

void append(Tokens& to, const Tokens& tokens) { to.insert(to.end(), tokens.begin(), tokens.end()); }

TokenCorpus read_folder(const std::filesystem::path& folder) {
  std::vector<std::filesystem::path> token_files;
  std::vector<std::filesystem::path> text_files;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (!entry.is_regular_file() || entry.is_symlink()) continue;
    if (is_token_file(entry.path())) {
      token_files.push_back(entry.path());
    } else if (entry.path().extension() != ".dat") {
      text_files.push_back(entry.path());
    }
  }
  TokenCorpus corpus;
  corpus.byte_level = token_files.empty();
  std::vector<std::filesystem::path>& files = corpus.byte_level ? text_files : token_files;
  std::sort(files.begin(), files.end());
  for (const auto& file : files) append(corpus.tokens, corpus.byte_level ? read_text_bytes(file) : read_token_file(file));
  if (corpus.tokens.empty()) fail("read_token_corpus: '", folder.string(), "' holds no text or token files");
  return corpus;
}

}  // namespace

bool is_token_file(const std::filesystem::path& path) {
  return path.extension() == ".bin" || starts_with_token_file_magic(path);
}

TokenCorpus read_token_corpus(const std::filesystem::path& path) {
  if (std::filesystem::is_directory(path)) return read_folder(path);
  if (is_token_file(path)) return {.tokens = read_token_file(path), .byte_level = false};
  return {.tokens = read_text_bytes(path), .byte_level = true};
}

int32_t max_token(const Tokens& tokens) {
  return tokens.empty() ? -1 : *std::max_element(tokens.begin(), tokens.end());
}

int64_t vocabulary_for(const TokenCorpus& corpus) { return vocabulary_for(max_token(corpus.tokens), corpus.byte_level); }

int64_t vocabulary_for(int32_t max_token, bool byte_level) {
  const int64_t needed = static_cast<int64_t>(max_token) + 1;
  if (byte_level || needed <= kByteVocabulary) return kByteVocabulary;
  if (needed <= kGpt2PaddedVocabulary) return kGpt2PaddedVocabulary;
  return (needed + kVocabularyPadding - 1) / kVocabularyPadding * kVocabularyPadding;
}

}  // namespace dtrain
