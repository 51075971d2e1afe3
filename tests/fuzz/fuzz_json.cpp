// libFuzzer target: the JSON reader (core/json.h). Any text either parses or raises
// JsonParseError; what parses must write and parse back to the same text (the writer and the
// reader agree on every value, escapes and 64-bit number literals included).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  dtrain::JsonValue value;
  try {
    value = dtrain::parse_json(text);
  } catch (const dtrain::JsonParseError&) {
    return 0;
  }
  std::string written = dtrain::write_json(value);
  std::string rewritten = dtrain::write_json(dtrain::parse_json(written));
  if (rewritten != written) dtrain::fail("fuzz_json: written JSON did not round-trip: '", written, "' became '", rewritten, "'");
  return 0;
}
