#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>
#include <type_traits>

#include "core/error.h"
#include "core/ops/factory.h"

namespace dtrain {

size_t idx_type_size(IdxType type) {
  switch (type) {
    case IdxType::UInt8: return 1;
    case IdxType::Int8: return 1;
    case IdxType::Int16: return 2;
    case IdxType::Int32: return 4;
    case IdxType::Float32: return 4;
    case IdxType::Float64: return 8;
  }
  return 0;
}

const char* idx_type_name(IdxType type) {
  switch (type) {
    case IdxType::UInt8: return "uint8";
    case IdxType::Int8: return "int8";
    case IdxType::Int16: return "int16";
    case IdxType::Int32: return "int32";
    case IdxType::Float32: return "float32";
    case IdxType::Float64: return "float64";
  }
  return "unknown";
}

namespace {

bool known_idx_type(uint8_t code) {
  return code == 0x08 || code == 0x09 || code == 0x0B || code == 0x0C || code == 0x0D || code == 0x0E;
}

// A zlib file handle (gzip'd or plain), closed on scope exit.
class GzipReader {
 public:
  explicit GzipReader(const std::filesystem::path& path) : where_("read_idx: '" + path.string() + "'") {
    std::error_code error;
    if (!std::filesystem::exists(path, error)) fail(where_, ": the file does not exist");
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) fail(where_, ": cannot open it for reading");
  }
  ~GzipReader() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  const std::string& where() const { return where_; }

  // Reads up to length bytes; fewer only at the end of the data. Raises on corrupt data.
  size_t read(void* destination, size_t length) {
    char* bytes = static_cast<char*>(destination);
    size_t total = 0;
    while (total < length) {
      // gzread counts in unsigned int; read in chunks that fit.
      auto chunk = static_cast<unsigned>(std::min<size_t>(length - total, size_t{1} << 30));
      int got = gzread(file_, bytes + total, chunk);
      if (got < 0) {
        int code = 0;
        const char* message = gzerror(file_, &code);
        fail(where_, ": the data is corrupt (zlib: ", message != nullptr ? message : "unknown error", ")");
      }
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    return total;
  }

 private:
  std::string where_;
  gzFile file_ = nullptr;
};

uint32_t big_endian_u32(const unsigned char* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
}

template <typename T>
Tensor convert(const IdxArray& array, DType dtype, double scale) {
  auto count = static_cast<size_t>(array.shape.numel());
  Tensor out = empty(array.shape, {.dtype = dtype});
  if (count == 0) return out;
  const unsigned char* source = array.data.data();
  visit_dtype(dtype, [&]<typename Out>() {
    Out* destination = static_cast<Out*>(out.data());
    for (size_t i = 0; i < count; ++i) {
      T element;
      std::memcpy(&element, source + i * sizeof(T), sizeof(T));
      double value = static_cast<double>(element) * scale;
      if constexpr (std::is_same_v<Out, bool>) {
        destination[i] = value != 0.0;
      } else if constexpr (std::is_integral_v<Out>) {
        // Converting a NaN or a value outside Out's range is undefined behaviour, and a damaged
        // (or float) file can hold any bits.
        constexpr double below = static_cast<double>(std::numeric_limits<Out>::min()) - 1.0;
        constexpr double above = static_cast<double>(std::numeric_limits<Out>::max()) + 1.0;
        if (!(value > below && value < above)) {
          fail("idx_to_tensor: element ", i, " is ", value, ", which ", dtype_name(dtype), " cannot hold");
        }
        destination[i] = static_cast<Out>(value);
      } else {
        destination[i] = Out(static_cast<float>(value));  // 16-bit floats convert from float
      }
    }
  });
  return out;
}

}  // namespace

IdxArray read_idx(const std::filesystem::path& path) {
  GzipReader reader(path);
  const std::string& where = reader.where();
  unsigned char magic[4];
  size_t got = reader.read(magic, 4);
  if (got < 4) fail(where, ": expected a 4-byte IDX magic, got a file of ", got, " bytes");
  if (magic[0] != 0 || magic[1] != 0 || !known_idx_type(magic[2]) || magic[3] == 0) {
    fail(where, ": expected an IDX magic (0, 0, type 0x08-0x0E, rank >= 1), got bytes (", int{magic[0]}, ", ",
         int{magic[1]}, ", ", int{magic[2]}, ", ", int{magic[3]}, "): not an IDX file");
  }
  IdxArray array;
  array.type = static_cast<IdxType>(magic[2]);
  int rank = magic[3];
  std::vector<unsigned char> dims(static_cast<size_t>(rank) * 4);
  got = reader.read(dims.data(), dims.size());
  if (got < dims.size()) fail(where, ": expected ", rank, " sizes after the magic, the file ends after ", got / 4);

  // Sizes are uint32 each; their product is capped well below overflow (2^40 bytes is no IDX file).
  // Zero sizes count as 1 in the cap: an empty array's other sizes still make its tensor's strides.
  constexpr uint64_t kMaxBytes = uint64_t{1} << 40;
  uint64_t nbytes = idx_type_size(array.type);
  uint64_t capped = nbytes;
  for (int d = 0; d < rank; ++d) {
    uint32_t size = big_endian_u32(dims.data() + d * 4);
    array.shape.push_back(size);
    uint64_t counted = size == 0 ? 1 : size;
    if (capped > kMaxBytes / counted) fail(where, ": the sizes ", array.shape, "... describe more than 2^40 bytes");
    capped *= counted;
    nbytes *= size;
  }

  // Read in chunks, so a header promising far more than the file holds fails on the missing
  // bytes rather than on allocating them first.
  constexpr size_t kChunk = size_t{16} << 20;
  while (array.data.size() < nbytes) {
    size_t want = std::min<size_t>(kChunk, nbytes - array.data.size());
    size_t old_size = array.data.size();
    array.data.resize(old_size + want);
    size_t read = reader.read(array.data.data() + old_size, want);
    if (read < want) {
      fail(where, ": expected ", nbytes, " bytes of ", idx_type_name(array.type), " data for shape ", array.shape,
           ", the file ends after ", old_size + read, " (truncated?)");
    }
  }
  unsigned char extra;
  if (reader.read(&extra, 1) != 0) fail(where, ": expected the file to end after the data for shape ", array.shape, ", it goes on");

  // IDX is big-endian; turn multi-byte elements around into host order.
  size_t element = idx_type_size(array.type);
  if (element > 1 && std::endian::native == std::endian::little) {
    for (size_t at = 0; at < array.data.size(); at += element) std::reverse(array.data.begin() + at, array.data.begin() + at + element);
  }
  return array;
}

Tensor idx_to_tensor(const IdxArray& array, DType dtype, double scale) {
  switch (array.type) {
    case IdxType::UInt8: return convert<uint8_t>(array, dtype, scale);
    case IdxType::Int8: return convert<int8_t>(array, dtype, scale);
    case IdxType::Int16: return convert<int16_t>(array, dtype, scale);
    case IdxType::Int32: return convert<int32_t>(array, dtype, scale);
    case IdxType::Float32: return convert<float>(array, dtype, scale);
    case IdxType::Float64: return convert<double>(array, dtype, scale);
  }
  fail("idx_to_tensor: unknown IDX element type ", int(array.type));
}

}  // namespace dtrain
