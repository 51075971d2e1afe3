// The CRC-32 of each tensor that dtrain writes into a safetensors header: computed over the
// tensor's bytes (checked here against zlib, computed independently), verified on load with the
// tensor and its file bytes named when one byte changed, and absent from the files other tools
// write, which still load, marked unverified. Also: a write removes the temporaries that crashed
// writers of the same file left, and nothing else.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "dtrain.h"
#include "tests/support/file_bytes.h"
#include "tests/support/temporary_directory.h"

using namespace dtrain;
using dtrain::testing::TemporaryDirectory;
using dtrain::testing::read_bytes;
using dtrain::testing::write_bytes;
using Catch::Contains;

namespace {

// A file from a header text (padded to 8) and a buffer.
std::string safetensors_bytes(std::string header, const std::string& buffer) {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i) length[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return length + header + buffer;
}

uint32_t zlib_crc32(const Tensor& tensor) {
  Tensor host = tensor.contiguous();
  uLong crc = crc32(0L, Z_NULL, 0);
  if (host.nbytes() > 0) crc = crc32(crc, static_cast<const Bytef*>(host.data()), static_cast<uInt>(host.nbytes()));
  return static_cast<uint32_t>(crc);
}

void flip_byte(const std::filesystem::path& path, uint64_t offset) {
  std::string bytes = read_bytes(path);
  REQUIRE(offset < bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x04);
  write_bytes(path, bytes);
}

// The id of a process that has ended (a child that exited at once, reaped).
pid_t ended_process_id() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

}  // namespace

TEST_CASE("safetensors: every tensor's CRC-32 is in the header, and a load checks it") {
  TemporaryDirectory directory;
  const std::map<std::string, Tensor> tensors = {
      {"weight", arange(12, {.dtype = kFloat32}).view({3, 4})},
      {"steps", from_vector<int64_t>({7, -1})},
      {"mask", from_vector<bool>({true, false, true})},
      {"empty", zeros({0, 2})},
  };
  const std::filesystem::path path = directory / "checked.safetensors";
  save_safetensors(path, tensors, {{"note", "kept"}});

  SafetensorsHeader header = read_safetensors_header(path);
  CHECK(header.has_checksums);
  CHECK(header.metadata == std::map<std::string, std::string>{{"note", "kept"}});  // the key is the format's
  for (const SafetensorsEntry& entry : header.entries) {
    INFO("tensor " << entry.name);
    REQUIRE(entry.crc32.has_value());
    CHECK(*entry.crc32 == zlib_crc32(tensors.at(entry.name)));
  }
  CHECK_THAT(read_bytes(path), Contains("\"dtrain.crc32\""));

  SafetensorsFile loaded = load_safetensors(path);
  CHECK(loaded.verified);
  CHECK(loaded.metadata == std::map<std::string, std::string>{{"note", "kept"}});
  CHECK(loaded.tensors.at("weight").to_vector<float>() == tensors.at("weight").to_vector<float>());

  // Without checksums (as another tool writes): it loads, unverified.
  save_safetensors(directory / "plain.safetensors", tensors, {}, {.checksums = false});
  CHECK_FALSE(read_safetensors_header(directory / "plain.safetensors").has_checksums);
  CHECK_FALSE(load_safetensors(directory / "plain.safetensors").verified);

  CHECK_THROWS_WITH(save_safetensors(directory / "x.safetensors", tensors, {{"dtrain.crc32", "{}"}}),
                    Contains("'dtrain.crc32' is reserved"));
}

TEST_CASE("safetensors: a flipped data byte is refused, naming the tensor and its bytes in the file") {
  TemporaryDirectory directory;
  const std::filesystem::path path = directory / "flipped.safetensors";
  save_safetensors(path, {{"first", arange(8, {.dtype = kFloat32})}, {"second", ones({5}, {.dtype = kFloat64})}});
  SafetensorsHeader header = read_safetensors_header(path);
  for (const SafetensorsEntry& entry : header.entries) {
    INFO("tensor " << entry.name);
    save_safetensors(path, {{"first", arange(8, {.dtype = kFloat32})}, {"second", ones({5}, {.dtype = kFloat64})}});
    const uint64_t begin = header.buffer_offset + entry.begin;
    const uint64_t end = header.buffer_offset + entry.end;
    flip_byte(path, begin + (entry.end - entry.begin) / 2);
    CHECK_THROWS_WITH(load_safetensors(path),
                      Contains(path.string()) && Contains("tensor '" + entry.name + "'") &&
                          Contains("file bytes [" + std::to_string(begin) + ", " + std::to_string(end) + ")") &&
                          Contains("does not match its saved CRC-32") && Contains("corrupted"));
  }
}

TEST_CASE("safetensors: damaged checksum metadata is refused, naming it") {
  TemporaryDirectory directory;
  const std::string tensor = R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  const std::string buffer("\0\0\x80\x3f", 4);  // 1.0f
  const uint32_t crc = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(buffer.data()), 4));
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(crc));
  struct Case {
    std::string checksums;  // the metadata value, JSON text
    std::string message;
  };
  const std::vector<Case> cases = {
      {"not json", "is not valid JSON"},
      {"[1]", "expected an object of checksums"},
      {R"({"w":"12"})", "tensor 'w': expected 8 hex digits"},
      {R"({"w":7})", "tensor 'w': expected 8 hex digits"},
      {"{}", "it has no checksum for tensor 'w'"},
      {std::string(R"({"w":")") + hex + R"(","ghost":"00000000"})", "a checksum for tensor 'ghost'"},
  };
  for (const Case& c : cases) {
    INFO(c.checksums);
    std::string escaped;
    for (char character : c.checksums) escaped += character == '"' ? std::string("\\\"") : std::string(1, character);
    const std::filesystem::path path = directory / "damaged.safetensors";
    write_bytes(path, safetensors_bytes(R"({"__metadata__":{"dtrain.crc32":")" + escaped + "\"}," + tensor + "}", buffer));
    CHECK_THROWS_WITH(load_safetensors(path), Contains(path.string()) && Contains("dtrain.crc32") && Contains(c.message));
  }
  // The right checksum, hand-written: it loads, verified.
  const std::filesystem::path good = directory / "good.safetensors";
  write_bytes(good, safetensors_bytes(std::string(R"({"__metadata__":{"dtrain.crc32":"{\"w\":\")") + hex + R"(\"}"},)" +
                                          tensor + "}",
                                      buffer));
  SafetensorsFile loaded = load_safetensors(good);
  CHECK(loaded.verified);
  CHECK(loaded.tensors.at("w").item() == 1.0);
}

TEST_CASE("safetensors: a write removes the temporaries that crashed writers of the same file left, nothing else") {
  TemporaryDirectory directory;
  const std::string ended = std::to_string(ended_process_id());
  const std::string running = std::to_string(::getppid());  // the process that started this test
  for (const std::string& name : std::vector<std::string>{"model.safetensors.tmp." + ended, "model.safetensors.tmp." + running,
                                                          "model.safetensors.tmp.notes", "other.safetensors.tmp." + ended,
                                                          "model.safetensors.bak"}) {
    write_bytes(directory / name, "half a file");
  }
  save_safetensors(directory / "model.safetensors", {{"x", ones({2})}});
  CHECK(directory.entries() == std::vector<std::string>{"model.safetensors", "model.safetensors.bak",
                                                        "model.safetensors.tmp." + running,
                                                        "model.safetensors.tmp.notes",
                                                        "other.safetensors.tmp." + ended});
  CHECK(load_safetensors(directory / "model.safetensors").verified);
}
