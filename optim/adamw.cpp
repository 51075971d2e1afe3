#include "optim/adamw.h"

#include <cstddef>

namespace dtrain::optim {

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options)
    : AdamW({{.params = std::move(params), .options = options}}) {}

AdamW::AdamW(std::vector<ParamGroupOptions<AdamWOptions>> groups)
    : AdamFamily("AdamW", WeightDecayKind::Decoupled, to_groups(std::move(groups))) {
  check_all_groups();
}

AdamWOptions AdamW::options(size_t group) const { return to_options<AdamWOptions>(param_group(group)); }

void AdamW::set_options(size_t group, const AdamWOptions& options) {
  replace_hyperparameters(group, to_hyperparameters(options));
}

}  // namespace dtrain::optim
