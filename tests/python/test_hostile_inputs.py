"""Hostile input through the CLI, as a stranger would send it: damaged .npy files, images and ONNX
models, shape strings, thread counts and profiles that do not fit. Every case must end in a clean
error (exit 1, or 2 for command-line usage, with a message) or in the right answer; never a signal,
a hang or exit 0 with garbage. Where ../shared/hostile-inputs exists, its files run through the same
checks. Prints a table: cases tried per kind and how they ended.
"""
import collections
import glob
import os
import random
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "hostile-inputs")
TALLY = collections.defaultdict(collections.Counter)


def run(unirt_bin, args, kind, expect_error=True, timeout=60):
    try:
        p = subprocess.run([unirt_bin, *args], capture_output=True, text=True, errors="backslashreplace", timeout=timeout)
    except subprocess.TimeoutExpired:
        TALLY[kind]["hang"] += 1
        pytest.fail(f"hang: unirt {' '.join(args)}")
    if p.returncode < 0:
        TALLY[kind]["crash"] += 1
        pytest.fail(f"signal {-p.returncode}: unirt {' '.join(args)}\n{p.stderr[-2000:]}")
    if expect_error:
        if p.returncode == 0:
            TALLY[kind]["silent"] += 1
            pytest.fail(f"accepted: unirt {' '.join(args)}\n{p.stdout[-1000:]}")
        assert p.returncode in (1, 2), (args, p.returncode)
        assert p.stderr.strip(), f"no message: unirt {' '.join(args)}"
        TALLY[kind]["clean error"] += 1
    else:
        assert p.returncode == 0, (args, p.stderr)
        TALLY[kind]["right answer"] += 1
    return p


def conv_relu_model(path):
    rng = np.random.default_rng(0)
    w = helper.make_tensor("W", TensorProto.FLOAT, [8, 3, 3, 3], rng.standard_normal(216).astype(np.float32).tolist())
    b = helper.make_tensor("B", TensorProto.FLOAT, [8], rng.standard_normal(8).astype(np.float32).tolist())
    g = helper.make_graph(
        [helper.make_node("Conv", ["input", "W", "B"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["output"])],
        "conv_relu", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], [w, b])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    path = d / "conv_relu.onnx"
    conv_relu_model(path)
    return path


def npy_bytes(shape_text, descr="<f4", payload=b""):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload


def test_npy_files(unirt_bin, model, tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((1, 3, 4, 4), np.float32))
    cases = {
        "shape_overflow": npy_bytes("(1, 3, 4294967296, 4294967296)"),
        "negative_dim": npy_bytes("(1, -3, 4, 4)"),
        "wrong_payload": npy_bytes("(1, 3, 4, 4)", payload=b"\0" * 10),
        "bad_dtype": npy_bytes("(1, 3, 4, 4)", descr="<c8"),
        "not_a_number": npy_bytes("(1, x, 4, 4)"),
        "truncated": good.read_bytes()[:30],
        "bad_magic": b"NOTNUMPY" + good.read_bytes()[8:],
        "empty": b"",
    }
    data = good.read_bytes()
    rng = random.Random(1)
    for i in range(40):  # random damage to the header
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(8, 128)] = rng.randrange(256)
        cases[f"mutated{i}"] = bytes(b)
    for name, content in cases.items():
        f = tmp_path / f"{name}.npy"
        f.write_bytes(content)
        p = subprocess.run([unirt_bin, "run", str(model), "--backend", "cpu", "--input", f"input={f}", "--output-dir", str(tmp_path)],
                           capture_output=True, text=True, errors="backslashreplace", timeout=60)
        assert p.returncode >= 0, (name, p.stderr)
        if p.returncode == 0:  # the damage left a valid file (header padding, a different valid value)
            TALLY[".npy files"]["ran"] += 1
            continue
        assert p.stderr.strip(), name
        TALLY[".npy files"]["clean error"] += 1


def test_images(unirt_bin, model, tmp_path):
    from PIL import Image
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(img)
    data = img.read_bytes()
    rng = random.Random(2)
    for i in range(30):
        b = bytearray(data)
        if i % 3 == 0:
            b = b[: rng.randrange(1, len(b))]
        else:
            for _ in range(rng.randint(1, 6)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        f = tmp_path / f"bad{i}.png"
        f.write_bytes(bytes(b))
        p = subprocess.run([unirt_bin, "run", str(model), "--backend", "cpu", "--image", str(f), "--size", "16", "--output-dir",
                            str(tmp_path)], capture_output=True, text=True, errors="backslashreplace", timeout=60)
        assert p.returncode >= 0, (i, p.stderr)
        TALLY["images"]["ran" if p.returncode == 0 else "clean error"] += 1


def test_onnx_files(unirt_bin, model, tmp_path):
    data = model.read_bytes()
    rng = random.Random(3)
    for i in range(150):
        b = bytearray(data)
        if i % 5 == 0:
            b = b[: rng.randrange(1, len(b))]
        else:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        f = tmp_path / f"m{i}.onnx"
        f.write_bytes(bytes(b))
        p = subprocess.run([unirt_bin, "run", str(f), "--backend", "cpu", "--shapes", "input:1x3x8x8", "--output-dir", str(tmp_path)],
                           capture_output=True, text=True, errors="backslashreplace", timeout=60)
        assert p.returncode >= 0, (i, p.stderr)
        TALLY["ONNX files (mutated)"]["ran" if p.returncode == 0 else "clean error"] += 1


def detector_op_model(path, kind):
    """One detector op fed what a hostile model or request could: a RoI a billion pixels wide, a
    batch index past the batch, Resize scales that do not fit a symbolic dim, a ConvTranspose
    whose weight does not fit its input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits, nodes = [], []
    if kind in ("huge_roi", "bad_batch_index"):
        rois = [0, 0, 1e9, 1e9] if kind == "huge_roi" else [0, 0, 4, 4]
        inits += [helper.make_tensor("rois", TensorProto.FLOAT, [1, 4], rois),
                  helper.make_tensor("bi", TensorProto.INT64, [1], [0 if kind == "huge_roi" else 5])]
        nodes.append(helper.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], output_height=7, output_width=7, sampling_ratio=0,
                                      spatial_scale=1.0))
    elif kind == "resize_scale":
        inits.append(helper.make_tensor("sc", TensorProto.FLOAT, [4], [1, 1, 1.5, 1.5]))
        nodes.append(helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest"))
    else:
        inits.append(helper.make_tensor("wt", TensorProto.FLOAT, [3, 2, 2, 2], [0.1] * 24))
        nodes.append(helper.make_node("ConvTranspose", ["x", "wt"], ["y"], strides=[2, 2]))
    g = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("kind", ["huge_roi", "bad_batch_index", "resize_scale", "conv_transpose_channels"])
def test_detector_ops(unirt_bin, tmp_path, kind):
    f = tmp_path / f"{kind}.onnx"
    detector_op_model(f, kind)
    ok = kind == "huge_roi"  # an enormous RoI is legal: it must just not take forever
    p = run(unirt_bin, ["run", str(f), "--backend", "cpu", "--shapes", "x:1x4x16x16", "--output-dir", str(tmp_path)],
            "detector ops", expect_error=not ok, timeout=20)
    if kind == "bad_batch_index":
        assert "batch_indices[0] = 5" in p.stderr
    if kind == "resize_scale":
        assert "scale 1.5" in p.stderr
    if kind == "conv_transpose_channels":
        assert "ConvTranspose" in p.stderr and "input channels" in p.stderr


def test_engine_files(unirt_bin, model, tmp_path):
    engine = tmp_path / "m.engine"
    run(unirt_bin, ["build", str(model), "-o", str(engine), "--backend", "cpu"], "engine files", expect_error=False)
    data = engine.read_bytes()
    rng = random.Random(4)
    for i in range(100):  # without a valid checksum every damage is caught there; truncations too
        b = bytearray(data)
        if i % 4 == 0:
            b = b[: rng.randrange(1, len(b))]
        else:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        f = tmp_path / f"e{i}.engine"
        f.write_bytes(bytes(b))
        run(unirt_bin, ["run", str(f), "--shapes", "input:1x3x8x8", "--output-dir", str(tmp_path)], "engine files")


def test_command_lines(unirt_bin, model, tmp_path):
    m = str(model)
    out = ["--output-dir", str(tmp_path)]
    for args in (
        ["run", m, "--backend", "cpu", "--shapes", "input:1x3x8x8", "--threads", "100000"],
        ["run", m, "--backend", "cpu", "--shapes", "input:99999999999x3x224x224"],
        ["run", m, "--backend", "cpu", "--shapes", "input:1x3x4294967296x4294967296"],
        ["run", m, "--backend", "cpu", "--shapes", "input:1x3x2000000000000x1"],
        ["run", m, "--backend", "cpu", "--shapes", "input:1xAx8x8"],
        ["run", m, "--backend", "cpu", "--shapes", "input:"],
        ["run", m, "--backend", "cpu", "--shapes", ":1x3x8x8"],
        ["run", m, "--backend", "cpu", "--shapes", "input:-1x3x8x8"],
        ["run", m, "--backend", "cpu", "--shapes", "input:1x3x8x8,input:1x3x8x8"],
        ["run", m, "--backend", "cpu", "--shapes", "nope:1x3x8x8"],
        ["run", m, "--backend", "cpu", "--shapes", "input:1x4x8x8"],
        ["run", m, "--backend", "cpu", "--shapes", "input:1x3x8"],
        ["build", m, "-o", str(tmp_path / "x.engine"), "--backend", "cpu", "--min-shapes", "input:1x3x8x8", "--max-shapes",
         "input:1x3x16x16", "--opt-shapes", "input:1x3x32x32"],
        ["build", m, "-o", str(tmp_path / "x.engine"), "--backend", "cpu", "--min-shapes", "input:1x4x8x8"],
        ["build", m, "-o", str(tmp_path / "x.engine"), "--backend", "cpu", "--min-shapes", "input:2x3x8x8", "--max-shapes",
         "input:1x3x8x8"],
        ["--max-tensor-bytes", "100", "run", m, "--backend", "cpu", "--shapes", "input:1x3x8x8"],
        ["--max-tensor-bytes", "-5", "run", m, "--backend", "cpu", "--shapes", "input:1x3x8x8"],
    ):
        run(unirt_bin, args + (out if args[0] == "run" or args[:1] == ["--max-tensor-bytes"] else []), "command lines")
    engine = tmp_path / "fp32.engine"
    run(unirt_bin, ["build", m, "-o", str(engine), "--backend", "cpu"], "command lines", expect_error=False)
    p = run(unirt_bin, ["run", str(engine), "--fp16", "--shapes", "input:1x3x8x8"] + out, "command lines")
    assert "--fp16 applies when building" in p.stderr


def test_output_names_that_sanitise_alike_are_both_written(unirt_bin, tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["a/b"]), helper.make_node("Neg", ["x"], ["a_b"])], "two",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("a/b", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("a_b", TensorProto.FLOAT, None)])
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    np.save(tmp_path / "x.npy", np.array([-1.0, 2.0], np.float32))
    run(unirt_bin, ["run", str(path), "--backend", "cpu", "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", str(tmp_path / "o")],
        "command lines", expect_error=False)
    written = sorted(os.listdir(tmp_path / "o"))
    assert written == ["a_b.npy", "a_b_1.npy"], written
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "a_b.npy"), [0.0, 2.0])
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "a_b_1.npy"), [1.0, -2.0])


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/hostile-inputs is not present on this machine")
def test_shared_hostile_inputs(unirt_bin, tmp_path):
    s = lambda f: os.path.join(SHARED, f)  # noqa: E731
    out = ["--output-dir", str(tmp_path)]
    run(unirt_bin, ["inspect", s("const_div_int64min_by_minus1.onnx")], "shared files", expect_error=False)
    run(unirt_bin, ["build", s("const_div_int64min_by_minus1.onnx"), "-o", str(tmp_path / "d.engine")], "shared files",
        expect_error=False)
    run(unirt_bin, ["build", s("range_huge.onnx"), "-o", str(tmp_path / "r.engine")], "shared files")
    run(unirt_bin, ["run", s("conv_relu.onnx"), "--backend", "cpu", "--shapes", "input:1x3x4294967296x4294967296"] + out, "shared files")
    run(unirt_bin, ["run", s("conv_relu.onnx"), "--backend", "cpu", "--input", "input=" + s("npy_shape_overflow_wraps_to_0bytes.npy")] + out,
        "shared files")
    for f in sorted(os.listdir(SHARED)):
        if f.endswith(".engine"):  # engine format 1: the version check answers
            run(unirt_bin, ["run", s(f), "--shapes", "input:1x3x64x64"] + out, "shared files")


def test_fuzz_regressions_through_the_cli(unirt_bin, model, tmp_path):
    """Every input a fuzzer found crashing (fuzz/regressions/) ends cleanly through the CLI too."""
    reg = os.path.join(REPO, "fuzz", "regressions")
    for f in sorted(glob.glob(os.path.join(reg, "onnx", "*"))):
        p = subprocess.run([unirt_bin, "run", f, "--backend", "cpu", "--output-dir", str(tmp_path)], capture_output=True, text=True,
                           errors="backslashreplace", timeout=60)
        assert p.returncode in (0, 1), (f, p.returncode, p.stderr)
        TALLY["fuzz regressions"]["ran" if p.returncode == 0 else "clean error"] += 1
    for f in sorted(glob.glob(os.path.join(reg, "inputs", "*"))):
        data = open(f, "rb").read()
        suffix = ".npy" if data[0] % 2 == 0 else ".img"
        path = tmp_path / (os.path.basename(f) + suffix)
        path.write_bytes(data[1:])
        args = ["--input", f"input={path}"] if suffix == ".npy" else ["--image", str(path), "--size", "16"]
        p = subprocess.run([unirt_bin, "run", str(model), "--backend", "cpu", *args, "--output-dir", str(tmp_path)], capture_output=True,
                           text=True, errors="backslashreplace", timeout=60)
        assert p.returncode in (0, 1), (f, p.returncode, p.stderr)
        TALLY["fuzz regressions"]["ran" if p.returncode == 0 else "clean error"] += 1


def test_zz_print_table():
    # "ran": the damage left a valid input (a weight byte, header padding), exit 0 with its output;
    # "right answer": a valid case checked against the expected result.
    print("\n| kind | cases | clean error | right answer | ran (input still valid) | crash | hang | silent wrong |\n"
          "|---|---|---|---|---|---|---|---|")
    for kind, c in sorted(TALLY.items()):
        print(f"| {kind} | {sum(c.values())} | {c['clean error']} | {c['right answer']} | {c['ran']} | {c['crash']} | {c['hang']} | "
              f"{c['silent']} |")


def test_detect_images(unirt_bin, tmp_path):
    """`unirt detect` on images a stranger could send: one pixel, a 1 x 3000 strip, a truncated
    PNG, a directory; a clean error or a valid run each, never a crash."""
    from PIL import Image
    from unirt_models.export import export_model
    onnx_path = tmp_path / "det.onnx"
    export_model("uniformer_small_mask_rcnn", str(onnx_path), verify_onnx=False, quiet=True)
    engine = tmp_path / "det.engine"
    run(unirt_bin, ["build", str(onnx_path), "-o", str(engine), "--backend", "cpu"], "detect images", expect_error=False)
    cases = {}
    for name, size in (("one_pixel", (1, 1)), ("strip", (3000, 1)), ("tall", (2, 900))):
        p = tmp_path / f"{name}.png"
        Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(p)
        cases[name] = (p, False)
    good = (tmp_path / "one_pixel.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
    cases["truncated"] = (tmp_path / "truncated.png", True)
    cases["directory"] = (tmp_path, True)
    for name, (p, bad) in cases.items():
        r = run(unirt_bin, ["detect", str(engine), str(p), "--long-edge", "96", "--short-edge", "64", "--json", str(tmp_path / f"{name}.json")],
                "detect images", expect_error=bad, timeout=120)
        if not bad:
            assert "detections" in r.stdout
