#pragma once
// The shapes the cost model needs of a model: its parameters, module by module, in the order the
// model registers them (backward produces gradients in the reverse order, so buckets fill from
// the end), each a matrix or a vector. PowerSGD's cost depends on the matrices' sides, ZeRO-3's
// on the modules (it gathers one leaf module's parameters at a time), the rest only on the count.
#include <cstdint>
#include <string>
#include <vector>

namespace dtrain::cost_model {

struct ParameterShape {
  int64_t rows = 0;
  int64_t columns = 1;  // 1: a vector (a bias, a LayerNorm weight)
  int64_t elements() const { return rows * columns; }
  bool is_matrix() const { return rows > 1 && columns > 1; }
};

struct ModuleShape {
  std::string name;
  std::vector<ParameterShape> parameters;
};

struct ModelShape {
  std::vector<ModuleShape> modules;  // leaf modules that own parameters, in registration order

  int64_t parameter_count() const;
  std::vector<ParameterShape> parameters_in_order() const;
};

// dtrain's GPT (layers/gpt.h): token and position embeddings, per block ln1, attn.qkv,
// attn.proj, ln2, mlp.fc, mlp.proj (Linear layers with biases), the final LayerNorm; the output
// layer is tied to the token embedding (no parameter of its own). Raises dtrain::Error for a
// size below 1.
ModelShape gpt_model_shape(int64_t vocabulary, int64_t context, int64_t d_model, int64_t layers, int64_t mlp_ratio);

// A model known only by its parameter count: square side x side matrices, one per module (the
// last one smaller if side^2 does not divide the count). Raises for parameters or side < 1.
ModelShape square_matrices_shape(int64_t parameters, int64_t side);

// Groups the parameters, taken in reverse registration order as backward produces gradients,
// into buckets as PyTorch's DDP does: a bucket closes once it holds at least its cap in bytes
// (the first bucket's cap is first_cap_bytes; 0: the same as the others). Each bucket lists its
// parameters. A cap of 0 puts every parameter in its own bucket.
std::vector<std::vector<ParameterShape>> bucket_parameters(const ModelShape& model, int64_t element_bytes,
                                                           double cap_bytes, double first_cap_bytes);

}  // namespace dtrain::cost_model
