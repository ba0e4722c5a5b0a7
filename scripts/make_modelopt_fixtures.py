#!/usr/bin/env python3
"""Writes tests/data/modelopt/mlp_{int8,fp8}.onnx: two pre-norm transformer MLP blocks
(LayerNorm -> Linear 64->256 -> GELU -> Linear 256->64, + residual; seeded torch weights, stock
torch.onnx.export, dynamic batch) quantized by NVIDIA modelopt's ONNX quantizer
(`modelopt.onnx.quantization.quantize`, INT8 entropy / FP8 minmax on 16 seeded random batches,
float32 kept outside the Q/DQ pairs). The tests read the files, so CI needs no modelopt (it pins
onnx and pulls onnxruntime-gpu): `pip install "nvidia-modelopt[onnx]"` and run this to rewrite them.
"""
import os
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "modelopt")


class Block(torch.nn.Module):
    def __init__(self, c=64, hidden=256):
        super().__init__()
        self.norm = torch.nn.LayerNorm(c)
        self.fc1 = torch.nn.Linear(c, hidden)
        self.fc2 = torch.nn.Linear(hidden, c)

    def forward(self, x):
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))


def main():
    from modelopt.onnx.quantization import quantize

    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(Block(), Block()).eval()
    fp32 = os.path.join(OUT, "mlp_fp32.tmp.onnx")
    torch.onnx.export(model, (torch.randn(2, 49, 64),), fp32, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, opset_version=17, dynamo=False)
    calib = np.random.default_rng(1).normal(0, 1, (16, 49, 64)).astype(np.float32)
    for mode in ("int8", "fp8"):
        quantize(fp32, quantize_mode=mode, calibration_data={"x": calib}, output_path=os.path.join(OUT, f"mlp_{mode}.onnx"),
                 calibration_eps=["cpu"], high_precision_dtype="fp32", log_level="WARNING")
    os.remove(fp32)
    print("wrote", sorted(f for f in os.listdir(OUT) if f.endswith(".onnx")), file=sys.stderr)


if __name__ == "__main__":
    main()
