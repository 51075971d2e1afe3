#pragma once
// Adam (Kingma & Ba) as torch.optim.Adam: weight decay is L2, added to the gradient before the
// moments (see optim/adam_update.h for the rule). For decoupled weight decay use AdamW.
//   optim::Adam adam(model->parameters(), {.lr = 1e-3, .betas = {0.9, 0.999}});
#include <cstddef>
#include <utility>
#include <vector>

#include "optim/adam_family.h"

namespace dtrain::optim {

struct AdamOptions {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;           // added after sqrt(v_hat)
  double weight_decay = 0.0;   // L2: weight_decay * p is added to the gradient
  bool amsgrad = false;        // use the running maximum of v
};

class Adam : public AdamFamily {
 public:
  explicit Adam(std::vector<Tensor> params, AdamOptions options = {});
  explicit Adam(std::vector<ParamGroupOptions<AdamOptions>> groups);

  AdamOptions options(size_t group = 0) const;
  void set_options(size_t group, const AdamOptions& options);
};

}  // namespace dtrain::optim
