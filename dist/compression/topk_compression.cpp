#include "dist/compression/topk_compression.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "dist/comm_hooks.h"

namespace dtrain::dist {
namespace {

// The indices of the k largest |x| (NaN largest; ties to the lower index), ascending: the k-th
// largest magnitude found by selection on a copy of the magnitudes (contiguous, so fast), then
// one pass in index order takes everything above it and the first of those equal to it.
template <typename T>
std::vector<int64_t> largest_magnitudes(const T* x, int64_t elements, int64_t k) {
  std::vector<int64_t> kept;
  kept.reserve(static_cast<size_t>(k));
  std::vector<T> magnitude(static_cast<size_t>(elements));
  for (int64_t i = 0; i < elements; ++i) {
    magnitude[i] = std::isnan(x[i]) ? std::numeric_limits<T>::infinity() : std::abs(x[i]);
  }
  std::vector<T> selected = magnitude;
  std::nth_element(selected.begin(), selected.begin() + (k - 1), selected.end(), std::greater<T>());
  const T threshold = selected[static_cast<size_t>(k - 1)];
  int64_t above = 0;
  for (T value : magnitude) above += value > threshold ? 1 : 0;
  int64_t ties_left = k - above;
  for (int64_t i = 0; i < elements; ++i) {
    if (magnitude[i] > threshold) {
      kept.push_back(i);
    } else if (magnitude[i] == threshold && ties_left > 0) {
      kept.push_back(i);
      --ties_left;
    }
  }
  return kept;
}

template <typename T, typename Index>
void encode(const Tensor& compensated, const Tensor& residual, int64_t k, Tensor& indices, Tensor& values) {
  const T* x = compensated.data_ptr<T>();
  T* dropped = residual.data_ptr<T>();
  Index* index_out = indices.data_ptr<Index>();
  T* value_out = values.data_ptr<T>();
  const int64_t elements = compensated.numel();
  std::copy(x, x + elements, dropped);  // residual: every value, then zero where kept
  std::vector<int64_t> kept = largest_magnitudes(x, elements, k);
  for (size_t j = 0; j < kept.size(); ++j) {
    index_out[j] = static_cast<Index>(kept[j]);
    value_out[j] = x[kept[j]];
    dropped[kept[j]] = 0;
  }
}

template <typename T, typename Index>
void scatter_add_all(const Tensor& indices, const Tensor& values, int64_t count, Tensor& sum) {
  const Index* index_in = indices.data_ptr<Index>();
  const T* value_in = values.data_ptr<T>();
  T* out = sum.data_ptr<T>();
  for (int64_t j = 0; j < count; ++j) out[index_in[j]] += value_in[j];  // rank after rank
}

}  // namespace

TopKCompression::TopKCompression(TopKOptions options) : GradientCompression(options.start_step), options_(options) {
  if (!(options_.fraction > 0 && options_.fraction <= 1)) {
    fail("TopKCompression: expected a fraction 0 < fraction <= 1, got ", options_.fraction);
  }
}

std::string TopKCompression::name() const {
  std::ostringstream text;
  text << "top-" << options_.fraction * 100 << "%";
  return text.str();
}

int64_t TopKCompression::kept_count(int64_t elements) const {
  auto k = static_cast<int64_t>(std::ceil(options_.fraction * static_cast<double>(elements)));
  return std::clamp<int64_t>(k, 1, std::max<int64_t>(elements, 1));
}

WorkHandle TopKCompression::compress(ProcessGroup& group, HookBucket& bucket) {
  NoGradGuard no_grad;
  Tensor buffer = bucket.buffer;
  const DType working = buffer.dtype() == kFloat64 ? kFloat64 : kFloat32;
  const int64_t elements = buffer.numel();
  const int64_t k = kept_count(elements);
  const DType index_dtype = elements <= std::numeric_limits<int32_t>::max() ? kInt32 : kInt64;
  const int ranks = group.size();
  Tensor compensated;
  Tensor indices;
  Tensor values;
  Tensor all_indices;
  Tensor all_values;
  {
    MemoryTagScope tag(MemoryTag::Communication);
    compensated = buffer.to(Device::cpu()).to(working).contiguous();
    indices = empty({k}, {.dtype = index_dtype});
    values = empty({k}, {.dtype = working});
    all_indices = empty({k * ranks}, {.dtype = index_dtype});
    all_values = empty({k * ranks}, {.dtype = working});
  }
  error_feedback_.compensate(bucket.index, compensated);
  Tensor residual = error_feedback_.residual(bucket.index);
  const bool wide_indices = index_dtype == kInt64;
  if (working == kFloat64) {
    wide_indices ? encode<double, int64_t>(compensated, residual, k, indices, values)
                 : encode<double, int32_t>(compensated, residual, k, indices, values);
  } else {
    wide_indices ? encode<float, int64_t>(compensated, residual, k, indices, values)
                 : encode<float, int32_t>(compensated, residual, k, indices, values);
  }
  WorkHandle indices_work = all_gather(group, indices, all_indices);
  WorkHandle values_work = all_gather(group, values, all_values);
  return then_on_wait(std::move(values_work), [=]() mutable {
    NoGradGuard no_grad;
    indices_work->wait();
    Tensor sum = zeros({elements}, {.dtype = working});
    const int64_t count = k * ranks;
    if (working == kFloat64) {
      wide_indices ? scatter_add_all<double, int64_t>(all_indices, all_values, count, sum)
                   : scatter_add_all<double, int32_t>(all_indices, all_values, count, sum);
    } else {
      wide_indices ? scatter_add_all<float, int64_t>(all_indices, all_values, count, sum)
                   : scatter_add_all<float, int32_t>(all_indices, all_values, count, sum);
    }
    sum.div_(static_cast<double>(ranks));  // as allreduce_hook: the sum divided once
    buffer.copy_(sum.view(buffer.shape()));
  });
}

}  // namespace dtrain::dist
