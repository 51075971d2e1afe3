#pragma once
// Deferred initialisation: building a model without holding its parameters (DeepSpeed's
// zero.Init, PyTorch's meta-device construction). While a DeferredInit is alive on a thread, the
// parameter functions of layers/init.h return parameters that have a shape and a dtype but no
// bytes (their storage is released: reading one raises), and record how each was to be drawn.
// They advance the default generator exactly as a whole build does, so the recorded draws are the
// whole build's: element i of a random parameter is a pure function of (seed, offset + i / 2)
// (core/philox.h), so any range of it can be written later, anywhere, with the same bits.
//
//   manual_seed(0);
//   DeferredModel<GPT> built = build_deferred<GPT>(config);  // no parameter bytes yet
//   dist::ZeroOptimizer zero(built.model, built.parameters, factory, {.stage = 3});
//   // ZeRO writes each module's values into its flat buffer and keeps this rank's shard.
//
// Without ZeRO, materialize(*built.model) gives the whole model, equal bit for bit to a build
// without DeferredInit from the same seed.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "layers/module.h"

namespace dtrain {

// How one parameter is initialised: drawn (uniform in [a, b), normal with mean a and standard
// deviation b) in float32 from a Philox stream, or a constant a; then converted to the
// parameter's dtype.
struct ParameterInit {
  enum class Kind : uint8_t { Uniform, Normal, Constant };
  Kind kind = Kind::Constant;
  double a = 0;
  double b = 0;
  RandomStream stream;  // random kinds only
};

// The recorded initialisations of a deferred model's parameters.
class DeferredParameters {
 public:
  // The float32 elements write() draws at a time when it cannot draw into its destination.
  static constexpr int64_t kWriteChunkElements = int64_t{1} << 20;

  size_t size() const { return entries_.size(); }
  // Whether parameter (this tensor handle, or one sharing its TensorImpl) was built deferred.
  bool contains(const Tensor& parameter) const;
  const ParameterInit& init_of(const Tensor& parameter) const;

  // Writes elements [begin, begin + destination.numel()) of parameter's initial value, flattened in
  // row-major order, into destination (contiguous, any floating dtype and device), converted as
  // Module::to converts the float32 values of a whole build. Holds at most one chunk of
  // kWriteChunkElements + 1 float32 elements besides destination (none when destination is float32
  // on the CPU and begin is even).
  void write(const Tensor& parameter, int64_t begin, Tensor destination) const;

  // Gives parameter its own bytes holding its initial values; the handle (every holder's) stays
  // valid. The record is kept: its values can still be written elsewhere.
  void materialize(const Tensor& parameter) const;
  // Every deferred parameter of model, then forgets them: the whole model, as built without
  // DeferredInit.
  void materialize(Module& model);

  // One line per deferred parameter of model, "<name>: normal(0, 0.02) seed 7 offset 1024", in
  // named_parameters() order: what every rank must agree on to draw the same model.
  std::vector<std::string> describe(const Module& model) const;

 private:
  friend class DeferredInit;
  struct Entry {
    Tensor parameter;  // keeps the TensorImpl alive, so its address names it
    ParameterInit init;
  };
  const Entry& entry(const Tensor& parameter) const;
  std::unordered_map<const TensorImpl*, Entry> entries_;
};

// While alive, this thread's layers/init.h parameters are deferred (of dtype, float32 by default:
// as a whole build followed by model->to(dtype)) and recorded in parameters(). Scopes do not nest.
class DeferredInit {
 public:
  explicit DeferredInit(DType dtype = kFloat32);
  ~DeferredInit();
  DeferredInit(const DeferredInit&) = delete;
  DeferredInit& operator=(const DeferredInit&) = delete;

  std::shared_ptr<DeferredParameters> parameters() const { return parameters_; }
  DType dtype() const { return dtype_; }

  // Called by layers/init.h. A new parameter of shape with no bytes, recorded as drawn from kind
  // with (a, b) at the default generator's position, which it advances as the draw would.
  Tensor defer(const Shape& shape, ParameterInit::Kind kind, double a, double b = 0);
  // A deferred parameter drawn again (GPT's embeddings are redrawn from N(0, 0.02^2) after
  // Embedding drew them from N(0, 1)): the latest recipe replaces the earlier one.
  void redefine(const Tensor& parameter, ParameterInit::Kind kind, double a, double b = 0);

 private:
  DType dtype_;
  std::shared_ptr<DeferredParameters> parameters_;
};

// The DeferredInit alive on this thread, or null.
DeferredInit* active_deferred_init();

template <typename ModelType>
struct DeferredModel {
  std::shared_ptr<ModelType> model;
  std::shared_ptr<DeferredParameters> parameters;
};

// std::make_shared<ModelType>(arguments...) under a DeferredInit of dtype.
template <typename ModelType, typename... Arguments>
DeferredModel<ModelType> build_deferred_as(DType dtype, Arguments&&... arguments) {
  DeferredInit deferred(dtype);
  std::shared_ptr<ModelType> model = std::make_shared<ModelType>(std::forward<Arguments>(arguments)...);
  return {std::move(model), deferred.parameters()};
}

template <typename ModelType, typename... Arguments>
DeferredModel<ModelType> build_deferred(Arguments&&... arguments) {
  return build_deferred_as<ModelType>(kFloat32, std::forward<Arguments>(arguments)...);
}

}  // namespace dtrain
