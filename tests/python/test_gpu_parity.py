"""GPU parity: unirt's CUDA backend (FP32 and FP16 engines) against PyTorch FP32 on the GPU.

Runs where torch sees a CUDA device and the unirt binary has a usable CUDA backend; elsewhere each
test is skipped with the reason. Tolerances: FP32 max abs error <= 1e-3 x max(1, |ref|);
FP16 <= 2e-2 x max(1, |ref|); FP16 top-1 agreement >= 98% on 256 random inputs (PyTorch FP16 is
reported beside it).
"""
import os
import subprocess

import numpy as np
import pytest
import torch

from unirt_models import MODEL_NAMES, is_detector
from unirt_models.export import export_model, output_names, stats
from unirt_models.uniformer_light import LIGHT_MODELS


@pytest.fixture(scope="module")
def gpu(unirt_bin):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch: GPU parity tests run on the GPU machine only")
    version = subprocess.run([unirt_bin, "--version"], capture_output=True, text=True).stdout
    if "cuda: available" not in version:
        pytest.skip(f"this unirt has no usable CUDA backend ({version.strip()})")
    # The reference is true FP32: PyTorch would otherwise run convolutions in TF32.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return True


def build(unirt_bin, onnx_path, engine, fp16, lo, hi):
    cmd = [unirt_bin, "build", str(onnx_path), "-o", str(engine), "--backend", "cuda", "--min-shapes", lo, "--max-shapes", hi]
    proc = subprocess.run(cmd + (["--fp16"] if fp16 else []), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def run(unirt_bin, engine, x, d):
    np.save(d / "x.npy", x)
    proc = subprocess.run([unirt_bin, "run", str(engine), "--input", f"input={d / 'x.npy'}", "--output-dir", str(d / "o"),
                           "--backend", "cuda"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return d / "o"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_cuda_fp32_fp16_match_pytorch(name, gpu, unirt_bin, results_file, tmp_path):
    det = is_detector(name)
    light = name in LIGHT_MODELS  # token pruning: also a second resolution (the kept count follows it)
    shapes = [(1, 3, 200, 232), (2, 3, 229, 301)] if det else [(1, 3, 224, 224), (4, 3, 224, 224)]
    if light:
        shapes.append((2, 3, 256, 320))
    onnx_path = tmp_path / f"{name}.onnx"
    model = export_model(name, str(onnx_path), verify_onnx=False).cuda()
    lo = "input:1x3x192x192" if det else "input:1x3x224x224"
    hi = "input:4x3x320x320" if det else ("input:8x3x320x320" if light else "input:8x3x224x224")
    for prec, tol in (("fp32", 1e-3), ("fp16", 2e-2)):
        engine = tmp_path / f"{name}.{prec}.engine"
        build(unirt_bin, onnx_path, engine, prec == "fp16", lo, hi)
        for i, shape in enumerate(shapes):
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(i))
            with torch.no_grad():
                ref = model(x.cuda())
            refs = [r.float().cpu().numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
            d = tmp_path / f"{prec}{i}"
            d.mkdir()
            out = run(unirt_bin, engine, x.numpy(), d)
            for oname, r in zip(output_names(name), refs):
                s = stats(np.load(out / f"{oname}.npy"), r)
                print(f"{name} cuda {prec} {shape} {oname}: max abs {s['max_abs']:.2e} mean {s['mean_abs']:.2e} "
                      f"median {s['median_abs']:.2e} max/scale {s['max_rel_to_scale']:.2e}")
                with open(results_file, "a") as f:
                    f.write(f"| {name} cuda {prec} | {'x'.join(map(str, shape))} | {oname} | {s['max_abs']:.2e} | "
                            f"{s['mean_abs']:.2e} | {s['median_abs']:.2e} | {s['max_rel_to_scale']:.2e} | {s['median_rel']:.2e} |\n")
                assert s["max_rel_to_scale"] <= tol, f"{name} {prec} {shape} {oname}: {s['max_rel_to_scale']:.2e} > {tol}"


# Seeded random weights give near-tied logits, so a few of 256 top-1 decisions flip under any
# FP16 rounding: PyTorch's own FP16 agrees with its FP32 on 253/256 (UniFormer-S) to 255/256 (S+)
# of these inputs. The test reports both and requires unirt FP16 >= 98% (251/256).
@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if not is_detector(n)])
def test_fp16_top1_agreement_on_256_inputs(name, gpu, unirt_bin, results_file, tmp_path):
    onnx_path = tmp_path / f"{name}.onnx"
    model = export_model(name, str(onnx_path), verify_onnx=False).cuda()
    model_h = export_model(name, str(tmp_path / "h.onnx"), verify_onnx=False).cuda().half()
    engine = tmp_path / "e.engine"
    build(unirt_bin, onnx_path, engine, True, "input:64x3x224x224", "input:64x3x224x224")
    agree = torch_agree = 0
    for k in range(4):
        x = torch.randn(64, 3, 224, 224, generator=torch.Generator().manual_seed(100 + k))
        with torch.no_grad():
            ref = model(x.cuda()).argmax(1).cpu().numpy()
            torch_agree += int((model_h(x.cuda().half()).argmax(1).cpu().numpy() == ref).sum())
        d = tmp_path / f"b{k}"
        d.mkdir()
        got = np.load(run(unirt_bin, engine, x.numpy(), d) / "logits.npy")
        agree += int((got.argmax(1) == ref).sum())
    print(f"{name} fp16 top-1 agreement with PyTorch fp32: unirt {agree}/256, PyTorch fp16 {torch_agree}/256")
    with open(results_file, "a") as f:
        f.write(f"| {name} fp16 top-1 agreement with PyTorch fp32 | 4 x 64x3x224x224 | logits | unirt {agree}/256 | "
                f"PyTorch fp16 {torch_agree}/256 | | | |\n")
    assert agree >= 0.98 * 256
