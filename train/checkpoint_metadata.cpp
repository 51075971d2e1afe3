#include "train/checkpoint_metadata.h"

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace dtrain::train {

namespace {

constexpr std::string_view kGeneratorPrefix = "generator.";
constexpr std::string_view kLoaderPrefix = "loader.";
constexpr std::string_view kUserPrefix = "user.";

bool starts_with(const std::string& text, std::string_view prefix) { return text.rfind(prefix, 0) == 0; }

// "<prefix><name>.<field>" split into name and field; nullopt when either would be empty.
std::optional<std::pair<std::string, std::string>> split_named_key(const std::string& key, std::string_view prefix) {
  size_t last_dot = key.rfind('.');
  if (last_dot == std::string::npos || last_dot <= prefix.size() || last_dot + 1 == key.size()) return std::nullopt;
  return std::make_pair(key.substr(prefix.size(), last_dot - prefix.size()), key.substr(last_dot + 1));
}

// Reads metadata and keeps a list of what was wrong, so one error can name every bad key.
class MetadataReader {
 public:
  template <typename Integer>
  std::optional<Integer> integer(const std::string& key, const std::string& text) {
    Integer value{};
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
      problems.push_back("'" + key + "' is '" + text + "', expected a decimal integer that fits " +
                         (std::is_signed_v<Integer> ? "int64" : "uint64"));
      return std::nullopt;
    }
    return value;
  }

  std::vector<std::string> problems;
};

struct PartialGenerator {
  std::optional<uint64_t> seed, offset;
};
struct PartialLoader {
  std::optional<uint64_t> seed;
  std::optional<int64_t> epoch, batch;
};

}  // namespace

std::map<std::string, std::string> encode_checkpoint_metadata(const TrainingState& state,
                                                              const std::string& optimizer_name) {
  std::map<std::string, std::string> metadata{
      {"format", kCheckpointFormat}, {"optimizer", optimizer_name}, {"step", std::to_string(state.step)}};
  for (const auto& [name, generator] : state.generators) {
    std::string prefix = std::string(kGeneratorPrefix) + name + ".";
    metadata[prefix + "seed"] = std::to_string(generator.seed);
    metadata[prefix + "offset"] = std::to_string(generator.offset);
  }
  for (const auto& [name, loader] : state.loaders) {
    std::string prefix = std::string(kLoaderPrefix) + name + ".";
    metadata[prefix + "seed"] = std::to_string(loader.seed);
    metadata[prefix + "epoch"] = std::to_string(loader.epoch);
    metadata[prefix + "batch"] = std::to_string(loader.batch);
  }
  for (const auto& [key, value] : state.metadata) metadata[std::string(kUserPrefix) + key] = value;
  return metadata;
}

TrainingState decode_checkpoint_metadata(const std::map<std::string, std::string>& metadata,
                                         const std::filesystem::path& path, std::string& optimizer_name,
                                         std::string* format) {
  TrainingState state;
  state.source = path;
  MetadataReader reader;
  std::map<std::string, PartialGenerator> generators;
  std::map<std::string, PartialLoader> loaders;
  bool has_format = false, has_step = false, has_optimizer = false;

  for (const auto& [key, value] : metadata) {
    if (key == "format") {
      has_format = true;
      if (value != kCheckpointFormat && value != kCheckpointFormatV1) {
        reader.problems.push_back("'format' is '" + value + "', expected '" + kCheckpointFormat + "' (or the older '" +
                                  kCheckpointFormatV1 + "')");
      } else if (format != nullptr) {
        *format = value;
      }
    } else if (key == "optimizer") {
      has_optimizer = true;
      optimizer_name = value;
    } else if (key == "step") {
      has_step = true;
      if (auto step = reader.integer<int64_t>(key, value)) state.step = *step;
    } else if (starts_with(key, kUserPrefix)) {
      state.metadata[key.substr(kUserPrefix.size())] = value;
    } else if (auto named = starts_with(key, kGeneratorPrefix) ? split_named_key(key, kGeneratorPrefix) : std::nullopt;
               named && (named->second == "seed" || named->second == "offset")) {
      PartialGenerator& generator = generators[named->first];
      (named->second == "seed" ? generator.seed : generator.offset) = reader.integer<uint64_t>(key, value);
    } else if (auto named = starts_with(key, kLoaderPrefix) ? split_named_key(key, kLoaderPrefix) : std::nullopt;
               named && (named->second == "seed" || named->second == "epoch" || named->second == "batch")) {
      PartialLoader& loader = loaders[named->first];
      if (named->second == "seed") loader.seed = reader.integer<uint64_t>(key, value);
      if (named->second == "epoch") loader.epoch = reader.integer<int64_t>(key, value);
      if (named->second == "batch") loader.batch = reader.integer<int64_t>(key, value);
    } else {
      reader.problems.push_back("unexpected key '" + key + "'");
    }
  }

  if (!has_format) reader.problems.push_back("missing 'format' (not a dtrain training checkpoint?)");
  if (!has_optimizer) reader.problems.push_back("missing 'optimizer'");
  if (!has_step) reader.problems.push_back("missing 'step'");
  for (const auto& [name, generator] : generators) {
    if (generator.seed && generator.offset) {
      state.generators[name] = {*generator.seed, *generator.offset};
    } else {
      reader.problems.push_back("generator '" + name + "' needs .seed and .offset, each a valid integer");
    }
  }
  for (const auto& [name, loader] : loaders) {
    if (loader.seed && loader.epoch && loader.batch) {
      state.loaders[name] = {*loader.seed, *loader.epoch, *loader.batch};
    } else {
      reader.problems.push_back("loader '" + name + "' needs .seed, .epoch and .batch, each a valid integer");
    }
  }

  if (!reader.problems.empty()) {
    std::string list;
    for (const std::string& problem : reader.problems) list += (list.empty() ? "" : "; ") + problem;
    fail("load_checkpoint: '", path.string(), "': bad metadata: ", list);
  }
  return state;
}

}  // namespace dtrain::train
