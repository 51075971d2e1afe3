// libFuzzer target: single-file safetensors loading (core/safetensors.h). Any file either loads
// or raises dtrain::Error; what loads holds exactly the tensors its header describes.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "core/safetensors.h"
#include "tests/fuzz/fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& path = dtrain::fuzz::write_input_file(data, size, ".safetensors");
  dtrain::SafetensorsHeader header;
  try {
    header = dtrain::read_safetensors_header(path);
  } catch (const dtrain::Error&) {
    return 0;
  }
  dtrain::SafetensorsFile file;
  try {
    file = dtrain::load_safetensors(path);
  } catch (const dtrain::Error&) {
    return 0;  // a checksum mismatch: the header alone was fine
  }
  if (file.tensors.size() != header.entries.size()) {
    dtrain::fail("fuzz_safetensors: the header lists ", header.entries.size(), " tensors, the load gave ", file.tensors.size());
  }
  for (const auto& entry : header.entries) {
    const dtrain::Tensor& tensor = file.tensors.at(entry.name);
    if (tensor.shape() != entry.shape || tensor.dtype() != entry.dtype || tensor.nbytes() != entry.end - entry.begin) {
      dtrain::fail("fuzz_safetensors: tensor '", entry.name, "' does not match its header entry");
    }
  }
  if (file.verified != header.has_checksums) dtrain::fail("fuzz_safetensors: verified disagrees with the header's checksums");
  return 0;
}
