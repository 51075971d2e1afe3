// What a dtrain user writes, built outside dtrain's own build (tests/downstream/CMakeLists.txt:
// against an installed dtrain, or with add_subdirectory). A two-layer net learns to tell two
// rings of points apart — inner disc, outer ring: not linearly separable, so the hidden layer is
// needed — with DDP, on one process or on every rank of mpirun. It fails (exit code 1) unless the
// accuracy on held-out points reaches --min-accuracy, and, when asked, unless the world has the
// expected size (so a run under mpirun cannot pass as separate worlds of one).
//
//   two_layer_net [--min-accuracy A] [--world-size N] [--report-cuda-plugin]
//
// --report-cuda-plugin prints where libdtrain_cuda.so was loaded from (or that it was not), after
// core tried to load it: the downstream test checks that an installed dtrain finds its own.
#include <dlfcn.h>
#include <link.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "dtrain.h"

using namespace dtrain;

namespace {

struct Flags {
  double min_accuracy = 0.97;
  int world_size = 0;  // 0: any
  bool report_cuda_plugin = false;
};

Flags parse(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--min-accuracy") == 0 && has_value) {
      flags.min_accuracy = std::atof(argv[++i]);
    } else if (std::strcmp(argv[i], "--world-size") == 0 && has_value) {
      flags.world_size = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--report-cuda-plugin") == 0) {
      flags.report_cuda_plugin = true;
    } else {
      std::fprintf(stderr, "two_layer_net: unknown flag or missing value: %s\n", argv[i]);
      std::exit(2);
    }
  }
  return flags;
}

// n points, the first half in the disc of radius 1 (class 0), the rest in the ring between radii 1.5 and 2.5
// (class 1), at uniform angles. The same seed gives the same points on every rank.
std::shared_ptr<TensorDataset> rings(int64_t n, uint64_t seed) {
  Generator generator(seed);
  Tensor labels = cat({zeros({n / 2}, {.dtype = kInt64}), ones({n - n / 2}, {.dtype = kInt64})});
  Tensor radius = uniform({n}, 0.0, 1.0, {}, &generator) + labels.to(kFloat32) * 1.5;
  Tensor angle = uniform({n}, 0.0, 2 * M_PI, {}, &generator);
  Tensor points = stack({radius * cos(angle), radius * sin(angle)}, 1);
  return std::make_shared<TensorDataset>(points, labels);
}

double accuracy(Module& model, const TensorDataset& data) {
  NoGradGuard no_grad;
  Tensor predicted = argmax(model(data.inputs()), 1);
  return sum(eq(predicted, data.targets()).to(kFloat64)).item() / static_cast<double>(data.size());
}

// Where the process mapped libdtrain_cuda.so from, or "" when it is not loaded.
std::string loaded_cuda_plugin_path() {
  void* handle = dlopen("libdtrain_cuda.so", RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return "";
  link_map* map = nullptr;
  std::string path = dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr ? map->l_name : "";
  dlclose(handle);  // only drops the reference NOLOAD took
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  dist::init(&argc, &argv);
  Flags flags = parse(argc, argv);
  bool rank0 = dist::rank() == 0;
  if (flags.world_size > 0 && dist::world_size() != flags.world_size) {
    std::fprintf(stderr, "two_layer_net: world of %d ranks, expected %d\n", dist::world_size(), flags.world_size);
    return 1;
  }

  auto train = rings(4096, 1);
  auto test = rings(1024, 2);
  manual_seed(0);
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<Linear>(2, 32)).push_back(std::make_shared<ReLU>());
  model->push_back(std::make_shared<Linear>(32, 2));
  dist::DistributedDataParallel ddp(model);
  optim::AdamW optimizer(model->parameters(), {.lr = 0.02, .weight_decay = 0.0});
  DataLoader loader(train, {.batch_size = 64, .sampler = dist::distributed_sampler(train->size(), {.seed = 3})});
  for (int64_t epoch = 0; epoch < 8; ++epoch) {
    loader.set_epoch(epoch);
    double loss_sum = 0;
    int64_t batches = 0;
    while (loader.epoch_has_next()) {
      Batch batch = loader.next();
      optimizer.zero_grad();
      Tensor loss = cross_entropy(ddp(batch.inputs), batch.targets);
      loss.backward();
      optimizer.step();
      loss_sum += loss.item();
      ++batches;
    }
    if (rank0) std::printf("epoch %lld: train loss %.4f (rank 0)\n", static_cast<long long>(epoch), loss_sum / batches);
  }

  double test_accuracy = accuracy(*model, *test);
  if (rank0) {
    std::printf("test accuracy %.2f%% on %d rank(s) (required: %.2f%%)\n", 100 * test_accuracy, dist::world_size(),
                100 * flags.min_accuracy);
  }
  if (flags.report_cuda_plugin && rank0) {
    bool available = cuda::is_available();
    std::printf("cuda available: %s%s\n", available ? "yes" : "no, ", available ? "" : cuda::unavailable_reason().c_str());
    std::string path = loaded_cuda_plugin_path();
    std::printf("cuda plugin loaded from: %s\n", path.empty() ? "(not loaded)" : path.c_str());
  }
  return test_accuracy >= flags.min_accuracy ? 0 : 1;
}
