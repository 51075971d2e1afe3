#include "dist/checkpoint/checkpoint_index.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "dist/checkpoint/block_checksum.h"

namespace dtrain::dist {

namespace {

// Reads a JSON document with every error naming the file and the key path ("tensors.'fc.weight'.
// fragments[2].end") of what is wrong.
class JsonReader {
 public:
  explicit JsonReader(std::string where) : where_(std::move(where)) {}

  [[noreturn]] void fail_at(const std::string& key, const std::string& problem) const {
    fail(where_, ": ", key.empty() ? std::string("the document") : "'" + key + "'", ": ", problem);
  }

  const JsonValue& object(const JsonValue& value, const std::string& key) const {
    if (!value.is_object()) fail_at(key, std::string("expected an object, got ") + json_kind_name(value.kind()));
    return value;
  }

  // The member called name; raises when it is missing.
  const JsonValue& member(const JsonValue& value, const std::string& key, const std::string& name) const {
    const JsonValue* found = object(value, key).find(name);
    if (found == nullptr) fail_at(key, "expected a member '" + name + "', there is none");
    return *found;
  }

  // Raises for a member that is not in allowed, or one that appears twice (a newer or damaged file).
  void only_members(const JsonValue& value, const std::string& key, std::initializer_list<const char*> allowed) const {
    std::set<std::string> seen;
    for (const auto& [name, item] : object(value, key).as_object()) {
      bool known = false;
      for (const char* candidate : allowed) known = known || name == candidate;
      if (!known) fail_at(key, "unexpected member '" + name + "'");
      if (!seen.insert(name).second) fail_at(key, "member '" + name + "' appears twice");
    }
  }

  void unique_members(const JsonValue& value, const std::string& key) const {
    std::set<std::string> seen;
    for (const auto& [name, item] : object(value, key).as_object()) {
      if (!seen.insert(name).second) fail_at(key, "member '" + name + "' appears twice");
    }
  }

  const std::string& string(const JsonValue& value, const std::string& key) const {
    if (!value.is_string()) fail_at(key, std::string("expected a string, got ") + json_kind_name(value.kind()));
    return value.as_string();
  }

  const JsonValue::Array& array(const JsonValue& value, const std::string& key) const {
    if (!value.is_array()) fail_at(key, std::string("expected an array, got ") + json_kind_name(value.kind()));
    return value.as_array();
  }

  int64_t integer(const JsonValue& value, const std::string& key, int64_t minimum) const {
    if (!value.is_number()) fail_at(key, std::string("expected an integer, got ") + json_kind_name(value.kind()));
    int64_t result = 0;
    try {
      result = value.as_int64();
    } catch (const Error&) {
      fail_at(key, "expected an integer that fits int64, got " + value.number_text());
    }
    if (result < minimum) fail_at(key, detail::concat("expected an integer >= ", minimum, ", got ", result));
    return result;
  }

  uint64_t unsigned_integer(const JsonValue& value, const std::string& key) const {
    if (!value.is_number()) fail_at(key, std::string("expected an integer, got ") + json_kind_name(value.kind()));
    try {
      return value.as_uint64();
    } catch (const Error&) {
      fail_at(key, "expected a non-negative integer that fits uint64, got " + value.number_text());
    }
  }

  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

JsonValue shape_to_json(const Shape& shape) {
  JsonValue sizes = JsonValue::array();
  for (int64_t size : shape) sizes.push_back(JsonValue::number(size));
  return sizes;
}

Shape shape_from_json(const JsonReader& reader, const JsonValue& value, const std::string& key) {
  Shape shape;
  const JsonValue::Array& sizes = reader.array(value, key);
  for (size_t i = 0; i < sizes.size(); ++i)
    shape.push_back(reader.integer(sizes[i], detail::concat(key, "[", i, "]"), 0));
  // Guard the element count against overflow before anything multiplies it.
  int64_t elements = 1;
  for (int64_t size : shape) {
    if (size != 0 && elements > (int64_t{1} << 60) / size) reader.fail_at(key, "the shape is too large for any file");
    elements *= size;
  }
  return shape;
}

train::TrainingState training_state_from(const JsonReader& reader, const JsonValue& value, const std::string& key) {
  train::TrainingState state;
  reader.only_members(value, key, {"generators", "loaders", "metadata"});
  if (const JsonValue* generators = value.find("generators")) {
    const std::string generators_key = key + ".generators";
    reader.unique_members(*generators, generators_key);
    for (const auto& [name, entry] : reader.object(*generators, generators_key).as_object()) {
      const std::string entry_key = generators_key + "." + name;
      reader.only_members(entry, entry_key, {"seed", "offset"});
      state.generators[name] = {
          reader.unsigned_integer(reader.member(entry, entry_key, "seed"), entry_key + ".seed"),
          reader.unsigned_integer(reader.member(entry, entry_key, "offset"), entry_key + ".offset")};
    }
  }
  if (const JsonValue* loaders = value.find("loaders")) {
    const std::string loaders_key = key + ".loaders";
    reader.unique_members(*loaders, loaders_key);
    for (const auto& [name, entry] : reader.object(*loaders, loaders_key).as_object()) {
      const std::string entry_key = loaders_key + "." + name;
      reader.only_members(entry, entry_key, {"seed", "epoch", "batch"});
      state.loaders[name] = {reader.unsigned_integer(reader.member(entry, entry_key, "seed"), entry_key + ".seed"),
                             reader.integer(reader.member(entry, entry_key, "epoch"), entry_key + ".epoch", 0),
                             reader.integer(reader.member(entry, entry_key, "batch"), entry_key + ".batch", 0)};
    }
  }
  if (const JsonValue* metadata = value.find("metadata")) {
    const std::string metadata_key = key + ".metadata";
    reader.unique_members(*metadata, metadata_key);
    for (const auto& [name, entry] : reader.object(*metadata, metadata_key).as_object()) {
      state.metadata[name] = reader.string(entry, metadata_key + "." + name);
    }
  }
  return state;
}

std::string range_text(int64_t begin, int64_t end) { return detail::concat("[", begin, ", ", end, ")"); }

IndexedTensor tensor_from(const JsonReader& reader, const JsonValue& value, const std::string& key, int world_size,
                          uint64_t block_bytes) {
  reader.only_members(value, key, {"dtype", "shape", "fragments"});
  IndexedTensor tensor;
  tensor.dtype = dtype_from_safetensors_name(reader.string(reader.member(value, key, "dtype"), key + ".dtype"),
                                             reader.where() + ": '" + key + ".dtype'");
  tensor.shape = shape_from_json(reader, reader.member(value, key, "shape"), key + ".shape");
  const JsonValue::Array& fragments = reader.array(reader.member(value, key, "fragments"), key + ".fragments");
  int64_t covered = 0;  // the fragments must follow one another from 0 to numel
  for (size_t i = 0; i < fragments.size(); ++i) {
    const std::string fragment_key = detail::concat(key, ".fragments[", i, "]");
    reader.only_members(fragments[i], fragment_key, {"rank", "begin", "end", "crc32"});
    IndexedFragment fragment;
    fragment.rank =
        static_cast<int>(reader.integer(reader.member(fragments[i], fragment_key, "rank"), fragment_key + ".rank", 0));
    if (fragment.rank >= world_size) {
      reader.fail_at(fragment_key + ".rank",
                     detail::concat("expected a rank below the world size ", world_size, ", got ", fragment.rank));
    }
    fragment.begin = reader.integer(reader.member(fragments[i], fragment_key, "begin"), fragment_key + ".begin", 0);
    fragment.end = reader.integer(reader.member(fragments[i], fragment_key, "end"), fragment_key + ".end", 0);
    if (fragment.begin != covered || fragment.end <= fragment.begin || fragment.end > tensor.shape.numel()) {
      reader.fail_at(fragment_key, detail::concat("elements ", range_text(fragment.begin, fragment.end),
                                                  ": expected a non-empty run that begins at ", covered,
                                                  " and ends by ", tensor.shape.numel(),
                                                  " (the fragments must cover the tensor's elements once, in order)"));
    }
    covered = fragment.end;
    const std::string checksums_key = fragment_key + ".crc32";
    const JsonValue::Array& checksums = reader.array(reader.member(fragments[i], fragment_key, "crc32"), checksums_key);
    const uint64_t bytes = static_cast<uint64_t>(fragment.end - fragment.begin) * dtype_size(tensor.dtype);
    if (checksums.size() != block_count(bytes, block_bytes)) {
      reader.fail_at(checksums_key,
                     detail::concat("expected ", block_count(bytes, block_bytes), " checksums (one per ", block_bytes,
                                    " bytes of the run's ", bytes, "), got ", checksums.size()));
    }
    for (size_t b = 0; b < checksums.size(); ++b) {
      uint64_t checksum = reader.unsigned_integer(checksums[b], detail::concat(checksums_key, "[", b, "]"));
      if (checksum > UINT32_MAX)
        reader.fail_at(detail::concat(checksums_key, "[", b, "]"), "expected a 32-bit checksum");
      fragment.checksums.push_back(static_cast<uint32_t>(checksum));
    }
    tensor.fragments.push_back(std::move(fragment));
  }
  if (covered != tensor.shape.numel()) {
    reader.fail_at(
        key + ".fragments",
        detail::concat("the fragments cover elements [0, ", covered, ") of the tensor's ", tensor.shape.numel(),
                       " (elements ", range_text(covered, tensor.shape.numel()), " were saved by no rank)"));
  }
  return tensor;
}

}  // namespace

std::string shard_file_name(int rank, int world_size, const std::string& save_id) {
  char name[64];
  std::snprintf(name, sizeof(name), "rank-%05d-of-%05d", rank, world_size);
  return std::string(name) + (save_id.empty() ? "" : "." + save_id) + ".safetensors";
}

bool is_valid_save_id(const std::string& save_id) {
  if (save_id.size() != 16) return false;
  for (char digit : save_id) {
    if (!((digit >= '0' && digit <= '9') || (digit >= 'a' && digit <= 'f'))) return false;
  }
  return true;
}

DType dtype_from_safetensors_name(const std::string& name, const std::string& where) {
  for (DType dtype : {kFloat32, kFloat64, kBFloat16, kFloat16, kInt32, kInt64, kBool}) {
    if (name == safetensors_dtype_name(dtype)) return dtype;
  }
  fail(where, ": unknown dtype '", name, "' (expected F32, F64, BF16, F16, I32, I64 or BOOL)");
}

JsonValue training_state_to_json(const train::TrainingState& state) {
  JsonValue generators = JsonValue::object();
  for (const auto& [name, generator] : state.generators) {
    generators.add(name, JsonValue::object({{"seed", JsonValue::number(generator.seed)},
                                            {"offset", JsonValue::number(generator.offset)}}));
  }
  JsonValue loaders = JsonValue::object();
  for (const auto& [name, loader] : state.loaders) {
    loaders.add(name, JsonValue::object({{"seed", JsonValue::number(loader.seed)},
                                         {"epoch", JsonValue::number(loader.epoch)},
                                         {"batch", JsonValue::number(loader.batch)}}));
  }
  JsonValue metadata = JsonValue::object();
  for (const auto& [key, value] : state.metadata) metadata.add(key, JsonValue::string(value));
  return JsonValue::object(
      {{"generators", std::move(generators)}, {"loaders", std::move(loaders)}, {"metadata", std::move(metadata)}});
}

train::TrainingState training_state_from_json(const JsonValue& value, const std::string& where) {
  return training_state_from(JsonReader(where), value, "training_state");
}

std::string encode_index(const CheckpointIndex& index) {
  JsonValue files = JsonValue::array();
  for (size_t rank = 0; rank < index.files.size(); ++rank) {
    files.push_back(JsonValue::object({{"name", JsonValue::string(index.files[rank].name)},
                                       {"rank", JsonValue::number(rank)},
                                       {"bytes", JsonValue::number(index.files[rank].bytes)}}));
  }
  JsonValue tensors = JsonValue::object();
  for (const auto& [name, tensor] : index.tensors) {
    JsonValue fragments = JsonValue::array();
    for (const IndexedFragment& fragment : tensor.fragments) {
      JsonValue checksums = JsonValue::array();
      for (uint32_t checksum : fragment.checksums) checksums.push_back(JsonValue::number(checksum));
      fragments.push_back(JsonValue::object({{"rank", JsonValue::number(fragment.rank)},
                                             {"begin", JsonValue::number(fragment.begin)},
                                             {"end", JsonValue::number(fragment.end)},
                                             {"crc32", std::move(checksums)}}));
    }
    tensors.add(name, JsonValue::object({{"dtype", JsonValue::string(safetensors_dtype_name(tensor.dtype))},
                                         {"shape", shape_to_json(tensor.shape)},
                                         {"fragments", std::move(fragments)}}));
  }
  JsonValue root = JsonValue::object(
      {{"format", JsonValue::string(index.format)},
       {"save_id", JsonValue::string(index.save_id)},
       {"step", JsonValue::number(index.step)},
       {"world_size", JsonValue::number(index.world_size)},
       {"checksum", JsonValue::object({{"algorithm", JsonValue::string("crc32")},
                                       {"block_bytes", JsonValue::number(index.checksum_block_bytes)}})},
       {"files", std::move(files)},
       {"tensors", std::move(tensors)},
       {"training_state", training_state_to_json(index.training_state)}});
  return write_json(root) + "\n";
}

CheckpointIndex decode_index(const std::string& text, const std::filesystem::path& path) {
  JsonReader reader("sharded checkpoint index '" + path.string() + "'");
  JsonValue root;
  try {
    root = parse_json(text);
  } catch (const JsonParseError& error) {
    fail(reader.where(), ": not valid JSON: ", error.problem(), " at byte ", error.position(), " (a damaged index)");
  }
  reader.only_members(root, "",
                      {"format", "save_id", "step", "world_size", "checksum", "files", "tensors", "training_state"});
  const std::string& format = reader.string(reader.member(root, "", "format"), "format");
  if (format != kShardedCheckpointFormat && format != kShardedCheckpointFormatV1) {
    reader.fail_at("format", "expected '" + std::string(kShardedCheckpointFormat) + "' (or the older '" +
                                 kShardedCheckpointFormatV1 + "'), got '" + format + "'");
  }
  const bool v1 = format == kShardedCheckpointFormatV1;

  CheckpointIndex index;
  index.format = format;
  index.save_id = reader.string(reader.member(root, "", "save_id"), "save_id");
  if (!v1 && !is_valid_save_id(index.save_id)) {
    reader.fail_at("save_id", "expected 16 lowercase hex digits, got '" + index.save_id + "'");
  }
  index.step = reader.integer(reader.member(root, "", "step"), "step", 0);
  index.world_size = static_cast<int>(reader.integer(reader.member(root, "", "world_size"), "world_size", 1));
  if (index.world_size > 10'000'000)
    reader.fail_at("world_size", detail::concat("implausible world size ", index.world_size));

  const JsonValue& checksum = reader.member(root, "", "checksum");
  reader.only_members(checksum, "checksum", {"algorithm", "block_bytes"});
  const std::string& algorithm = reader.string(reader.member(checksum, "checksum", "algorithm"), "checksum.algorithm");
  if (algorithm != "crc32") reader.fail_at("checksum.algorithm", "expected 'crc32', got '" + algorithm + "'");
  index.checksum_block_bytes =
      reader.unsigned_integer(reader.member(checksum, "checksum", "block_bytes"), "checksum.block_bytes");
  if (index.checksum_block_bytes == 0 || index.checksum_block_bytes > (uint64_t{1} << 32)) {
    reader.fail_at("checksum.block_bytes",
                   detail::concat("expected 1 to 2^32 bytes, got ", index.checksum_block_bytes));
  }

  const JsonValue::Array& files = reader.array(reader.member(root, "", "files"), "files");
  if (files.size() != static_cast<size_t>(index.world_size)) {
    reader.fail_at("files", detail::concat("expected one file per rank, ", index.world_size, ", got ", files.size()));
  }
  for (size_t rank = 0; rank < files.size(); ++rank) {
    const std::string key = detail::concat("files[", rank, "]");
    reader.only_members(files[rank], key, {"name", "rank", "bytes"});
    IndexedFile file;
    file.name = reader.string(reader.member(files[rank], key, "name"), key + ".name");
    int64_t file_rank = reader.integer(reader.member(files[rank], key, "rank"), key + ".rank", 0);
    // The canonical name only: an index can point at no file outside its directory.
    const std::string expected = shard_file_name(static_cast<int>(rank), index.world_size, v1 ? "" : index.save_id);
    if (file_rank != static_cast<int64_t>(rank) || file.name != expected) {
      reader.fail_at(key, detail::concat("expected rank ", rank, "'s file '", expected, "', got rank ", file_rank,
                                         " and '", file.name, "'"));
    }
    file.bytes = reader.unsigned_integer(reader.member(files[rank], key, "bytes"), key + ".bytes");
    index.files.push_back(std::move(file));
  }

  const JsonValue& tensors = reader.member(root, "", "tensors");
  reader.unique_members(tensors, "tensors");
  for (const auto& [name, value] : reader.object(tensors, "tensors").as_object()) {
    index.tensors.emplace(name,
                          tensor_from(reader, value, "tensors." + name, index.world_size, index.checksum_block_bytes));
  }
  index.training_state = training_state_from(reader, reader.member(root, "", "training_state"), "training_state");
  index.training_state.step = index.step;
  index.training_state.source = path;
  return index;
}

std::map<std::string, std::string> encode_shard_metadata(const ShardMetadata& shard,
                                                         const std::string& fragments_json) {
  return {{"format", kShardedCheckpointFormat},
          {"save_id", shard.save_id},
          {"step", std::to_string(shard.step)},
          {"rank", std::to_string(shard.rank)},
          {"world_size", std::to_string(shard.world_size)},
          {"training_state", write_json(training_state_to_json(shard.training_state))},
          {"fragments", fragments_json}};
}

ShardMetadata decode_shard_metadata(const std::map<std::string, std::string>& metadata,
                                    const std::filesystem::path& path) {
  const std::string where = "shard file '" + path.string() + "'";
  auto value = [&](const char* key) -> const std::string& {
    auto found = metadata.find(key);
    if (found == metadata.end())
      fail(where, ": its metadata has no '", key, "' (not a shard of a dtrain sharded checkpoint)");
    return found->second;
  };
  auto integer = [&](const char* key) {
    try {
      return parse_json(value(key)).as_int64();
    } catch (const Error&) {
      fail(where, ": metadata '", key, "' is '", value(key), "', expected an integer");
    }
  };
  if (value("format") != kShardedCheckpointFormat && value("format") != kShardedCheckpointFormatV1) {
    fail(where, ": metadata 'format' is '", value("format"), "', expected '", kShardedCheckpointFormat, "'");
  }
  ShardMetadata shard;
  shard.save_id = value("save_id");
  shard.step = integer("step");
  shard.rank = static_cast<int>(integer("rank"));
  shard.world_size = static_cast<int>(integer("world_size"));
  JsonValue state;
  try {
    state = parse_json(value("training_state"));
  } catch (const JsonParseError& error) {
    fail(where, ": metadata 'training_state' is not valid JSON: ", error.problem());
  }
  shard.training_state = training_state_from_json(state, where + " metadata");
  shard.training_state.step = shard.step;
  shard.training_state.source = path;
  return shard;
}

void write_index(const std::filesystem::path& dir, const CheckpointIndex& index) {
  const std::filesystem::path path = dir / kCheckpointIndexFileName;
  const std::string text = encode_index(index);
  AtomicFileWriter file(path, "writing the sharded checkpoint index '" + path.string() + "'");
  file.write(text.data(), text.size());
  file.commit();
}

CheckpointIndex read_index(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / kCheckpointIndexFileName;
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    fail("sharded checkpoint '", dir.string(), "': expected a directory, there is none");
  }
  if (!std::filesystem::exists(path, error)) {
    fail("sharded checkpoint '", dir.string(), "': its index '", path.string(),
         "' does not exist: the save that wrote this directory did not finish (the index is written last), or it is "
         "not a sharded checkpoint");
  }
  std::ifstream input(path, std::ios::binary);
  if (!input)
    fail("sharded checkpoint index '", path.string(), "': cannot open it for reading: ", std::strerror(errno));
  std::ostringstream text;
  text << input.rdbuf();
  if (input.bad()) fail("sharded checkpoint index '", path.string(), "': reading it failed");
  return decode_index(text.str(), path);
}

}  // namespace dtrain::dist
