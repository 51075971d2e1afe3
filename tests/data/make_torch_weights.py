"""Writes the fixture of tests/train/test_load_weights.cpp: weights saved by PyTorch the way its
users save them, made once with PyTorch and safetensors from PyPI
(python3 -m venv venv; venv/bin/pip install torch safetensors):

    venv/bin/python tests/data/make_torch_weights.py        # writes tests/data/torch_weights/

model.safetensors: safetensors.torch.save_file(model.state_dict()) of
torch.nn.Sequential(Linear(4, 8), ReLU(), Linear(8, 2)) with random float32 weights — the names
("0.weight", "0.bias", "2.weight", "2.bias") and layouts ([out, in]) of dtrain's
Sequential(Linear, ReLU, Linear). reference.safetensors: inputs ([3, 4]) and the outputs PyTorch
computes for them in float32 ([3, 2]), which dtrain must reproduce after load_weights.
"""
import pathlib

import torch
from safetensors.torch import save_file

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
inputs = torch.randn(3, 4)
with torch.no_grad():
    outputs = model(inputs)
folder = pathlib.Path(__file__).parent / "torch_weights"
folder.mkdir(exist_ok=True)
save_file(model.state_dict(), str(folder / "model.safetensors"))
save_file({"inputs": inputs, "outputs": outputs}, str(folder / "reference.safetensors"))
print("wrote", folder)
