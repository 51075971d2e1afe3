#include "layers/deferred_init.h"

#include <algorithm>
#include <sstream>

#include "core/allocator.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "core/random.h"

namespace dtrain {

namespace {

thread_local DeferredInit* active_scope = nullptr;

constexpr int64_t kChunkElements = DeferredParameters::kWriteChunkElements;

const char* kind_name(ParameterInit::Kind kind) {
  switch (kind) {
    case ParameterInit::Kind::Uniform: return "uniform";
    case ParameterInit::Kind::Normal: return "normal";
    case ParameterInit::Kind::Constant: return "constant";
  }
  return "?";
}

RandomKind random_kind(ParameterInit::Kind kind) {
  return kind == ParameterInit::Kind::Uniform ? RandomKind::Uniform : RandomKind::Normal;
}

// Float32 values [begin, begin + out.numel()) of init into out (float32, CPU, contiguous, 1-D),
// begin even. A random draw puts element i in lane i % 2 of block offset + i / 2, so a range from
// an even begin is the draw of a stream that starts begin / 2 blocks later.
void draw_float32(const ParameterInit& init, int64_t begin, Tensor& out) {
  Backend& cpu = backend_for(Device::cpu());
  if (init.kind == ParameterInit::Kind::Constant) {
    cpu.fill(out, Scalar(init.a));
    return;
  }
  const RandomStream stream{init.stream.seed, init.stream.offset + static_cast<uint64_t>(begin / 2)};
  cpu.random(random_kind(init.kind), stream, init.a, init.b, out);
}

}  // namespace

// --- DeferredParameters ---

const DeferredParameters::Entry& DeferredParameters::entry(const Tensor& parameter) const {
  auto found = parameter.defined() ? entries_.find(parameter.unsafe_impl()) : entries_.end();
  if (found == entries_.end()) {
    fail("DeferredParameters: expected a parameter built under this DeferredInit, got ",
         parameter.defined() ? "a tensor of shape " + parameter.shape().str() + " that it did not record"
                             : std::string("an undefined tensor"));
  }
  return found->second;
}

bool DeferredParameters::contains(const Tensor& parameter) const {
  return parameter.defined() && entries_.contains(parameter.unsafe_impl());
}

const ParameterInit& DeferredParameters::init_of(const Tensor& parameter) const { return entry(parameter).init; }

void DeferredParameters::write(const Tensor& parameter, int64_t begin, Tensor destination) const {
  const Entry& found = entry(parameter);
  check_defined(destination, "DeferredParameters::write", "destination");
  const int64_t length = destination.numel();
  const int64_t total = found.parameter.numel();
  if (begin < 0 || begin + length > total) {
    fail("DeferredParameters::write: expected a range within the parameter's ", total, " elements, got [", begin,
         ", ", begin + length, ")");
  }
  if (!destination.is_contiguous() || !is_floating(destination.dtype())) {
    fail("DeferredParameters::write: expected a contiguous floating destination, got ",
         destination.is_contiguous() ? "a contiguous " : "a strided ", destination.dtype(), " tensor");
  }
  if (length == 0) return;
  NoGradGuard no_grad;
  Tensor flat = destination.reshape({length});
  if (destination.dtype() == kFloat32 && destination.device().is_cpu() && begin % 2 == 0) {
    draw_float32(found.init, begin, flat);
  } else {
    // Through a float32 chunk: converted as Module::to converts, or shifted by one element when
    // the range starts in the middle of a Philox block's pair (drawn from begin - 1).
    MemoryTagScope tag(MemoryTag::Parameters);
    Tensor chunk = empty({std::min(length, kChunkElements) + 1});
    for (int64_t done = 0; done < length; done += kChunkElements) {
      const int64_t count = std::min(length - done, kChunkElements);
      const int64_t shift = (begin + done) % 2;
      Tensor drawn = chunk.narrow(0, 0, count + shift);
      draw_float32(found.init, begin + done - shift, drawn);
      flat.narrow(0, done, count).copy_(drawn.narrow(0, shift, count));
    }
  }
  destination.storage()->bump_version();
}

void DeferredParameters::materialize(const Tensor& parameter) const {
  entry(parameter);
  Tensor values;
  {
    MemoryTagScope tag(MemoryTag::Parameters);
    values = empty(parameter.shape(), {.dtype = parameter.dtype(), .device = parameter.device()});
  }
  write(parameter, 0, values);
  // The handle every layer and optimizer holds now sees the bytes.
  TensorImpl& impl = *parameter.unsafe_impl();
  impl.storage = values.storage();
  impl.strides = values.strides();
  impl.offset = 0;
}

void DeferredParameters::materialize(Module& model) {
  for (const auto& [name, parameter] : model.named_parameters()) {
    if (!contains(parameter)) continue;
    materialize(parameter);
    entries_.erase(parameter.unsafe_impl());
  }
}

std::vector<std::string> DeferredParameters::describe(const Module& model) const {
  std::vector<std::string> lines;
  for (const auto& [name, parameter] : model.named_parameters()) {
    if (!contains(parameter)) continue;
    const ParameterInit& init = init_of(parameter);
    std::ostringstream line;
    line << name << ": " << kind_name(init.kind) << "(" << setting_text(init.a);
    if (init.kind != ParameterInit::Kind::Constant) {
      line << ", " << setting_text(init.b) << ") seed " << init.stream.seed << " offset " << init.stream.offset;
    } else {
      line << ")";
    }
    lines.push_back(line.str());
  }
  return lines;
}

// --- DeferredInit ---

DeferredInit::DeferredInit(DType dtype) : dtype_(dtype), parameters_(std::make_shared<DeferredParameters>()) {
  if (!is_floating(dtype)) fail("DeferredInit: expected a floating parameter dtype, got ", dtype);
  if (active_scope != nullptr) fail("DeferredInit: a DeferredInit is already alive on this thread (scopes do not nest)");
  active_scope = this;
}

DeferredInit::~DeferredInit() { active_scope = nullptr; }

Tensor DeferredInit::defer(const Shape& shape, ParameterInit::Kind kind, double a, double b) {
  ParameterInit init{.kind = kind, .a = a, .b = b, .stream = {}};
  Tensor parameter;
  {
    // The bytes exist only for this moment (one parameter), so the storage knows its size and a
    // read before materialising names it.
    MemoryTagScope tag(MemoryTag::Parameters);
    parameter = empty(shape, {.dtype = dtype_});
  }
  parameter.storage()->release();
  if (init.kind != ParameterInit::Kind::Constant) init.stream = default_generator().take(parameter.numel());
  parameters_->entries_[parameter.unsafe_impl()] = DeferredParameters::Entry{parameter, init};
  return parameter;
}

void DeferredInit::redefine(const Tensor& parameter, ParameterInit::Kind kind, double a, double b) {
  ParameterInit init{.kind = kind, .a = a, .b = b, .stream = {}};
  auto found = parameter.defined() ? parameters_->entries_.find(parameter.unsafe_impl()) : parameters_->entries_.end();
  if (found == parameters_->entries_.end()) {
    fail("DeferredInit: can redraw only a parameter built under it, got ",
         parameter.defined() ? "a tensor of shape " + parameter.shape().str() : std::string("an undefined tensor"));
  }
  if (init.kind != ParameterInit::Kind::Constant) init.stream = default_generator().take(parameter.numel());
  found->second.init = init;
}

DeferredInit* active_deferred_init() { return active_scope; }

}  // namespace dtrain
