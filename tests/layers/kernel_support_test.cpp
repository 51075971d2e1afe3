// The kernel table's capability question (Backend::supports, core/backend.h), table-driven in the
// manner of ggml's test-backend-ops: for every fused kernel a list of cases, each with the answer
// each device's table must give. For every case, on every device present (the CPU; CUDA rows run
// only where a GPU is, and skip here):
//   - the table answers as the row states (with a reason when it declines);
//   - declined: calling the fused entry anyway raises dtrain::Error naming the entry, and the
//     public op (layer_norm, cross_entropy, adam_update, causal_attention, conv2d) still computes
//     the right value through its composed fallback;
//   - taken: the public op (the fused kernel) computes the same as the composed fallback;
// and either way the value matches a float64 reference written out here loop by loop, and the
// gradients match central finite differences of that reference.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/core.h"
#include "core/cuda_device.h"
#include "layers/attention.h"
#include "layers/conv.h"
#include "layers/layer_norm.h"
#include "layers/loss.h"
#include "optim/adam_update.h"

using namespace dtrain;

namespace {

using Values = std::vector<double>;

// The devices whose tables the rows are asked of: the CPU, and the first GPU where there is one.
std::vector<Device> devices() {
  std::vector<Device> present{Device::cpu()};
  if (cuda::is_available()) present.push_back(Device::cuda(0));
  return present;
}

Values wavy(int64_t n, double scale, double phase) {
  Values values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[static_cast<size_t>(i)] = scale * std::sin(0.731 * static_cast<double>(i) + phase);
  return values;
}

// The values as dtype holds them (what the reference must start from).
Values rounded(const Values& values, DType dtype) {
  return from_vector(values, {static_cast<int64_t>(values.size())}, {.dtype = kFloat64}).to(dtype).to_vector<double>();
}

// A leaf of dtype on device holding values, and the tensor the op is given: the leaf itself, or
// (strided) the same values through a transposed view of a transposed copy, which is not
// contiguous and whose gradient flows back to the leaf.
struct Input {
  Tensor leaf;
  Tensor given;
};

Input make_input(const Values& values, const Shape& shape, DType dtype, Device device, bool strided,
                 bool requires_grad = true) {
  Tensor leaf = from_vector(values, shape, {.dtype = kFloat64}).to(dtype).to(device);
  if (requires_grad) leaf.set_requires_grad(true);
  Tensor given = leaf;
  if (strided) {
    given = transpose(contiguous(transpose(leaf, 0, -1)), 0, -1);
    REQUIRE_FALSE(given.is_contiguous());
  }
  return {leaf, given};
}

// Tolerance of a value computed in dtype against the float64 reference, relative to the largest
// magnitude of the reference.
double tolerance_of(DType dtype) {
  switch (dtype) {
    case DType::Float64: return 1e-9;
    case DType::Float32: return 2e-5;
    case DType::Float16: return 2e-2;
    case DType::BFloat16: return 8e-2;
    default: return 0.0;
  }
}

void require_close(const Tensor& got, const Values& expected, double tolerance, const std::string& what) {
  INFO(what);
  const Values values = got.to(Device::cpu()).to_vector<double>();
  REQUIRE(values.size() == expected.size());
  double largest = 1e-12;
  for (double value : expected) largest = std::max(largest, std::fabs(value));
  for (size_t i = 0; i < values.size(); ++i) {
    INFO("element " << i << ": got " << values[i] << ", expected " << expected[i]);
    REQUIRE(std::fabs(values[i] - expected[i]) <= tolerance * largest);
  }
}

// d/d inputs[which] of sum(reference(inputs) * probe), by central differences.
Values finite_difference(const std::function<Values(const std::vector<Values>&)>& reference,
                         std::vector<Values> inputs, size_t which, const Values& probe) {
  auto loss = [&](const std::vector<Values>& at) {
    const Values out = reference(at);
    double total = 0.0;
    for (size_t i = 0; i < out.size(); ++i) total += out[i] * probe[i];
    return total;
  };
  const double step = 1e-6;
  Values gradient(inputs[which].size());
  for (size_t i = 0; i < gradient.size(); ++i) {
    const double original = inputs[which][i];
    inputs[which][i] = original + step;
    const double up = loss(inputs);
    inputs[which][i] = original - step;
    const double down = loss(inputs);
    inputs[which][i] = original;
    gradient[i] = (up - down) / (2 * step);
  }
  return gradient;
}

// sum(out * probe) in float64, differentiated back to the leaves.
void backward_with_probe(const Tensor& out, const Values& probe) {
  const Tensor weights = from_vector(probe, out.shape(), {.dtype = kFloat64}).to(out.device());
  sum(mul(out.to(kFloat64), weights)).backward();
}

// Asks device's table and checks the answer the row states; returns it.
bool check_answer(const KernelCase& query, Device device, bool expected) {
  const KernelSupport answer = backend_for(device).supports(query);
  INFO(fused_kernel_name(query.kernel) << " on " << device << ": " << (answer.supported ? "taken" : answer.reason));
  REQUIRE(answer.supported == expected);
  REQUIRE(answer.reason.empty() == answer.supported);  // a decline always says why
  return answer.supported;
}

// --- float64 references, written out loop by loop ---------------------------------------------

Values layer_norm_reference(const Values& x, const Values& weight, const Values& bias, int64_t size, double eps) {
  const int64_t rows = static_cast<int64_t>(x.size()) / size;
  Values out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0.0, variance = 0.0;
    for (int64_t i = 0; i < size; ++i) mean += x[static_cast<size_t>(r * size + i)];
    mean /= static_cast<double>(size);
    for (int64_t i = 0; i < size; ++i) variance += std::pow(x[static_cast<size_t>(r * size + i)] - mean, 2);
    variance /= static_cast<double>(size);
    for (int64_t i = 0; i < size; ++i) {
      const size_t at = static_cast<size_t>(r * size + i);
      double value = (x[at] - mean) / std::sqrt(variance + eps);
      if (!weight.empty()) value *= weight[static_cast<size_t>(i)];
      if (!bias.empty()) value += bias[static_cast<size_t>(i)];
      out[at] = value;
    }
  }
  return out;
}

// Mean over the counted rows of -(1 - s) log p[target] - (s / C) sum log p.
double cross_entropy_reference(const Values& logits, const std::vector<int64_t>& targets, int64_t classes,
                               double smoothing, int64_t ignore_index) {
  double total = 0.0;
  int64_t counted = 0;
  for (size_t r = 0; r < targets.size(); ++r) {
    if (targets[r] == ignore_index) continue;
    const double* row = logits.data() + r * static_cast<size_t>(classes);
    double largest = row[0];
    for (int64_t c = 1; c < classes; ++c) largest = std::max(largest, row[c]);
    double sum_exp = 0.0, sum_logits = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      sum_exp += std::exp(row[c] - largest);
      sum_logits += row[c];
    }
    const double lse = largest + std::log(sum_exp);
    total += (1 - smoothing) * (lse - row[targets[r]]) + smoothing * (lse - sum_logits / static_cast<double>(classes));
    ++counted;
  }
  return total / static_cast<double>(counted);
}

// softmax over visible columns (j <= i) of q k^T * scale, times v; [B, H, T, D].
Values attention_reference(const Values& q, const Values& k, const Values& v, int64_t heads_total, int64_t tokens,
                           int64_t head_size) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_size));
  Values out(q.size(), 0.0);
  for (int64_t h = 0; h < heads_total; ++h) {
    const size_t base = static_cast<size_t>(h * tokens * head_size);
    for (int64_t i = 0; i < tokens; ++i) {
      std::vector<double> scores(static_cast<size_t>(i + 1));
      double largest = -1e300;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0.0;
        for (int64_t d = 0; d < head_size; ++d) {
          dot += q[base + static_cast<size_t>(i * head_size + d)] * k[base + static_cast<size_t>(j * head_size + d)];
        }
        scores[static_cast<size_t>(j)] = dot * scale;
        largest = std::max(largest, dot * scale);
      }
      double total = 0.0;
      for (double& score : scores) total += (score = std::exp(score - largest));
      for (int64_t j = 0; j <= i; ++j) {
        for (int64_t d = 0; d < head_size; ++d) {
          out[base + static_cast<size_t>(i * head_size + d)] +=
              scores[static_cast<size_t>(j)] / total * v[base + static_cast<size_t>(j * head_size + d)];
        }
      }
    }
  }
  return out;
}

struct ConvolutionShape {
  int64_t batch, channels, height, width, out_channels, kernel, stride, padding, dilation;
  int64_t out_height() const { return (height + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1; }
  int64_t out_width() const { return (width + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1; }
};

Values convolution_reference(const Values& x, const Values& weight, const ConvolutionShape& s) {
  const int64_t oh = s.out_height(), ow = s.out_width();
  Values out(static_cast<size_t>(s.batch * s.out_channels * oh * ow), 0.0);
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t o = 0; o < s.out_channels; ++o) {
      for (int64_t y = 0; y < oh; ++y) {
        for (int64_t xo = 0; xo < ow; ++xo) {
          double total = 0.0;
          for (int64_t c = 0; c < s.channels; ++c) {
            for (int64_t ky = 0; ky < s.kernel; ++ky) {
              for (int64_t kx = 0; kx < s.kernel; ++kx) {
                const int64_t iy = y * s.stride - s.padding + ky * s.dilation;
                const int64_t ix = xo * s.stride - s.padding + kx * s.dilation;
                if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) continue;
                total += x[static_cast<size_t>(((n * s.channels + c) * s.height + iy) * s.width + ix)] *
                         weight[static_cast<size_t>(((o * s.channels + c) * s.kernel + ky) * s.kernel + kx)];
              }
            }
          }
          out[static_cast<size_t>(((n * s.out_channels + o) * oh + y) * ow + xo)] = total;
        }
      }
    }
  }
  return out;
}

// --- the tables -------------------------------------------------------------------------------

struct LayerNormRow {
  const char* name;
  DType dtype;
  bool affine;
  bool residual;  // add_layer_norm
  bool strided;   // x given as a non-contiguous view
  bool cpu_takes;
  bool cuda_takes;
};

const std::vector<LayerNormRow> kLayerNormRows = {
    {"float32 with weight and bias", kFloat32, true, false, false, true, true},
    {"float64 without affine", kFloat64, false, false, false, true, true},
    {"bfloat16", kBFloat16, true, false, false, false, true},
    {"float16", kFloat16, true, false, false, false, true},
    {"float32 x not contiguous", kFloat32, true, false, true, false, false},
    {"add_layer_norm float32", kFloat32, true, true, false, true, true},
    {"add_layer_norm bfloat16", kBFloat16, true, true, false, false, true},
    {"add_layer_norm float64 x not contiguous", kFloat64, true, true, true, false, false},
};

struct CrossEntropyRow {
  const char* name;
  DType dtype;
  bool three_dims;     // logits [2, rows / 2, classes]: the query on them as given declines (not 2-d)
  bool int32_targets;  // targets Int32: the query on them as given declines
  bool cpu_takes;
  bool cuda_takes;
};

const std::vector<CrossEntropyRow> kCrossEntropyRows = {
    {"float32", kFloat32, false, false, true, true},
    {"float64", kFloat64, false, false, true, true},
    {"bfloat16", kBFloat16, false, false, false, true},
    {"float16", kFloat16, false, false, false, true},
    {"float32 logits [2, 3, classes]", kFloat32, true, false, false, false},
    {"float64 Int32 targets", kFloat64, false, true, false, false},
};

struct AdamRow {
  const char* name;
  DType dtype;        // the parameter's
  DType state_dtype;  // exp_avg's and exp_avg_sq's
  bool amsgrad;
  bool strided;  // the parameter a non-contiguous view
  bool cpu_takes;
  bool cuda_takes;
};

const std::vector<AdamRow> kAdamRows = {
    {"float32", kFloat32, kFloat32, false, false, true, true},
    {"float64 with amsgrad", kFloat64, kFloat64, true, false, true, true},
    {"bfloat16 with float32 state", kBFloat16, kFloat32, false, false, false, true},
    {"bfloat16 with bfloat16 state", kBFloat16, kBFloat16, false, false, false, false},
    {"float32 parameter not contiguous", kFloat32, kFloat32, false, true, false, false},
};

struct AttentionRow {
  const char* name;
  DType dtype;
  Shape shape;  // [B, H, T, D]
  bool cpu_takes;
  bool cuda_takes;  // with cuDNN 9 on compute capability 8.0 or newer
};

const std::vector<AttentionRow> kAttentionRows = {
    {"float32 [1, 2, 5, 4]", kFloat32, {1, 2, 5, 4}, false, false},
    {"float64 [2, 1, 6, 3]", kFloat64, {2, 1, 6, 3}, false, false},
    {"bfloat16 [1, 2, 128, 64]", kBFloat16, {1, 2, 128, 64}, false, true},
    {"bfloat16 head size 12 [1, 1, 128, 12]", kBFloat16, {1, 1, 128, 12}, false, false},
};

struct ConvolutionRow {
  const char* name;
  DType dtype;
  ConvolutionShape shape;
  bool cpu_takes;
  bool cuda_takes;  // with cuDNN
};

const std::vector<ConvolutionRow> kConvolutionRows = {
    {"float32 3x3 padding 1", kFloat32, {2, 3, 6, 5, 4, 3, 1, 1, 1}, false, true},
    {"float64 stride 2 dilation 2", kFloat64, {1, 2, 9, 8, 3, 2, 2, 1, 2}, false, true},
};

bool expected_on(Device device, bool cpu_takes, bool cuda_takes) { return device.is_cpu() ? cpu_takes : cuda_takes; }

}  // namespace

TEST_CASE("kernel support: layer_norm and add_layer_norm answer per case, and every case computes the reference value and gradient", "[layers][kernel_support]") {
  const int64_t rows = 4, size = 6;
  const double eps = 1e-5;
  for (Device device : devices()) {
    for (const LayerNormRow& row : kLayerNormRows) {
      DYNAMIC_SECTION(row.name << " on " << device) {
        const Values x_values = rounded(wavy(rows * size, 2.0, 0.3), row.dtype);
        const Values residual_values = rounded(wavy(rows * size, 1.0, 1.9), row.dtype);
        const Values weight_values = row.affine ? rounded(wavy(size, 1.0, 1.1), row.dtype) : Values{};
        const Values bias_values = row.affine ? rounded(wavy(size, 0.5, 2.0), row.dtype) : Values{};
        Input x = make_input(x_values, {rows, size}, row.dtype, device, row.strided);
        Input residual = make_input(residual_values, {rows, size}, row.dtype, device, false);
        Input weight = row.affine ? make_input(weight_values, {size}, row.dtype, device, false) : Input{};
        Input bias = row.affine ? make_input(bias_values, {size}, row.dtype, device, false) : Input{};

        const KernelCase query =
            row.residual
                ? KernelCase{.kernel = FusedKernel::AddLayerNorm, .tensors = {x.given, residual.given, weight.given, bias.given}}
                : KernelCase{.kernel = FusedKernel::LayerNorm, .tensors = {x.given, weight.given, bias.given}};
        const bool taken = check_answer(query, device, expected_on(device, row.cpu_takes, row.cuda_takes));
        if (!taken) {
          const TensorOptions like{.dtype = row.dtype, .device = device};
          const TensorOptions statistics{.dtype = statistics_dtype(row.dtype), .device = device};
          Tensor out = empty({rows, size}, like), sum_out = empty({rows, size}, like);
          Tensor mean = empty({rows}, statistics), rstd = empty({rows}, statistics);
          Backend& table = backend_for(device);
          if (row.residual) {
            REQUIRE_THROWS_WITH(table.add_layer_norm(x.given, residual.given, weight.given, bias.given, eps, sum_out,
                                                     out, mean, rstd),
                                Catch::Contains("add_layer_norm") && Catch::Contains("declines"));
          } else {
            REQUIRE_THROWS_WITH(table.layer_norm(x.given, weight.given, bias.given, eps, out, mean, rstd),
                                Catch::Contains("layer_norm") && Catch::Contains("declines"));
          }
        }

        const Tensor out = row.residual ? add_layer_norm(x.given, residual.given, {size}, weight.given, bias.given, eps)
                                              .normalized
                                        : layer_norm(x.given, {size}, weight.given, bias.given, eps);
        auto reference = [&](const std::vector<Values>& in) {
          Values normalized_input = in[0];
          if (row.residual) {
            for (size_t i = 0; i < normalized_input.size(); ++i) normalized_input[i] += in[1][i];
          }
          return layer_norm_reference(normalized_input, in[2], in[3], size, eps);
        };
        const std::vector<Values> inputs{x_values, residual_values, weight_values, bias_values};
        const double tolerance = tolerance_of(row.dtype);
        require_close(out, reference(inputs), tolerance, "value");
        if (taken) {
          // The fused kernel and the composed fallback agree to the dtype's tolerance.
          const Tensor normalized_input = row.residual ? add(x.given, residual.given) : x.given;
          require_close(out, detail::layer_norm_composed(normalized_input, {size}, weight.given, bias.given, eps)
                                 .to(kFloat64).to(Device::cpu()).to_vector<double>(),
                        tolerance, "fused against composed");
        }

        const Values probe = wavy(rows * size, 1.0, 0.45);
        backward_with_probe(out, probe);
        const double gradient_tolerance = std::max(tolerance, 1e-6) * 4;
        require_close(x.leaf.grad(), finite_difference(reference, inputs, 0, probe), gradient_tolerance, "grad x");
        if (row.residual) {
          require_close(residual.leaf.grad(), finite_difference(reference, inputs, 1, probe), gradient_tolerance,
                        "grad residual");
        }
        if (row.affine) {
          require_close(weight.leaf.grad(), finite_difference(reference, inputs, 2, probe), gradient_tolerance,
                        "grad weight");
          require_close(bias.leaf.grad(), finite_difference(reference, inputs, 3, probe), gradient_tolerance,
                        "grad bias");
        }
      }
    }
  }
}

TEST_CASE("kernel support: cross_entropy answers per case, and every case computes the reference loss and gradient", "[layers][kernel_support]") {
  const int64_t rows = 6, classes = 5;
  const CrossEntropyOptions options{.ignore_index = -100, .label_smoothing = 0.1};
  const std::vector<int64_t> targets{3, 0, -100, 4, 1, 2};
  for (Device device : devices()) {
    for (const CrossEntropyRow& row : kCrossEntropyRows) {
      DYNAMIC_SECTION(row.name << " on " << device) {
        const Values logit_values = rounded(wavy(rows * classes, 2.5, 0.2), row.dtype);
        const Shape logits_shape = row.three_dims ? Shape{2, rows / 2, classes} : Shape{rows, classes};
        const Shape targets_shape = row.three_dims ? Shape{2, rows / 2} : Shape{rows};
        Input logits = make_input(logit_values, logits_shape, row.dtype, device, false);
        const Tensor target_tensor =
            from_vector(targets, targets_shape).to(row.int32_targets ? kInt32 : kInt64).to(device);

        const bool taken = check_answer({.kernel = FusedKernel::CrossEntropy, .tensors = {logits.given, target_tensor}},
                                        device, expected_on(device, row.cpu_takes, row.cuda_takes));
        if (!taken) {
          const TensorOptions statistics{.dtype = statistics_dtype(row.dtype), .device = device};
          Tensor lse = empty({rows}, statistics), loss = empty({rows}, statistics);
          REQUIRE_THROWS_WITH(backend_for(device).cross_entropy(logits.given, target_tensor, options.ignore_index,
                                                                options.label_smoothing, lse, loss),
                              Catch::Contains("cross_entropy") && Catch::Contains("declines"));
        }

        const Tensor loss = cross_entropy(logits.given, target_tensor, options);
        auto reference = [&](const std::vector<Values>& in) {
          return Values{cross_entropy_reference(in[0], targets, classes, options.label_smoothing, options.ignore_index)};
        };
        const double tolerance = tolerance_of(row.dtype);
        require_close(loss, reference({logit_values}), tolerance, "value");
        if (taken) {
          require_close(loss, {detail::cross_entropy_composed(logits.given, target_tensor, options).to(kFloat64).item()},
                        tolerance, "fused against composed");
        }
        backward_with_probe(loss, {1.0});
        require_close(logits.leaf.grad(), finite_difference(reference, {logit_values}, 0, {1.0}),
                      std::max(tolerance, 1e-6) * 4, "grad logits");
      }
    }
  }
}

TEST_CASE("kernel support: adam_update answers per parameter, and every case takes the step Adam's formulas give", "[layers][kernel_support]") {
  const int64_t rows = 3, columns = 4, n = rows * columns;
  optim::AdamHyperParameters hyper;
  hyper.lr = 0.05;
  hyper.weight_decay = 0.1;
  hyper.weight_decay_kind = optim::WeightDecayKind::Decoupled;
  const int64_t step = 3;  // bias corrections of a later step
  for (Device device : devices()) {
    for (const AdamRow& row : kAdamRows) {
      DYNAMIC_SECTION(row.name << " on " << device) {
        const Values param_values = rounded(wavy(n, 1.0, 0.1), row.dtype);
        const Values grad_values = rounded(wavy(n, 0.3, 1.3), row.dtype);
        const Values exp_avg_values = rounded(wavy(n, 0.05, 2.1), row.state_dtype);
        Values exp_avg_sq_values = wavy(n, 0.02, 0.6);
        for (double& value : exp_avg_sq_values) value = std::fabs(value) + 0.001;
        exp_avg_sq_values = rounded(exp_avg_sq_values, row.state_dtype);
        Values max_values = exp_avg_sq_values;
        for (size_t i = 0; i < max_values.size(); i += 2) max_values[i] *= 3;  // some above, some at
        max_values = rounded(max_values, row.state_dtype);

        auto state_tensor = [&](const Values& values) {
          return from_vector(values, {rows, columns}, {.dtype = kFloat64}).to(row.state_dtype).to(device);
        };
        // The step writes in place, so each path gets its own copies.
        struct Tensors {
          Tensor param_storage, param, grad;
          optim::AdamState state;
        };
        auto fresh = [&]() {
          Tensors t;
          const Tensor values = from_vector(param_values, {rows, columns}, {.dtype = kFloat64}).to(row.dtype).to(device);
          if (row.strided) {
            // The same values in row-major order, seen through a transposed view of transposed storage.
            t.param_storage = contiguous(transpose(values, 0, 1));
            t.param = transpose(t.param_storage, 0, 1);
          } else {
            t.param_storage = t.param = values;
          }
          t.grad = from_vector(grad_values, {rows, columns}, {.dtype = kFloat64}).to(row.dtype).to(device);
          t.state.exp_avg = state_tensor(exp_avg_values);
          t.state.exp_avg_sq = state_tensor(exp_avg_sq_values);
          if (row.amsgrad) t.state.max_exp_avg_sq = state_tensor(max_values);
          return t;
        };

        Tensors fused = fresh();
        const KernelCase query{.kernel = FusedKernel::AdamUpdate,
                               .tensors = {fused.param, fused.grad, fused.state.exp_avg, fused.state.exp_avg_sq,
                                           fused.state.max_exp_avg_sq, Tensor()}};
        const bool taken = check_answer(query, device, expected_on(device, row.cpu_takes, row.cuda_takes));
        if (!taken) {
          const Values before = fused.param.to(Device::cpu()).to_vector<double>();
          REQUIRE_THROWS_WITH(
              backend_for(device).adam_update({AdamTensors{.param = fused.param, .grad = fused.grad,
                                                           .exp_avg = fused.state.exp_avg,
                                                           .exp_avg_sq = fused.state.exp_avg_sq,
                                                           .max_exp_avg_sq = fused.state.max_exp_avg_sq,
                                                           .master = Tensor()}},
                                              optim::adam_step_scalars(hyper, step)),
              Catch::Contains("adam_update") && Catch::Contains("declines"));
          REQUIRE(fused.param.to(Device::cpu()).to_vector<double>() == before);  // refused before touching anything
        }
        optim::adam_update(fused.param, fused.grad, fused.state, hyper, step, /*allow_fused=*/true);

        // Adam(W)'s step in double from the same (rounded) starting values.
        Values expected_param(param_values.size()), expected_exp_avg(param_values.size()),
            expected_exp_avg_sq(param_values.size());
        const double t = static_cast<double>(step);
        for (size_t i = 0; i < param_values.size(); ++i) {
          const double g = grad_values[i];
          const double p = param_values[i] * (1 - hyper.lr * hyper.weight_decay);
          const double m = hyper.beta1 * exp_avg_values[i] + (1 - hyper.beta1) * g;
          const double v = hyper.beta2 * exp_avg_sq_values[i] + (1 - hyper.beta2) * g * g;
          const double second = row.amsgrad ? std::max(max_values[i], v) : v;
          const double denominator = std::sqrt(second) / std::sqrt(1 - std::pow(hyper.beta2, t)) + hyper.eps;
          expected_param[i] = p - hyper.lr / (1 - std::pow(hyper.beta1, t)) * m / denominator;
          expected_exp_avg[i] = m;
          expected_exp_avg_sq[i] = v;
        }
        // A 16-bit parameter is off by its one rounding (2^-9 of values near 1) plus the state's; the
        // tensor-op path rounds (1 - beta) * g to the gradient's 16 bits before adding it to the state.
        const double tolerance = row.dtype == kBFloat16 ? 1e-2 : tolerance_of(row.state_dtype);
        require_close(contiguous(fused.param), expected_param, tolerance, "param");
        require_close(fused.state.exp_avg, expected_exp_avg, tolerance, "exp_avg");
        require_close(fused.state.exp_avg_sq, expected_exp_avg_sq, tolerance, "exp_avg_sq");
        if (taken) {
          Tensors composed = fresh();
          optim::adam_update(composed.param, composed.grad, composed.state, hyper, step, /*allow_fused=*/false);
          require_close(contiguous(fused.param), contiguous(composed.param).to(kFloat64).to(Device::cpu()).to_vector<double>(),
                        tolerance, "fused against composed");
        }
      }
    }
  }
}

TEST_CASE("kernel support: attention answers per case, and every case computes the reference attention and gradients", "[layers][kernel_support]") {
  for (Device device : devices()) {
    for (const AttentionRow& row : kAttentionRows) {
      DYNAMIC_SECTION(row.name << " on " << device) {
        const Shape& shape = row.shape;
        const int64_t n = shape.numel();
        const bool large = n > 4096;  // the 128-token rows: values and fused-against-composed only
        const Values q_values = rounded(wavy(n, 1.0, 0.1), row.dtype);
        const Values k_values = rounded(wavy(n, 1.0, 1.7), row.dtype);
        const Values v_values = rounded(wavy(n, 1.0, 2.9), row.dtype);
        Input q = make_input(q_values, shape, row.dtype, device, false);
        Input k = make_input(k_values, shape, row.dtype, device, false);
        Input v = make_input(v_values, shape, row.dtype, device, false);
        const bool taken = check_answer({.kernel = FusedKernel::Attention, .tensors = {q.given, k.given, v.given}},
                                        device, expected_on(device, row.cpu_takes, row.cuda_takes));
        if (!taken) {
          Tensor out = empty(shape, {.dtype = row.dtype, .device = device});
          Tensor lse = empty({shape[0], shape[1], shape[2]}, {.dtype = kFloat32, .device = device});
          REQUIRE_THROWS_WITH(backend_for(device).attention(q.given, k.given, v.given, 0.5, out, lse),
                              Catch::Contains("attention") && Catch::Contains("declines"));
        }
        const Tensor out = causal_attention(q.given, k.given, v.given);
        auto reference = [&](const std::vector<Values>& in) {
          return attention_reference(in[0], in[1], in[2], shape[0] * shape[1], shape[2], shape[3]);
        };
        const std::vector<Values> inputs{q_values, k_values, v_values};
        const double tolerance = tolerance_of(row.dtype);
        require_close(out, reference(inputs), tolerance, "value");
        if (taken) {
          set_fused_attention_enabled(false);
          const Tensor composed = causal_attention(q.given, k.given, v.given);
          set_fused_attention_enabled(true);
          require_close(out, composed.to(kFloat64).to(Device::cpu()).to_vector<double>(), tolerance,
                        "fused against composed");
        }
        if (!large) {
          const Values probe = wavy(n, 1.0, 0.45);
          backward_with_probe(out, probe);
          const double gradient_tolerance = std::max(tolerance, 1e-6) * 4;
          require_close(q.leaf.grad(), finite_difference(reference, inputs, 0, probe), gradient_tolerance, "grad q");
          require_close(k.leaf.grad(), finite_difference(reference, inputs, 1, probe), gradient_tolerance, "grad k");
          require_close(v.leaf.grad(), finite_difference(reference, inputs, 2, probe), gradient_tolerance, "grad v");
        }
      }
    }
  }
}

TEST_CASE("kernel support: convolution2d answers per case, and every case computes the reference convolution and gradients", "[layers][kernel_support]") {
  for (Device device : devices()) {
    for (const ConvolutionRow& row : kConvolutionRows) {
      DYNAMIC_SECTION(row.name << " on " << device) {
        const ConvolutionShape& s = row.shape;
        const Shape x_shape{s.batch, s.channels, s.height, s.width};
        const Shape weight_shape{s.out_channels, s.channels, s.kernel, s.kernel};
        const Values x_values = rounded(wavy(x_shape.numel(), 1.0, 0.3), row.dtype);
        const Values weight_values = rounded(wavy(weight_shape.numel(), 0.5, 1.2), row.dtype);
        Input x = make_input(x_values, x_shape, row.dtype, device, false);
        Input weight = make_input(weight_values, weight_shape, row.dtype, device, false);
        const Convolution2d geometry{.stride = s.stride, .padding = s.padding, .dilation = s.dilation};
        const bool taken =
            check_answer({.kernel = FusedKernel::Convolution2d, .tensors = {x.given, weight.given}, .geometry = geometry},
                         device, expected_on(device, row.cpu_takes, row.cuda_takes));
        if (!taken) {
          Tensor out = empty({s.batch, s.out_channels, s.out_height(), s.out_width()},
                             {.dtype = row.dtype, .device = device});
          REQUIRE_THROWS_WITH(backend_for(device).convolution2d(x.given, weight.given, geometry, out),
                              Catch::Contains("convolution2d") && Catch::Contains("declines"));
        }
        const Tensor out = conv2d(x.given, weight.given, Tensor(), s.stride, s.padding, s.dilation);
        auto reference = [&](const std::vector<Values>& in) { return convolution_reference(in[0], in[1], s); };
        const std::vector<Values> inputs{x_values, weight_values};
        const double tolerance = tolerance_of(row.dtype);
        require_close(out, reference(inputs), tolerance, "value");
        if (taken) {
          // The im2col path, the CPU's kernel, computed on the host.
          const Tensor composed = conv2d(x.given.to(Device::cpu()), weight.given.to(Device::cpu()), Tensor(), s.stride,
                                         s.padding, s.dilation);
          require_close(out, composed.to(kFloat64).to_vector<double>(), tolerance, "fused against composed");
        }
        const Values probe = wavy(out.numel(), 1.0, 0.45);
        backward_with_probe(out, probe);
        const double gradient_tolerance = std::max(tolerance, 1e-6) * 4;
        require_close(x.leaf.grad(), finite_difference(reference, inputs, 0, probe), gradient_tolerance, "grad x");
        require_close(weight.leaf.grad(), finite_difference(reference, inputs, 1, probe), gradient_tolerance,
                      "grad weight");
      }
    }
  }
}

TEST_CASE("kernel support: a malformed question raises instead of answering", "[layers][kernel_support]") {
  Backend& table = backend_for(Device::cpu());
  const Tensor x = zeros({2, 3});
  REQUIRE_THROWS_WITH(table.supports({.kernel = FusedKernel::LayerNorm, .tensors = {x}}),
                      Catch::Contains("expected 3 tensors {x, weight, bias}, got 1"));
  REQUIRE_THROWS_WITH(table.supports({.kernel = FusedKernel::CrossEntropy, .tensors = {x, Tensor()}}),
                      Catch::Contains("expected a defined targets"));
}
