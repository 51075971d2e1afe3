#include "data/fashion_mnist.h"

#include <cstddef>
#include <string>
#include <system_error>
#include <utility>

#include "data/idx.h"

namespace dtrain {

namespace {

// The file for one part of a split, gzip'd or not; raises naming what was looked for.
std::filesystem::path find_file(const std::filesystem::path& root, const std::string& stem) {
  std::filesystem::path gzipped = root / (stem + ".gz");
  std::filesystem::path plain = root / stem;
  std::error_code error;
  if (std::filesystem::exists(gzipped, error)) return gzipped;
  if (std::filesystem::exists(plain, error)) return plain;
  fail("FashionMnist: '", gzipped.string(), "' does not exist (nor '", plain.string(),
       "'); install the dataset with `apt-get install dataset-fashion-mnist` (it goes to ", kFashionMnistDebianRoot,
       ") or pass the folder that holds the four IDX files");
}

std::pair<Tensor, Tensor> load_split(const std::filesystem::path& root, FashionMnist::Split split) {
  std::string prefix = split == FashionMnist::Split::Train ? "train" : "t10k";
  std::filesystem::path images_path = find_file(root, prefix + "-images-idx3-ubyte");
  std::filesystem::path labels_path = find_file(root, prefix + "-labels-idx1-ubyte");
  IdxArray images = read_idx(images_path);
  IdxArray labels = read_idx(labels_path);
  if (images.type != IdxType::UInt8 || images.shape.size() != 3) {
    fail("FashionMnist: '", images_path.string(), "': expected uint8 images of shape [N, rows, columns], got ",
         idx_type_name(images.type), " of shape ", images.shape);
  }
  if (labels.type != IdxType::UInt8 || labels.shape.size() != 1) {
    fail("FashionMnist: '", labels_path.string(), "': expected uint8 labels of shape [N], got ", idx_type_name(labels.type),
         " of shape ", labels.shape);
  }
  if (images.shape[0] != labels.shape[0]) {
    fail("FashionMnist: expected as many labels as images, got ", images.shape[0], " images in '", images_path.string(),
         "' and ", labels.shape[0], " labels in '", labels_path.string(), "'");
  }
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= FashionMnist::kClasses) {
      fail("FashionMnist: '", labels_path.string(), "': expected labels in [0, ", FashionMnist::kClasses, "), got ",
           int{labels.data[i]}, " at example ", i);
    }
  }
  return {idx_to_tensor(images, kFloat32, 1.0 / 255.0), idx_to_tensor(labels, kInt64)};
}

}  // namespace

FashionMnist::FashionMnist(const std::filesystem::path& root, Split split)
    : FashionMnist(load_split(root, split)) {}

FashionMnist::FashionMnist(std::pair<Tensor, Tensor> images_and_labels)
    : TensorDataset(std::move(images_and_labels.first), std::move(images_and_labels.second)) {}

const std::array<const char*, FashionMnist::kClasses>& FashionMnist::class_names() {
  static const std::array<const char*, kClasses> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace dtrain
