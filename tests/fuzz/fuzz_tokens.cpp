// libFuzzer target: llm.c token files (data/tokens.h), then cut into training windows as the gpt
// example does. Any file either loads or raises dtrain::Error; what loads holds tokens in
// [0, 2^31) and exactly as many as its header says.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "data/token_dataset.h"
#include "data/tokens.h"
#include "tests/fuzz/fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& path = dtrain::fuzz::write_input_file(data, size, ".bin");
  dtrain::Tokens tokens;
  try {
    tokens = dtrain::read_token_file(path);
  } catch (const dtrain::Error&) {
    return 0;
  }
  int32_t header_count = 0;
  std::memcpy(&header_count, data + 2 * sizeof(int32_t), sizeof(header_count));
  if (tokens.size() != static_cast<size_t>(header_count)) {
    dtrain::fail("fuzz_tokens: the header says ", header_count, " tokens, the load gave ", tokens.size());
  }
  for (int32_t token : tokens) {
    if (token < 0) dtrain::fail("fuzz_tokens: a negative token ", token);
  }
  if (tokens.size() >= 2) {
    dtrain::TokenDataset windows(tokens, 1);
    windows.get_batch({0, windows.size() - 1});
  }
  return 0;
}
