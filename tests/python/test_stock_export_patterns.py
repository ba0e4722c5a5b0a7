"""Patterns that real exports carry, written in our own small modules and exported with the stock
torch.onnx exporter (dynamo=False, dynamic axes): a window_reverse that freezes the batch through
int(), a window pad + crop, and a timm-style class-token expand. unirt must build them for the
profiles where the graph is valid, refuse the others saying which range works, and match PyTorch
(float32, CPU backend: max abs error <= 1e-4 x max(1, |ref|)).
"""
import subprocess
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

WS = 7


class FrozenBatchWindows(nn.Module):
    """Channels-last window attention stand-in: pad to a multiple of WS, split into windows, mix
    inside each window, reverse with a batch frozen by int() (as detection backbones do), crop."""

    def __init__(self, c=8):
        super().__init__()
        self.mix = nn.Linear(c, c)

    def forward(self, x):  # x: [B, C, H, W]
        x = x.permute(0, 2, 3, 1)
        B, H, W, C = x.shape
        shortcut = x
        pad_r = (WS - W % WS) % WS
        pad_b = (WS - H % WS) % WS
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        _, Hp, Wp, _ = x.shape
        w = x.view(B, Hp // WS, WS, Wp // WS, WS, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, WS * WS, C)
        w = self.mix(w) + w.mean(dim=1, keepdim=True)
        b = int(w.shape[0] / (Hp * Wp / WS / WS))  # traced as a constant: the export's batch
        x = w.view(b, Hp // WS, Wp // WS, WS, WS, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, Hp, Wp, -1)
        if pad_r > 0 or pad_b > 0:
            x = x[:, :H, :W, :].contiguous()
        x = shortcut + x
        return x.permute(0, 3, 1, 2)


class ClassToken(nn.Module):
    """timm-style: cls_token.expand(B, -1, -1) concatenated to the patch tokens, head on token 0."""

    def __init__(self, c=16):
        super().__init__()
        self.embed = nn.Conv2d(3, c, 4, 4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, c))
        self.pos = nn.Linear(c, c)
        self.head = nn.Linear(c, 5)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.pos(x).softmax(dim=1)
        return self.head(x[:, 0])


def export(model, x, path, dyn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, str(path), input_names=["input"], output_names=["out"], opset_version=17, dynamo=False,
                          dynamic_axes={"input": dyn, "out": {0: "batch"}})


def build(unirt_bin, onnx_path, engine, lo, hi):
    return subprocess.run([unirt_bin, "build", str(onnx_path), "-o", str(engine), "--backend", "cpu", "--min-shapes", lo,
                           "--max-shapes", hi], capture_output=True, text=True)


def run(unirt_bin, engine, x, d):
    np.save(d / "x.npy", x)
    p = subprocess.run([unirt_bin, "run", str(engine), "--backend", "cpu", "--input", f"input={d / 'x.npy'}", "--output-dir",
                        str(d)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return np.load(d / "out.npy")


def check(model, unirt_bin, engine, shapes, tmp_path):
    for i, shape in enumerate(shapes):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            ref = model(x).numpy()
        d = tmp_path / f"run{i}"
        d.mkdir()
        out = run(unirt_bin, engine, x.numpy(), d)
        assert out.shape == ref.shape, (shape, out.shape, ref.shape)
        err = np.abs(out - ref).max() / max(1.0, np.abs(ref).max())
        print(f"{type(model).__name__} {shape}: max abs / scale {err:.2e}")
        assert err <= 1e-4, (shape, err)


def test_frozen_batch_window_reverse(unirt_bin, tmp_path):
    torch.manual_seed(0)
    model = FrozenBatchWindows().eval()
    onnx_path = tmp_path / "windows.onnx"
    export(model, torch.randn(1, 8, 20, 26), onnx_path, {0: "batch", 2: "height", 3: "width"})  # pads 1 and 2
    p = build(unirt_bin, onnx_path, tmp_path / "b2.engine", "input:1x8x7x7", "input:2x8x64x64")
    assert p.returncode != 0, "a batch 1..2 profile must be refused: the graph freezes the batch"
    assert "valid only for batch == 1" in p.stderr and "--max-shapes input:1x8x64x64" in p.stderr, p.stderr
    engine = tmp_path / "b1.engine"
    p = build(unirt_bin, onnx_path, engine, "input:1x8x7x7", "input:1x8x64x64")
    assert p.returncode == 0, p.stderr
    check(model, unirt_bin, engine, [(1, 8, 20, 26), (1, 8, 7, 7), (1, 8, 14, 28), (1, 8, 33, 61), (1, 8, 64, 50)], tmp_path)


def test_class_token_expand(unirt_bin, tmp_path):
    torch.manual_seed(0)
    model = ClassToken().eval()
    onnx_path = tmp_path / "cls.onnx"
    export(model, torch.randn(2, 3, 32, 32), onnx_path, {0: "batch"})
    engine = tmp_path / "cls.engine"
    p = build(unirt_bin, onnx_path, engine, "input:1x3x32x32", "input:8x3x32x32")
    assert p.returncode == 0, p.stderr
    check(model, unirt_bin, engine, [(1, 3, 32, 32), (3, 3, 32, 32), (8, 3, 32, 32)], tmp_path)
