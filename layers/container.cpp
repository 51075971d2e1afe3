#include "layers/container.h"

#include <string>
#include <utility>

namespace dtrain {

namespace {
const std::shared_ptr<Module>& checked_at(const std::vector<std::shared_ptr<Module>>& modules, size_t index,
                                          const char* container) {
  if (index >= modules.size()) fail(container, ": index ", index, " out of range for ", modules.size(), " modules");
  return modules[index];
}
}  // namespace

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) : Module("Sequential") {
  for (auto& module : modules) push_back(std::move(module));
}

Sequential& Sequential::push_back(std::shared_ptr<Module> module) {
  modules_.push_back(register_module(std::to_string(modules_.size()), std::move(module)));
  return *this;
}

const std::shared_ptr<Module>& Sequential::operator[](size_t index) const {
  return checked_at(modules_, index, "Sequential");
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor out = x;
  for (const auto& module : modules_) out = (*module)(out);  // through operator(): each child's hooks fire
  return out;
}

ModuleList::ModuleList(std::vector<std::shared_ptr<Module>> modules) : Module("ModuleList") {
  for (auto& module : modules) push_back(std::move(module));
}

ModuleList& ModuleList::push_back(std::shared_ptr<Module> module) {
  modules_.push_back(register_module(std::to_string(modules_.size()), std::move(module)));
  return *this;
}

const std::shared_ptr<Module>& ModuleList::operator[](size_t index) const {
  return checked_at(modules_, index, "ModuleList");
}

Tensor ModuleList::forward(const Tensor&) {
  fail("ModuleList: has no forward; call its modules from the owning model's forward");
}

}  // namespace dtrain
