#pragma once
// libdtrain_cuda.so is built with hidden visibility: the program that loads it sees only its entry
// point (cuda/backend_init.cpp) and what is marked DTRAIN_CUDA_EXPORT here and there, and the
// library's own calls always bind inside it. A name the library also saw exported by the program
// (core's dtrain::cuda API) once made every float32 Linear call itself in a loop; nothing the
// library defines can be taken over that way now. Exported: the stream and event classes and the
// fused-attention status, for programs that link the library directly (the GPU tests, bench_gpt2).
#define DTRAIN_CUDA_EXPORT __attribute__((visibility("default")))
