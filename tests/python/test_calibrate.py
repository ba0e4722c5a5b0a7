"""`unirt calibrate`: the activation ranges against ONNX Runtime's own tensors.

A small CNN with a MatMul between activations is calibrated on three .npy batches. ONNX Runtime
runs the same batches with the calibration tensors as extra outputs; numpy then gives the
reference ranges:
- minmax: max |x| over all batches, within 1e-5 relative (the two engines' convolutions round
  differently);
- percentile 99.9: numpy's inverted-CDF percentile of |x|, up to one histogram bin above it;
- entropy: in (0, max |x|].
Also: the cache's text form, images as calibration data, and the errors for bad calibration data.
"""
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_qdq import small_cnn


def cnn_with_matmul(path):
    """small_cnn's graph plus an activation x activation MatMul on the pooled features."""
    small_cnn(path)
    m = onnx.load(path)
    g = m.graph
    # f [N, 16] -> Unsqueeze -> ff [N, 16, 1] x [N, 1, 16] -> [N, 16, 16] -> ReduceSum -> extra output
    g.initializer.extend([numpy_helper.from_array(np.array([2], np.int64), "ax2"),
                          numpy_helper.from_array(np.array([1], np.int64), "ax1")])
    g.node.extend([helper.make_node("Unsqueeze", ["f", "ax2"], ["fc"]),
                   helper.make_node("Unsqueeze", ["f", "ax1"], ["fr"]),
                   helper.make_node("MatMul", ["fc", "fr"], ["outer"]),
                   helper.make_node("ReduceSum", ["outer", "ax1"], ["gram"], keepdims=0)])
    g.output.append(helper.make_tensor_value_info("gram", TensorProto.FLOAT, ["N", 16]))
    onnx.save(m, path)


def ort_tensors(model_path, names, batches):
    m = onnx.load(model_path)
    for n in names:
        if n not in {o.name for o in m.graph.output} | {i.name for i in m.graph.input}:
            m.graph.output.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    out = {n: [] for n in names}
    for b in batches:
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": b})))
        for n in names:
            out[n].append(b if n == "x" else got[n])
    return {n: np.abs(np.concatenate([v.reshape(-1) for v in out[n]])) for n in names}


def read_cache(path):
    lines = open(path).read().splitlines()
    head = lines[0].split()
    amax = {}
    for line in lines[1:]:
        value, name = line.split(" ", 1)
        amax[name] = float.fromhex(value)
    return head, amax


def calibrate(unirt_bin, model, files, cache, *extra):
    return subprocess.run([unirt_bin, "calibrate", str(model), "--calib", *map(str, files), "--calib-cache", str(cache),
                           "--backend", "cpu", *extra], capture_output=True, text=True)


@pytest.fixture
def calib_setup(tmp_path):
    model = tmp_path / "cnn.onnx"
    cnn_with_matmul(model)
    rng = np.random.default_rng(21)
    batches = [rng.normal(0, 1 + k, (4, 3, 16, 16)).astype(np.float32) for k in range(3)]
    files = []
    for k, b in enumerate(batches):
        files.append(tmp_path / f"b{k}.npy")
        np.save(files[-1], b)
    return model, batches, files


def test_minmax_and_percentile_match_onnx_runtime_tensors(unirt_bin, calib_setup, tmp_path):
    model, batches, files = calib_setup
    expected = {"x", "r1", "f", "fc", "fr"}  # Conv, Conv, Gemm inputs; both MatMul operands
    ref = ort_tensors(model, sorted(expected), batches)
    for calibrator, extra in [("minmax", []), ("percentile", ["--percentile", "99.9"]), ("entropy", [])]:
        cache = tmp_path / f"{calibrator}.cache"
        p = calibrate(unirt_bin, model, files, cache, "--calibrator", calibrator, *extra)
        assert p.returncode == 0, p.stderr
        assert "calibrating [" in p.stderr and "3/3 batches" in p.stderr, p.stderr  # the progress line
        head, amax = read_cache(cache)
        assert head[:3] == ["unirt-calibration", "1", calibrator]
        assert set(amax) == expected, amax
        for name, a in amax.items():
            mx = float(ref[name].max())
            if calibrator == "minmax":
                got = a
                assert abs(a - mx) <= 1e-5 * mx, (name, a, mx)
            elif calibrator == "percentile":
                # The smallest |x| with at least 99.9% of the values at or below it; unirt gives
                # the upper edge of its histogram bin. A bin is range / 2048, and the range (the
                # first batch's max |x|, doubled until it holds every batch) is below 2 max |x|.
                want = float(np.percentile(ref[name], 99.9, method="inverted_cdf"))
                width = (mx * 2) / 2048
                got = a
                assert -1e-6 <= a - want <= width + 1e-6, (name, a, want, width)
            else:
                got = a
                assert 0 < a <= mx * (1 + 1e-5), (name, a, mx)
            print(f"{calibrator} {name}: unirt {got:.5g}, max |x| {mx:.5g}")


def test_images_as_calibration_data(unirt_bin, tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    model = tmp_path / "cnn.onnx"
    small_cnn(model)
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for k in range(5):
        PIL.fromarray(rng.integers(0, 255, (20 + k, 24, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    cache = tmp_path / "img.cache"
    p = calibrate(unirt_bin, model, [folder], cache, "--batch", "2", "--size", "16")
    assert p.returncode == 0, p.stderr
    assert "over 3 batches" in p.stdout, p.stdout  # 5 images, 2 per batch
    head, amax = read_cache(cache)
    assert head[2] == "entropy" and set(amax) == {"x", "r1", "f"}


def test_bad_calibration_data_is_a_clear_error(unirt_bin, calib_setup, tmp_path):
    model, _, files = calib_setup
    empty = tmp_path / "empty"
    empty.mkdir()
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 5, 16, 16), np.float32))
    for args, want in [([empty], "holds no image"), ([tmp_path / "nope.npy"], "does not exist"), ([tmp_path / "a.txt"], "expected a folder"),
                       ([wrong], "x")]:
        p = calibrate(unirt_bin, model, args, tmp_path / "c.cache")
        assert p.returncode != 0 and want in p.stderr, (args, p.stderr)
    assert not (tmp_path / "c.cache").exists()  # nothing written on failure
