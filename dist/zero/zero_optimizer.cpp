#include "dist/zero/zero_optimizer.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <functional>

#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/reduce.h"
#include "dist/bucket_assignment.h"
#include "dist/cuda_communication.h"
#include "dist/init.h"
#include "dist/model_consistency.h"
#include "dist/wait_all.h"
#include "dist/zero/sharded_construction.h"

namespace dtrain::dist {
namespace {

constexpr const char* kWho = "ZeroOptimizer";

// Starts every broadcast, then waits for all (they pipeline).
void broadcast_from_rank0(ProcessGroup& group, const std::vector<Tensor>& tensors) {
  if (group.size() == 1) return;
  NoGradGuard no_grad;
  std::vector<std::pair<Tensor, Tensor>> staged;  // target, contiguous copy in flight
  std::vector<WorkHandle> works;
  for (const Tensor& tensor : tensors) {
    Tensor staging = tensor;
    if (!tensor.is_contiguous()) {
      MemoryTagScope tag(MemoryTag::Communication);
      staging = tensor.contiguous();
    }
    works.push_back(group.broadcast(staging, 0));
    staged.emplace_back(tensor, staging);
  }
  FirstError first_error;
  for (size_t i = 0; i < works.size(); ++i) {
    first_error.run([&] {
      works[i]->wait();
      if (!staged[i].second.is_same(staged[i].first)) staged[i].first.copy_(staged[i].second);
    });
  }
  first_error.rethrow();
}

// Sum of squares in double over a contiguous CPU float tensor (other layouts: tensor ops).
double sum_of_squares(const Tensor& tensor) {
  if (tensor.numel() == 0) return 0.0;
  if (tensor.is_contiguous() && tensor.device().is_cpu() && (tensor.dtype() == kFloat32 || tensor.dtype() == kFloat64)) {
    double total = 0.0;
    if (tensor.dtype() == kFloat32) {
      const float* data = tensor.data_ptr<float>();
      for (int64_t i = 0; i < tensor.numel(); ++i) total += static_cast<double>(data[i]) * static_cast<double>(data[i]);
    } else {
      const double* data = tensor.data_ptr<double>();
      for (int64_t i = 0; i < tensor.numel(); ++i) total += data[i] * data[i];
    }
    return total;
  }
  Tensor wide = tensor.to(kFloat64);
  return sum(mul(wide, wide)).item();
}

}  // namespace

ZeroOptimizer::ZeroOptimizer(std::shared_ptr<Module> model, OptimizerFactory factory, ZeroOptions options)
    : ZeroOptimizer(std::move(model), nullptr, std::move(factory), std::move(options)) {}

ZeroOptimizer::ZeroOptimizer(std::shared_ptr<Module> model, std::shared_ptr<const DeferredParameters> deferred,
                             OptimizerFactory factory, ZeroOptions options)
    : model_(std::move(model)), deferred_(std::move(deferred)), options_(std::move(options)),
      scaler_(options_.loss_scaling, false) {
  if (!model_) fail(kWho, ": expected a model, got null");
  if (!factory) fail(kWho, ": expected an optimizer factory, got an empty function");
  strategy_ = ShardingStrategy::for_stage(options_.stage);  // raises for another stage
  if (options_.param_persistence_threshold < 0) {
    fail(kWho, ": expected param_persistence_threshold >= 0, got ", options_.param_persistence_threshold);
  }
  megabytes_to_bytes(options_.bucket_cap_mb, kWho, "bucket_cap_mb");
  megabytes_to_bytes(options_.prefetch_mb, kWho, "prefetch_mb");
  const size_t reduce_in_flight_cap =
      megabytes_to_bytes(options_.reduce_in_flight_cap_mb, kWho, "reduce_in_flight_cap_mb");
  if (options_.process_group) {
    group_ = options_.process_group;
  } else {
    if (!is_initialized()) fail(kWho, ": dist::init() has not run (call it first; without mpirun it makes a world of one)");
    group_ = world_ptr();
  }

  // Everything the ranks will pair up must agree before any of it is paired.
  std::vector<NamedTensor> all_parameters = model_->named_parameters();
  std::vector<NamedTensor> buffers = model_->named_buffers();
  std::vector<NamedTensor> checked = all_parameters;
  for (const auto& [name, buffer] : buffers) checked.emplace_back("buffer " + name, buffer);
  check_same_tensors_on_all_ranks(*group_, checked, kWho);
  RunSettings settings = model_settings(*model_);
  settings.emplace_back("zero stage", std::to_string(options_.stage));
  settings.emplace_back("compute dtype",
                        options_.compute_dtype ? dtype_name(*options_.compute_dtype) : std::string("the model's"));
  settings.emplace_back("offload_optimizer", setting_text(options_.offload_optimizer));
  settings.insert(settings.end(), options_.settings.begin(), options_.settings.end());
  if (deferred_) append_deferred_settings(*deferred_, *model_, settings);
  check_same_settings_on_all_ranks(*group_, settings, kWho);
  prepare_initial_values(deferred_.get(), all_parameters, kWho);
  std::vector<Tensor> to_broadcast;
  for (const auto& [name, tensor] : checked) {
    // A deferred parameter is drawn by every rank alike (its draw was checked above).
    if (!deferred_ || !deferred_->contains(tensor)) to_broadcast.push_back(tensor);
  }
  broadcast_from_rank0(*group_, to_broadcast);

  std::vector<NamedTensor> trainable;
  for (const NamedTensor& parameter : all_parameters) {
    if (parameter.second.requires_grad()) trainable.push_back(parameter);
  }
  if (trainable.empty()) fail(kWho, ": the model has no trainable parameters");
  master_dtype_ = trainable.front().second.dtype();
  for (const auto& [name, parameter] : trainable) {
    if (parameter.dtype() != master_dtype_) {
      fail(kWho, ": expected every trainable parameter in one dtype (", master_dtype_, " as '", trainable.front().first,
           "'), got '", name, "' in ", parameter.dtype());
    }
    if (!parameter.is_contiguous()) fail(kWho, ": expected contiguous parameters, got '", name, "'");
  }
  compute_dtype_ = options_.compute_dtype.value_or(master_dtype_);
  if (!is_floating(compute_dtype_)) fail(kWho, ": expected a floating compute dtype, got ", compute_dtype_);
  if (compute_dtype_ != master_dtype_ && dtype_size(compute_dtype_) >= dtype_size(master_dtype_)) {
    fail(kWho, ": mixed precision computes in a narrower dtype than the master weights (", master_dtype_,
         "), got compute dtype ", compute_dtype_);
  }
  scaler_ = ShardedLossScaler(options_.loss_scaling, compute_dtype_ == kFloat16);

  for (const auto& [name, parameter] : trainable) {
    names_.push_back(name);
    parameters_.push_back(parameter);
    size_t group = options_.param_group_of ? options_.param_group_of(name, parameter) : 0;
    group_of_.push_back(group);
    group_count_ = std::max(group_count_, group + 1);
  }
  // Parameters are numbered group by group, as an optimizer built over the groups numbers them.
  index_in_groups_.assign(parameters_.size(), 0);
  int64_t next_index = 0;
  for (size_t g = 0; g < group_count_; ++g) {
    for (size_t p = 0; p < parameters_.size(); ++p) {
      if (group_of_[p] == g) index_in_groups_[p] = next_index++;
    }
  }
  steps_.assign(parameters_.size(), 0);

  std::vector<Tensor> original_values;
  for (const Tensor& parameter : parameters_) original_values.push_back(parameter.detach());
  build_units(trainable);
  build_buffers(original_values);
  original_values.clear();  // the model's original storages are freed here
  build_pieces_and_optimizer(factory);
  deferred_.reset();

  std::function<void(size_t)> on_complete;
  std::function<void(size_t)> before_collective;
  if (strategy_.shards_parameters()) {
    on_complete = [this](size_t unit) { gatherer_->release(unit); };
    before_collective = [this](size_t unit) {
      gatherer_->check_same_collective(unit, ParameterGatherer::Action::ReduceGradients);
    };
  }
  sharder_ = std::make_unique<GradientSharder>(*group_, strategy_, units_, parameters_, names_, launch_order_,
                                               reduce_in_flight_cap, std::move(on_complete),
                                               std::move(before_collective));
  if (strategy_.shards_parameters()) {
    gatherer_ = std::make_unique<ParameterGatherer>(*group_, units_, module_units_,
                                                    megabytes_to_bytes(options_.prefetch_mb, kWho, "prefetch_mb"));
  }
}

ZeroOptimizer::~ZeroOptimizer() {
  sharder_.reset();
  gatherer_.reset();
  for (ShardedUnit& unit : units_) {
    try {
      unit.wait_gather();
    } catch (const std::exception&) {
      // A destructor cannot report it.
    }
  }
}

Tensor ZeroOptimizer::operator()(const Tensor& input) {
  wait_for_parameters();
  if (!gatherer_) {
    Tensor output = (*model_)(input);
    inject_delay_after_forward(output);  // test only (DTRAIN_TEST_INJECT_DELAYS_US)
    return output;
  }
  gatherer_->begin_forward();
  Tensor output;
  try {
    output = (*model_)(input);
  } catch (...) {
    try {
      gatherer_->end_forward();
    } catch (const std::exception&) {
      // The first error is the one to report.
    }
    throw;
  }
  gatherer_->end_forward();
  return output;
}

void ZeroOptimizer::backward(const Tensor& loss) {
  check_defined(loss, "ZeroOptimizer::backward", "loss");
  Tensor root = scaler_.enabled() ? mul(loss, scaler_.scale()) : loss;
  gradients_synchronized_ = false;
  master_gradients_ready_ = false;
  sharder_->begin_backward();
  if (gatherer_) gatherer_->begin_backward();
  std::exception_ptr error;
  try {
    root.backward();
  } catch (...) {
    error = std::current_exception();
  }
  try {
    if (error) sharder_->abandon();
    else sharder_->finish();
  } catch (...) {
    if (!error) error = std::current_exception();
  }
  if (gatherer_ && !error) {
    try {
      gatherer_->check_same_modules_ran();
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (gatherer_) {
    try {
      gatherer_->end_backward();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

void ZeroOptimizer::synchronize_gradients() {
  if (gradients_synchronized_) return;
  // backward() reduced the gradients during backward; this settles one whose reduction is still
  // pending (every rank must still issue the same collectives).
  sharder_->finish();
  gradients_synchronized_ = true;
}

void ZeroOptimizer::prepare_master_gradients() {
  if (master_gradients_ready_) return;
  synchronize_gradients();
  NoGradGuard no_grad;
  bool overflow = false;
  for (Piece& piece : pieces_) {
    Tensor gradient = units_[piece.unit].gradient_shard.narrow(0, piece.shard_offset, piece.length);
    if (units_[piece.unit].offloaded) {
      MemoryTagScope tag(MemoryTag::Gradients);
      gradient = gradient.to(Device::cpu());  // the update runs where the masters are
    }
    if (compute_dtype_ != master_dtype_) {
      MemoryTagScope tag(MemoryTag::Gradients);
      gradient = gradient.to(master_dtype_);
      if (scaler_.enabled()) {
        gradient.mul_(scaler_.inverse_scale());
        overflow = overflow || has_non_finite(gradient);
      }
    }
    piece.master.set_grad(gradient);
  }
  found_inf_ = scaler_.enabled() ? ShardedLossScaler::agree_on_overflow(*group_, overflow) : false;
  master_gradients_ready_ = true;
}

double ZeroOptimizer::clip_grad_norm(double max_norm) {
  if (!(max_norm >= 0.0)) fail(kWho, ".clip_grad_norm: expected max_norm >= 0, got ", max_norm);
  prepare_master_gradients();
  double local = 0.0;
  for (const Piece& piece : pieces_) local += sum_of_squares(piece.master.grad());
  double total_squares = local;
  if (strategy_.shards_optimizer_state() && group_->size() > 1) {
    Tensor sum = from_vector(std::vector<double>{local});
    group_->all_reduce(sum, ReduceOp::Sum)->wait();
    total_squares = sum.item();
  }
  const double total = std::sqrt(total_squares);
  const double coefficient = max_norm / (total + 1e-6);
  if (std::isfinite(total) && coefficient < 1.0) {
    NoGradGuard no_grad;
    for (Piece& piece : pieces_) {
      Tensor gradient = piece.master.grad();
      gradient.mul_(coefficient);
    }
  }
  return total;
}

bool ZeroOptimizer::step() {
  // The masters (below stage 3 without mixed precision: this rank's slot of the flat buffer)
  // are read and written here. An all-gather still in flight may use that slot as scratch
  // space (Open MPI's Bruck algorithm rotates blocks in place), so it must end first.
  wait_for_parameters();
  prepare_master_gradients();
  const bool skip = found_inf_;
  if (!skip) {
    optimizer_->step();
    for (int64_t& steps : steps_) ++steps;
    refresh_compute_parameters();
  }
  scaler_.update(skip);
  for (Piece& piece : pieces_) piece.master.set_grad(Tensor());
  master_gradients_ready_ = false;
  gradients_synchronized_ = false;
  found_inf_ = false;
  return !skip;
}

void ZeroOptimizer::refresh_compute_parameters() {
  NoGradGuard no_grad;
  for (ShardedUnit& unit : units_) {
    unit.wait_gather();
    if (unit.has_own_master()) unit.compute_shard.copy_(unit.master_shard);  // offloaded: host to device
    if (group_->size() == 1 || !strategy_.shards_optimizer_state()) continue;
    if (strategy_.gathers_parameters_after_step() || unit.persistent) {
      unit.gather_work = group_->all_gather(unit.compute_shard, unit.full);
    }
  }
  if (strategy_.shards_parameters() && group_->size() == 1) {
    // One rank: the shard is the whole; a persistent unit's buffer is refreshed by a copy.
    for (ShardedUnit& unit : units_) {
      if (unit.persistent) unit.full.copy_(unit.compute_shard);
    }
  }
}

void ZeroOptimizer::wait_for_parameters() const {
  for (const ShardedUnit& unit : units_) const_cast<ShardedUnit&>(unit).wait_gather();
}

void ZeroOptimizer::zero_grad() {
  sharder_->finish();  // a backward not yet stepped: its collectives must still pair up
  sharder_->forget_reduced_gradients();
  NoGradGuard no_grad;
  for (ShardedUnit& unit : units_) {
    if (unit.full_gradient.defined()) {
      unit.full_gradient.zero_();
      for (size_t member = 0; member < unit.parameters.size(); ++member) {
        Tensor parameter = parameters_[unit.parameters[member]];
        parameter.set_grad(unit.member_view(unit.full_gradient, member, parameter.shape()));
      }
    } else {
      unit.gradient_shard.zero_();
    }
  }
  for (Piece& piece : pieces_) piece.master.set_grad(Tensor());
  gradients_synchronized_ = false;
  master_gradients_ready_ = false;
  found_inf_ = false;
}

StateDict ZeroOptimizer::full_parameters() const {
  wait_for_parameters();  // the masters may be a slot of a buffer an all-gather is still writing
  NoGradGuard no_grad;
  StateDict result;
  std::vector<Tensor> whole(units_.size());
  std::vector<WorkHandle> works;
  for (size_t u = 0; u < units_.size(); ++u) {
    const ShardedUnit& unit = units_[u];
    if (unit.layout.shard_count() == 1) {
      whole[u] = unit.master_shard;
      continue;
    }
    whole[u] = empty({unit.padded_total()}, {.dtype = master_dtype_, .device = unit.master_shard.device()});
    works.push_back(group_->all_gather(unit.master_shard, whole[u]));
  }
  for (WorkHandle& work : works) work->wait();
  for (size_t u = 0; u < units_.size(); ++u) {
    const ShardedUnit& unit = units_[u];
    for (size_t member = 0; member < unit.parameters.size(); ++member) {
      const size_t p = unit.parameters[member];
      result.insert(names_[p], unit.member_view(whole[u], member, parameters_[p].shape()).clone());
    }
  }
  // In registration order.
  StateDict ordered;
  for (const std::string& name : names_) ordered.insert(name, *result.find(name));
  return ordered;
}

ZeroMemoryReport ZeroOptimizer::memory_report() const {
  ZeroMemoryReport report;
  report.rank = group_->rank();
  report.world_size = group_->size();
  report.stage = strategy_.stage();
  report.compute_dtype = compute_dtype_;
  report.master_dtype = master_dtype_;
  for (const Tensor& parameter : parameters_) report.parameter_count += parameter.numel();
  for (const Piece& piece : pieces_) report.shard_parameter_count += piece.length;
  if (!strategy_.shards_optimizer_state()) report.shard_parameter_count = report.parameter_count;
  for (size_t i = 0; i < pieces_.size(); ++i) {
    report.states_per_element =
        std::max<int64_t>(report.states_per_element, static_cast<int64_t>(optimizer_->state(i).tensors.size()));
  }
  const Device device = parameters_.front().device();
  const MemoryStats stats = memory_stats(device);
  report.parameters = stats[MemoryTag::Parameters];
  report.gradients = stats[MemoryTag::Gradients];
  report.optimizer_state = stats[MemoryTag::OptimizerState];
  report.communication = stats[MemoryTag::Communication];

  // Bytes on the report's device (offloaded masters and optimizer state are in host memory).
  auto resident_bytes = [device](const Tensor& tensor) -> int64_t {
    return tensor.defined() && tensor.device() == device && tensor.storage()->is_resident()
               ? static_cast<int64_t>(tensor.nbytes())
               : 0;
  };
  for (const ShardedUnit& unit : units_) {
    report.held.parameters += resident_bytes(unit.full);
    if (strategy_.shards_parameters()) report.held.parameters += resident_bytes(unit.compute_shard);
    report.held.gradients += resident_bytes(unit.full_gradient.defined() ? unit.full_gradient : unit.gradient_shard);
    if (unit.has_own_master()) report.held.optimizer_state += resident_bytes(unit.master_shard);
    report.held_communication += resident_bytes(unit.bucket);
    report.padding.parameters += unit.padding_bytes(MemoryTag::Parameters, strategy_);
    report.padding.gradients += unit.padding_bytes(MemoryTag::Gradients, strategy_);
    report.padding.optimizer_state += unit.padding_bytes(MemoryTag::OptimizerState, strategy_);
    report.padding_communication += unit.padding_bytes(MemoryTag::Communication, strategy_);
  }
  for (size_t i = 0; i < pieces_.size(); ++i) {
    for (const auto& [name, tensor] : optimizer_->state(i).tensors) report.held.optimizer_state += resident_bytes(tensor);
  }
  // Master gradients of mixed precision exist only between backward and step.
  if (compute_dtype_ != master_dtype_) {
    for (const Piece& piece : pieces_) report.held.gradients += resident_bytes(piece.master.grad());
  }
  return report;
}

}  // namespace dtrain::dist
