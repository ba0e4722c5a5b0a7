#!/usr/bin/env python3
"""Graphs as users bring them: models exported with the stock torch.onnx exporter (dynamo=False),
built by unirt with dynamic shapes and compared with PyTorch on the same inputs.

- timm classifiers (random init, dynamic batch): ViT-S/16, DeiT-S, Swin-T, ConvNeXt-T, ResNet-50,
  EfficientNet-B0.
- The official Sense-X hybrid detection backbone (object_detection/.../backbones/uniformer.py from
  a checkout given with --official; its mmdet/mmcv imports are stubbed), exported at 1x3x800x1216
  with dynamic b/h/w. Its window_reverse freezes the batch through int(), so unirt builds it for a
  batch-1 profile over H, W in 224..1344 and refuses a batch 1..2 profile, saying why.

Prints a markdown table (max/mean/median abs error, max abs / scale) and writes it to --out.
Run: python3 scripts/stock_exports.py --backend cuda --official /path/to/UniFormer [--models ...]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))
from unirt_models.export import stats  # noqa: E402

TIMM = ["vit_small_patch16_224", "deit_small_patch16_224", "swin_tiny_patch4_window7_224", "convnext_tiny", "resnet50",
        "efficientnet_b0"]


def official_backbone(official_dir):
    """Imports the official detection backbone with its mmdet/mmcv imports stubbed."""
    src = os.path.join(official_dir, "object_detection", "mmdet", "models", "backbones", "uniformer.py")
    if not os.path.exists(src):
        raise SystemExit(f"{src} not found: --official must be a Sense-X/UniFormer checkout")

    class Registry:
        def register_module(self, *a, **k):
            return lambda cls: cls

    pkgs = {"mmdet": None, "mmdet.models": None, "mmdet.models.backbones": None, "mmdet.utils": None, "mmcv_custom": None}
    for name in pkgs:
        m = types.ModuleType(name)
        m.__path__ = []
        sys.modules[name] = m
    sys.modules["mmdet.utils"].get_root_logger = lambda *a, **k: None
    sys.modules["mmcv_custom"].load_checkpoint = lambda *a, **k: None
    builder = types.ModuleType("mmdet.models.builder")
    builder.BACKBONES = Registry()
    sys.modules["mmdet.models.builder"] = builder
    import importlib.util
    spec = importlib.util.spec_from_file_location("mmdet.models.backbones.uniformer", src)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):  # the constructor prints its configuration
        model = mod.UniFormer(layers=[3, 4, 8, 3], embed_dim=[64, 128, 320, 512], head_dim=64, hybrid=True, window_size=14,
                              drop_path_rate=0.0)
    # Seeded random weights; damp residual branches so activations stay in the FP16 range.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("proj.weight") or name.endswith("fc2.weight") or name.endswith("conv2.weight"):
                p.mul_(0.3)
    return model.eval()


def timm_model(name):
    import timm
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False).eval()


def export(model, x, path, dyn):
    outs = model(x)
    n_out = len(outs) if isinstance(outs, (tuple, list)) else 1
    out_names = [f"out{i}" for i in range(n_out)]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, path, input_names=["input"], output_names=out_names, opset_version=17, dynamo=False,
                          dynamic_axes={"input": dyn, **{o: {0: "batch"} for o in out_names}})
    return out_names


def unirt(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True)


def compare(binary, model, onnx_path, engine, out_names, shapes, backend, device, rows, label):
    for shape in shapes:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            ref = model.to(device)(x.to(device))
        refs = [r.float().cpu().numpy() for r in (ref if isinstance(ref, (tuple, list)) else (ref,))]
        with tempfile.TemporaryDirectory() as d:
            np.save(os.path.join(d, "x.npy"), x.numpy())
            p = unirt(binary, "run", engine, "--backend", backend, "--input", f"input={d}/x.npy", "--output-dir", d)
            if p.returncode != 0:
                rows.append(f"| {label} | {'x'.join(map(str, shape))} | run failed: {p.stderr.strip()[:300]} | | | | |")
                continue
            worst = None
            for o, r in zip(out_names, refs):
                s = stats(np.load(os.path.join(d, f"{o}.npy")), r)
                if worst is None or s["max_rel_to_scale"] > worst["max_rel_to_scale"]:
                    worst = s
            rows.append(f"| {label} | {'x'.join(map(str, shape))} | ok | {worst['max_abs']:.2e} | {worst['mean_abs']:.2e} | "
                        f"{worst['median_abs']:.2e} | {worst['max_rel_to_scale']:.2e} |")
        print(rows[-1], flush=True)


def build(binary, onnx_path, engine, backend, prec, lo, hi, opt=None):
    args = ["build", onnx_path, "-o", engine, "--backend", backend, "--min-shapes", lo, "--max-shapes", hi]
    if opt:
        args += ["--opt-shapes", opt]
    if prec == "fp16":
        args.append("--fp16")
    return unirt(binary, *args)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unirt", default=os.environ.get("UNIRT_BIN", os.path.join(REPO, "build", "unirt")))
    ap.add_argument("--backend", default="cuda")
    ap.add_argument("--official", help="Sense-X/UniFormer checkout (for the detection backbone)")
    ap.add_argument("--models", nargs="*", default=None, help="subset: timm names and/or 'official_hybrid'")
    ap.add_argument("--precisions", nargs="*", default=None)
    ap.add_argument("--out", default=os.path.join(REPO, "artifacts", "stock_exports.md"))
    a = ap.parse_args()
    device = "cuda" if a.backend == "cuda" else "cpu"
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    precs = a.precisions or (["fp32", "fp16"] if a.backend == "cuda" else ["fp32"])
    models = a.models or (TIMM + (["official_hybrid"] if a.official else []))
    rows = ["| model (stock export) | input | status | max abs | mean abs | median abs | max abs / scale |",
            "|---|---|---|---|---|---|---|"]
    notes = []
    work = tempfile.mkdtemp()
    for name in models:
        onnx_path = os.path.join(work, f"{name}.onnx")
        if name == "official_hybrid":
            model = official_backbone(a.official)
            out_names = export(model, torch.randn(1, 3, 800, 1216), onnx_path, {0: "batch", 2: "height", 3: "width"})
            lo, hi, opt = "input:1x3x224x224", "input:1x3x1344x1344", "input:1x3x800x1216"
            shapes = [(1, 3, 800, 1216), (1, 3, 224, 224), (1, 3, 333, 517), (1, 3, 1344, 1344), (1, 3, 479, 641)]
            p = build(a.unirt, onnx_path, os.path.join(work, "refuse.engine"), a.backend, "fp32", "input:1x3x224x224",
                      "input:2x3x1344x1344")
            notes.append(f"official hybrid backbone, batch 1..2 profile: exit {p.returncode}\n```\n{(p.stderr or p.stdout).strip()}\n```")
            print(notes[-1], flush=True)
        else:
            model = timm_model(name)
            out_names = export(model, torch.randn(2, 3, 224, 224), onnx_path, {0: "batch"})
            lo, hi, opt = "input:1x3x224x224", "input:8x3x224x224", "input:4x3x224x224"
            shapes = [(1, 3, 224, 224), (3, 3, 224, 224)]
        for prec in precs:
            engine = os.path.join(work, f"{name}.{prec}.engine")
            p = build(a.unirt, onnx_path, engine, a.backend, prec, lo, hi, opt)
            if p.returncode != 0:
                rows.append(f"| {name} {prec} | | build failed: {p.stderr.strip()[:400]} | | | | |")
                print(rows[-1], flush=True)
                continue
            compare(a.unirt, model, onnx_path, engine, out_names, shapes, a.backend, device, rows, f"{name} {a.backend} {prec}")
    text = "\n".join(rows) + "\n\n" + "\n\n".join(notes) + "\n"
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
