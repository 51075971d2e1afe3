#pragma once
// Fashion-MNIST (Zalando's 28x28 grey clothing images, 10 classes) from its four IDX files, as
// Debian's dataset-fashion-mnist package installs them.
#include <array>
#include <cstdint>
#include <filesystem>
#include <utility>

#include "data/dataset.h"

namespace dtrain {

inline constexpr const char* kFashionMnistDebianRoot = "/usr/share/datasets/fashion-mnist";

// Examples: input float32 [28, 28] with pixels scaled to [0, 1], target int64 class in [0, 10).
class FashionMnist : public TensorDataset {
 public:
  enum class Split { Train, Test };  // 60000 and 10000 examples

  // Reads "<root>/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz" (or the same names without
  // .gz). A missing file raises naming its path and the package that provides it.
  explicit FashionMnist(const std::filesystem::path& root = kFashionMnistDebianRoot, Split split = Split::Train);

  const Tensor& images() const { return inputs(); }  // [N, 28, 28] float32
  const Tensor& labels() const { return targets(); }  // [N] int64

  static constexpr int64_t kClasses = 10;
  static const std::array<const char*, kClasses>& class_names();  // "T-shirt/top", ..., "Ankle boot"

 private:
  explicit FashionMnist(std::pair<Tensor, Tensor> images_and_labels);
};

}  // namespace dtrain
