#include "optim/adam.h"

#include <cstddef>

namespace dtrain::optim {

Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : Adam({{.params = std::move(params), .options = options}}) {}

Adam::Adam(std::vector<ParamGroupOptions<AdamOptions>> groups)
    : AdamFamily("Adam", WeightDecayKind::L2, to_groups(std::move(groups))) {
  check_all_groups();
}

AdamOptions Adam::options(size_t group) const { return to_options<AdamOptions>(param_group(group)); }

void Adam::set_options(size_t group, const AdamOptions& options) {
  replace_hyperparameters(group, to_hyperparameters(options));
}

}  // namespace dtrain::optim
