// bench_reduce: sum over each dim (and all dims) of [8192, 3072] and [8192, 768] in bfloat16 and
// float32 on one GPU — the bias gradients of GPT-2's Linear layers at batch 8 x 1024 are the
// dim-0 rows — against the device's copy bandwidth.
//
//   bench_reduce [--repeats 20] [--iterations 20]
//
// Copy bandwidth: a device-to-device cudaMemcpyAsync of 512 MiB, counted as bytes read plus bytes
// written per second (the memory traffic a copy makes). A reduction's bandwidth counts the bytes
// it reads (its output is tiny). Each time is the median over `repeats` of cudaEvents around
// `iterations` back-to-back calls of dtrain's sum op (allocation of the result included, as in a
// training step), divided by `iterations`.
//
// Prints a table; without a GPU one line saying it skipped.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "cuda/stream.h"
#include "dtrain.h"

using dtrain::bench::median;

namespace {

using namespace dtrain;

struct Arguments {
  int repeats = 20;
  int iterations = 20;
};

Arguments parse(int argc, char** argv) {
  Arguments arguments;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) fail("bench_reduce: expected a value after ", flag);
    const int value = std::atoi(argv[++i]);
    if (value <= 0) fail("bench_reduce: expected a positive number after ", flag, ", got ", argv[i]);
    if (flag == "--repeats") arguments.repeats = value;
    else if (flag == "--iterations") arguments.iterations = value;
    else fail("bench_reduce: unknown flag ", flag, " (expected --repeats or --iterations)");
  }
  return arguments;
}

// Milliseconds per call of fn: the median over repeats of `iterations` calls between two events.
double time_ms(Device device, const Arguments& arguments, const std::function<void()>& fn) {
  cudaStream_t stream = cuda::current_stream(device.index);
  for (int i = 0; i < 3; ++i) fn();  // warm the caching allocator and the caches
  std::vector<double> times;
  for (int r = 0; r < arguments.repeats; ++r) {
    cuda::Event start(true), end(true);
    start.record(stream);
    for (int i = 0; i < arguments.iterations; ++i) fn();
    end.record(stream);
    end.synchronize();
    times.push_back(start.elapsed_ms(end) / arguments.iterations);
  }
  return median(times);
}

// Device-to-device copy bandwidth in GB/s (read + written bytes).
double copy_bandwidth_gbs(Device device, const Arguments& arguments) {
  const int64_t bytes = int64_t{512} << 20;
  Tensor source = zeros({bytes}, {.dtype = kBool, .device = device});
  Tensor destination = empty({bytes}, {.dtype = kBool, .device = device});
  cudaStream_t stream = cuda::current_stream(device.index);
  const double ms = time_ms(device, arguments, [&] {
    // (cuda/check.h's helpers are the plugin's own, hidden from programs.)
    const cudaError_t status = cudaMemcpyAsync(destination.data(), source.data(), static_cast<size_t>(bytes),
                                               cudaMemcpyDeviceToDevice, stream);
    if (status != cudaSuccess) fail("bench_reduce: cudaMemcpyAsync (device to device): ", cudaGetErrorString(status));
  });
  return 2.0 * static_cast<double>(bytes) / (ms * 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Arguments arguments = parse(argc, argv);
    if (!cuda::is_available()) {
      std::printf("bench_reduce skipped: %s\n", cuda::unavailable_reason().c_str());
      return 0;
    }
    const Device device = Device::cuda(0);
    const double copy_gbs = copy_bandwidth_gbs(device, arguments);
    std::printf("device-to-device copy: %.0f GB/s (read + write)\n\n", copy_gbs);
    std::printf("| shape | dtype | dims | us | GB/s read | of copy |\n|---|---|---|---:|---:|---:|\n");
    for (const Shape& shape : {Shape{8192, 3072}, Shape{8192, 768}}) {
      for (DType dtype : {kBFloat16, kFloat32}) {
        const Tensor x = randn(shape).to(dtype).to(device);
        for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0}, {1}, {0, 1}}) {
          const double ms = time_ms(device, arguments, [&] { (void)sum(x, dims); });
          const double bytes = static_cast<double>(x.numel()) * static_cast<double>(x.element_size());
          const double gbs = bytes / (ms * 1e6);
          const std::string dims_text = dims.size() == 2 ? "0,1" : std::to_string(dims[0]);
          std::printf("| %s | %s | %s | %.1f | %.0f | %.0f%% |\n", shape.str().c_str(), dtype_name(dtype), dims_text.c_str(),
                      ms * 1e3, gbs, 100.0 * gbs / copy_gbs);
        }
      }
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_reduce: %s\n", error.what());
    return 1;
  }
}
