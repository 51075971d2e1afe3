"""Writes reference.safetensors, the file tests/core/test_safetensors.cpp loads to check that
dtrain reads what the reference implementation writes. Run with Python's `safetensors` and
`numpy` packages installed: python3 make_reference_safetensors.py
(numpy has no bfloat16, so BF16 is checked against bytes built from the spec instead.)"""
import numpy as np
from safetensors.numpy import save_file

tensors = {
    "weight": np.array([[1.5, -2.0, 3.25], [0.0, 4.0, -0.5]], dtype=np.float32),
    "double": np.array([1e-300, -2.5], dtype=np.float64),
    "half": np.array([1.0, -0.5, 65504.0], dtype=np.float16),
    "ints": np.array([-7, 2147483647], dtype=np.int32),
    "longs": np.array([[-1], [9007199254740993]], dtype=np.int64),
    "mask": np.array([True, False, True], dtype=np.bool_),
    "scalar": np.array(3.0, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
}
# One metadata key: the reference keeps metadata in a hash map, so with one key the file's bytes
# are fully determined and dtrain's writer must reproduce them exactly.
save_file(tensors, "reference.safetensors", metadata={"format": "np"})
