#!/usr/bin/env python3
"""GPT-2 124M training on one GPU in PyTorch: the reference for bench_gpt2 (bench/gpt2.cpp).

The same model (token + position embeddings, pre-norm blocks with causal attention and a GELU-tanh
MLP x4, final LayerNorm, output layer tied to the token embedding, no dropout), batch, AdamW (lr
6e-4, betas (0.9, 0.95), weight decay 0.1) and random tokens, in PyTorch's usual mixed precision:
float32 parameters and optimizer state, forward and backward under torch.autocast(bfloat16)
(--dtype fp32: no autocast, TF32 off). Attention is F.scaled_dot_product_attention(is_causal=True)
(flash attention on an H100), the optimizer torch.optim.AdamW(fused=True). Modes:
  eager    the model as written
  compile  torch.compile(model) (the compile happens in the warmup steps; compile_s says how long)

Prints one key=value `result` line per mode, as bench_gpt2 does: the median step's ms and its
phases (forward with the loss, backward, optimizer; cudaEvents), tokens/s, MFU (6N + 6 L d T FLOPs
per token over --peak-tflops, N the parameter count with the tied weight once) and the peak memory
(torch.cuda.max_memory_reserved and max_memory_allocated).

    python3 bench/gpt2_torch.py [--modes eager,compile] [--batch 8] [--steps 10] [--warmup 3]
"""
import argparse
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d_model, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.fc_proj = nn.Linear(4 * d_model, d_model)

    def attention(self, x):
        batch, positions, d_model = x.shape
        q, k, v = self.qkv(x).split(d_model, dim=2)
        shape = (batch, positions, self.heads, d_model // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(batch, positions, d_model))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, vocabulary, context, d_model, layers, heads):
        super().__init__()
        self.token_embedding = nn.Embedding(vocabulary, d_model)
        self.position_embedding = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads) for _ in range(layers))
        self.final_norm = nn.LayerNorm(d_model)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def forward(self, tokens):
        positions = torch.arange(tokens.size(1), device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.final_norm(x), self.token_embedding.weight)


def run(mode, args):
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = Gpt2(args.vocabulary, args.context, args.d_model, args.layers, args.heads).to(device)
    parameter_count = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    forward_model = torch.compile(model) if mode == "compile" else model
    tokens = torch.randint(0, args.vocabulary, (args.batch, args.context), device=device)
    targets = torch.randint(0, args.vocabulary, (args.batch, args.context), device=device)
    use_autocast = args.dtype == "bf16"

    phases = {"forward": [], "backward": [], "optimizer": [], "step": []}
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    warmup_start = time.time()
    compile_seconds = 0.0
    loss_value = float("nan")
    for step in range(args.warmup + args.steps):
        events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        events[0].record()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
            logits = forward_model(tokens)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        events[1].record()
        loss.backward()
        events[2].record()
        optimizer.step()
        events[3].record()
        torch.cuda.synchronize()
        loss_value = loss.item()
        if step == args.warmup - 1:
            compile_seconds = time.time() - warmup_start
        if step < args.warmup:
            continue
        phases["forward"].append(events[0].elapsed_time(events[1]))
        phases["backward"].append(events[1].elapsed_time(events[2]))
        phases["optimizer"].append(events[2].elapsed_time(events[3]))
        phases["step"].append(events[0].elapsed_time(events[3]))

    step_ms = statistics.median(phases["step"])
    tokens_per_second = args.batch * args.context / (step_ms / 1000.0)
    flops_per_token = 6.0 * parameter_count + 6.0 * args.layers * args.d_model * args.context
    mfu = tokens_per_second * flops_per_token / (args.peak_tflops * 1e12)
    print(
        f"result framework=torch-{mode} mode={args.dtype} batch={args.batch} context={args.context} "
        f"parameters={parameter_count} steps={args.steps} step_ms={step_ms:.2f} "
        f"forward_ms={statistics.median(phases['forward']):.2f} backward_ms={statistics.median(phases['backward']):.2f} "
        f"optimizer_ms={statistics.median(phases['optimizer']):.2f} tokens_per_s={tokens_per_second:.0f} mfu={mfu:.4f} "
        f"peak_reserved_mb={torch.cuda.max_memory_reserved() / 1048576:.0f} "
        f"peak_tensor_mb={torch.cuda.max_memory_allocated() / 1048576:.0f} loss={loss_value:.4f} "
        f"warmup_s={compile_seconds:.1f}",
        flush=True,
    )
    del model, optimizer, forward_model
    torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="eager,compile")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--vocabulary", type=int, default=50304)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("result skipped=1 reason=\"torch.cuda.is_available() is False\"")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    status = 0
    for mode in args.modes.split(","):
        if mode not in ("eager", "compile"):
            print(f"gpt2_torch.py: unknown mode {mode!r} (eager or compile)", file=sys.stderr)
            return 2
        try:
            run(mode, args)
        except Exception as error:  # one mode failing (a compile without a C compiler) keeps the other
            print(f"result framework=torch-{mode} failed=1 error=\"{type(error).__name__}: {str(error)[:200]}\"", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
