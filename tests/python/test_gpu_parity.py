"""GPU parity: runs only where torch sees a CUDA device and unirt was built with its CUDA backend."""
import subprocess

import pytest
import torch


def test_gpu_backend_available(unirt_bin):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch: GPU parity tests run on the GPU machine only")
    version = subprocess.run([unirt_bin, "--version"], capture_output=True, text=True).stdout
    if "cuda: available" not in version:
        pytest.skip(f"this unirt has no usable CUDA backend ({version.strip()})")
