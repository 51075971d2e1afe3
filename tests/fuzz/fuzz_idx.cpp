// libFuzzer target: IDX files, plain or gzip'd (data/idx.h), and their conversion to tensors as
// the Fashion-MNIST dataset does it (float32, scaled) and to an integer dtype. Any file either
// loads or raises dtrain::Error.
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"
#include "data/idx.h"
#include "tests/fuzz/fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& path = dtrain::fuzz::write_input_file(data, size, ".idx");
  dtrain::IdxArray array;
  try {
    array = dtrain::read_idx(path);
  } catch (const dtrain::Error&) {
    return 0;
  }
  if (array.data.size() != static_cast<size_t>(array.shape.numel()) * dtrain::idx_type_size(array.type)) {
    dtrain::fail("fuzz_idx: ", array.data.size(), " bytes of data for shape ", array.shape);
  }
  try {
    dtrain::idx_to_tensor(array, dtrain::kFloat32, 1.0 / 255.0);
    dtrain::idx_to_tensor(array, dtrain::kInt64);
  } catch (const dtrain::Error&) {
  }
  return 0;
}
