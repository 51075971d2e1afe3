#include "dist/reducer.h"

#include <chrono>
#include <cstdint>
#include <exception>
#include <ratio>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "core/allocator.h"
#include "core/graph.h"
#include "core/ops/factory.h"
#include "dist/bucket_assignment.h"
#include "dist/wait_all.h"

namespace dtrain::dist {
namespace {

// Which parameters a backward from output can reach: the leaves whose AccumulateGrad nodes the
// graph leads to. The graph of one forward is a few hundred to a few thousand nodes, so this
// costs microseconds per step.
std::vector<char> reachable_parameters(const Tensor& output,
                                       const std::unordered_map<const TensorImpl*, size_t>& index_of,
                                       size_t parameter_count) {
  std::vector<char> reachable(parameter_count, 0);
  Edge root = gradient_edge(output);
  if (!root.valid()) return reachable;
  std::vector<Node*> stack{root.node.get()};
  std::unordered_set<Node*> seen{root.node.get()};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    if (auto* accumulator = dynamic_cast<AccumulateGrad*>(node)) {
      auto found = index_of.find(accumulator->leaf().get());
      if (found != index_of.end()) reachable[found->second] = 1;
    }
    for (const Edge& edge : node->next_edges()) {
      if (edge.valid() && seen.insert(edge.node.get()).second) stack.push_back(edge.node.get());
    }
  }
  return reachable;
}

// "'a' (rank 1), 'b' (ranks 0, 2)", at most `limit` names.
std::string describe_missing(const std::vector<std::string>& names, const std::vector<std::vector<int>>& ranks,
                             size_t limit) {
  std::ostringstream text;
  size_t listed = 0;
  size_t total = 0;
  for (size_t p = 0; p < names.size(); ++p) {
    if (ranks[p].empty()) continue;
    ++total;
    if (listed == limit) continue;
    if (listed > 0) text << ", ";
    text << "'" << names[p] << "' (rank" << (ranks[p].size() > 1 ? "s " : " ");
    for (size_t i = 0; i < ranks[p].size(); ++i) text << (i > 0 ? ", " : "") << ranks[p][i];
    text << ")";
    ++listed;
  }
  if (total > listed) text << " and " << total - listed << " more";
  return text.str();
}

// Adds the wall time from its construction to its destruction to a counter.
class ScopedTimer {
 public:
  explicit ScopedTimer(double& milliseconds) : milliseconds_(milliseconds), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() {
    milliseconds_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  double& milliseconds_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

GradientReducer::GradientReducer(std::shared_ptr<ProcessGroup> group, std::vector<NamedTensor> parameters,
                                 GradientReducerOptions options)
    : group_(std::move(group)), options_(std::move(options)) {
  for (auto& [name, parameter] : parameters) {
    if (!parameter.requires_grad()) fail(options_.owner, ": parameter '", name, "' does not require grad");
    if (!parameter.is_contiguous()) {
      fail(options_.owner, ": expected contiguous parameters, got '", name, "' with shape ", parameter.shape(),
           " and strides that are not row-major");
    }
    index_of_[parameter.unsafe_impl()] = names_.size();
    names_.push_back(name);
    parameters_.push_back(parameter);
  }

  std::vector<BucketableTensor> sizes;
  for (const Tensor& parameter : parameters_) sizes.push_back({parameter.nbytes(), parameter.dtype(), parameter.device()});
  location_of_.resize(parameters_.size());
  for (const std::vector<size_t>& members :
       assign_gradient_buckets(sizes, options_.first_bucket_cap_bytes, options_.bucket_cap_bytes)) {
    for (size_t member = 0; member < members.size(); ++member) location_of_[members[member]] = {buckets_.size(), member};
    buckets_.emplace_back(members, parameters_);
  }

  expected_.assign(parameters_.size(), 0);
  arrived_.assign(parameters_.size(), 0);
  counted_ready_.assign(parameters_.size(), 0);
  has_local_gradient_.assign(parameters_.size(), 0);
  std::vector<size_t> member_counts;
  std::vector<size_t> bucket_bytes;
  for (const GradientBucket& bucket : buckets_) {
    member_counts.push_back(bucket.member_count());
    bucket_bytes.push_back(bucket.buffer().nbytes());
  }
  synchronizer_ = std::make_unique<GradientSynchronizer>(
      std::move(member_counts), std::move(bucket_bytes),
      BucketActions{.start = [this](size_t bucket) { return launch(bucket); }, .complete = nullptr},
      options_.max_bytes_in_flight);
  for (size_t p = 0; p < parameters_.size(); ++p) {
    hook_handles_.push_back(parameters_[p].register_post_accumulate_grad_hook([this, p](const Tensor&) {
      on_gradient_ready(p);
    }));
  }
}

GradientReducer::~GradientReducer() {
  for (size_t p = 0; p < parameters_.size(); ++p) {
    try {
      parameters_[p].remove_hook(hook_handles_[p]);
    } catch (const std::exception&) {
      // The hook is gone already; nothing to undo.
    }
  }
  // A collective still in flight writes into the bucket buffers: wait before they are freed.
  synchronizer_.reset();
}

void GradientReducer::set_communication_hook(CommunicationHook hook) {
  if (!hook) fail(options_.owner, ": expected a communication hook, got an empty function");
  communication_hook_ = std::move(hook);
}

void GradientReducer::before_forward() {
  bool backward_started = arrivals_ > 0 || synchronizer_->launched_count() > 0;
  if (phase_ != Phase::Expecting || !backward_started) {
    phase_ = Phase::Idle;
    return;
  }
  std::vector<std::string> waiting;
  for (size_t p = 0; p < parameters_.size(); ++p) {
    if (!counted_ready_[p]) waiting.push_back("'" + names_[p] + "'");
  }
  finish();  // raises itself when a rank missed a gradient and unused parameters are not allowed
  std::ostringstream list;
  for (size_t i = 0; i < waiting.size() && i < 10; ++i) list << (i > 0 ? ", " : "") << waiting[i];
  fail(options_.owner, ": the previous backward ended before parameter(s) ", list.str(),
       " got a gradient although the output depends on them, so the gradients were averaged only now, after the "
       "optimizer may have used them; call finish_gradient_synchronization() after such a backward");
}

void GradientReducer::prepare_for_backward(const Tensor& output) {
  arrived_.assign(parameters_.size(), 0);
  counted_ready_.assign(parameters_.size(), 0);
  has_local_gradient_.assign(parameters_.size(), 0);
  synchronizer_->begin();
  arrivals_ = 0;
  expected_arrivals_seen_ = 0;
  timings_ = {};

  {
    ScopedTimer timer(timings_.graph_walk_ms);
    expected_ = reachable_parameters(output, index_of_, parameters_.size());
  }
  expected_arrivals_ = 0;
  for (size_t p = 0; p < parameters_.size(); ++p) {
    if (expected_[p]) {
      ++expected_arrivals_;
    } else if (options_.find_unused_parameters) {
      // Ready from the start: its slot is filled (its gradient so far, or zeros) when its bucket
      // launches, which may then happen without waiting for it.
      counted_ready_[p] = 1;
      synchronizer_->mark_ready(location_of_[p].bucket);
    }
    // Without find_unused_parameters an unreachable parameter holds its bucket back until
    // finish(), which reports it on every rank.
  }
  phase_ = Phase::Expecting;
  // No hook will fire on this rank: the other ranks' backwards still need its collectives.
  if (expected_arrivals_ == 0) finish();
}

void GradientReducer::on_gradient_ready(size_t parameter) {
  if (phase_ == Phase::Idle) return;  // no_sync, or a forward that did not ask for synchronisation
  const Location& location = location_of_[parameter];
  bool bucket_launched = synchronizer_->is_launched(location.bucket);
  if (phase_ == Phase::Finished || bucket_launched) {
    fail(options_.owner, ": parameter '", names_[parameter], "' got a gradient after its bucket was reduced ",
         "(a gradient that does not flow through the DistributedDataParallel output, or a second backward through ",
         "one forward): run a forward through DistributedDataParallel before each backward");
  }
  if (arrived_[parameter]) {
    fail(options_.owner, ": parameter '", names_[parameter], "' got its gradient twice in one iteration ",
         "(a second backward through one forward)");
  }
  arrived_[parameter] = 1;
  // A gradient the graph walk did not foresee (it reached the parameter by a path outside the
  // output) is taken while its bucket waits, but is not what finishes the iteration.
  if (expected_[parameter]) ++expected_arrivals_seen_;
  ++arrivals_;
  {
    // Copies a gradient that backward made as a tensor of its own into the bucket now, so that
    // tensor is freed at once rather than held until the bucket is full.
    ScopedTimer timer(timings_.gradient_copy_ms);
    buckets_[location.bucket].adopt_gradient(location.member, parameters_[parameter]);
  }
  if (!counted_ready_[parameter]) {
    counted_ready_[parameter] = 1;
    synchronizer_->mark_ready(location.bucket);
  }
  synchronizer_->launch_ready();
  if (expected_arrivals_seen_ == expected_arrivals_) finish();
}

WorkHandle GradientReducer::launch(size_t bucket_index) {
  ScopedTimer timer(timings_.launch_ms);
  GradientBucket& bucket = buckets_[bucket_index];
  for (size_t member = 0; member < bucket.member_count(); ++member) {
    size_t p = bucket.parameter_indices()[member];
    const Tensor& parameter = parameters_[p];
    if (!arrived_[p]) {
      // Unused in this backward: contribute the gradient accumulated so far (no_sync steps
      // before this one), else zeros.
      if (parameter.grad().defined()) {
        bucket.adopt_gradient(member, parameter);
      } else {
        bucket.zero_slot(member);
      }
    }
    has_local_gradient_[p] = parameter.grad().defined() ? 1 : 0;
  }
  // Buckets launch strictly in index order (the synchronizer's launch order), so the index is
  // the launch position a stateful hook keys on, the same on every rank and every step.
  HookBucket hook_bucket{.index = bucket_index,
                         .buffer = bucket.buffer(),
                         .gradients = bucket.slots(),
                         .is_last = bucket_index + 1 == buckets_.size()};
  return communication_hook_(*group_, hook_bucket);
}

void GradientReducer::finish() {
  if (phase_ != Phase::Expecting) return;
  phase_ = Phase::Finished;
  if (parameters_.empty()) return;  // the same on every rank (checked at construction)
  synchronizer_->launch_remaining();
  ScopedTimer timer(timings_.wait_ms);

  // Which rank had which gradient, gathered after the buckets (same order on every rank): the
  // one collective that lets every rank see a problem any rank had.
  const size_t count = parameters_.size();
  std::vector<int32_t> local_status(2 * count);
  for (size_t p = 0; p < count; ++p) {
    local_status[p] = arrived_[p];
    local_status[count + p] = has_local_gradient_[p];
  }
  Tensor status_of_all_ranks;
  WorkHandle status_work;
  if (group_->size() > 1 && count > 0) {
    MemoryTagScope tag(MemoryTag::Communication);
    Tensor input = from_vector(local_status);
    status_of_all_ranks = empty({static_cast<int64_t>(2 * count) * group_->size()}, {.dtype = kInt32});
    status_work = group_->all_gather(input, status_of_all_ranks);
    // input must outlive the collective: keep it with the output until the wait below.
    status_work = then_on_wait(std::move(status_work), [input] {});
  }

  // Every collective is waited for even when one fails: none may still write into a buffer
  // after this returns.
  FirstError first_error;
  first_error.run([this] { synchronizer_->complete_all(); });
  first_error.run([&status_work] { if (status_work) status_work->wait(); });
  first_error.rethrow();

  std::vector<int32_t> status = status_of_all_ranks.defined() ? status_of_all_ranks.to_vector<int32_t>() : local_status;
  std::vector<std::vector<int>> ranks_without_gradient(count);
  std::vector<char> any_rank_has_gradient(count, 0);
  for (size_t rank = 0; rank < status.size() / (2 * count); ++rank) {
    const int32_t* row = status.data() + rank * 2 * count;
    for (size_t p = 0; p < count; ++p) {
      if (!row[p]) ranks_without_gradient[p].push_back(static_cast<int>(rank));
      if (row[count + p]) any_rank_has_gradient[p] = 1;
    }
  }
  if (!options_.find_unused_parameters) {
    for (const std::vector<int>& ranks : ranks_without_gradient) {
      if (!ranks.empty()) fail_missing_gradients(ranks_without_gradient);
    }
  }
  // A parameter some rank had a gradient for gets the average on every rank (zeros contributed
  // where it was unused), so every rank's optimizer updates the same parameters.
  for (size_t p = 0; p < count; ++p) {
    if (any_rank_has_gradient[p] && !parameters_[p].grad().defined()) {
      const Location& location = location_of_[p];
      Tensor parameter = parameters_[p];
      parameter.set_grad(buckets_[location.bucket].slot(location.member));
    }
  }
}

void GradientReducer::fail_missing_gradients(const std::vector<std::vector<int>>& ranks_without_gradient) const {
  fail(options_.owner, ": every parameter must get a gradient in every synchronised backward, but ",
       describe_missing(names_, ranks_without_gradient, 10),
       " got none. If some parameters are unused in some steps, construct DistributedDataParallel with "
       ".find_unused_parameters = true");
}

}  // namespace dtrain::dist
