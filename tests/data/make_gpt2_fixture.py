"""The GPT-2 fixture of tests/checkpoint/test_gpt2_hugging_face.cpp, made once with PyTorch and
transformers from PyPI (python3 -m venv venv; venv/bin/pip install torch transformers):

    venv/bin/python tests/data/make_gpt2_fixture.py            # writes tests/data/gpt2_tiny/

A tiny GPT-2 (2 layers, 4 heads, width 32, context 16, 300 tokens) with random weights — every
LayerNorm and bias drawn too, so a misplaced one shows — saved by transformers' save_pretrained
(model.safetensors, config.json), and reference.safetensors: token sequences ("tokens", int64
[2, 16]) and the logits transformers computes for them in float32 ("logits", [2, 16, 300]).

The other direction: a folder that `dtrain-convert to-hugging-face` wrote is loaded by
transformers and its logits compared with the reference:

    venv/bin/python tests/data/make_gpt2_fixture.py --check FOLDER
"""
import argparse
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel

HERE = pathlib.Path(__file__).resolve().parent / "gpt2_tiny"
CONFIG = dict(vocab_size=300, n_positions=16, n_embd=32, n_layer=2, n_head=4,
              activation_function="gelu_new", layer_norm_epsilon=1e-5, bos_token_id=0, eos_token_id=0)


def reference():
    return load_file(str(HERE / "reference.safetensors"))


def make():
    torch.manual_seed(20261204)
    model = GPT2LMHeadModel(GPT2Config(**CONFIG)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            scale = 0.5 if "ln_" in name else 0.2
            offset = 1.0 if "ln_" in name and name.endswith("weight") else 0.0
            parameter.copy_(offset + scale * torch.randn_like(parameter))
    HERE.mkdir(exist_ok=True)
    model.save_pretrained(str(HERE), safe_serialization=True)
    tokens = torch.randint(0, CONFIG["vocab_size"], (2, CONFIG["n_positions"]), dtype=torch.int64)
    with torch.no_grad():
        logits = model(tokens).logits.float().contiguous()
    save_file({"tokens": tokens, "logits": logits}, str(HERE / "reference.safetensors"))
    print(f"wrote {HERE}: logits {tuple(logits.shape)}, |logits| max {logits.abs().max():.3f}")


def check(folder):
    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    expected = reference()
    with torch.no_grad():
        logits = model(expected["tokens"]).logits.float()
    difference = (logits - expected["logits"]).abs().max().item()
    print(f"{folder}: transformers loaded it; max |logits - reference| = {difference:.3e}")
    return difference


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", metavar="FOLDER", help="load a dtrain-converted folder with transformers")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    arguments = parser.parse_args()
    if arguments.check:
        sys.exit(0 if check(arguments.check) <= arguments.tolerance else 1)
    make()
