// libFuzzer target: a sharded checkpoint's index.json (dist/checkpoint/checkpoint_index.h). Any
// text either decodes or raises dtrain::Error; what decodes encodes and decodes back to the same
// text (the writer keeps everything the reader accepted).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "dist/checkpoint/checkpoint_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  dtrain::dist::CheckpointIndex index;
  try {
    index = dtrain::dist::decode_index(text, "fuzz/index.json");
  } catch (const dtrain::Error&) {
    return 0;
  }
  std::string encoded = dtrain::dist::encode_index(index);
  std::string reencoded = dtrain::dist::encode_index(dtrain::dist::decode_index(encoded, "fuzz/encoded/index.json"));
  if (reencoded != encoded) dtrain::fail("fuzz_checkpoint_index: an accepted index did not round-trip through encode_index");
  return 0;
}
