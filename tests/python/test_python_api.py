"""The Python package (python/unirt, native module unirt._unirt): build/save/load, engine metadata,
runs on numpy against ONNX Runtime, the errors, compare, classify, and on a GPU zero-copy torch
tensors on the caller's stream (skipped, with the reason, where there is none)."""
import io
import os
import threading

import numpy as np
import onnxruntime as ort
import pytest
import torch

import unirt

CUDA_OK, CUDA_WHY = unirt.cuda_available()
needs_gpu = pytest.mark.skipif(not (CUDA_OK and torch.cuda.is_available()),
                               reason=f"no usable GPU here ({CUDA_WHY or 'torch sees none'})")


class TinyNet(torch.nn.Module):
    """Conv, BatchNorm, GELU, pooling and a linear head: enough passes and kernels to matter."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(16)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        y = torch.nn.functional.gelu(self.bn(self.conv(x)))
        return self.fc(y.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("py") / "tiny.onnx")
    m = TinyNet().eval()
    torch.onnx.export(m, torch.randn(1, 3, 32, 32), path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch", 2: "h", 3: "w"}, "logits": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    return path


@pytest.fixture(scope="module")
def tiny_engine(tiny_onnx):
    return unirt.build(tiny_onnx, backend="cpu", min_shapes={"input": (1, 3, 16, 16)}, opt_shapes="input:2x3x32x32",
                       max_shapes={"input": (8, 3, 64, 64)})


def ort_run(onnx_path, x):
    s = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def test_engine_describes_its_inputs_outputs_and_profile(tiny_engine):
    assert tiny_engine.backend == "cpu" and tiny_engine.precision == "fp32" and tiny_engine.quantization == "none"
    (i,) = tiny_engine.inputs
    assert i.name == "input" and i.dtype == "float32"
    assert i.shape[1] == 3 and isinstance(i.shape[0], str)  # the batch stays symbolic
    assert (i.min, i.opt, i.max) == ((1, 3, 16, 16), (2, 3, 32, 32), (8, 3, 64, 64))
    (o,) = tiny_engine.outputs
    assert o.name == "logits" and o.shape[1] == 10
    assert "cpu" in repr(tiny_engine)


def test_run_matches_onnx_runtime_at_several_shapes(tiny_onnx, tiny_engine):
    s = unirt.Session(tiny_engine)
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 16, 16), (3, 3, 40, 24), (8, 3, 64, 64)]:
        x = rng.standard_normal(shape, dtype=np.float32)
        out = s.run({"input": x})
        assert set(out) == {"logits"} and out["logits"].dtype == np.float32
        ref = ort_run(tiny_onnx, x)
        err = np.abs(out["logits"] - ref)
        # float32 on both sides, different summation orders: 1e-4 absolute on logits of size ~1
        assert err.max() < 1e-4, (shape, err.max(), err.mean(), np.median(err))
    # Non-contiguous arrays and CPU torch tensors are accepted (made contiguous first).
    x = rng.standard_normal((2, 3, 32, 64), dtype=np.float32)[:, :, :, ::2]
    np.testing.assert_allclose(s.run({"input": x})["logits"], ort_run(tiny_onnx, np.ascontiguousarray(x)), atol=1e-4)
    t = torch.from_numpy(np.ascontiguousarray(x))
    np.testing.assert_allclose(s.run({"input": t})["logits"], ort_run(tiny_onnx, t.numpy()), atol=1e-4)


def test_errors_name_the_tensor_and_what_was_expected(tiny_engine, tmp_path):
    s = unirt.Session(tiny_engine)
    x = np.zeros((1, 3, 32, 32), np.float32)
    with pytest.raises(unirt.Error, match=r"input 'input' has type float64, the engine expects float32"):
        s.run({"input": x.astype(np.float64)})
    with pytest.raises(unirt.Error, match=r"'image' is not an input of this engine \(inputs: input\)"):
        s.run({"image": x})
    with pytest.raises(unirt.Error, match=r"input 'input' was not given"):
        s.run({})
    with pytest.raises(unirt.Error, match=r"input"):
        s.run({"input": np.zeros((16, 3, 32, 32), np.float32)})  # batch 16 > the profile's 8
    with pytest.raises(unirt.Error, match=r"not an array"):
        s.run({"input": "not a tensor"})
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"UNIRTENG" + b"\x00" * 40)
    with pytest.raises(unirt.Error):
        unirt.load(bad)
    with pytest.raises(unirt.Error, match="precision 'int4'"):
        unirt.build(tiny_engine.source, precision="int4", backend="cpu")
    with pytest.raises(unirt.Error, match="needs --calib"):
        unirt.build(tiny_engine.source, precision="int8", backend="cpu")
    # The session still works after every one of those.
    assert s.run({"input": x})["logits"].shape == (1, 10)


def test_save_and_load_give_the_same_outputs(tiny_engine, tmp_path):
    path = tmp_path / "tiny.engine"
    tiny_engine.save(path)
    loaded = unirt.load(path)
    assert loaded.inputs == tiny_engine.inputs and loaded.version == unirt.__version__
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32), dtype=np.float32)
    a = unirt.Session(tiny_engine).run({"input": x})["logits"]
    b = unirt.Session(loaded).run({"input": x})["logits"]
    np.testing.assert_array_equal(a, b)


def test_one_session_shared_by_threads(tiny_onnx, tiny_engine):
    s = unirt.Session(tiny_engine)
    xs = [np.random.default_rng(10 + k).standard_normal((1 + k % 3, 3, 32, 32), dtype=np.float32) for k in range(8)]
    results = [None] * len(xs)

    def work(k):
        for _ in range(5):
            results[k] = s.run({"input": xs[k]})["logits"]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, r in zip(xs, results):
        np.testing.assert_allclose(r, ort_run(tiny_onnx, x), atol=1e-4)


def test_compare_reports_errors_against_onnx_runtime(tiny_onnx, tiny_engine):
    r = unirt.compare(tiny_onnx, engine=tiny_engine, shapes={"input": (4, 3, 32, 32)}, seed=3)
    assert r.passed and r.inputs == {"input": (4, 3, 32, 32)}
    (o,) = r.outputs
    assert o.name == "logits" and o.max_abs < 1e-4 and o.top1 == "4/4" and o.mismatches == 0
    assert "PASSED" in str(r)
    strict = unirt.compare(tiny_onnx, engine=tiny_engine, seed=3, atol=0, rtol=0)
    assert strict.outputs[0].mismatches >= 0 and ("FAILED" in str(strict)) == (not strict.passed)


def test_int8_build_on_the_cpu_simulates_and_stays_close(tiny_onnx, tmp_path):
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(4).standard_normal((8, 3, 32, 32), dtype=np.float32))
    cache = tmp_path / "tiny.cache"
    e = unirt.build(tiny_onnx, precision="int8", backend="cpu", calib=calib, calib_cache=cache,
                    opt_shapes={"input": (2, 3, 32, 32)})
    assert e.quantization == "int8" and cache.exists()
    again = unirt.build(tiny_onnx, precision="int8", backend="cpu", calib_cache=cache)  # reuses the cache
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32), dtype=np.float32)
    a = unirt.Session(e).run({"input": x})["logits"]
    np.testing.assert_array_equal(a, unirt.Session(again).run({"input": x})["logits"])
    ref = ort_run(tiny_onnx, x)
    assert np.abs(a - ref).max() < 0.05 * np.abs(ref).max()  # 8-bit error, well under the logits' scale


def test_classify_says_when_the_weights_are_random(tmp_path):
    from PIL import Image
    from unirt_models.export import export_model
    onnx_path = str(tmp_path / "s.onnx")
    export_model("uniformer_small", onnx_path, verify_onnx=False, quiet=True)
    e = unirt.build(onnx_path, backend="cpu")
    assert e.random_weights
    img = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(6).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(img)
    c = unirt.classify(e, img)
    assert len(c.classes) == 5 and "not predictions" in c.note and "not predictions" in str(c)
    assert c.classes[0].probability >= c.classes[-1].probability and c.classes[0].label
    # Bytes work as well as paths and give the same answer; a damaged image is a clear error.
    assert unirt.classify(e, img.read_bytes()).classes == c.classes
    with pytest.raises(unirt.Error):
        unirt.classify(e, b"\x89PNG not really")
    with pytest.raises(unirt.Error, match="detect needs|dets"):
        unirt.detect(e, img)


def test_type_stubs_are_built_beside_the_module():
    d = os.path.dirname(unirt._native.__file__)
    stub = os.path.join(d, "_unirt.pyi")
    assert os.path.exists(stub), f"no {stub}"
    text = open(stub).read()
    assert "class Engine" in text and "class Session" in text and "def build(" in text


@needs_gpu
def test_torch_cuda_tensors_run_in_place_on_the_callers_stream(tiny_onnx, tmp_path):
    e = unirt.build(tiny_onnx, precision="fp16", backend="cuda", min_shapes={"input": (1, 3, 16, 16)},
                    opt_shapes={"input": (4, 3, 32, 32)}, max_shapes={"input": (8, 3, 64, 64)})
    s = unirt.Session(e)
    x = torch.randn(4, 3, 32, 32, device="cuda")
    out = torch.empty(4, 10, device="cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        got = s.run({"input": x}, outputs={"logits": out})["logits"]
        assert got.data_ptr() == out.data_ptr()  # written where the caller said: no host copy, no new buffer
        y = got * 1  # ordered after the engine's work on `side`
    torch.cuda.synchronize()
    ref = ort_run(tiny_onnx, x.cpu().numpy())
    assert (y.cpu().numpy() - ref).__abs__().max() < 2e-2  # FP16 engine
    # Without outputs=: new CUDA tensors of the inputs' framework.
    z = s.run({"input": x})["logits"]
    assert z.is_cuda and z.shape == (4, 10)
    with pytest.raises(unirt.Error, match="'nope' is not an output"):
        s.run({"input": x}, outputs={"nope": out})
    with pytest.raises(unirt.Error, match="outputs= lacks output 'logits'"):
        s.run({"input": x}, outputs={})
    with pytest.raises(unirt.Error, match="output 'logits' buffer is float16"):
        s.run({"input": x}, outputs={"logits": out.half()})
