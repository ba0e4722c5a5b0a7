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
                assert abs(a - mx) <= 1e-5 * mx, (name, a, mx)
            elif calibrator == "percentile":
                # The smallest |x| with at least 99.9% of the values at or below it; unirt gives
                # the upper edge of its histogram bin. A bin is range / 2048, and the range (the
                # first batch's max |x|, doubled until it holds every batch) is below 2 max |x|.
                want = float(np.percentile(ref[name], 99.9, method="inverted_cdf"))
                width = (mx * 2) / 2048
                assert -1e-6 <= a - want <= width + 1e-6, (name, a, want, width)
            else:
                assert 0 < a <= mx * (1 + 1e-5), (name, a, mx)
            print(f"{calibrator} {name}: unirt {a:.5g}, max |x| {mx:.5g}")


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
    p = calibrate(unirt_bin, model, [folder], cache, "--calib-batch-size", "2", "--calib-size", "16")
    assert p.returncode == 0, p.stderr
    assert "over 3 batches" in p.stdout, p.stdout  # 5 images, 2 per batch
    head, amax = read_cache(cache)
    assert head[2] == "entropy" and set(amax) == {"x", "r1", "f"}


def test_detection_preprocessing_of_calibration_images(unirt_bin, tmp_path):
    """--calib-preprocess detect: unirt detect's keep-ratio resize, normalise and pad, each batch
    padded to its largest image. One colour per image keeps every resized pixel at that colour, so
    the minmax range of the input is known exactly: the largest |(colour - mean) / std|."""
    PIL = pytest.importorskip("PIL.Image")
    model = tmp_path / "cnn.onnx"
    small_cnn(model)
    m = onnx.load(model)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    onnx.save(m, model)
    folder = tmp_path / "imgs"
    folder.mkdir()
    colours = [(250, 3, 90), (0, 128, 255), (17, 200, 40)]
    for k, (c, size) in enumerate(zip(colours, [(60, 40), (30, 50), (45, 45)])):
        PIL.fromarray(np.full((size[1], size[0], 3), c, np.uint8)).save(folder / f"{k}.png")
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    want = max(np.abs((np.array(c) - mean) / std).max() for c in colours)
    cache = tmp_path / "det.cache"
    p = calibrate(unirt_bin, model, [folder], cache, "--calib-preprocess", "detect", "--calib-long-edge", "40",
                  "--calib-short-edge", "24", "--calib-batch-size", "2", "--calibrator", "minmax")
    assert p.returncode == 0, p.stderr
    assert "over 2 batches" in p.stdout, p.stdout  # 3 images, 2 per batch, shapes differing within a batch
    _, amax = read_cache(cache)
    assert abs(amax["x"] - want) <= 1e-5 * want, (amax["x"], want)
    p = calibrate(unirt_bin, model, [folder], cache, "--calib-preprocess", "segment")
    assert p.returncode != 0 and "--calib-preprocess" in p.stderr, p.stderr


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


def reference_qdq(model_path, cache, mode, skip=()):
    """The quantized model as quantize_layers should make it, written as standard ONNX QDQ nodes
    for ONNX Runtime: per-tensor Q/DQ (amax / qmax, zero point 0) on the activation input of each
    Conv and of the Gemm unless it is the output layer, weights through per-output-channel Q/DQ
    (max |w| / qmax)."""
    qmax = 127.0 if mode == "int8" else 448.0
    qtype = TensorProto.INT8 if mode == "int8" else TensorProto.FLOAT8E4M3FN
    m = onnx.load(model_path)
    g = m.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    outputs = {o.name for o in g.output}
    nodes = []
    for n in g.node:
        if n.op_type in ("Conv", "Gemm") and n.output[0] not in outputs and n.name not in skip:
            x, w = n.input[0], n.input[1]
            s = np.float32(cache[x]) / np.float32(qmax)
            nodes += [helper.make_node("QuantizeLinear", [x, f"{x}_s", f"{x}_z"], [f"{x}_q"]),
                      helper.make_node("DequantizeLinear", [f"{x}_q", f"{x}_s", f"{x}_z"], [f"{x}_dq"])]
            g.initializer.extend([numpy_helper.from_array(np.array(s, np.float32), f"{x}_s"),
                                  helper.make_tensor(f"{x}_z", qtype, [], [0])])
            wv = inits[w]
            axis = 0  # Conv [Cout, ...]; these Gemms have transB=1: [N, K]
            ws = (np.abs(wv).reshape(wv.shape[0], -1).max(1) / np.float32(qmax)).astype(np.float32)
            nodes += [helper.make_node("QuantizeLinear", [w, f"{w}_s", f"{w}_z"], [f"{w}_q"], axis=axis),
                      helper.make_node("DequantizeLinear", [f"{w}_q", f"{w}_s", f"{w}_z"], [f"{w}_dq"], axis=axis)]
            g.initializer.extend([numpy_helper.from_array(ws, f"{w}_s"),
                                  helper.make_tensor(f"{w}_z", qtype, [len(ws)], [0] * len(ws))])
            n.input[0], n.input[1] = f"{x}_dq", f"{w}_dq"
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    m.opset_import[0].version = 19
    m.ir_version = 9
    return m


@pytest.mark.parametrize("mode", ["int8", "fp8"])
@pytest.mark.parametrize("skip", [(), ("conv2",)])
def test_quantized_build_matches_onnx_runtime_qdq(mode, skip, unirt_bin, calib_setup, tmp_path):
    """`unirt build --int8/--fp8` (minmax calibration, --layer-precision) against the same
    quantization written as QDQ nodes and run by ONNX Runtime: within 1e-5 of the output scale.
    The error against FP32 is printed (seeded random weights: a measure of the simulation, not of
    accuracy)."""
    model, batches, files = calib_setup
    small = tmp_path / "small.onnx"
    small_cnn(small)
    cache = tmp_path / "q.cache"
    engine = tmp_path / "q.engine"
    extra = [a for name in skip for a in ("--layer-precision", f"{name}=fp16")]
    p = subprocess.run([unirt_bin, "build", str(small), "-o", str(engine), f"--{mode}", "--calib", *map(str, files), "--calib-cache", str(cache),
                        "--calibrator", "minmax", "--backend", "cpu", *extra], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"{mode}: {2 - len(skip)} layers quantized" in p.stdout, p.stdout
    _, amax = read_cache(cache)
    ref_model = reference_qdq(small, amax, mode, skip)
    x = np.random.default_rng(8).normal(0, 2, (5, 3, 16, 16)).astype(np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the QDQ nodes as written, in float
    ref = ort.InferenceSession(ref_model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    fp32 = ort.InferenceSession(str(small), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    xin = tmp_path / "x.npy"
    np.save(xin, x)
    out = tmp_path / "out"
    p = subprocess.run([unirt_bin, "run", str(engine), "--input", f"x={xin}", "--output-dir", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    got = np.load(out / "logits.npy")
    scale = max(1.0, float(np.abs(ref).max()))
    d = np.abs(got.astype(np.float64) - ref)
    q_err = np.abs(got.astype(np.float64) - fp32)
    print(f"{mode} skip={skip}: vs ORT QDQ max abs {d.max():.2e} mean {d.mean():.2e} median {np.median(d):.2e}; "
          f"vs FP32 max abs {q_err.max():.2e} (output scale {scale:.2f})")
    assert d.max() <= 1e-5 * scale
    # The reuse path: the cache, without --calib, gives the same engine output.
    engine2 = tmp_path / "q2.engine"
    p = subprocess.run([unirt_bin, "build", str(small), "-o", str(engine2), f"--{mode}", "--calib-cache", str(cache), "--backend", "cpu", *extra],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "reused" in p.stdout, p.stdout + p.stderr
    out2 = tmp_path / "out2"
    subprocess.run([unirt_bin, "run", str(engine2), "--input", f"x={xin}", "--output-dir", str(out2)], check=True, capture_output=True)
    np.testing.assert_array_equal(np.load(out2 / "logits.npy"), got)


def test_batchnorm_models_calibrate_on_the_folded_graph(unirt_bin, tmp_path):
    """Conv -> BN -> Relu -> BN -> Conv: both BatchNorms fold into the convs, so calibration ranges
    the tensors the folded convs read (the second conv reads the Relu output, not the BN's), and
    the INT8 build quantizes both convs."""
    rng = np.random.default_rng(2)
    c = 6
    bn = lambda p: [numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), f"{p}_g"),  # noqa: E731
                    numpy_helper.from_array(rng.normal(0, 0.1, c).astype(np.float32), f"{p}_b"),
                    numpy_helper.from_array(rng.normal(0, 0.1, c).astype(np.float32), f"{p}_m"),
                    numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), f"{p}_v")]
    init = [numpy_helper.from_array(rng.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(0, 0.3, (4, c, 1, 1)).astype(np.float32), "w2"), *bn("bn1"), *bn("bn2")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c1", "bn1_g", "bn1_b", "bn1_m", "bn1_v"], ["n1"], name="bn1"),
             helper.make_node("Relu", ["n1"], ["r"], name="relu"),
             helper.make_node("BatchNormalization", ["r", "bn2_g", "bn2_b", "bn2_m", "bn2_v"], ["n2"], name="bn2"),
             helper.make_node("Conv", ["n2", "w2"], ["y0"], name="conv2"),
             helper.make_node("Relu", ["y0"], ["y"], name="out")]
    g = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])], initializer=init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    model = tmp_path / "bn.onnx"
    onnx.save(m, model)
    f = tmp_path / "b.npy"
    x = rng.normal(0, 1, (4, 3, 8, 8)).astype(np.float32)
    np.save(f, x)
    cache = tmp_path / "bn.cache"
    p = subprocess.run([unirt_bin, "build", str(model), "-o", str(tmp_path / "bn.engine"), "--int8", "--calib", str(f), "--calib-cache",
                        str(cache), "--calibrator", "minmax", "--backend", "cpu"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "int8: 2 layers quantized" in p.stdout, p.stdout
    _, amax = read_cache(cache)
    assert set(amax) == {"x", "r"}, amax  # conv2 reads the Relu output once bn2 is folded into it
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert abs(amax["r"] - float(np.abs(ort_tensors_relu(model, x)).max())) <= 1e-5 * amax["r"]
    out = tmp_path / "o"
    subprocess.run([unirt_bin, "run", str(tmp_path / "bn.engine"), "--input", f"x={f}", "--output-dir", str(out)], check=True, capture_output=True)
    got = np.load(out / "y.npy")
    err = np.abs(got - ref).max() / max(1.0, np.abs(ref).max())
    print(f"BN model int8 (simulated) vs FP32: max abs / scale {err:.2e}")
    assert err < 0.05


def ort_tensors_relu(model, x):
    m = onnx.load(model)
    m.graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["r"], {"x": x})[0]
