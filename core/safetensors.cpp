#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>
#include <system_error>

#include "core/atomic_file.h"
#include "core/crc32.h"
#include "core/grad_mode.h"
#include "core/json.h"
#include "core/ops/factory.h"

namespace dtrain {

// The format stores little-endian bytes and tensors are written straight from memory.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

// The reference implementation refuses headers above 100 MB; a larger length means the file is
// not safetensors (or is damaged), and believing it would allocate that much.
constexpr uint64_t kMaxHeaderLength = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypeNames[] = {
    {kFloat32, "F32"}, {kFloat64, "F64"}, {kBFloat16, "BF16"}, {kFloat16, "F16"},
    {kInt32, "I32"},   {kInt64, "I64"},   {kBool, "BOOL"},
};

bool parse_dtype_name(const std::string& name, DType* dtype) {
  for (const DTypeName& entry : kDTypeNames) {
    if (name == entry.name) {
      *dtype = entry.dtype;
      return true;
    }
  }
  return false;
}

std::string errno_text() { return std::strerror(errno); }

// An open file descriptor, closed on scope exit.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// --- writing ---

struct PlannedTensor {
  const std::string* name;
  const Tensor* tensor;
  uint64_t begin;
  uint64_t end;
  uint32_t crc32 = 0;  // of its bytes, once written
};

// The reference implementation's buffer order: by dtype, I64 F64 F32 I32 BF16 F16 BOOL (its
// dtype enum, descending), then by name. Wider elements come first, so with the buffer at a
// multiple of 8 every tensor starts at a multiple of its element size and can be read in place;
// and the same tensors give the same bytes as a file written in Python.
int buffer_rank(DType dtype) {
  switch (dtype) {
    case DType::Int64: return 0;
    case DType::Float64: return 1;
    case DType::Float32: return 2;
    case DType::Int32: return 3;
    case DType::BFloat16: return 4;
    case DType::Float16: return 5;
    case DType::Bool: return 6;
  }
  return 7;
}

std::vector<PlannedTensor> plan_layout(const std::map<std::string, Tensor>& tensors, const std::string& where) {
  std::vector<PlannedTensor> plan;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) fail(where, ": tensor '", name, "': expected a defined tensor, got an undefined one");
    if (name == kMetadataKey) fail(where, ": tensor '", name, "': the name is reserved for the metadata");
    plan.push_back({&name, &tensor, 0, 0});
  }
  std::stable_sort(plan.begin(), plan.end(), [](const PlannedTensor& a, const PlannedTensor& b) {
    return buffer_rank(a.tensor->dtype()) < buffer_rank(b.tensor->dtype());  // the map already sorted names
  });
  uint64_t offset = 0;
  for (PlannedTensor& planned : plan) {
    planned.begin = offset;
    offset += planned.tensor->nbytes();
    planned.end = offset;
  }
  return plan;
}

std::string header_json(const std::vector<PlannedTensor>& plan, const std::map<std::string, std::string>& metadata) {
  JsonValue header = JsonValue::object();
  if (!metadata.empty()) {
    JsonValue entries = JsonValue::object();
    for (const auto& [key, value] : metadata) entries.add(key, JsonValue::string(value));
    header.add(kMetadataKey, std::move(entries));
  }
  for (const PlannedTensor& planned : plan) {
    JsonValue shape = JsonValue::array();
    for (int64_t size : planned.tensor->shape()) shape.push_back(JsonValue::number(size));
    JsonValue entry = JsonValue::object();
    entry.add("dtype", JsonValue::string(safetensors_dtype_name(planned.tensor->dtype())));
    entry.add("shape", std::move(shape));
    entry.add("data_offsets", JsonValue::array({JsonValue::number(planned.begin), JsonValue::number(planned.end)}));
    header.add(*planned.name, std::move(entry));
  }
  std::string text = write_json(header);
  // Spaces up to a multiple of 8 keep the buffer 8-byte aligned (as the reference pads).
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// Writes the tensor's bytes and returns their CRC-32.
uint32_t write_tensor_bytes(AtomicFileWriter& file, const PlannedTensor& planned, const std::string& where) {
  if (planned.end == planned.begin) return crc32_of(nullptr, 0);
  if (!planned.tensor->storage()->is_resident()) {
    fail(where, ": tensor '", *planned.name, "': its storage is released (a ZeRO-3 parameter outside its gather?)");
  }
  Tensor host = *planned.tensor;
  {
    NoGradGuard no_grad;  // the copies are for the file, not part of any graph
    if (!host.device().is_cpu()) host = host.to(Device::cpu());
    if (!host.is_contiguous()) host = host.contiguous();
  }
  file.write(host.data(), host.nbytes());
  return crc32_of(host.data(), host.nbytes());
}

// The "dtrain.crc32" metadata value: {"<name>": "<8 hex digits>"}. Its length does not depend
// on the checksums, so a header written before the data is patched in place afterwards.
std::string checksums_json(const std::vector<PlannedTensor>& plan) {
  JsonValue checksums = JsonValue::object();
  for (const PlannedTensor& planned : plan) {
    char hex[9];
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(planned.crc32));
    checksums.add(*planned.name, JsonValue::string(hex));
  }
  return write_json(checksums);
}

std::string length_prefixed(const std::string& header) {
  std::string bytes(8, '\0');
  uint64_t length = header.size();
  for (char& byte : bytes) {
    byte = static_cast<char>(length & 0xff);
    length >>= 8;
  }
  return bytes + header;
}

// --- reading ---

std::string file_context(const std::filesystem::path& path) { return "safetensors file '" + path.string() + "'"; }

class InputFile {
 public:
  explicit InputFile(const std::filesystem::path& path)
      : where_(file_context(path)), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_.get() < 0) fail(where_, ": cannot open it for reading: ", errno_text());
    struct stat info {};
    if (::fstat(fd_.get(), &info) != 0) fail(where_, ": cannot stat it: ", errno_text());
    if (!S_ISREG(info.st_mode)) fail(where_, ": expected a regular file");
    size_ = static_cast<uint64_t>(info.st_size);
  }

  const std::string& where() const { return where_; }
  uint64_t size() const { return size_; }

  void read_at(uint64_t offset, void* destination, uint64_t length, const std::string& what) const {
    char* bytes = static_cast<char*>(destination);
    while (length > 0) {
      ssize_t got = ::pread(fd_.get(), bytes, length, static_cast<off_t>(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        fail(where_, ": reading ", what, " failed: ", errno_text());
      }
      if (got == 0) fail(where_, ": reading ", what, ": the file ended early (did it change while being read?)");
      bytes += got;
      offset += static_cast<uint64_t>(got);
      length -= static_cast<uint64_t>(got);
    }
  }

 private:
  std::string where_;
  FileDescriptor fd_;
  uint64_t size_ = 0;
};

// A JSON number as a non-negative 64-bit integer, or false.
bool to_unsigned(const JsonValue& value, uint64_t* out) {
  if (!value.is_number()) return false;
  const std::string& text = value.number_text();
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return error == std::errc() && end == text.data() + text.size();
}

std::string offsets_str(uint64_t begin, uint64_t end) { return detail::concat("[", begin, ", ", end, ")"); }

SafetensorsEntry parse_entry(const std::string& where, const std::string& name, const JsonValue& value) {
  std::string context = where + ": tensor '" + name + "'";
  if (!value.is_object()) {
    fail(context, ": expected an object with dtype, shape and data_offsets, got ", json_kind_name(value.kind()));
  }
  SafetensorsEntry entry;
  entry.name = name;

  const JsonValue* dtype = value.find("dtype");
  if (dtype == nullptr) fail(context, ": the entry has no 'dtype'");
  if (!dtype->is_string()) fail(context, ": expected 'dtype' to be a string, got ", json_kind_name(dtype->kind()));
  if (!parse_dtype_name(dtype->as_string(), &entry.dtype)) {
    fail(context, ": unknown dtype '", dtype->as_string(), "' (dtrain reads F32, F64, BF16, F16, I32, I64 and BOOL)");
  }

  const JsonValue* shape = value.find("shape");
  if (shape == nullptr) fail(context, ": the entry has no 'shape'");
  if (!shape->is_array()) fail(context, ": expected 'shape' to be an array, got ", json_kind_name(shape->kind()));
  // The product of the non-zero sizes is capped too (not only the byte count), so that no
  // product over the shape overflows later, even for a shape that also holds a zero.
  constexpr uint64_t kMaxBytes = uint64_t{1} << 62;
  uint64_t nbytes = dtype_size(entry.dtype);
  bool empty = false;
  for (const JsonValue& size_value : shape->as_array()) {
    uint64_t size = 0;
    if (!to_unsigned(size_value, &size)) {
      fail(context, ": expected 'shape' to hold non-negative integers, got ",
           size_value.is_number() ? size_value.number_text() : json_kind_name(size_value.kind()));
    }
    if (size != 0 && nbytes > kMaxBytes / size) fail(context, ": shape ", write_json(*shape), " is too large for any file");
    if (size == 0) empty = true;
    else nbytes *= size;
    entry.shape.push_back(static_cast<int64_t>(size));
  }
  if (empty) nbytes = 0;

  const JsonValue* offsets = value.find("data_offsets");
  if (offsets == nullptr) fail(context, ": the entry has no 'data_offsets'");
  if (!offsets->is_array() || offsets->as_array().size() != 2 || !to_unsigned(offsets->as_array()[0], &entry.begin) ||
      !to_unsigned(offsets->as_array()[1], &entry.end)) {
    fail(context, ": expected 'data_offsets' to be [begin, end] with non-negative integers, got ", write_json(*offsets));
  }
  if (entry.end < entry.begin) fail(context, ": data_offsets ", write_json(*offsets), " end before they begin");
  if (entry.end - entry.begin != nbytes) {
    fail(context, ": shape ", entry.shape, " of ", dtype->as_string(), " needs ", nbytes, " bytes, but data_offsets ",
         write_json(*offsets), " hold ", entry.end - entry.begin);
  }
  return entry;
}

std::map<std::string, std::string> parse_metadata(const std::string& where, const JsonValue& value) {
  if (!value.is_object()) fail(where, ": expected '__metadata__' to be an object of strings, got ", json_kind_name(value.kind()));
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.as_object()) {
    if (!item.is_string()) fail(where, ": metadata '", key, "': expected a string value, got ", json_kind_name(item.kind()));
    if (!metadata.emplace(key, item.as_string()).second) fail(where, ": metadata '", key, "' appears twice in the header");
  }
  return metadata;
}

// The tensors, in buffer order, must tile the buffer: no overlap, no gap, nothing past its end.
void check_tiling(const std::string& where, std::vector<SafetensorsEntry>& entries, uint64_t buffer_length) {
  std::sort(entries.begin(), entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const SafetensorsEntry* previous = nullptr;  // the entry that ends at `covered`
  for (const SafetensorsEntry& entry : entries) {
    std::string context = where + ": tensor '" + entry.name + "'";
    if (entry.end > buffer_length) {
      fail(context, ": data_offsets ", offsets_str(entry.begin, entry.end), " reach past the end of the ", buffer_length,
           "-byte data buffer (the file is truncated or the header is wrong)");
    }
    if (entry.begin < covered) {
      fail(context, ": data_offsets ", offsets_str(entry.begin, entry.end), " overlap tensor '", previous->name, "' at ",
           offsets_str(previous->begin, previous->end));
    }
    if (entry.begin > covered) {
      fail(context, ": data_offsets ", offsets_str(entry.begin, entry.end), " leave buffer bytes ",
           offsets_str(covered, entry.begin), " before it unused (expected it to begin at ", covered, ")");
    }
    if (entry.end > covered || previous == nullptr) {
      covered = entry.end;
      previous = &entry;
    }
  }
  if (covered != buffer_length) {
    fail(where, ": the tensors cover ", covered, " bytes of the data buffer, but it holds ", buffer_length,
         " (bytes ", offsets_str(covered, buffer_length), " belong to no tensor)");
  }
}

// Moves the "dtrain.crc32" metadata (if any) onto the entries: one checksum per tensor, exactly.
void attach_checksums(const std::string& where, SafetensorsHeader& header) {
  auto found = header.metadata.find(kSafetensorsChecksumKey);
  if (found == header.metadata.end()) return;
  const std::string context = where + ": metadata '" + kSafetensorsChecksumKey + "'";
  JsonValue checksums;
  try {
    checksums = parse_json(found->second);
  } catch (const JsonParseError& error) {
    fail(context, " is not valid JSON: ", error.problem(), " at byte ", error.position(), " (a damaged header)");
  }
  if (!checksums.is_object()) fail(context, ": expected an object of checksums, got ", json_kind_name(checksums.kind()));
  std::map<std::string, uint32_t> by_name;
  for (const auto& [name, value] : checksums.as_object()) {
    uint32_t crc = 0;
    const std::string* hex = value.is_string() ? &value.as_string() : nullptr;
    auto parsed = hex ? std::from_chars(hex->data(), hex->data() + hex->size(), crc, 16) : std::from_chars_result{};
    if (hex == nullptr || hex->size() != 8 || parsed.ec != std::errc() || parsed.ptr != hex->data() + hex->size()) {
      fail(context, ": tensor '", name, "': expected 8 hex digits, got ", write_json(value));
    }
    if (!by_name.emplace(name, crc).second) fail(context, ": tensor '", name, "' appears twice");
  }
  for (SafetensorsEntry& entry : header.entries) {
    auto checksum = by_name.find(entry.name);
    if (checksum == by_name.end()) {
      fail(context, ": it has no checksum for tensor '", entry.name, "' (a damaged header)");
    }
    entry.crc32 = checksum->second;
    by_name.erase(checksum);
  }
  if (!by_name.empty()) {
    fail(context, ": it has a checksum for tensor '", by_name.begin()->first, "', which the file does not hold");
  }
  header.metadata.erase(found);
  header.has_checksums = true;
}

SafetensorsHeader read_header(const InputFile& file) {
  const std::string& where = file.where();
  if (file.size() < 8) {
    fail(where, ": the file is ", file.size(), " bytes, too short for the 8-byte header length (truncated?)");
  }
  unsigned char length_bytes[8];
  file.read_at(0, length_bytes, 8, "the header length");
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | length_bytes[i];
  if (length > kMaxHeaderLength) {
    fail(where, ": header length ", length, " is absurd (the format's limit is ", kMaxHeaderLength,
         " bytes): not a safetensors file, or a corrupted one");
  }
  if (length > file.size() - 8) {
    fail(where, ": header length ", length, " exceeds the ", file.size() - 8,
         " bytes after the length field (the file is truncated, or not safetensors)");
  }
  std::string text(length, '\0');
  file.read_at(8, text.data(), length, "the header");

  JsonValue root;
  try {
    root = parse_json(text);
  } catch (const JsonParseError& error) {
    fail(where, ": the header is not valid JSON: ", error.problem(), " at header byte ", error.position(), " (file byte ",
         error.position() + 8, ")");
  }
  if (!root.is_object()) fail(where, ": expected the header to be a JSON object, got ", json_kind_name(root.kind()));

  SafetensorsHeader header;
  header.header_length = length;
  header.buffer_offset = 8 + length;
  header.buffer_length = file.size() - header.buffer_offset;
  std::set<std::string> names;
  bool has_metadata = false;
  for (const auto& [name, value] : root.as_object()) {
    if (name == kMetadataKey) {
      if (has_metadata) fail(where, ": '__metadata__' appears twice in the header");
      has_metadata = true;
      header.metadata = parse_metadata(where, value);
      continue;
    }
    if (!names.insert(name).second) fail(where, ": tensor '", name, "' appears twice in the header");
    header.entries.push_back(parse_entry(where, name, value));
  }
  check_tiling(where, header.entries, header.buffer_length);
  attach_checksums(where, header);
  return header;
}

}  // namespace

const char* safetensors_dtype_name(DType dtype) {
  for (const DTypeName& entry : kDTypeNames) {
    if (entry.dtype == dtype) return entry.name;
  }
  fail("safetensors_dtype_name: dtype ", dtype, " has no safetensors name");
}

void save_safetensors(const std::filesystem::path& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata, const SafetensorsWriteOptions& options) {
  std::string where = "save_safetensors: '" + path.string() + "'";
  if (metadata.count(kSafetensorsChecksumKey) != 0) {
    fail(where, ": metadata key '", kSafetensorsChecksumKey, "' is reserved for the tensors' checksums");
  }
  std::vector<PlannedTensor> plan = plan_layout(tensors, where);
  std::map<std::string, std::string> full_metadata = metadata;
  if (options.checksums) full_metadata[kSafetensorsChecksumKey] = checksums_json(plan);  // zeros for now
  const std::string header = length_prefixed(header_json(plan, full_metadata));

  AtomicFileWriter file(path, where);
  file.write(header.data(), header.size());
  for (PlannedTensor& planned : plan) planned.crc32 = write_tensor_bytes(file, planned, where);
  if (options.checksums) {
    full_metadata[kSafetensorsChecksumKey] = checksums_json(plan);
    const std::string final_header = length_prefixed(header_json(plan, full_metadata));
    if (final_header.size() != header.size()) {
      fail(where, ": internal error: the header changed length from ", header.size(), " to ", final_header.size(),
           " bytes when the checksums were filled in");
    }
    file.pwrite(final_header.data(), final_header.size(), 0);
  }
  file.commit();
}

SafetensorsHeader read_safetensors_header(const std::filesystem::path& path) { return read_header(InputFile(path)); }

SafetensorsFile load_safetensors(const std::filesystem::path& path) {
  InputFile file(path);
  SafetensorsHeader header = read_header(file);  // every check happens here, before any tensor exists

  SafetensorsFile result;
  result.metadata = std::move(header.metadata);
  result.verified = header.has_checksums;
  for (const SafetensorsEntry& entry : header.entries) {
    Tensor tensor = empty(entry.shape, {.dtype = entry.dtype});
    uint64_t length = entry.end - entry.begin;
    if (length > 0) {
      file.read_at(header.buffer_offset + entry.begin, tensor.data(), length, "tensor '" + entry.name + "'");
    }
    if (entry.crc32) {
      const uint32_t read = crc32_of(length > 0 ? tensor.data() : nullptr, length);
      if (read != *entry.crc32) {
        char numbers[64];
        std::snprintf(numbers, sizeof numbers, "saved %08x, read %08x", static_cast<unsigned>(*entry.crc32),
                      static_cast<unsigned>(read));
        fail(file.where(), ": tensor '", entry.name, "' (file bytes ",
             offsets_str(header.buffer_offset + entry.begin, header.buffer_offset + entry.end),
             ") does not match its saved CRC-32 (", numbers, "): the file is corrupted");
      }
    }
    if (entry.dtype == kBool) {
      // C++ bool must hold 0 or 1; another writer may have stored any non-zero byte as true.
      auto* bytes = static_cast<unsigned char*>(length > 0 ? tensor.data() : nullptr);
      for (uint64_t i = 0; i < length; ++i) bytes[i] = bytes[i] != 0 ? 1 : 0;
    }
    result.tensors.emplace(entry.name, std::move(tensor));
  }
  return result;
}

}  // namespace dtrain
