#!/usr/bin/python3
"""DDP scaling in PyTorch (gloo backend): the reference for bench_ddp_scaling.

The same GPT as bench/train_step_torch.py (vocab 256, context 128, d_model 256, 4 layers, 4 heads,
MLP x4, GELU-tanh, output tied to the token embedding), AdamW (lr 3e-4, weight decay 0.1), 16
sequences per rank, DistributedDataParallel with its defaults (bucket_cap_mb 25). Started by
mpirun, one process per rank (the rank comes from Open MPI's environment; gloo rendezvous over
TCP on 127.0.0.1), and prints the same key=value line as bench/ddp_scaling.cpp on rank 0.

    mpirun -np 2 /usr/bin/python3 bench/ddp_scaling_torch.py [--threads 1] [--steps 20] [--warmup 3]
    /usr/bin/python3 bench/ddp_scaling_torch.py --no-ddp      # one process, the model alone
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step_torch import Gpt  # noqa: E402  (the benchmark's one PyTorch GPT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-ddp", action="store_true", help="one process without DDP (the baseline)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DDP_BENCH_PORT", "29517")))
    arguments = parser.parse_args()
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    ranks = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    if arguments.no_ddp and ranks != 1:
        sys.exit(f"ddp_scaling_torch.py: --no-ddp runs on one process (got {ranks} ranks)")
    torch.set_num_threads(arguments.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)

    model = Gpt()
    module = model
    if not arguments.no_ddp:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{arguments.port}", rank=rank, world_size=ranks)
        # gloo cannot broadcast bool tensors: leave the constant causal masks (the same on every
        # rank anyway) out of DDP's initial sync.
        masks = [name for name, buffer in module.named_buffers() if buffer.dtype == torch.bool]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, masks)
        model = DistributedDataParallel(module)
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-4, weight_decay=0.1)
    data = torch.Generator().manual_seed(1234 + rank)
    batch, context, vocabulary = 16, 128, 256
    tokens = torch.randint(0, vocabulary, (batch, context), generator=data)
    targets = torch.randint(0, vocabulary, (batch, context), generator=data)

    step_ms, forward_ms, backward_ms, optimizer_ms, cpu_ms = [], [], [], [], []
    first_loss = last_loss = 0.0
    for i in range(arguments.warmup + arguments.steps):
        start = time.perf_counter()
        cpu_start = time.process_time()
        optimizer.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        forward_done = time.perf_counter()
        loss.backward()
        backward_done = time.perf_counter()
        optimizer.step()
        end = time.perf_counter()
        cpu_end = time.process_time()
        if i == 0:
            first_loss = loss.item()
        last_loss = loss.item()
        if i < arguments.warmup:
            continue
        step_ms.append(1e3 * (end - start))
        forward_ms.append(1e3 * (forward_done - start))
        backward_ms.append(1e3 * (backward_done - forward_done))
        optimizer_ms.append(1e3 * (end - backward_done))
        cpu_ms.append(1e3 * (cpu_end - cpu_start))

    # A step is as slow as its slowest rank: each step's time is the maximum over ranks.
    slowest = torch.tensor(step_ms, dtype=torch.float64)
    if not arguments.no_ddp:
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    slowest_ms = slowest.tolist()
    if rank == 0:
        params = sum(p.numel() for p in module.parameters())
        mode = "plain" if arguments.no_ddp else "ddp"
        print(f"library=pytorch mode={mode} ranks={ranks} threads={arguments.threads} params={params} "
              f"steps={arguments.steps} median_ms={statistics.median(slowest_ms):.3f} best_ms={min(slowest_ms):.3f} "
              f"forward_ms={statistics.median(forward_ms):.3f} backward_ms={statistics.median(backward_ms):.3f} "
              f"optimizer_ms={statistics.median(optimizer_ms):.3f} cpu_ms={statistics.median(cpu_ms):.3f} "
              f"first_loss={first_loss:.4f} last_loss={last_loss:.4f}", flush=True)
    if not arguments.no_ddp:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
