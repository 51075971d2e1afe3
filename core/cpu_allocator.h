#pragma once
// The CPU's raw bytes: 64-byte aligned blocks from the C library, with freed large blocks kept
// for reuse. A training step frees and re-allocates the same activation and gradient sizes every
// step; handed back to the C library, large blocks go back to the kernel (unmapped or trimmed),
// and the next step pays a page fault and a kernel zeroing per 4 KiB touched again (about a tenth
// of an MLP step). Cached blocks are not counted as held by tensors: the byte accounting in
// core/allocator.h is done by Storage, above this.
#include <cstddef>

#include "core/allocator.h"

namespace dtrain {

// Blocks this large and up are cached on free; smaller ones come from the C library's own free
// lists, which already reuse them without touching the kernel.
inline constexpr size_t kMinCachedCpuBlock = size_t{64} << 10;
// Freed bytes held at most; a block that would go over is returned to the C library.
inline constexpr size_t kMaxCachedCpuBytes = size_t{1} << 30;

Allocator& cpu_allocator();

// Bytes in cached free blocks now (for tests and diagnostics).
size_t cpu_cached_bytes();
// Returns every cached block to the C library.
void release_cpu_cache();

}  // namespace dtrain
