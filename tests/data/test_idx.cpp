// IDX files (gzip'd and plain) and the Fashion-MNIST dataset built on them.
#include <catch2/catch.hpp>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "dtrain.h"
#include "tests/support/temporary_directory.h"

using namespace dtrain;
using dtrain::testing::TemporaryDirectory;
using Catch::Contains;

namespace {


// An IDX file's bytes: magic (0, 0, type, rank), big-endian sizes, then the body as given.
std::string idx_bytes(uint8_t type, const std::vector<uint32_t>& sizes, const std::string& body) {
  std::string bytes = {'\0', '\0', static_cast<char>(type), static_cast<char>(sizes.size())};
  for (uint32_t size : sizes) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((size >> shift) & 0xff);
  }
  return bytes + body;
}

void write_gzip(const std::filesystem::path& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(file) == Z_OK);
}

void write_plain(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string bytes_of(std::initializer_list<int> values) {
  std::string bytes;
  for (int value : values) bytes += static_cast<char>(value);
  return bytes;
}

}  // namespace

TEST_CASE("idx: a gzip'd uint8 file reads back with its shape and values") {
  TemporaryDirectory directory;
  std::filesystem::path path = directory / "images-idx3-ubyte.gz";
  write_gzip(path, idx_bytes(0x08, {2, 2, 3}, bytes_of({0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255})));
  IdxArray array = read_idx(path);
  CHECK(array.type == IdxType::UInt8);
  CHECK(array.shape == Shape{2, 2, 3});
  REQUIRE(array.data.size() == 12);
  CHECK(int{array.data[11]} == 255);

  Tensor images = idx_to_tensor(array, kFloat32, 1.0 / 255.0);
  CHECK(images.shape() == Shape{2, 2, 3});
  CHECK(images.dtype() == kFloat32);
  std::vector<float> values = images.to_vector<float>();
  CHECK(values[0] == 0.0f);
  CHECK(values[1] == Approx(1.0 / 255.0));
  CHECK(values[11] == 1.0f);
  CHECK(idx_to_tensor(array, kInt64).to_vector<int64_t>()[6] == 250);
}

TEST_CASE("idx: multi-byte elements are big-endian, and plain files read as well as gzip files") {
  TemporaryDirectory directory;
  // int16 -2 and 258, float32 1.5 (0x3fc00000), int32 -100000 (0xfffe7960).
  write_plain(directory / "shorts.idx", idx_bytes(0x0B, {2}, bytes_of({0xff, 0xfe, 0x01, 0x02})));
  write_gzip(directory / "floats.idx.gz", idx_bytes(0x0D, {1, 1}, bytes_of({0x3f, 0xc0, 0x00, 0x00})));
  write_plain(directory / "ints.idx", idx_bytes(0x0C, {1}, bytes_of({0xff, 0xfe, 0x79, 0x60})));
  CHECK(idx_to_tensor(read_idx(directory / "shorts.idx"), kInt32).to_vector<int32_t>() == std::vector<int32_t>{-2, 258});
  Tensor floats = idx_to_tensor(read_idx(directory / "floats.idx.gz"), kFloat64);
  CHECK(floats.shape() == Shape{1, 1});
  CHECK(floats.to_vector<double>() == std::vector<double>{1.5});
  CHECK(idx_to_tensor(read_idx(directory / "ints.idx"), kInt64).to_vector<int64_t>() == std::vector<int64_t>{-100000});
}

// Found by tests/fuzz/fuzz_idx under UBSan ("-1e+30 is outside the range of representable values
// of type 'long'"): a float file's element converted to an integer dtype was undefined behaviour.
TEST_CASE("idx: float elements that an integer dtype cannot hold are refused, naming the element") {
  IdxArray array;
  array.type = IdxType::Float32;
  array.shape = Shape{4};
  const float elements[] = {2.75f, -1e30f, std::numeric_limits<float>::quiet_NaN(), 3e9f};
  array.data.resize(sizeof(elements));
  std::memcpy(array.data.data(), elements, sizeof(elements));
  REQUIRE_THROWS_WITH(idx_to_tensor(array, kInt64), Contains("element 1 is -1e+30") && Contains("int64 cannot hold"));
  std::memcpy(array.data.data() + 4, &elements[0], sizeof(float));
  REQUIRE_THROWS_WITH(idx_to_tensor(array, kInt64), Contains("element 2 is nan") && Contains("int64 cannot hold"));
  std::memcpy(array.data.data() + 8, &elements[0], sizeof(float));
  REQUIRE_THROWS_WITH(idx_to_tensor(array, kInt32), Contains("element 3 is 3e+09") && Contains("int32 cannot hold"));
  // In range, fractions truncate toward zero as before.
  CHECK(idx_to_tensor(array, kInt64).to_vector<int64_t>() == std::vector<int64_t>{2, 2, 2, 3000000000});
  CHECK(idx_to_tensor(array, kFloat32, 2.0).to_vector<float>() == std::vector<float>{5.5f, 5.5f, 5.5f, 6e9f});
}

TEST_CASE("idx: bad files are refused with the path and the problem") {
  TemporaryDirectory directory;
  std::filesystem::path missing = directory / "missing.gz";
  REQUIRE_THROWS_WITH(read_idx(missing), Contains(missing.string()) && Contains("does not exist"));

  std::filesystem::path magic = directory / "magic.gz";
  write_gzip(magic, "PK\x03\x04 not an idx file");
  REQUIRE_THROWS_WITH(read_idx(magic), Contains(magic.string()) && Contains("expected an IDX magic") && Contains("not an IDX file"));

  std::filesystem::path type = directory / "type.gz";
  write_gzip(type, idx_bytes(0x07, {1}, "x"));
  REQUIRE_THROWS_WITH(read_idx(type), Contains(type.string()) && Contains("expected an IDX magic"));

  std::filesystem::path tiny = directory / "tiny.gz";
  write_gzip(tiny, std::string("\0\0", 2));
  REQUIRE_THROWS_WITH(read_idx(tiny), Contains(tiny.string()) && Contains("4-byte IDX magic, got a file of 2 bytes"));

  std::filesystem::path sizes = directory / "sizes.gz";
  write_gzip(sizes, idx_bytes(0x08, {3, 4}, "").substr(0, 9));
  REQUIRE_THROWS_WITH(read_idx(sizes), Contains(sizes.string()) && Contains("expected 2 sizes"));

  std::filesystem::path truncated = directory / "truncated.gz";
  write_gzip(truncated, idx_bytes(0x08, {2, 3}, "abcd"));
  REQUIRE_THROWS_WITH(read_idx(truncated), Contains(truncated.string()) && Contains("expected 6 bytes of uint8 data for shape [2, 3]") &&
                                               Contains("ends after 4 (truncated?)"));

  std::filesystem::path trailing = directory / "trailing.gz";
  write_gzip(trailing, idx_bytes(0x08, {2}, "abc"));
  REQUIRE_THROWS_WITH(read_idx(trailing), Contains(trailing.string()) && Contains("it goes on"));

  std::filesystem::path absurd = directory / "absurd.gz";
  write_gzip(absurd, idx_bytes(0x0E, {4000000000u, 4000000000u}, ""));
  REQUIRE_THROWS_WITH(read_idx(absurd), Contains(absurd.string()) && Contains("more than 2^40 bytes"));

  // Found by tests/fuzz/fuzz_idx: a zero size let the other sizes pass the cap, and the tensor's
  // strides overflowed int64.
  std::filesystem::path empty_but_absurd = directory / "empty_but_absurd.gz";
  write_gzip(empty_but_absurd, idx_bytes(0x0E, {0, 4000000000u, 4000000000u}, ""));
  REQUIRE_THROWS_WITH(read_idx(empty_but_absurd), Contains(empty_but_absurd.string()) && Contains("more than 2^40 bytes"));

  // A gzip stream cut short: zlib reports the damage, or the body comes up short.
  std::filesystem::path whole = directory / "whole.gz";
  std::string body(5000, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7919) % 251);
  write_gzip(whole, idx_bytes(0x08, {5000}, body));
  std::ifstream in(whole, std::ios::binary);
  std::string compressed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::path cut = directory / "cut.gz";
  write_plain(cut, compressed.substr(0, compressed.size() / 2));
  REQUIRE_THROWS_WITH(read_idx(cut), Contains(cut.string()));
}

TEST_CASE("fashion-mnist: a dataset folder of four small IDX files") {
  TemporaryDirectory directory;
  // Three 2x2 "images" and their labels; the test split holds one.
  write_gzip(directory / "train-images-idx3-ubyte.gz", idx_bytes(0x08, {3, 2, 2}, bytes_of({0, 255, 51, 102, 1, 2, 3, 4, 9, 9, 9, 9})));
  write_gzip(directory / "train-labels-idx1-ubyte.gz", idx_bytes(0x08, {3}, bytes_of({9, 0, 3})));
  write_plain(directory / "t10k-images-idx3-ubyte", idx_bytes(0x08, {1, 2, 2}, bytes_of({5, 5, 5, 5})));
  write_plain(directory / "t10k-labels-idx1-ubyte", idx_bytes(0x08, {1}, bytes_of({7})));

  FashionMnist train(directory.path(), FashionMnist::Split::Train);
  CHECK(train.size() == 3);
  CHECK(train.images().shape() == Shape{3, 2, 2});
  CHECK(train.images().dtype() == kFloat32);
  CHECK(train.labels().dtype() == kInt64);
  CHECK(train.labels().to_vector<int64_t>() == std::vector<int64_t>{9, 0, 3});
  std::vector<float> first = train.get(0).input.to_vector<float>();
  REQUIRE(first.size() == 4);
  CHECK(first[0] == 0.0f);
  CHECK(first[1] == 1.0f);
  CHECK(first[2] == Approx(0.2));
  CHECK(first[3] == Approx(0.4));
  CHECK(train.get(0).target.item() == 9);
  Batch batch = train.get_batch({2, 0});
  CHECK(batch.inputs.shape() == Shape{2, 2, 2});
  CHECK(batch.targets.to_vector<int64_t>() == std::vector<int64_t>{3, 9});

  FashionMnist test(directory.path(), FashionMnist::Split::Test);  // found without .gz
  CHECK(test.size() == 1);
  CHECK(test.labels().to_vector<int64_t>() == std::vector<int64_t>{7});
  CHECK(std::string(FashionMnist::class_names()[9]) == "Ankle boot");
}

TEST_CASE("fashion-mnist: missing or inconsistent files are named") {
  TemporaryDirectory directory;
  std::filesystem::path images = directory / "train-images-idx3-ubyte.gz";
  REQUIRE_THROWS_WITH(FashionMnist(directory.path(), FashionMnist::Split::Train),
                      Contains(images.string()) && Contains("apt-get install dataset-fashion-mnist"));

  write_gzip(images, idx_bytes(0x08, {2, 1, 1}, bytes_of({1, 2})));
  write_gzip(directory / "train-labels-idx1-ubyte.gz", idx_bytes(0x08, {3}, bytes_of({1, 2, 3})));
  REQUIRE_THROWS_WITH(FashionMnist(directory.path()), Contains("expected as many labels as images, got 2 images"));

  write_gzip(directory / "train-labels-idx1-ubyte.gz", idx_bytes(0x08, {2}, bytes_of({1, 12})));
  REQUIRE_THROWS_WITH(FashionMnist(directory.path()), Contains("expected labels in [0, 10), got 12 at example 1"));

  write_gzip(images, idx_bytes(0x08, {2, 1}, bytes_of({1, 2})));
  REQUIRE_THROWS_WITH(FashionMnist(directory.path()), Contains(images.string()) && Contains("shape [N, rows, columns]"));
}

TEST_CASE("fashion-mnist: the Debian dataset, when installed") {
  if (!std::filesystem::exists(std::filesystem::path(kFashionMnistDebianRoot) / "train-labels-idx1-ubyte.gz")) {
    WARN("dataset-fashion-mnist is not installed; skipping the check on the real data");
    return;
  }
  FashionMnist train;  // the Debian folder, train split
  CHECK(train.size() == 60000);
  CHECK(train.images().shape() == Shape{60000, 28, 28});
  CHECK(train.get(0).target.item() == 9);  // the first training image is an ankle boot
  std::vector<float> first = train.get(0).input.to_vector<float>();
  double sum = 0;
  float largest = 0;
  for (float pixel : first) {
    sum += pixel;
    largest = std::max(largest, pixel);
  }
  CHECK(largest == 1.0f);
  CHECK(sum * 255.0 == Approx(76247.0));  // the raw pixel sum of image 0

  FashionMnist test(kFashionMnistDebianRoot, FashionMnist::Split::Test);
  CHECK(test.size() == 10000);
  CHECK(test.labels().to_vector<int64_t>()[0] == 9);
  CHECK(test.labels().to_vector<int64_t>()[1] == 2);
}
