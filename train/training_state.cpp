#include "train/training_state.h"

#include <string>

#include "core/error.h"

namespace dtrain::train {

namespace {

template <typename Value>
const Value& find_named(const std::map<std::string, Value>& entries, const std::string& name, const char* kind,
                        const std::filesystem::path& source) {
  auto found = entries.find(name);
  if (found != entries.end()) return found->second;
  std::string names;
  for (const auto& [present, value] : entries) names += (names.empty() ? "'" : ", '") + present + "'";
  fail("TrainingState", source.empty() ? "" : " from '" + source.string() + "'", ": no ", kind, " called '", name,
       "'; it has ", names.empty() ? std::string("none") : names);
}

}  // namespace

GeneratorState generator_state(const Generator& generator) { return {generator.seed(), generator.offset()}; }

void restore_generator(const GeneratorState& state, Generator& generator) {
  generator.manual_seed(state.seed);
  generator.set_offset(state.offset);
}

const GeneratorState& TrainingState::generator(const std::string& name) const {
  return find_named(generators, name, "generator", source);
}

const DataLoaderState& TrainingState::loader(const std::string& name) const {
  return find_named(loaders, name, "data loader", source);
}

}  // namespace dtrain::train
