"""unirt on the CPU against PyTorch, for every variant, at two resolutions and two batch sizes.

Tolerance (float32): max abs error <= 1e-4 x max(1, max |reference|). Each comparison's
max/mean/median abs and rel error is printed and written to the results file.
"""
import os
import subprocess

import numpy as np
import pytest
import torch

from unirt_models import MODEL_NAMES, is_detector
from unirt_models.export import export_model, output_names, stats

SHAPES = {
    "classifier": [(1, 3, 64, 64), (2, 3, 96, 128)],
    "detector": [(1, 3, 100, 116), (2, 3, 72, 88)],  # H, W multiples of neither 14 nor 32
}


def run_unirt(unirt_bin, model_path, x, tmp_path, extra=()):
    xin = tmp_path / "x.npy"
    np.save(xin, x)
    out = tmp_path / "out"
    proc = subprocess.run([unirt_bin, "run", str(model_path), "--input", f"input={xin}", "--output-dir", str(out),
                           "--backend", "cpu", *extra], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def compare(unirt_bin, results_file, name, onnx_path, model, shape, tmp_path):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    with torch.no_grad():
        ref = model(x)
    refs = ref if isinstance(ref, tuple) else (ref,)
    out = run_unirt(unirt_bin, onnx_path, x.numpy(), tmp_path)
    worst = 0.0
    for oname, r in zip(output_names(name), refs):
        got = np.load(out / f"{oname}.npy")
        assert got.shape == tuple(r.shape), (oname, got.shape, r.shape)
        s = stats(got, r.numpy())
        print(f"{name} {shape} {oname}: max abs {s['max_abs']:.2e} mean {s['mean_abs']:.2e} "
              f"median {s['median_abs']:.2e} max/scale {s['max_rel_to_scale']:.2e} median rel {s['median_rel']:.2e}")
        with open(results_file, "a") as f:
            f.write(f"| {name} | {'x'.join(map(str, shape))} | {oname} | {s['max_abs']:.2e} | {s['mean_abs']:.2e} | "
                    f"{s['median_abs']:.2e} | {s['max_rel_to_scale']:.2e} | {s['median_rel']:.2e} |\n")
        worst = max(worst, s["max_rel_to_scale"])
    assert worst <= 1e-4, f"{name} at {shape}: max abs error {worst:.2e} x scale exceeds 1e-4"


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unirt_cpu_matches_pytorch(name, unirt_bin, results_file, tmp_path):
    onnx_path = tmp_path / f"{name}.onnx"
    shapes = SHAPES["detector" if is_detector(name) else "classifier"]
    model = export_model(name, str(onnx_path), verify_shapes=shapes, quiet=True)
    for i, shape in enumerate(shapes):
        d = tmp_path / f"s{i}"
        d.mkdir()
        compare(unirt_bin, results_file, name, onnx_path, model, shape, d)


@pytest.mark.slow
def test_uniformer_small_at_224_via_engine(unirt_bin, results_file, tmp_path):
    onnx_path = tmp_path / "s.onnx"
    model = export_model("uniformer_small", str(onnx_path), quiet=True)
    engine = tmp_path / "s.engine"
    subprocess.run([unirt_bin, "build", str(onnx_path), "-o", str(engine), "--backend", "cpu",
                    "--min-shapes", "input:1x3x224x224", "--max-shapes", "input:2x3x256x256"], check=True)
    for i, shape in enumerate([(1, 3, 224, 224), (2, 3, 224, 224)]):
        d = tmp_path / f"e{i}"
        d.mkdir()
        compare(unirt_bin, results_file, "uniformer_small (engine)", engine, model, shape, d)
    # Outside the profile: a clear error naming the tensor and the profile.
    np.save(tmp_path / "big.npy", np.zeros((4, 3, 224, 224), np.float32))
    proc = subprocess.run([unirt_bin, "run", str(engine), "--input", f"input={tmp_path / 'big.npy'}", "--backend", "cpu"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "'input'" in proc.stderr and "profile" in proc.stderr, proc.stderr


def test_corrupted_engine_and_bad_input_are_clear_errors(unirt_bin, tmp_path):
    onnx_path = tmp_path / "d.onnx"
    export_model("uniformer_small_det_window", str(onnx_path), verify_onnx=False)
    engine = tmp_path / "d.engine"
    subprocess.run([unirt_bin, "build", str(onnx_path), "-o", str(engine), "--backend", "cpu"], check=True)
    data = bytearray(engine.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.engine"
    bad.write_bytes(bytes(data))
    proc = subprocess.run([unirt_bin, "inspect", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and "checksum" in proc.stderr, proc.stderr
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 64, 64), np.float32))
    proc = subprocess.run([unirt_bin, "run", str(engine), "--input", f"input={tmp_path / 'x.npy'}", "--backend", "cpu"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "'input'" in proc.stderr, proc.stderr
    np.save(tmp_path / "i.npy", np.zeros((1, 3, 64, 64), np.int64))
    proc = subprocess.run([unirt_bin, "run", str(engine), "--input", f"input={tmp_path / 'i.npy'}", "--backend", "cpu"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "int64" in proc.stderr, proc.stderr


def test_export_refuses_when_onnx_runtime_disagrees(tmp_path, monkeypatch):
    import unirt_models.export as ex
    real = ex.stats

    def skewed(out, ref):
        s = real(out, ref)
        s["max_rel_to_scale"] = 1.0
        s["max_abs"] = 1.0
        return s

    monkeypatch.setattr(ex, "stats", skewed)
    out = tmp_path / "m.onnx"
    with pytest.raises(RuntimeError, match="disagrees"):
        ex.export_model("uniformer_small", str(out), verify_shapes=[(1, 3, 64, 64)])
    assert not out.exists()
