#pragma once
// What the checkpoint tests share: a scratch directory, a small model with dropout (so the
// random generator's state matters), and one training step of it.
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "dtrain.h"

namespace dtrain::train::testing {

// A fresh directory under the system's temporary folder, removed with everything in it.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("dtrain-checkpoint-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// 4 -> hidden -> 3 with ReLU and dropout.
inline std::shared_ptr<Sequential> small_model(int64_t hidden = 8) {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(4, hidden), std::make_shared<ReLU>(), std::make_shared<Dropout>(0.3),
      std::make_shared<Linear>(hidden, 3)});
}

// 64 random examples of 4 features and a class in [0, 3), the same for every seed of the model.
inline std::shared_ptr<TensorDataset> small_dataset() {
  Generator generator(1234);
  Tensor inputs = randn({64, 4}, {}, &generator);
  Tensor targets = to_dtype(mul(rand({64}, {}, &generator), 3.0), kInt64);
  return std::make_shared<TensorDataset>(inputs, targets);
}

// One step on the loader's next batch; returns the loss.
inline double train_step(Module& model, optim::Optimizer& optimizer, DataLoader& loader) {
  Batch batch = loader.next();
  optimizer.zero_grad();
  Tensor loss = cross_entropy(model(batch.inputs), batch.targets);
  loss.backward();
  optimizer.step();
  return loss.item();
}

// Whether two tensors have the same shape, dtype and bytes.
inline bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor x = a.contiguous();
  Tensor y = b.contiguous();
  return std::memcmp(x.data(), y.data(), x.nbytes()) == 0;
}

}  // namespace dtrain::train::testing
