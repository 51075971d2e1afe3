#include "dist/compression/quantized_compression.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "core/allocator.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "dist/comm_hooks.h"

namespace dtrain::dist {
namespace {

// The int8 exponent of a chunk with an infinite or NaN value: it decodes to NaN.
constexpr int32_t kNonFiniteChunk = std::numeric_limits<int32_t>::min();

// The smallest e with max_magnitude <= 127 * 2^e (max_magnitude > 0, finite). frexp gives a
// first guess; the loops correct the rounding of max_magnitude / 127 (ldexp is exact here).
int int8_exponent(double max_magnitude) {
  int exponent = 0;
  std::frexp(max_magnitude / 127.0, &exponent);
  while (std::ldexp(max_magnitude, -exponent) > 127.0) ++exponent;
  while (std::ldexp(max_magnitude, -(exponent - 1)) <= 127.0) --exponent;
  return exponent;
}

struct Layout {
  int64_t elements;
  int64_t chunk_elements;
  int64_t chunks;
  int64_t data_words;
  int64_t words() const { return chunks + data_words; }
};

Layout layout_for(int64_t elements, int64_t chunk_elements, int bits) {
  int64_t chunks = (elements + chunk_elements - 1) / chunk_elements;
  int64_t per_word = bits == 8 ? 4 : 32;
  return {elements, chunk_elements, chunks, (elements + per_word - 1) / per_word};
}

// Writes the chunks' scales and packed values of x into words (zeroed by the caller) and the
// residual x - sent of every finite chunk into residual.
template <typename T>
void encode_int8(const T* x, T* residual, const Layout& layout, uint32_t* words) {
  uint32_t* data = words + layout.chunks;
  for (int64_t chunk = 0; chunk < layout.chunks; ++chunk) {
    int64_t begin = chunk * layout.chunk_elements;
    int64_t end = std::min(layout.elements, begin + layout.chunk_elements);
    bool finite = true;
    double max_magnitude = 0;
    for (int64_t i = begin; i < end; ++i) {
      if (!std::isfinite(x[i])) {
        finite = false;
      } else {
        max_magnitude = std::max(max_magnitude, std::abs(static_cast<double>(x[i])));
      }
    }
    if (!finite) {
      words[chunk] = static_cast<uint32_t>(kNonFiniteChunk);
      continue;
    }
    int exponent = max_magnitude == 0 ? 0 : int8_exponent(max_magnitude);
    words[chunk] = static_cast<uint32_t>(static_cast<int32_t>(exponent));
    // Multiplying by a power of two in double is exact (both factors are normal doubles for every
    // float and all but the tiniest doubles) and much faster than ldexp per value; the rounding
    // to T of q * 2^exponent is exact too (see the header).
    const bool in_double_range = exponent > -1000 && exponent < 1000;
    const double to_units = std::ldexp(1.0, -exponent);
    const double scale = std::ldexp(1.0, exponent);
    for (int64_t i = begin; i < end; ++i) {
      double quantized = in_double_range ? std::nearbyint(static_cast<double>(x[i]) * to_units)
                                         : std::nearbyint(std::ldexp(static_cast<double>(x[i]), -exponent));
      T sent = static_cast<T>(in_double_range ? quantized * scale : std::ldexp(quantized, exponent));
      residual[i] = x[i] - sent;
      auto byte = static_cast<uint8_t>(static_cast<int8_t>(quantized));  // |quantized| <= 127
      data[i / 4] |= static_cast<uint32_t>(byte) << (8 * (i % 4));
    }
  }
}

template <typename T>
void add_decoded_int8(const uint32_t* words, const Layout& layout, T* sum) {
  const uint32_t* data = words + layout.chunks;
  for (int64_t chunk = 0; chunk < layout.chunks; ++chunk) {
    int64_t begin = chunk * layout.chunk_elements;
    int64_t end = std::min(layout.elements, begin + layout.chunk_elements);
    auto exponent = static_cast<int32_t>(words[chunk]);
    if (exponent == kNonFiniteChunk) {
      for (int64_t i = begin; i < end; ++i) sum[i] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    const bool in_double_range = exponent > -1000 && exponent < 1000;
    const double scale = std::ldexp(1.0, exponent);
    for (int64_t i = begin; i < end; ++i) {
      auto quantized = static_cast<int8_t>(static_cast<uint8_t>(data[i / 4] >> (8 * (i % 4))));
      sum[i] += static_cast<T>(in_double_range ? quantized * scale : std::ldexp(static_cast<double>(quantized), exponent));
    }
  }
}

template <typename T>
void encode_sign(const T* x, T* residual, const Layout& layout, uint32_t* words) {
  uint32_t* data = words + layout.chunks;
  for (int64_t chunk = 0; chunk < layout.chunks; ++chunk) {
    int64_t begin = chunk * layout.chunk_elements;
    int64_t end = std::min(layout.elements, begin + layout.chunk_elements);
    double total = 0;  // an infinite or NaN value makes the scale so
    for (int64_t i = begin; i < end; ++i) total += std::abs(static_cast<double>(x[i]));
    auto scale = static_cast<float>(total / static_cast<double>(end - begin));
    words[chunk] = std::bit_cast<uint32_t>(scale);
    if (!std::isfinite(scale)) continue;
    auto magnitude = static_cast<T>(scale);
    for (int64_t i = begin; i < end; ++i) {
      bool negative = x[i] < 0;  // branch-free: the signs of gradients are a coin toss
      residual[i] = x[i] - (negative ? -magnitude : magnitude);
      data[i / 32] |= static_cast<uint32_t>(negative) << (i % 32);
    }
  }
}

template <typename T>
void add_decoded_sign(const uint32_t* words, const Layout& layout, T* sum) {
  const uint32_t* data = words + layout.chunks;
  for (int64_t chunk = 0; chunk < layout.chunks; ++chunk) {
    int64_t begin = chunk * layout.chunk_elements;
    int64_t end = std::min(layout.elements, begin + layout.chunk_elements);
    auto scale = std::bit_cast<float>(words[chunk]);
    if (!std::isfinite(scale)) {
      for (int64_t i = begin; i < end; ++i) sum[i] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    auto magnitude = static_cast<T>(scale);
    for (int64_t i = begin; i < end; ++i) {
      bool negative = ((data[i / 32] >> (i % 32)) & 1u) != 0;
      sum[i] += negative ? -magnitude : magnitude;
    }
  }
}

template <typename T>
void encode(int bits, const Tensor& compensated, const Tensor& residual, const Layout& layout, Tensor& payload) {
  auto* words = reinterpret_cast<uint32_t*>(payload.data_ptr<int32_t>());
  if (bits == 8) {
    encode_int8(compensated.data_ptr<T>(), residual.data_ptr<T>(), layout, words);
  } else {
    encode_sign(compensated.data_ptr<T>(), residual.data_ptr<T>(), layout, words);
  }
}

// The sum over ranks, in rank order, of every rank's dequantized part of gathered.
template <typename T>
void sum_decoded(int bits, const Tensor& gathered, int ranks, const Layout& layout, Tensor& sum) {
  const auto* words = reinterpret_cast<const uint32_t*>(gathered.data_ptr<int32_t>());
  T* out = sum.data_ptr<T>();
  for (int rank = 0; rank < ranks; ++rank) {
    const uint32_t* part = words + rank * layout.words();
    if (bits == 8) {
      add_decoded_int8(part, layout, out);
    } else {
      add_decoded_sign(part, layout, out);
    }
  }
}

}  // namespace

QuantizedCompression::QuantizedCompression(QuantizedOptions options)
    : GradientCompression(options.start_step), options_(options) {
  if (options_.bits != 8 && options_.bits != 1) {
    fail("QuantizedCompression: expected bits = 8 (int8) or 1 (sign), got ", options_.bits);
  }
  if (options_.chunk_elements < 1) {
    fail("QuantizedCompression: expected chunk_elements >= 1, got ", options_.chunk_elements);
  }
}

WorkHandle QuantizedCompression::compress(ProcessGroup& group, HookBucket& bucket) {
  NoGradGuard no_grad;
  Tensor buffer = bucket.buffer;
  const DType working = buffer.dtype() == kFloat64 ? kFloat64 : kFloat32;
  const Layout layout = layout_for(buffer.numel(), options_.chunk_elements, options_.bits);
  const int ranks = group.size();
  Tensor compensated;
  Tensor payload;
  Tensor gathered;
  {
    // Transient copies that exist for the collective: counted as communication memory.
    MemoryTagScope tag(MemoryTag::Communication);
    compensated = buffer.to(Device::cpu()).to(working).contiguous();
    payload = zeros({layout.words()}, {.dtype = kInt32});
    gathered = empty({layout.words() * ranks}, {.dtype = kInt32});
  }
  error_feedback_.compensate(bucket.index, compensated);
  Tensor residual = error_feedback_.residual(bucket.index);
  if (working == kFloat64) {
    encode<double>(options_.bits, compensated, residual, layout, payload);
  } else {
    encode<float>(options_.bits, compensated, residual, layout, payload);
  }
  WorkHandle work = all_gather(group, payload, gathered);
  const int bits = options_.bits;
  return then_on_wait(std::move(work), [buffer, payload, gathered, layout, ranks, working, bits]() mutable {
    NoGradGuard no_grad;
    Tensor sum = zeros({layout.elements}, {.dtype = working});
    if (working == kFloat64) {
      sum_decoded<double>(bits, gathered, ranks, layout, sum);
    } else {
      sum_decoded<float>(bits, gathered, ranks, layout, sum);
    }
    sum.div_(static_cast<double>(ranks));  // as allreduce_hook: the sum divided once
    buffer.copy_(sum.view(buffer.shape()));
  });
}

}  // namespace dtrain::dist
