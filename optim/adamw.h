#pragma once
// AdamW (Loshchilov & Hutter) as torch.optim.AdamW: weight decay is decoupled from the gradient,
// p = p * (1 - lr * weight_decay) before the Adam update (see optim/adam_update.h).
//   optim::AdamW adamw(model->parameters(), {.lr = 3e-4, .weight_decay = 0.1});
#include <cstddef>
#include <utility>
#include <vector>

#include "optim/adam_family.h"

namespace dtrain::optim {

struct AdamWOptions {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;            // added after sqrt(v_hat)
  double weight_decay = 1e-2;   // decoupled; PyTorch's default
  bool amsgrad = false;         // use the running maximum of v
};

class AdamW : public AdamFamily {
 public:
  explicit AdamW(std::vector<Tensor> params, AdamWOptions options = {});
  explicit AdamW(std::vector<ParamGroupOptions<AdamWOptions>> groups);

  AdamWOptions options(size_t group = 0) const;
  void set_options(size_t group, const AdamWOptions& options);
};

}  // namespace dtrain::optim
