// safetensors I/O: round trips, the exact bytes of the format, files written by the reference
// implementation, and every way a file can be refused.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>
#include <cstdint>

#include "dtrain.h"
#include "tests/support/file_bytes.h"
#include "tests/support/temporary_directory.h"

using namespace dtrain;
using dtrain::testing::TemporaryDirectory;
using dtrain::testing::read_bytes;
using dtrain::testing::write_bytes;
using Catch::Contains;

namespace {

// The raw bytes of a tensor's values in row-major order.
std::string tensor_bytes(const Tensor& tensor) {
  Tensor host = tensor.contiguous();
  if (host.nbytes() == 0) return {};
  return std::string(static_cast<const char*>(host.data()), host.nbytes());
}

std::string little_endian_u64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>((value >> (8 * i)) & 0xff);
  return bytes;
}

template <typename T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A file from a header text (padded to 8 as the reference does) and a buffer.
std::string safetensors_bytes(std::string header, const std::string& buffer) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return little_endian_u64(header.size()) + header + buffer;
}

// The reference test file, written by Python's safetensors (tests/data/make_reference_safetensors.py).
std::filesystem::path reference_file() {
  // From the build (tests/CMakeLists.txt): __FILE__ is relative where ccache's base_dir is set.
  return std::filesystem::path(DTRAIN_TEST_DATA_DIR) / "reference.safetensors";
}

// The same tensors as the reference file holds, made in dtrain.
std::map<std::string, Tensor> reference_tensors() {
  return {
      {"weight", from_vector<float>({1.5f, -2.0f, 3.25f, 0.0f, 4.0f, -0.5f}, {2, 3})},
      {"double", from_vector<double>({1e-300, -2.5})},
      {"half", from_vector<float>({1.0f, -0.5f, 65504.0f}, {3}, {.dtype = kFloat16})},
      {"ints", from_vector<int32_t>({-7, 2147483647})},
      {"longs", from_vector<int64_t>({-1, 9007199254740993ll}, {2, 1})},
      {"mask", from_vector<bool>({true, false, true})},
      {"scalar", scalar_tensor(3.0, kFloat32)},
      {"empty", zeros({0, 4})},
  };
}

}  // namespace

TEST_CASE("safetensors: every dtype round-trips bit for bit") {
  TemporaryDirectory directory;
  std::map<std::string, Tensor> tensors = {
      {"f32", from_vector<float>({1.5f, -0.0f, 3.4e38f, 1e-45f}, {2, 2})},
      {"f64", from_vector<double>({3.141592653589793, -1e-308})},
      {"bf16", from_vector<float>({1.0f, -2.5f, 3.0e38f}, {3}, {.dtype = kBFloat16})},
      {"f16", from_vector<float>({1.0f, -0.000061035156f, 65504.0f}, {3}, {.dtype = kFloat16})},
      {"i32", from_vector<int32_t>({-2147483647 - 1, 0, 2147483647}, {3, 1})},
      {"i64", from_vector<int64_t>({std::numeric_limits<int64_t>::min(), 42, std::numeric_limits<int64_t>::max()})},
      {"bool", from_vector<bool>({true, false, false, true}, {2, 2})},
  };
  save_safetensors(directory / "all.safetensors", tensors);
  SafetensorsFile loaded = load_safetensors(directory / "all.safetensors");
  REQUIRE(loaded.tensors.size() == tensors.size());
  for (const auto& [name, tensor] : tensors) {
    INFO("tensor " << name);
    REQUIRE(loaded.tensors.count(name) == 1);
    const Tensor& back = loaded.tensors.at(name);
    CHECK(back.dtype() == tensor.dtype());
    CHECK(back.shape() == tensor.shape());
    CHECK(back.device() == Device::cpu());
    CHECK(back.is_contiguous());
    CHECK(tensor_bytes(back) == tensor_bytes(tensor));
  }
  CHECK(loaded.metadata.empty());
}

TEST_CASE("safetensors: non-contiguous, 0-d and zero-size tensors") {
  TemporaryDirectory directory;
  Tensor matrix = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor transposed = matrix.t();                  // strides (1, 3)
  Tensor strided = arange(10).slice(0, 1, 10, 3);  // 1, 4, 7
  std::map<std::string, Tensor> tensors = {
      {"transposed", transposed},
      {"strided", strided},
      {"scalar", scalar_tensor(-7.25, kFloat64)},
      {"empty", zeros({0, 5}, {.dtype = kInt32})},
      {"empty_vector", zeros({0})},
  };
  REQUIRE_FALSE(transposed.is_contiguous());
  save_safetensors(directory / "shapes.safetensors", tensors);
  SafetensorsFile loaded = load_safetensors(directory / "shapes.safetensors");
  CHECK(loaded.tensors.at("transposed").shape() == Shape{3, 2});
  CHECK(loaded.tensors.at("transposed").to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK(loaded.tensors.at("strided").to_vector<int64_t>() == std::vector<int64_t>{1, 4, 7});
  CHECK(loaded.tensors.at("scalar").dim() == 0);
  CHECK(loaded.tensors.at("scalar").item() == -7.25);
  CHECK(loaded.tensors.at("empty").shape() == Shape{0, 5});
  CHECK(loaded.tensors.at("empty").dtype() == kInt32);
  CHECK(loaded.tensors.at("empty_vector").shape() == Shape{0});

  SafetensorsHeader header = read_safetensors_header(directory / "shapes.safetensors");
  for (const SafetensorsEntry& entry : header.entries) {
    if (entry.name == "scalar") CHECK(entry.shape.empty());
    if (entry.name == "empty") CHECK(entry.begin == entry.end);
  }
}

TEST_CASE("safetensors: metadata round-trips, escapes included") {
  TemporaryDirectory directory;
  std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"step", "1200"},
      {"quoted \"key\"", "line\nbreak\ttab \\ slash \xc3\xa9"},
      {"empty", ""},
  };
  save_safetensors(directory / "meta.safetensors", {{"x", ones({2})}}, metadata);
  SafetensorsFile loaded = load_safetensors(directory / "meta.safetensors");
  CHECK(loaded.metadata == metadata);
  CHECK(read_safetensors_header(directory / "meta.safetensors").metadata == metadata);
  // Metadata alone, no tensors, is a valid file too.
  save_safetensors(directory / "only-meta.safetensors", {}, {{"k", "v"}});
  SafetensorsFile only = load_safetensors(directory / "only-meta.safetensors");
  CHECK(only.tensors.empty());
  CHECK(only.metadata.at("k") == "v");
}

TEST_CASE("safetensors: the writer produces the format's exact bytes") {
  TemporaryDirectory directory;
  // From the spec: N little-endian, the JSON header (metadata first, then tensors in buffer
  // order: I64 before F32 before BOOL), spaces to a multiple of 8, then the buffer. (Without
  // dtrain's checksum metadata, which test_safetensors_checksums.cpp covers.)
  std::map<std::string, Tensor> tensors = {
      {"b", from_vector<float>({1.0f, 2.0f})},
      {"a", from_vector<int64_t>({5})},
      {"m", from_vector<bool>({true})},
  };
  save_safetensors(directory / "exact.safetensors", tensors, {{"k", "v"}}, {.checksums = false});
  std::string header =
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"m":{"dtype":"BOOL","shape":[1],"data_offsets":[16,17]}})";
  std::string buffer = raw<int64_t>({5}) + raw<float>({1.0f, 2.0f}) + std::string(1, '\x01');
  std::string expected = safetensors_bytes(header, buffer);
  CHECK((expected.size() - buffer.size()) % 8 == 0);
  CHECK(read_bytes(directory / "exact.safetensors") == expected);
}

TEST_CASE("safetensors: hand-built bytes from the spec load to the right values") {
  TemporaryDirectory directory;
  // Tensors listed out of buffer order, with whitespace in the JSON, BF16 from its bit pattern
  // (the upper half of a float32: 0x3f80 = 1.0, 0xc040 = -3.0), and a BOOL byte of 2 (true).
  std::string header = R"({ "w" : {"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},
                            "h": {"dtype": "BF16", "shape": [2], "data_offsets": [24, 28]},
                            "i": {"dtype":"I64","shape":[1],"data_offsets":[0,8]},
                            "flags": {"dtype":"BOOL","shape":[2],"data_offsets":[28,30]},
                            "__metadata__": {"source": "hand"} })";
  std::string buffer = raw<int64_t>({-3}) + raw<float>({0.5f, 1.5f, -2.0f, 8.0f}) + raw<uint16_t>({0x3f80, 0xc040}) +
                       std::string("\x02\x00", 2);
  write_bytes(directory / "hand.safetensors", safetensors_bytes(header, buffer));

  SafetensorsFile loaded = load_safetensors(directory / "hand.safetensors");
  CHECK(loaded.tensors.at("i").to_vector<int64_t>() == std::vector<int64_t>{-3});
  CHECK(loaded.tensors.at("w").shape() == Shape{2, 2});
  CHECK(loaded.tensors.at("w").to_vector<float>() == std::vector<float>{0.5f, 1.5f, -2.0f, 8.0f});
  CHECK(loaded.tensors.at("h").dtype() == kBFloat16);
  CHECK(loaded.tensors.at("h").to_vector<float>() == std::vector<float>{1.0f, -3.0f});
  CHECK(loaded.tensors.at("flags").to_vector<bool>() == std::vector<bool>{true, false});
  CHECK(tensor_bytes(loaded.tensors.at("flags")) == std::string("\x01\x00", 2));
  CHECK(loaded.metadata.at("source") == "hand");

  SafetensorsHeader info = read_safetensors_header(directory / "hand.safetensors");
  REQUIRE(info.entries.size() == 4);
  CHECK(info.entries[0].name == "i");  // in buffer order
  CHECK(info.entries[1].name == "w");
  CHECK(info.entries[1].dtype == kFloat32);
  CHECK(info.entries[1].shape == Shape{2, 2});
  CHECK(info.entries[1].begin == 8);
  CHECK(info.entries[1].end == 24);
  CHECK(info.entries[3].name == "flags");
  CHECK(info.buffer_offset == 8 + info.header_length);
  CHECK(info.buffer_length == 30);
}

TEST_CASE("safetensors: reads a file written by the reference implementation, and writes the same bytes") {
  std::filesystem::path reference = reference_file();
  REQUIRE(std::filesystem::exists(reference));
  SafetensorsFile loaded = load_safetensors(reference);
  std::map<std::string, Tensor> expected = reference_tensors();
  REQUIRE(loaded.tensors.size() == expected.size());
  for (const auto& [name, tensor] : expected) {
    INFO("tensor " << name);
    const Tensor& back = loaded.tensors.at(name);
    CHECK(back.dtype() == tensor.dtype());
    CHECK(back.shape() == tensor.shape());
    CHECK(tensor_bytes(back) == tensor_bytes(tensor));
  }
  CHECK(loaded.metadata == std::map<std::string, std::string>{{"format", "np"}});
  CHECK_FALSE(loaded.verified);  // no checksums in it: loaded, and said to be unchecked

  TemporaryDirectory directory;
  save_safetensors(directory / "mine.safetensors", expected, {{"format", "np"}}, {.checksums = false});
  CHECK(read_bytes(directory / "mine.safetensors") == read_bytes(reference));
}

TEST_CASE("safetensors: writes are atomic and leave no temporary file") {
  TemporaryDirectory directory;
  std::filesystem::path path = directory / "model.safetensors";
  save_safetensors(path, {{"x", ones({3})}});
  CHECK(directory.entries() == std::vector<std::string>{"model.safetensors"});

  // Overwriting replaces the file whole.
  save_safetensors(path, {{"y", zeros({2}, {.dtype = kInt64})}});
  CHECK(directory.entries() == std::vector<std::string>{"model.safetensors"});
  SafetensorsFile loaded = load_safetensors(path);
  CHECK(loaded.tensors.count("x") == 0);
  CHECK(loaded.tensors.at("y").to_vector<int64_t>() == std::vector<int64_t>{0, 0});

  // A write that fails midway keeps the old file and leaves no temporary behind.
  Tensor released = ones({4});
  released.storage()->release();
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"a", ones({1})}, {"released", released}}),
                      Contains("tensor 'released'") && Contains("storage is released"));
  CHECK(directory.entries() == std::vector<std::string>{"model.safetensors"});
  CHECK(load_safetensors(path).tensors.count("y") == 1);

  REQUIRE_THROWS_WITH(save_safetensors(path, {{"undefined", Tensor()}}),
                      Contains(path.string()) && Contains("tensor 'undefined'") && Contains("undefined"));
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"__metadata__", ones({1})}}), Contains("reserved"));
  REQUIRE_THROWS_WITH(save_safetensors(directory / "missing-folder" / "x.safetensors", {{"x", ones({1})}}),
                      Contains("missing-folder") && Contains("cannot create the temporary file"));
  CHECK(directory.entries() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("safetensors: a refused file names the file, the tensor and the problem") {
  TemporaryDirectory directory;
  const std::string good_x = R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string buffer8 = raw<float>({1.0f, 2.0f});

  struct Case {
    const char* what;
    std::string bytes;
    std::vector<std::string> message;  // every part must appear
  };
  std::vector<Case> cases = {
      {"shorter than the length field", std::string("\x10\x00\x00", 3), {"3 bytes, too short for the 8-byte header length"}},
      {"empty file", std::string(), {"0 bytes, too short"}},
      {"absurd header length", little_endian_u64(uint64_t{1} << 40) + "{}", {"header length 1099511627776 is absurd"}},
      {"header longer than the file", little_endian_u64(64) + "{}      ", {"header length 64 exceeds the 8 bytes"}},
      {"invalid JSON", safetensors_bytes(R"({"x":{"dtype":"F32",})", ""),
       {"not valid JSON", "expected a string key, got '}' at header byte 20 (file byte 28)"}},
      {"header not an object", safetensors_bytes("[1]", ""), {"expected the header to be a JSON object, got an array"}},
      {"unknown dtype", safetensors_bytes(R"({"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "ab"),
       {"tensor 'x'", "unknown dtype 'U8'"}},
      {"dtype not a string", safetensors_bytes(R"({"x":{"dtype":4,"shape":[2],"data_offsets":[0,2]}})", "ab"),
       {"tensor 'x'", "expected 'dtype' to be a string, got a number"}},
      {"missing shape", safetensors_bytes(R"({"x":{"dtype":"F32","data_offsets":[0,8]}})", buffer8),
       {"tensor 'x'", "no 'shape'"}},
      {"negative size", safetensors_bytes(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", buffer8),
       {"tensor 'x'", "non-negative integers, got -2"}},
      {"fractional size", safetensors_bytes(R"({"x":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", buffer8),
       {"tensor 'x'", "non-negative integers, got 2.5"}},
      {"huge shape", safetensors_bytes(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", buffer8),
       {"tensor 'x'", "too large"}},
      {"bad data_offsets", safetensors_bytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", buffer8),
       {"tensor 'x'", "expected 'data_offsets' to be [begin, end]", "got [0]"}},
      {"offsets end before they begin", safetensors_bytes(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", buffer8),
       {"tensor 'x'", "end before they begin"}},
      {"size does not match the offsets",
       safetensors_bytes(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", buffer8),
       {"tensor 'x'", "shape [3] of F32 needs 12 bytes, but data_offsets [0,8] hold 8"}},
      {"overlapping tensors",
       safetensors_bytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         buffer8),
       {"tensor 'y'", "[4, 8) overlap tensor 'x' at [0, 8)"}},
      {"a gap between tensors",
       safetensors_bytes(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         buffer8 + "1234"),
       {"tensor 'y'", "leave buffer bytes [4, 8) before it unused"}},
      {"offsets past the buffer", safetensors_bytes("{" + good_x + "}", "1234"),
       {"tensor 'x'", "[0, 8) reach past the end of the 4-byte data buffer"}},
      {"trailing bytes no tensor covers", safetensors_bytes("{" + good_x + "}", buffer8 + "extra"),
       {"the tensors cover 8 bytes of the data buffer, but it holds 13"}},
      {"duplicated name", safetensors_bytes("{" + good_x + "," + good_x + "}", buffer8), {"tensor 'x' appears twice"}},
      {"metadata not strings", safetensors_bytes(R"({"__metadata__":{"step":12}})", ""),
       {"metadata 'step': expected a string value, got a number"}},
      {"metadata not an object", safetensors_bytes(R"({"__metadata__":"v"})", ""), {"'__metadata__' to be an object"}},
      {"entry not an object", safetensors_bytes(R"({"x":[1,2]})", ""), {"tensor 'x'", "expected an object", "got an array"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    INFO("case: " << c.what);
    std::filesystem::path path = directory / ("bad-" + std::to_string(i) + ".safetensors");
    write_bytes(path, c.bytes);
    try {
      load_safetensors(path);
      FAIL("load_safetensors accepted the file");
    } catch (const Error& error) {
      std::string message = error.what();
      CHECK_THAT(message, Contains(path.string()));
      for (const std::string& part : c.message) CHECK_THAT(message, Contains(part));
    }
    // The header reader refuses the same files with the same message.
    CHECK_THROWS_WITH(read_safetensors_header(path), Contains(path.string()));
  }
  REQUIRE_THROWS_WITH(load_safetensors(directory / "absent.safetensors"),
                      Contains("absent.safetensors") && Contains("cannot open it for reading"));
}

TEST_CASE("safetensors: a truncated file is refused naming the tensor cut off") {
  TemporaryDirectory directory;
  std::filesystem::path path = directory / "full.safetensors";
  save_safetensors(path, {{"first", ones({4}, {.dtype = kFloat64})}, {"second", ones({8})}});
  std::string bytes = read_bytes(path);
  std::filesystem::path cut = directory / "cut.safetensors";
  write_bytes(cut, bytes.substr(0, bytes.size() - 5));  // F64 goes first, so the F32 tensor is cut
  REQUIRE_THROWS_WITH(load_safetensors(cut), Contains(cut.string()) && Contains("tensor 'second'") &&
                                                 Contains("reach past the end") && Contains("truncated"));
  write_bytes(cut, bytes.substr(0, 20));  // inside the header
  REQUIRE_THROWS_WITH(load_safetensors(cut), Contains(cut.string()) && Contains("exceeds"));
}
