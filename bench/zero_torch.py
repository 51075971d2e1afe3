#!/usr/bin/python3
"""ZeRO stage 1 in PyTorch: the reference for bench_zero (ZeroRedundancyOptimizer over gloo).

The benchmark's GPT (bench/train_step_torch.py's, at the size given by the flags; vocabulary 256,
GELU-tanh, MLP x4, output tied to the token embedding) trained with AdamW (lr 3e-4, weight decay
0.1) under DistributedDataParallel, with either plain AdamW on every rank (--mode ddp, the
baseline) or torch.distributed.optim.ZeroRedundancyOptimizer wrapping AdamW (--mode zero1:
optimizer state sharded, parameters broadcast after the step). Started by mpirun, one process per
rank (the rank comes from Open MPI's environment; gloo rendezvous over TCP on 127.0.0.1). Rank 0
prints one key=value line like bench_zero's (the step's median and fastest ms, a step's time being
its slowest rank's; the phases on rank 0: forward with the loss, backward with DDP's all-reduces,
optimizer, which for zero1 includes broadcasting the updated parameters; CPU ms per step and
cores_busy as bench_zero computes them):

    mpirun -np 2 /usr/bin/python3 bench/zero_torch.py --mode zero1 [--d-model 512 --layers 8]

model_state_bytes is what this rank holds of parameters + gradients + optimizer state, summed from
the tensors themselves (PyTorch's CPU allocator keeps no tagged counters); max_rss_mb is the
process's peak resident set (everything: the interpreter, libraries, activations).
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step_torch import Gpt  # noqa: E402  (the benchmark's one PyTorch GPT)


def tensor_bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["ddp", "zero1"], default="zero1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4, help="sequences per rank")
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--port", type=int, default=int(os.environ.get("ZERO_BENCH_PORT", "29527")))
    arguments = parser.parse_args()
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    ranks = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    torch.set_num_threads(arguments.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{arguments.port}", rank=rank, world_size=ranks)
    module = Gpt(context=arguments.context, d_model=arguments.d_model, layers=arguments.layers, heads=arguments.heads)
    # gloo cannot broadcast bool tensors: leave the constant causal masks out of DDP's initial sync.
    masks = [name for name, buffer in module.named_buffers() if buffer.dtype == torch.bool]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, masks)
    model = DistributedDataParallel(module)
    if arguments.mode == "ddp":
        optimizer = torch.optim.AdamW(module.parameters(), lr=3e-4, weight_decay=0.1)
    else:
        optimizer = ZeroRedundancyOptimizer(module.parameters(), optimizer_class=torch.optim.AdamW, lr=3e-4,
                                            weight_decay=0.1)
    data = torch.Generator().manual_seed(1234 + rank)
    vocabulary = 256
    tokens = torch.randint(0, vocabulary, (arguments.batch, arguments.context), generator=data)
    targets = torch.randint(0, vocabulary, (arguments.batch, arguments.context), generator=data)

    step_ms, forward_ms, backward_ms, optimizer_ms, cpu_ms = [], [], [], [], []
    first_loss = last_loss = 0.0
    for i in range(arguments.warmup + arguments.steps):
        start = time.perf_counter()
        cpu_start = time.process_time()  # every thread of the process (gloo's too)
        optimizer.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        forward_done = time.perf_counter()
        loss.backward()  # DDP's bucketed all-reduces overlap it
        backward_done = time.perf_counter()
        optimizer.step()  # zero1: the shard's AdamW, then every rank broadcasts its parameters
        end = time.perf_counter()
        cpu_end = time.process_time()
        if i == 0:
            first_loss = loss.item()
        last_loss = loss.item()
        if i >= arguments.warmup:
            step_ms.append(1e3 * (end - start))
            forward_ms.append(1e3 * (forward_done - start))
            backward_ms.append(1e3 * (backward_done - forward_done))
            optimizer_ms.append(1e3 * (end - backward_done))
            cpu_ms.append(1e3 * (cpu_end - cpu_start))

    # Model states held on this rank right after a step (gradients are still alive: the next
    # zero_grad frees them, as dtrain's numbers are also taken at the end of the step).
    parameters = list(module.parameters())
    inner = optimizer.optim if arguments.mode == "zero1" else optimizer
    state_tensors = [value for state in inner.state.values() for value in state.values() if torch.is_tensor(value)]
    held = torch.tensor([tensor_bytes(parameters) + tensor_bytes(p.grad for p in parameters) + tensor_bytes(state_tensors)],
                        dtype=torch.float64)
    slowest = torch.tensor(step_ms, dtype=torch.float64)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    dist.all_reduce(held, op=dist.ReduceOp.MAX)
    rss = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0], dtype=torch.float64)
    dist.all_reduce(rss, op=dist.ReduceOp.MAX)
    cpu_all_ranks = torch.tensor([statistics.median(cpu_ms)], dtype=torch.float64)
    dist.all_reduce(cpu_all_ranks, op=dist.ReduceOp.SUM)
    median_ms = statistics.median(slowest.tolist())
    usable_cores = min(ranks * arguments.threads, os.cpu_count() or 1)
    if rank == 0:
        print(f"library=pytorch mode={arguments.mode} ranks={ranks} threads={arguments.threads} "
              f"params={sum(p.numel() for p in parameters)} steps={arguments.steps} median_ms={median_ms:.3f} "
              f"best_ms={min(slowest.tolist()):.3f} forward_ms={statistics.median(forward_ms):.3f} "
              f"backward_ms={statistics.median(backward_ms):.3f} optimizer_ms={statistics.median(optimizer_ms):.3f} "
              f"cpu_ms={statistics.median(cpu_ms):.3f} "
              f"cores_busy={cpu_all_ranks.item() / median_ms / usable_cores:.2f} "
              f"model_state_bytes={int(held.item())} max_rss_mb={rss.item():.1f} "
              f"first_loss={first_loss:.4f} last_loss={last_loss:.4f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
