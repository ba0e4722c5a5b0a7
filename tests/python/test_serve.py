"""`unirt serve` over loopback with the real client, tritonclient[http]: health, metadata, JSON and
binary infer equal to `unirt run` on the same input, dynamic batching, the bad requests (each a
400/404/413 naming what was wrong, the server unharmed), an overload burst (answered or 503, none
lost), classify, /metrics, the web page, and SIGTERM draining to exit 0. CPU engines."""
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

tritonclient_http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed (requirements.txt)")

import unirt  # noqa: E402


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    d = tmp_path_factory.mktemp("repo")
    onnx_path = str(d / "tiny.onnx")
    torch.onnx.export(TinyNet().eval(), torch.randn(1, 3, 32, 32), onnx_path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    e = unirt.build(onnx_path, backend="cpu", min_shapes={"input": (1, 3, 32, 32)}, opt_shapes={"input": (4, 3, 32, 32)},
                    max_shapes={"input": (16, 3, 32, 32)})
    for v in ("1", "2"):
        (d / "models" / "tiny" / v).mkdir(parents=True)
        e.save(d / "models" / "tiny" / v / "model.engine")
    return d


class Server:
    def __init__(self, unirt_bin, args):
        self.proc = subprocess.Popen([unirt_bin, "serve", "--port", "0", "--threads", "1", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self.url = f"127.0.0.1:{self.port}"
                return
        raise RuntimeError("the server did not start:\n" + "".join(self.lines) + self.proc.stdout.read())

    def http(self, method, path, body=None, headers=None):
        req = urllib.request.Request(f"http://{self.url}{path}", data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        return self.proc.returncode, "".join(self.lines) + out


@pytest.fixture(scope="module")
def server(unirt_bin, repo):
    s = Server(unirt_bin, ["--model-repository", str(repo / "models"), "--max-queue-delay-us", "20000"])
    yield s
    if s.proc.poll() is None:
        s.stop()


def unirt_run(unirt_bin, engine, x, tmp_path):
    np.save(tmp_path / "x.npy", x)
    subprocess.run([unirt_bin, "run", str(engine), "--input", f"input={tmp_path / 'x.npy'}", "--output-dir", str(tmp_path / "o")],
                   check=True, capture_output=True)
    return np.load(tmp_path / "o" / "logits.npy")


def test_health_and_metadata(server):
    c = tritonclient_http.InferenceServerClient(server.url)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("tiny") and c.is_model_ready("tiny", "1") and c.is_model_ready("tiny", "2")
    meta = c.get_server_metadata()
    assert meta["name"] == "unirt" and "binary_tensor_data" in meta["extensions"]
    m = c.get_model_metadata("tiny")
    assert m["versions"] == ["1", "2"]
    assert m["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert m["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert c.get_model_metadata("tiny", "1")["name"] == "tiny"


@pytest.mark.parametrize("binary", [False, True])
def test_infer_equals_unirt_run(server, repo, unirt_bin, tmp_path, binary):
    c = tritonclient_http.InferenceServerClient(server.url)
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32), dtype=np.float32)
    i = tritonclient_http.InferInput("input", list(x.shape), "FP32")
    i.set_data_from_numpy(x, binary_data=binary)
    o = tritonclient_http.InferRequestedOutput("logits", binary_data=binary)
    r = c.infer("tiny", [i], outputs=[o], request_id="req-7")
    ref = unirt_run(unirt_bin, repo / "models" / "tiny" / "2" / "model.engine", x, tmp_path)
    got = r.as_numpy("logits")
    assert r.get_response()["id"] == "req-7" and r.get_response()["model_version"] == "2"
    if binary:
        np.testing.assert_array_equal(got, ref)  # the same bytes
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)  # through JSON's decimal text


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(server, repo, unirt_bin, tmp_path):
    c = tritonclient_http.InferenceServerClient(server.url, concurrency=16)
    xs = [np.random.default_rng(100 + k).standard_normal((1 + k % 2, 3, 32, 32), dtype=np.float32) for k in range(32)]
    before = server.http("GET", "/metrics")[1].decode()
    futures = []
    for x in xs:
        i = tritonclient_http.InferInput("input", list(x.shape), "FP32")
        i.set_data_from_numpy(x)
        futures.append(c.async_infer("tiny", [i]))
    results = [f.get_result().as_numpy("logits") for f in futures]
    sess = unirt.Session(unirt.load(repo / "models" / "tiny" / "2" / "model.engine"))
    for x, got in zip(xs, results):  # each request's own rows, as its own run gives them
        np.testing.assert_allclose(got, sess.run({"input": x})["logits"], rtol=1e-5, atol=1e-6)
    after = server.http("GET", "/metrics")[1].decode()

    def count(text, name):
        m = re.search(rf'^{name}{{model="tiny",version="2"}} (\d+)', text, re.M)
        return int(m.group(1))
    batches = count(after, "unirt_batches_total") - count(before, "unirt_batches_total")
    assert batches < len(xs), f"{len(xs)} concurrent requests ran in {batches} batches: no dynamic batching"


def post_json(server, path, obj):
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return server.http("POST", path, body, {"Content-Type": "application/json"})


def test_bad_requests_are_answered_with_what_was_wrong(server):
    good = {"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072}]}
    cases = [
        ("/v2/models/nope/infer", good, 404, "unknown model 'nope'"),
        ("/v2/models/tiny/versions/9/infer", good, 404, "has no version 9"),
        ("/v2/models/tiny/infer", b"{not json", 400, "not valid JSON"),
        ("/v2/models/tiny/infer", {"inputs": [{"name": "image", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072}]},
         400, "'image' is not an input"),
        ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "INT64", "data": [0] * 3072}]},
         400, "is int64, the model expects float32"),
        ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 3, 30, 32], "datatype": "FP32", "data": [0.0] * 2880}]},
         400, "dimension 2 is 30, the model expects 32"),
        ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 10}]},
         400, "has 10 data elements"),
        ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [32, 3, 32, 32], "datatype": "FP32",
                                               "data": [0.0] * (32 * 3072)}]}, 400, "outside the engine's profile"),
        ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP17", "data": []}]},
         400, "datatype 'FP17'"),
        ("/v2/models/tiny/infer", {"nothing": 1}, 400, "needs an \"inputs\" array"),
        ("/v2/models/tiny/infer", {"inputs": good["inputs"], "outputs": [{"name": "boxes"}]}, 400, "'boxes' is not an output"),
    ]
    for path, body, status, message in cases:
        code, text, _ = post_json(server, path, body)
        assert code == status and message in json.loads(text)["error"], (path, body if isinstance(body, bytes) else "", code, text)
    # Binary tensor data whose size disagrees with the header, or runs past the body.
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 100}}]}).encode()
    code, text, _ = server.http("POST", "/v2/models/tiny/infer", header + b"\0" * 100,
                                {"Inference-Header-Content-Length": str(len(header))})
    assert code == 400 and "binary_data_size is 100 bytes" in json.loads(text)["error"]
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 12288}}]}).encode()
    code, text, _ = server.http("POST", "/v2/models/tiny/infer", header + b"\0" * 50,
                                {"Inference-Header-Content-Length": str(len(header))})
    assert code == 400 and "runs past the end of the body" in json.loads(text)["error"]
    code, text, _ = server.http("POST", "/v2/models/tiny/infer", header, {"Inference-Header-Content-Length": "99999"})
    assert code == 400 and "Inference-Header-Content-Length is 99999" in json.loads(text)["error"]
    code, text, _ = server.http("GET", "/v2/nothing/here")
    assert code == 404
    # Unharmed: a good request still works.
    code, text, _ = post_json(server, "/v2/models/tiny/infer", good)
    assert code == 200 and json.loads(text)["outputs"][0]["shape"] == [1, 10]


def test_body_over_the_limit_is_413(unirt_bin, repo):
    s = Server(unirt_bin, ["--model", f"tiny={repo / 'models' / 'tiny' / '1' / 'model.engine'}", "--max-request-bytes", "4096"])
    try:
        code, text, _ = s.http("POST", "/v2/models/tiny/infer", b"x" * 10000, {"Content-Type": "application/json"})
        assert code == 413 and "--max-request-bytes" in json.loads(text)["error"]
        assert s.http("GET", "/v2/health/ready")[0] == 200
    finally:
        rc, _ = s.stop()
        assert rc == 0


def test_overload_burst_is_answered_or_refused_never_lost(unirt_bin, repo):
    """A burst of 8x the queue's capacity: every request gets 200 or 503, the server answers after."""
    s = Server(unirt_bin, ["--model", f"tiny={repo / 'models' / 'tiny' / '1' / 'model.engine'}", "--max-queue", "8",
                           "--max-batch", "2", "--http-threads", "96"])
    try:
        x = np.random.default_rng(3).standard_normal((1, 3, 32, 32), dtype=np.float32)
        body = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32",
                                       "data": x.ravel().tolist()}]}).encode()
        codes = []
        lock = threading.Lock()

        def one():
            code, text, _ = s.http("POST", "/v2/models/tiny/infer", body, {"Content-Type": "application/json"})
            if code == 503:
                assert "queue is full" in json.loads(text)["error"]
            with lock:
                codes.append(code)
        threads = [threading.Thread(target=one) for _ in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok, refused = codes.count(200), codes.count(503)
        print(f"burst of {len(threads)} against --max-queue 8: {ok} answered, {refused} refused (503), "
              f"{len(threads) - ok - refused} other")
        assert ok + refused == len(threads) and ok >= 8
        code, text, _ = s.http("POST", "/v2/models/tiny/infer", body, {"Content-Type": "application/json"})
        assert code == 200
        metrics = s.http("GET", "/metrics")[1].decode()
        assert re.search(rf'unirt_requests_rejected_total{{model="tiny",version="1"}} {refused}\b', metrics)
    finally:
        rc, _ = s.stop()
        assert rc == 0


def test_classify_metrics_and_web_page(unirt_bin, tmp_path):
    from PIL import Image
    from unirt_models.export import export_model
    onnx_path = str(tmp_path / "s.onnx")
    export_model("uniformer_small", onnx_path, verify_onnx=False, quiet=True)
    e = unirt.build(onnx_path, backend="cpu")
    e.save(tmp_path / "s.engine")
    s = Server(unirt_bin, ["--model", f"s={tmp_path / 's.engine'}"])
    try:
        img = tmp_path / "img.png"
        Image.fromarray(np.random.default_rng(6).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(img)
        code, text, _ = s.http("POST", "/v1/models/s/classify", img.read_bytes(), {"Content-Type": "image/png"})
        j = json.loads(text)
        assert code == 200 and len(j["classes"]) == 5 and "not predictions" in j["note"]
        ref = unirt.classify(e, img)
        assert [c["index"] for c in j["classes"]] == [c.index for c in ref.classes]
        code, text, _ = s.http("POST", "/v1/models/s/classify", b"not an image")
        assert code == 400 and "error" in json.loads(text)
        code, text, headers = s.http("GET", "/metrics")
        t = text.decode()
        for name in ["unirt_requests_total", "unirt_request_failures_total", "unirt_queue_depth", "unirt_batch_size_bucket",
                     "unirt_request_latency_ms_bucket"]:
            assert name in t, name
        code, text, headers = s.http("GET", "/")
        assert code == 200 and b"<html" in text and b"classify" in text
    finally:
        rc, out = s.stop()
        assert rc == 0, out


def test_sigterm_drains_in_flight_requests_and_exits_0(unirt_bin, repo):
    s = Server(unirt_bin, ["--model", f"tiny={repo / 'models' / 'tiny' / '1' / 'model.engine'}",
                           "--max-queue-delay-us", "300000", "--max-batch", "16"])
    x = np.zeros((1, 3, 32, 32), np.float32)
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": x.ravel().tolist()}]}).encode()
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(s.http("POST", "/v2/models/tiny/infer", body,
                                                                    {"Content-Type": "application/json"})[0])) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)  # the requests wait for the batch window (300 ms)
    rc, out = s.stop()
    for t in threads:
        t.join()
    assert rc == 0 and "every accepted request answered" in out, out
    assert codes == [200] * 4, codes


@pytest.mark.slow
def test_detect_endpoint_python_and_cli_agree(unirt_bin, tmp_path):
    """A Mask R-CNN engine (CPU, small resize limits): the server's detect, unirt.detect from
    Python and `unirt detect --json` give the same boxes (the CLI's against PyTorch:
    test_detect_cli.py)."""
    from PIL import Image
    from unirt_models.export import export_model
    onnx_path = str(tmp_path / "det.onnx")
    export_model("uniformer_small_mask_rcnn", onnx_path, verify_onnx=False, quiet=True)
    e = unirt.build(onnx_path, backend="cpu")
    e.save(tmp_path / "det.engine")
    rng = np.random.default_rng(8)
    img = tmp_path / "img.png"
    Image.fromarray(rng.integers(0, 255, (200, 280, 3), dtype=np.uint8)).save(img)
    py = unirt.detect(e, img, score_thr=0.05, long_edge=320, short_edge=224)
    proc = subprocess.run([unirt_bin, "detect", str(tmp_path / "det.engine"), str(img), "--score-thr", "0.05", "--long-edge", "320",
                           "--short-edge", "224", "--json", str(tmp_path / "d.json")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    cli = json.loads((tmp_path / "d.json").read_text())
    assert len(py) == 1 and len(py[0]) == len(cli)
    for d, c in zip(py[0], cli):
        x0, y0, x1, y1 = d.box
        np.testing.assert_allclose([x0, y0, x1 - x0, y1 - y0], c["bbox"], rtol=1e-5, atol=1e-3)
        assert abs(d.score - c["score"]) < 1e-6 and d.mask["counts"] == c["segmentation"]["counts"]
    s = Server(unirt_bin, ["--model", f"det={tmp_path / 'det.engine'}"])
    try:
        code, text, _ = s.http("POST", "/v1/models/det/detect?score_thr=0.05&long_edge=320&short_edge=224", img.read_bytes(),
                               {"Content-Type": "image/png"})
        j = json.loads(text)
        assert code == 200 and "not predictions" in j["note"] and (j["width"], j["height"]) == (280, 200)
        assert len(j["detections"]) == len(py[0])
        for got, want in zip(j["detections"], py[0]):
            np.testing.assert_allclose(got["box"], want.box, rtol=1e-5, atol=1e-3)
            assert got["mask"]["counts"] == want.mask["counts"]
        code, text, _ = s.http("POST", "/v1/models/det/detect?score_thr=2", img.read_bytes(), {"Content-Type": "image/png"})
        assert code == 400 and "score_thr '2'" in json.loads(text)["error"]
    finally:
        rc, out = s.stop()
        assert rc == 0, out
