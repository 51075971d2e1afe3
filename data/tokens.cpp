#include "data/tokens.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>

#include "core/error.h"

namespace dtrain {

// Token files are little-endian and read straight into memory.
static_assert(std::endian::native == std::endian::little, "token file I/O assumes a little-endian host");

namespace {

std::string file_bytes(const std::filesystem::path& path, const char* who) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) fail(who, ": cannot open '", path.string(), "' for reading (does it exist?)");
  std::string bytes((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
  if (stream.bad()) fail(who, ": reading '", path.string(), "' failed");
  return bytes;
}

template <typename Token>
Tokens decode_tokens(const char* data, int64_t count, const std::filesystem::path& path) {
  Tokens tokens(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    Token token;
    std::memcpy(&token, data + i * static_cast<int64_t>(sizeof(Token)), sizeof(Token));
    if (static_cast<uint64_t>(token) > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
      fail("read_token_file: '", path.string(), "': token ", i, " is ", static_cast<uint64_t>(token),
           ", above the int32 range dtrain keeps tokens in");
    }
    tokens[static_cast<size_t>(i)] = static_cast<int32_t>(token);
  }
  return tokens;
}

}  // namespace

Tokens read_text_bytes(const std::filesystem::path& path) {
  std::string bytes = file_bytes(path, "read_text_bytes");
  Tokens tokens(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) tokens[i] = static_cast<unsigned char>(bytes[i]);
  return tokens;
}

Tokens read_token_file(const std::filesystem::path& path) {
  std::string bytes = file_bytes(path, "read_token_file");
  std::string where = "read_token_file: '" + path.string() + "'";
  constexpr size_t kHeaderBytes = kTokenFileHeaderInts * sizeof(int32_t);
  if (bytes.size() < kHeaderBytes) {
    fail(where, ": expected at least the ", kHeaderBytes, "-byte header, got a file of ", bytes.size(), " bytes");
  }
  int32_t header[3];
  std::memcpy(header, bytes.data(), sizeof(header));
  if (header[0] != kTokenFileMagic) {
    fail(where, ": expected magic ", kTokenFileMagic, " (an llm.c token file), got ", header[0]);
  }
  int32_t version = header[1];
  if (version != 1 && version != 2) fail(where, ": expected version 1 (uint16 tokens) or 2 (uint32 tokens), got ", version);
  int64_t count = header[2];
  size_t token_size = version == 1 ? 2 : 4;
  if (count < 0) fail(where, ": expected a non-negative token count, got ", count);
  size_t expected = kHeaderBytes + static_cast<size_t>(count) * token_size;
  if (bytes.size() != expected) {
    fail(where, ": the header promises ", count, " tokens of ", token_size, " bytes (", expected, " bytes in all), got a file of ",
         bytes.size(), " bytes", bytes.size() < expected ? " (truncated?)" : "");
  }
  const char* data = bytes.data() + kHeaderBytes;
  return version == 1 ? decode_tokens<uint16_t>(data, count, path) : decode_tokens<uint32_t>(data, count, path);
}

void write_token_file(const std::filesystem::path& path, const Tokens& tokens) {
  std::string where = "write_token_file: '" + path.string() + "'";
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    fail(where, ": expected fewer than 2^31 tokens (the header's count is int32), got ", tokens.size());
  }
  bool narrow = true;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0) fail(where, ": expected non-negative tokens, got ", tokens[i], " at position ", i);
    if (tokens[i] > 0xffff) narrow = false;
  }
  int32_t header[kTokenFileHeaderInts] = {};
  header[0] = kTokenFileMagic;
  header[1] = narrow ? 1 : 2;
  header[2] = static_cast<int32_t>(tokens.size());
  std::string bytes(reinterpret_cast<const char*>(header), sizeof(header));
  for (int32_t token : tokens) {
    if (narrow) {
      auto value = static_cast<uint16_t>(token);
      bytes.append(reinterpret_cast<const char*>(&value), sizeof(value));
    } else {
      auto value = static_cast<uint32_t>(token);
      bytes.append(reinterpret_cast<const char*>(&value), sizeof(value));
    }
  }
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  if (!stream) fail(where, ": cannot open it for writing");
  stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  stream.close();
  if (!stream) fail(where, ": writing failed");
}

Tokens read_tokens(const std::filesystem::path& path) {
  return path.extension() == ".bin" ? read_token_file(path) : read_text_bytes(path);
}

TokenSplit split_tokens(const Tokens& tokens, double validation_fraction) {
  if (!(validation_fraction >= 0.0 && validation_fraction <= 1.0)) {
    fail("split_tokens: expected a validation fraction in [0, 1], got ", validation_fraction);
  }
  auto train_count = static_cast<size_t>(static_cast<double>(tokens.size()) * (1.0 - validation_fraction));
  train_count = std::min(train_count, tokens.size());
  auto cut = tokens.begin() + static_cast<std::ptrdiff_t>(train_count);
  return TokenSplit{Tokens(tokens.begin(), cut), Tokens(cut, tokens.end())};
}

}  // namespace dtrain
