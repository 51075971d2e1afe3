#!/usr/bin/python3
"""One training step of a reference model in PyTorch, timed: the reference for bench_train_step.

Same models (layer for layer, same parameter count), same step (zero_grad + forward + loss +
backward + AdamW step, lr 3e-4, weight decay 0.1), same batch shapes, and the same output line
as bench/train_step.cpp, so bench/train_step.sh can put the two side by side.

    /usr/bin/python3 bench/train_step_torch.py --model gpt --threads 2 [--steps 20] [--warmup 3]
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_mlp():
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


class CausalSelfAttention(nn.Module):
    """As dtrain's: one projection to q, k, v; masked softmax(q k^T / sqrt(hd)) v; output projection."""

    def __init__(self, d_model, heads, context):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        # torch 1.13 has no scaled_dot_product_attention: this is nanoGPT's explicit path.
        self.register_buffer("future", torch.triu(torch.ones(context, context, dtype=torch.bool), diagonal=1))

    def forward(self, x):
        batch, length, channels = x.shape
        head_dim = channels // self.heads
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        scores = (q * (1.0 / math.sqrt(head_dim))) @ k.transpose(-2, -1)
        scores = scores.masked_fill(self.future[:length, :length], float("-inf"))
        attended = F.softmax(scores, dim=-1) @ v
        return self.proj(attended.transpose(1, 2).reshape(batch, length, channels))


class Block(nn.Module):
    def __init__(self, d_model, heads, mlp_ratio, context):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, heads, context)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * d_model, d_model))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    """Token + position embeddings, pre-norm blocks, final LayerNorm, output tied to the token embedding."""

    def __init__(self, vocabulary=256, context=128, d_model=256, layers=4, heads=4, mlp_ratio=4):
        super().__init__()
        self.token_embedding = nn.Embedding(vocabulary, d_model)
        self.position_embedding = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, mlp_ratio, context) for _ in range(layers))
        self.final_norm = nn.LayerNorm(d_model)
        for weight in (self.token_embedding.weight, self.position_embedding.weight):
            nn.init.normal_(weight, 0.0, 0.02)

    def forward(self, tokens):
        positions = torch.arange(tokens.size(1))
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.final_norm(x), self.token_embedding.weight)


def make_workload(name):
    data = torch.Generator().manual_seed(1234)
    if name == "mlp":
        batch = 128
        return make_mlp(), torch.randn(batch, 784, generator=data), torch.randint(0, 10, (batch,), generator=data)
    batch, context, vocabulary = 16, 128, 256
    tokens = torch.randint(0, vocabulary, (batch, context), generator=data)
    targets = torch.randint(0, vocabulary, (batch, context), generator=data)
    return Gpt(), tokens, targets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "gpt"], default="gpt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=0, help="timed steps (0: 20 for gpt, 50 for mlp)")
    parser.add_argument("--warmup", type=int, default=3)
    arguments = parser.parse_args()
    steps = arguments.steps or (20 if arguments.model == "gpt" else 50)
    torch.set_num_threads(arguments.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)

    model, inputs, targets = make_workload(arguments.model)
    # Parameters and gradients dropped to None between steps, as dtrain's zero_grad does.
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    step_ms, forward_ms, backward_ms, optimizer_ms = [], [], [], []
    first_loss = last_loss = 0.0
    busy_cpu_seconds = busy_wall_seconds = 0.0
    for i in range(arguments.warmup + steps):
        cpu_start = time.process_time()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs)
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
        busy_cpu_seconds += cpu_end - cpu_start
        busy_wall_seconds += end - start
        forward_ms.append(1e3 * (forward_done - start))
        backward_ms.append(1e3 * (backward_done - forward_done))
        optimizer_ms.append(1e3 * (end - backward_done))
    params = sum(p.numel() for p in model.parameters())
    print(f"library=pytorch model={arguments.model} threads={arguments.threads} params={params} steps={steps} "
          f"median_ms={statistics.median(step_ms):.3f} forward_ms={statistics.median(forward_ms):.3f} "
          f"backward_ms={statistics.median(backward_ms):.3f} optimizer_ms={statistics.median(optimizer_ms):.3f} "
          f"first_loss={first_loss:.4f} last_loss={last_loss:.4f} "
          f"cores_busy={busy_cpu_seconds / busy_wall_seconds:.2f}", flush=True)


if __name__ == "__main__":
    main()
