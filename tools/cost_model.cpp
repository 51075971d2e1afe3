// dtrain-cost-model: predicts the step time of data-parallel training by each method — DDP,
// ZeRO 1/2/3, PowerSGD, int8 and 1-bit quantization, top-k, local SGD, gossip — from the α-β
// costs of its collectives (tools/cost_model/; the formulas and their check against measurements
// in docs/scaling.md).
//
//   dtrain-cost-model --ranks 2 --alpha-us 8000 --gbit 0.1 --compute-ms 900 --d-model 256 --layers 4 --context 64
//   dtrain-cost-model --model gpt2-124m --ranks 1024 --ranks-per-host 8 --alpha-us 10 --gbit 400
//       --intra-alpha-us 3 --intra-gbit 7200 --compute-ms 250 --overlap 1    (one line)
//   dtrain-cost-model --parameters 1000000000 --d-model 2048 --ranks 64 --methods ddp,powersgd:8
//
// Prints the network and model it assumed, then a Markdown table: per method the collectives,
// the payload handed to collectives and the bytes sent per rank and step, the communication time,
// the part of it the compute does not hide, the predicted step and its ratio to DDP's. Exit
// status: 0, 2 for a usage problem (tools/command_line/).
#include <cstdint>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "tools/command_line/flags.h"
#include "tools/command_line/program_exit.h"
#include "tools/cost_model/collective_cost.h"
#include "tools/cost_model/model_shape.h"
#include "tools/cost_model/prediction_table.h"
#include "tools/cost_model/step_time.h"

namespace {

namespace cost_model = dtrain::cost_model;

struct Preset {
  const char* name;
  int64_t vocabulary, context, d_model, layers;
};
// The gpt example's presets (examples/common/gpt_model.h), GPT-2's vocabulary padded to 50304.
const Preset kPresets[] = {{"tiny", 256, 128, 256, 4},
                           {"gpt2-124m", 50304, 1024, 768, 12},
                           {"gpt2-350m", 50304, 1024, 1024, 24},
                           {"gpt2-1.5b", 50304, 1024, 1600, 48}};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, ',')) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

// A flag's value through a parse that raises dtrain::Error, as a usage error.
template <typename Parse>
auto usage_checked(const Parse& parse) {
  try {
    return parse();
  } catch (const dtrain::Error& error) {
    dtrain::command_line::usage_error(error.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  using dtrain::command_line::usage_error;
  return dtrain::command_line::run_program("dtrain-cost-model", [&] {
    int64_t ranks = 2, ranks_per_host = 1;
    double alpha_us = 50, gbit = 1, beta = 0, intra_alpha_us = 5, intra_gbit = 100, intra_beta = 0;
    double compute_ms = 100, overlap = 0, backward_fraction = 2.0 / 3.0;
    std::string algorithm = "auto", model_preset = "tiny", methods_text;
    int64_t vocabulary = 256, context = 128, d_model = 256, layers = 4, mlp_ratio = 4, parameters = 0;
    double bucket_cap_mb = 25, first_bucket_cap_mb = 1, zero_bucket_cap_mb = 25;
    int64_t element_bytes = 4, chunk_elements = 256, index_bytes = 4;

    dtrain::command_line::FlagParser flags(
        "dtrain-cost-model",
        "Predicts the step time of data-parallel training by method (DDP, ZeRO 1-3, PowerSGD, int8, 1-bit,\n"
        "top-k, local SGD, gossip) from alpha-beta collective costs: latency alpha per message step, beta\n"
        "seconds per byte. The model: docs/scaling.md.");
    flags.add("ranks", ranks, "N, the ranks (data-parallel replicas)");
    flags.add("ranks-per-host", ranks_per_host, "ranks on each host (the --intra-* link joins them)");
    flags.add("alpha-us", alpha_us, "latency of one message step between hosts (microseconds)");
    flags.add("gbit", gbit, "bandwidth of a host's link (Gbit/s, 1e9 bits)");
    flags.add("beta", beta, "seconds per byte between hosts, instead of --gbit");
    flags.add("intra-alpha-us", intra_alpha_us, "latency inside a host (microseconds)");
    flags.add("intra-gbit", intra_gbit, "bandwidth between the ranks of a host (Gbit/s)");
    flags.add("intra-beta", intra_beta, "seconds per byte inside a host, instead of --intra-gbit");
    flags.add_choice("algorithm", algorithm, {"auto", "ring", "tree", "hierarchical"},
                     "all-reduce algorithm; auto: hierarchical when ranks span hosts with several ranks each, else ring");
    flags.add("compute-ms", compute_ms, "compute of one step: forward, backward, optimizer (ms)");
    flags.add("overlap", overlap, "fraction of the communication that overlaps compute can hide (0-1)");
    flags.add("backward-fraction", backward_fraction, "backward's share of the compute (the window of the gradient reduction)");
    flags.add_choice("model", model_preset, {"tiny", "gpt2-124m", "gpt2-350m", "gpt2-1.5b"},
                     "GPT shape preset (the shape flags given override it)");
    flags.add("vocabulary", vocabulary, "GPT: token embedding rows");
    flags.add("context", context, "GPT: positions");
    flags.add("d-model", d_model, "GPT: width (with --parameters: the side of the square matrices assumed)");
    flags.add("layers", layers, "GPT: transformer blocks");
    flags.add("mlp-ratio", mlp_ratio, "GPT: MLP width as a multiple of --d-model");
    flags.add("parameters", parameters, "a model of this many parameters in square matrices instead of a GPT (0: the GPT)");
    flags.add("bucket-cap-mb", bucket_cap_mb, "DDP's gradient buckets (MiB)");
    flags.add("first-bucket-cap-mb", first_bucket_cap_mb, "DDP's first bucket (MiB)");
    flags.add("zero-bucket-cap-mb", zero_bucket_cap_mb, "ZeRO 1-2 buckets (MiB)");
    flags.add("element-bytes", element_bytes, "bytes of a gradient element (4: fp32, 2: bf16)");
    flags.add("chunk-elements", chunk_elements, "int8 / 1-bit: elements per 4-byte scale");
    flags.add("index-bytes", index_bytes, "top-k: bytes per index");
    flags.add("methods", methods_text,
              "comma-separated: ddp zero1 zero2 zero3 powersgd:R int8 1bit topk:F local-sgd:H gossip (empty: all, with R 4, F 0.01, H 8)");
    const std::set<std::string> given = flags.parse(argc, argv);

    for (const Preset& preset : kPresets) {
      if (model_preset != preset.name) continue;
      if (!given.count("vocabulary")) vocabulary = preset.vocabulary;
      if (!given.count("context")) context = preset.context;
      if (!given.count("d-model")) d_model = preset.d_model;
      if (!given.count("layers")) layers = preset.layers;
    }
    if (ranks < 1) usage_error("--ranks must be >= 1, got ", ranks);
    if (ranks_per_host < 1 || ranks % ranks_per_host != 0) {
      usage_error("--ranks-per-host must be >= 1 and divide --ranks (", ranks, "), got ", ranks_per_host);
    }
    if (compute_ms < 0) usage_error("--compute-ms must be >= 0, got ", compute_ms);
    if (overlap < 0 || overlap > 1) usage_error("--overlap must be in [0, 1], got ", overlap);
    if (backward_fraction < 0 || backward_fraction > 1) usage_error("--backward-fraction must be in [0, 1], got ", backward_fraction);
    if (alpha_us < 0 || intra_alpha_us < 0) usage_error("--alpha-us and --intra-alpha-us must be >= 0");
    if (beta < 0 || intra_beta < 0) usage_error("--beta and --intra-beta must be >= 0");
    if (given.count("beta") && given.count("gbit")) usage_error("give --gbit or --beta, not both");
    if (given.count("intra-beta") && given.count("intra-gbit")) usage_error("give --intra-gbit or --intra-beta, not both");
    if (element_bytes < 1 || chunk_elements < 1 || index_bytes < 1) {
      usage_error("--element-bytes, --chunk-elements and --index-bytes must be >= 1");
    }
    if (parameters < 0) usage_error("--parameters must be >= 0, got ", parameters);

    cost_model::Network network;
    network.ranks = ranks;
    network.ranks_per_host = ranks_per_host;
    network.inter_host = {alpha_us * 1e-6,
                          given.count("beta") ? beta : usage_checked([&] { return cost_model::seconds_per_byte_from_bits_per_second(gbit * 1e9); })};
    network.intra_host = {intra_alpha_us * 1e-6,
                          given.count("intra-beta") ? intra_beta
                                                    : usage_checked([&] { return cost_model::seconds_per_byte_from_bits_per_second(intra_gbit * 1e9); })};
    if (algorithm == "auto") {
      network.all_reduce_algorithm = network.hosts() > 1 && ranks_per_host > 1 ? cost_model::AllReduceAlgorithm::Hierarchical
                                                                             : cost_model::AllReduceAlgorithm::Ring;
    } else {
      network.all_reduce_algorithm = cost_model::all_reduce_algorithm_from_name(algorithm);
    }

    const cost_model::ModelShape model = usage_checked([&] {
      return parameters > 0 ? cost_model::square_matrices_shape(parameters, d_model)
                            : cost_model::gpt_model_shape(vocabulary, context, d_model, layers, mlp_ratio);
    });
    std::vector<cost_model::MethodChoice> methods;
    if (methods_text.empty()) {
      methods = cost_model::default_methods();
    } else {
      for (const std::string& spec : split_commas(methods_text)) {
        methods.push_back(usage_checked([&] { return cost_model::method_from_spec(spec); }));
      }
    }

    cost_model::StepSettings settings;
    settings.compute_seconds = compute_ms * 1e-3;
    settings.overlap = overlap;
    settings.backward_fraction = backward_fraction;
    settings.element_bytes = element_bytes;
    settings.bucket_cap_bytes = bucket_cap_mb * 1024 * 1024;
    settings.first_bucket_cap_bytes = first_bucket_cap_mb * 1024 * 1024;
    settings.zero_bucket_cap_bytes = zero_bucket_cap_mb * 1024 * 1024;
    settings.chunk_elements = chunk_elements;
    settings.index_bytes = index_bytes;

    const double model_bytes = static_cast<double>(model.parameter_count() * element_bytes);
    if (parameters > 0) {
      std::printf("model: %lld parameters as %zu square matrices of side %lld (%.3f MB of gradients)\n",
                  static_cast<long long>(model.parameter_count()), model.modules.size(), static_cast<long long>(d_model),
                  model_bytes / 1e6);
    } else {
      std::printf("model: GPT, vocabulary %lld, context %lld, d_model %lld, %lld layers: %lld parameters (%.3f MB of gradients)\n",
                  static_cast<long long>(vocabulary), static_cast<long long>(context), static_cast<long long>(d_model),
                  static_cast<long long>(layers), static_cast<long long>(model.parameter_count()), model_bytes / 1e6);
    }
    std::printf("network: %lld ranks, %lld per host; between hosts alpha %.3g us, %.4g Gbit/s; inside a host alpha %.3g us, "
                "%.4g Gbit/s; all-reduce: %s\n",
                static_cast<long long>(ranks), static_cast<long long>(ranks_per_host), network.inter_host.alpha_seconds * 1e6,
                8e-9 / network.inter_host.seconds_per_byte, network.intra_host.alpha_seconds * 1e6,
                8e-9 / network.intra_host.seconds_per_byte,
                cost_model::all_reduce_algorithm_name(network.all_reduce_algorithm).c_str());
    std::printf("compute %.4g ms per step, overlap %.2f, backward %.2f of the compute\n\n", compute_ms, overlap,
                backward_fraction);
    std::vector<cost_model::StepPrediction> predictions;
    for (const cost_model::MethodChoice& method : methods) {
      predictions.push_back(cost_model::predict_step(method, model, network, settings));
    }
    std::printf("%s\n%s", cost_model::step_time_table(predictions).c_str(),
                cost_model::all_reduce_algorithm_table(network, model_bytes).c_str());
  });
}
