#pragma once
// QuantizedCompression: int8 and 1-bit gradients with error feedback.
//
//   int8  (bits = 8): each chunk of chunk_elements values is sent as signed bytes q = round(x / s)
//         with s the smallest power of two such that max |x| <= 127 s. Because s is a power of
//         two, x / s and q * s are exact, and the residual x - q s is exactly representable: the
//         float subtraction computes it without rounding (|x - q s| <= s / 2 and it is a multiple
//         of min(s, ulp(x))), so sent + residual == compensated bitwise. Values that already are
//         multiples q s (|q| <= 127) of the chunk's scale are sent exactly.
//   1-bit (bits = 1): each value is sent as its sign, and each chunk's scale is the mean of the
//         chunk's |values| (sent as float32): the chunk is sent as s * sign(x), with zero counted
//         as positive. The residual is rounded once (see dist/compression/error_feedback.h).
//
// On the wire: one Int32 tensor per bucket and rank — the chunks' scales first (int8: the
// exponent of s; 1-bit: the float32 bits of s), then the values packed 4 per word (int8) or 32
// per word (1-bit) — all-gathered in one collective, since no int8 dtype exists. Every rank then
// dequantizes every rank's part, sums them in rank order (the same sum on every rank, bitwise)
// and divides by the group size. An all-gather moves (N - 1) times a rank's payload to each rank
// where a ring all-reduce moves 2 (N - 1) / N times the full-precision bucket: int8 sends fewer
// bytes than a float32 all-reduce below 8 ranks, 1-bit (at 256 values a chunk) below about 57.
//
// A chunk holding an infinite or NaN value (an fp16 loss scale that overflowed) comes out as NaN
// on every rank, so a loss scaler sees it and skips the step, and its residual is left as it was.
//
// The work is CPU loops on the data: a CUDA bucket is copied to the host and the result back.
// Gradients in float64 are processed in float64, every other dtype in float32.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dist/compression/error_feedback.h"
#include "dist/compression/gradient_compression.h"

namespace dtrain::dist {

struct QuantizedOptions {
  int bits = 8;                  // 8 or 1
  int64_t chunk_elements = 256;  // values sharing one scale
  int64_t start_step = 0;        // exact all-reduce before this step
};

class QuantizedCompression : public GradientCompression {
 public:
  explicit QuantizedCompression(QuantizedOptions options = {});

  std::string name() const override { return options_.bits == 8 ? "int8" : "1-bit"; }

  const QuantizedOptions& options() const { return options_; }

 protected:
  WorkHandle compress(ProcessGroup& group, HookBucket& bucket) override;

 private:
  QuantizedOptions options_;
};

}  // namespace dtrain::dist
