"""`unirt debug precision` and `unirt inspect --precision` on small_cnn (conv1 and conv2 quantized,
the Gemm head kept: the output layer).

Every number debug precision reports is checked against ONNX Runtime: the quantized graph with
one layer's QDQ nodes (or both) written out as test_calibrate.reference_qdq writes them, run by ORT
in float, against ORT's FP32 output of the same inputs (relative L2 error within 1e-4 of itself).
"""
import json
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

from test_calibrate import read_cache, reference_qdq
from test_qdq import small_cnn


def rel_l2(a, b):
    return float(np.sqrt(((a.astype(np.float64) - b) ** 2).sum() / (b.astype(np.float64) ** 2).sum()))


@pytest.fixture
def quantized_cnn(unirt_bin, tmp_path):
    model = tmp_path / "small.onnx"
    small_cnn(model)
    rng = np.random.default_rng(3)
    files = []
    for k in range(2):
        files.append(tmp_path / f"c{k}.npy")
        np.save(files[-1], rng.normal(0, 2, (4, 3, 16, 16)).astype(np.float32))
    cache = tmp_path / "c.cache"
    p = subprocess.run([unirt_bin, "calibrate", str(model), "--calib", *map(str, files), "--calib-cache", str(cache), "--calibrator", "minmax",
                        "--backend", "cpu"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    x = rng.normal(0, 2, (6, 3, 16, 16)).astype(np.float32)
    xin = tmp_path / "x.npy"
    np.save(xin, x)
    return model, cache, x, xin


@pytest.mark.parametrize("mode", ["int8", "fp8"])
def test_debug_precision_ranks_layers_as_onnx_runtime_measures_them(mode, unirt_bin, quantized_cnn, tmp_path):
    model, cache, x, xin = quantized_cnn
    out = tmp_path / "rank.json"
    p = subprocess.run([unirt_bin, "debug", "precision", str(model), f"--{mode}", "--calib-cache", str(cache), "--input", f"x={xin}",
                        "--backend", "cpu", "--keep", "1", "--json", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    print(p.stdout)
    r = json.loads(out.read_text())
    assert [row["name"] for row in r["layers"]] and sorted(row["name"] for row in r["layers"]) == ["conv1", "conv2"]
    errs = [row["rel_l2"] for row in r["layers"]]
    assert errs == sorted(errs, reverse=True)
    _, amax = read_cache(cache)
    fp32 = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL

    def ort_error(skip):
        m = reference_qdq(model, amax, mode, skip)
        return rel_l2(ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0], fp32)

    for row in r["layers"]:
        other = "conv2" if row["name"] == "conv1" else "conv1"
        want = ort_error((other,))
        assert row["rel_l2"] == pytest.approx(want, rel=1e-4, abs=1e-7), row
        assert row["top1"] >= 0
    both = ort_error(())
    kept = {k["kept_out"]: k["rel_l2"] for k in r["kept_out"]}
    assert kept[0] == pytest.approx(both, rel=1e-4)
    assert kept[1] == pytest.approx(r["layers"][1]["rel_l2"], rel=1e-6)  # the worst kept out: the other one alone
    assert r["suggested"] == [r["layers"][0]["name"] + "=fp32"]
    assert f"--layer-precision {r['layers'][0]['name']}=fp32" in p.stdout


def test_debug_precision_needs_a_quantization_mode(unirt_bin, quantized_cnn):
    model, cache, _, xin = quantized_cnn
    p = subprocess.run([unirt_bin, "debug", "precision", str(model), "--calib-cache", str(cache), "--input", f"x={xin}", "--backend", "cpu"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "needs --int8 or --fp8" in p.stderr, p.stderr


def test_inspect_lists_each_layers_precision_and_scales(unirt_bin, quantized_cnn, tmp_path):
    model, cache, _, _ = quantized_cnn
    engine = tmp_path / "q.engine"
    p = subprocess.run([unirt_bin, "build", str(model), "-o", str(engine), "--int8", "--calib-cache", str(cache), "--backend", "cpu",
                        "--layer-precision", "conv2=fp32"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([unirt_bin, "inspect", str(engine), "--precision"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    print(p.stdout)
    rows = {line.split()[0]: line.split(None, 3) for line in p.stdout.splitlines()[1:] if line and not line.startswith(" ") and "layers" not in line}
    _, amax = read_cache(cache)
    assert rows["conv1"][2] == "int8"
    assert f"activation scale {np.float32(amax['x']) / np.float32(127):.6g}" in rows["conv1"][3]
    assert "weights per output channel, 8 scales" in rows["conv1"][3]
    assert rows["conv2"][2] == "float32" and rows["head"][2] == "float32"
    assert "compute layers by precision: float32=2 int8=1" in p.stdout
    assert "--layer-precision conv2=fp32" in p.stdout
