"""QuantizeLinear / DequantizeLinear in unirt's CPU backend against ONNX Runtime.

1. Single Q/DQ nodes (opsets 13, 19, 21): per-tensor, per-axis and blocked scales, int8 and
   uint8, float32 and float16, ties and saturation: the integers must be equal, the dequantized
   floats equal to the float32 rounding (max abs 0).
2. A small CNN quantized by `onnxruntime.quantization.quantize_static` (QDQ format, per-channel
   weights, MinMax calibration): unirt against ONNX Runtime with graph optimisations off (the QDQ
   nodes run as written, in float) within 1e-5 of the output scale, and against ONNX Runtime's
   own int8 kernels (optimisations on), which requantize in integer arithmetic: within two output
   quantization steps. Both comparisons print max/mean/median abs error.
3. Two MLP blocks quantized by NVIDIA modelopt's ONNX quantizer, INT8 and FP8
   (tests/data/modelopt, written by scripts/make_modelopt_fixtures.py): unirt against ONNX Runtime
   running the Q/DQ graph as written, within 1e-5 of the output scale.
"""
import os
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

NP_TYPE = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8, TensorProto.FLOAT: np.float32,
           TensorProto.FLOAT16: np.float16}


def run_unirt(unirt_bin, model_path, inputs, tmp_path):
    args = []
    for name, arr in inputs.items():
        f = tmp_path / f"in_{name}.npy"
        np.save(f, arr)
        args += ["--input", f"{name}={f}"]
    out = tmp_path / "out"
    proc = subprocess.run([unirt_bin, "run", str(model_path), *args, "--output-dir", str(out), "--backend", "cpu"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def run_ort(model_path, inputs, optimize=False):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, inputs)))


def qdq_model(opset, x_type, q_type, x_shape, scale_shape, axis=None, block_size=None, scale_type=TensorProto.FLOAT, seed=0,
              check=True):
    """x -> QuantizeLinear -> q (output) -> DequantizeLinear -> y (output), with constant scale
    and zero point."""
    rng = np.random.default_rng(seed)
    scale = (rng.uniform(0.02, 0.2, scale_shape)).astype(NP_TYPE[scale_type])
    zp_range = (-32, 32) if q_type == TensorProto.INT8 else (100, 164)
    zp = rng.integers(*zp_range, scale_shape).astype(NP_TYPE[q_type])
    attrs = {}
    if axis is not None:
        attrs["axis"] = axis
    if block_size is not None:
        attrs["block_size"] = block_size
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], **attrs),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"], **attrs)]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", x_type, x_shape)],
                          [helper.make_tensor_value_info("q", q_type, x_shape), helper.make_tensor_value_info("y", scale_type, x_shape)],
                          initializer=[numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(zp, "zp")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9 if opset < 21 else 10
    if check:
        onnx.checker.check_model(m)
    # Inputs: a spread wide enough to saturate, and exact ties (k + 0.5 quantization steps).
    x = rng.normal(0, 20, x_shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[::5] = (np.round(flat[::5] / 0.05) + 0.5) * 0.05
    big = 6e4 if x_type == TensorProto.FLOAT16 else 1e6  # saturates; float16 holds up to 65504
    flat[1], flat[2] = big, -big
    return m, x.astype(NP_TYPE[x_type])


CASES = [  # opset, x type, q type, x shape, scale shape, axis, block_size, scale type
    (13, TensorProto.FLOAT, TensorProto.UINT8, [2, 3, 4, 5], [], None, None, TensorProto.FLOAT),
    (13, TensorProto.FLOAT, TensorProto.INT8, [2, 3, 4, 5], [3], 1, None, TensorProto.FLOAT),
    (13, TensorProto.FLOAT, TensorProto.INT8, [6, 7], [7], -1, None, TensorProto.FLOAT),
    (19, TensorProto.FLOAT16, TensorProto.INT8, [2, 8, 6], [8], 1, None, TensorProto.FLOAT16),
    (19, TensorProto.FLOAT, TensorProto.UINT8, [4, 10], [1], None, None, TensorProto.FLOAT),
    (21, TensorProto.FLOAT, TensorProto.INT8, [4, 10, 3], [4, 3, 3], 1, 4, TensorProto.FLOAT),
    (21, TensorProto.FLOAT, TensorProto.UINT8, [9, 16], [3, 16], 0, 3, TensorProto.FLOAT),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"opset{c[0]}-{'x'.join(map(str, c[3]))}-scale{'x'.join(map(str, c[4])) or 'scalar'}")
def test_quantize_dequantize_match_onnx_runtime(case, unirt_bin, tmp_path):
    opset, xt, qt, xs, ss, axis, block, st = case
    m, x = qdq_model(opset, xt, qt, xs, ss, axis, block, st, seed=len(xs) + opset)
    path = tmp_path / "qdq.onnx"
    onnx.save(m, path)
    ref = run_ort(path, {"x": x})
    out = run_unirt(unirt_bin, path, {"x": x}, tmp_path)
    q, y = np.load(out / "q.npy"), np.load(out / "y.npy")
    assert q.dtype == ref["q"].dtype and y.dtype == ref["y"].dtype
    diff = np.abs(q.astype(np.int32) - ref["q"].astype(np.int32))
    print(f"{case}: integers differing {int((diff > 0).sum())} of {diff.size}, dequantized max abs "
          f"{np.abs(y.astype(np.float64) - ref['y'].astype(np.float64)).max():.2e}")
    np.testing.assert_array_equal(q, ref["q"])
    np.testing.assert_array_equal(y, ref["y"])


def fp8_model(saturate, per_axis):
    """x -> QuantizeLinear(float8e4m3fn, saturate) -> DequantizeLinear -> y, and a Cast of x to
    float8 and back (opset 19)."""
    scale = np.array([0.5, 0.25, 2.0, 0.125], np.float32) if per_axis else np.array(0.5, np.float32)
    zp = helper.make_tensor("zp", TensorProto.FLOAT8E4M3FN, list(scale.shape), [0.0] * scale.size)
    attrs = {"axis": 1} if per_axis else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], saturate=saturate, **attrs),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"], **attrs),
             helper.make_node("Cast", ["x"], ["c8"], to=TensorProto.FLOAT8E4M3FN, saturate=saturate),
             helper.make_node("Cast", ["c8"], ["c"], to=TensorProto.FLOAT)]
    g = helper.make_graph(nodes, "fp8", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4, 50])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4, 50]),
                           helper.make_tensor_value_info("c", TensorProto.FLOAT, [3, 4, 50])],
                          initializer=[numpy_helper.from_array(scale, "scale"), zp])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("per_axis", [False, True])
def test_float8_e4m3fn_matches_onnx_runtime(saturate, per_axis, unirt_bin, tmp_path):
    """FP8 E4M3FN quantization and Cast: every float32 through float8 and back as ONNX Runtime
    rounds it (nearest even), subnormals, ties, +-448 and beyond (saturated or NaN), inf, NaN."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3, 4, 50)) * np.exp(rng.uniform(-9, 7, (3, 4, 50)))).astype(np.float32)
    flat = x.reshape(-1)
    flat[:12] = [448, 464, 465, 480, -500, 1e30, np.inf, -np.inf, np.nan, 2.0 ** -10, 3 * 2.0 ** -11, -0.0]
    path = tmp_path / "fp8.onnx"
    onnx.save(fp8_model(saturate, per_axis), path)
    ref = run_ort(path, {"x": x})
    out = run_unirt(unirt_bin, path, {"x": x}, tmp_path)
    for name in ("y", "c"):
        got = np.load(out / f"{name}.npy")
        np.testing.assert_array_equal(got, ref[name], err_msg=name)  # NaN where ORT has NaN


def test_bad_scales_are_named_errors(unirt_bin, tmp_path):
    """A per-axis scale of the wrong length and a blocked scale of the wrong shape: refused at
    build time, naming the node and what was expected."""
    for opset, xs, ss, axis, block, want in [(13, [2, 3, 4], [4], 1, None, "per-axis scale length"),
                                              (21, [4, 10], [4, 4], 1, 4, "blocked scale dim 1")]:
        m, x = qdq_model(opset, TensorProto.FLOAT, TensorProto.INT8, xs, ss, axis, block, check=False)
        path = tmp_path / f"bad{opset}.onnx"
        path.write_bytes(m.SerializeToString())
        f = tmp_path / "x.npy"
        np.save(f, x)
        proc = subprocess.run([unirt_bin, "run", str(path), "--input", f"x={f}", "--backend", "cpu", "--output-dir", str(tmp_path / "o")],
                              capture_output=True, text=True)
        assert proc.returncode != 0
        assert "QuantizeLinear" in proc.stderr and want in proc.stderr, proc.stderr


def small_cnn(path):
    """Conv-ReLU-Conv-GlobalAveragePool-Gemm, float32, seeded weights."""
    rng = np.random.default_rng(5)
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    w2 = rng.normal(0, 0.2, (16, 8, 3, 3)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 16).astype(np.float32)
    w3 = rng.normal(0, 0.3, (10, 16)).astype(np.float32)
    b3 = rng.normal(0, 0.1, 10).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="head", transB=1)]
    init = [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (w3, "w3"), (b3, "b3")]]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], initializer=init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def test_onnx_runtime_quantized_cnn(unirt_bin, tmp_path):
    quant = pytest.importorskip("onnxruntime.quantization")
    fp32, qdq = tmp_path / "cnn.onnx", tmp_path / "cnn.qdq.onnx"
    small_cnn(fp32)
    rng = np.random.default_rng(9)

    class Reader(quant.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.normal(0, 1, (4, 3, 16, 16)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.batches, None)

    quant.quantize_static(str(fp32), str(qdq), Reader(), quant_format=quant.QuantFormat.QDQ, per_channel=True,
                          activation_type=quant.QuantType.QInt8, weight_type=quant.QuantType.QInt8,
                          calibrate_method=quant.CalibrationMethod.MinMax)
    ops = {n.op_type for n in onnx.load(qdq).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, ops
    x = rng.normal(0, 1, (3, 3, 16, 16)).astype(np.float32)
    got = np.load(run_unirt(unirt_bin, qdq, {"x": x}, tmp_path) / "logits.npy")
    as_written = run_ort(qdq, {"x": x})["logits"]
    int8_kernels = run_ort(qdq, {"x": x}, optimize=True)["logits"]
    scale = max(1.0, float(np.abs(as_written).max()))
    # The output's quantization step: the scale of the last QuantizeLinear before the output.
    m = onnx.load(qdq)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    last_q = [n for n in m.graph.node if n.op_type == "QuantizeLinear"][-1]
    step = float(np.max(inits[last_q.input[1]]))
    for what, ref, bound in [("ORT, QDQ as written", as_written, 1e-5 * scale), ("ORT int8 kernels", int8_kernels, 2 * step)]:
        d = np.abs(got.astype(np.float64) - ref)
        print(f"QDQ CNN vs {what}: max abs {d.max():.2e} mean {d.mean():.2e} median {np.median(d):.2e} "
              f"(bound {bound:.2e}; output step {step:.2e})")
        assert d.max() <= bound, f"{what}: max abs {d.max():.2e} > {bound:.2e}"


@pytest.mark.parametrize("mode", ["int8", "fp8"])
def test_modelopt_quantized_mlp(mode, unirt_bin, tmp_path):
    model = os.path.join(os.path.dirname(__file__), "..", "data", "modelopt", f"mlp_{mode}.onnx")
    ops = {n.op_type for n in onnx.load(model).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "LayerNormalization", "MatMul"} <= ops, ops
    x = np.random.default_rng(3).normal(0, 1, (3, 49, 64)).astype(np.float32)
    got = np.load(run_unirt(unirt_bin, model, {"x": x}, tmp_path) / "y.npy")
    ref = run_ort(model, {"x": x})["y"]
    scale = max(1.0, float(np.abs(ref).max()))
    d = np.abs(got.astype(np.float64) - ref)
    print(f"modelopt {mode} MLP vs ORT (Q/DQ as written): max abs {d.max():.2e} mean {d.mean():.2e} median {np.median(d):.2e}")
    assert d.max() <= 1e-5 * scale
    # The build says how it runs the pairs.
    p = subprocess.run([unirt_bin, "build", model, "-o", str(tmp_path / "m.engine"), "--backend", "cpu"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "QDQ graph: the Q/DQ pairs run as written in float32" in p.stdout, p.stdout
