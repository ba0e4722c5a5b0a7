"""Outputs whose size depends on the data, as the stock torch.onnx exporter writes them
(dynamo=False, dynamic box count): torch.nonzero (NonZero), torchvision.ops.nms
(NonMaxSuppression) and the gathers after them. unirt (CPU backend) must match PyTorch and ONNX
Runtime exactly on the kept indices, with the count changing from run to run in one engine; the
CUDA backend the same (FP32), skipped without a GPU.
"""
import subprocess
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

torchvision = pytest.importorskip("torchvision")


class ScoreFilterNms(nn.Module):
    """Keep the boxes above a score, then NMS on what is left: two data-dependent sizes in a row."""

    def forward(self, boxes, scores):  # boxes [N, 4] (x0, y0, x1, y1), scores [N]
        keep = torch.nonzero(scores > 0.3).squeeze(1)
        b, s = boxes[keep], scores[keep]
        idx = torchvision.ops.nms(b, s, 0.5)
        return keep[idx], b[idx] * 2.0, s[idx]


def inputs(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = 4 + torch.rand(n, 2, generator=g) * 40
    return torch.cat([xy, xy + wh], dim=1), torch.rand(n, generator=g)


def backend_args(unirt_bin, backend):
    if backend == "cpu":
        return ["--backend", "cpu"]
    version = subprocess.run([unirt_bin, "--version"], capture_output=True, text=True).stdout
    if "cuda: available" not in version:
        pytest.skip(f"no usable CUDA backend in this unirt or machine ({version.strip()})")
    return ["--backend", "cuda"]


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_nonzero_then_nms(unirt_bin, tmp_path, backend):
    args = backend_args(unirt_bin, backend)
    model = ScoreFilterNms().eval()
    onnx_path = tmp_path / "nms.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs(50, 0), str(onnx_path), input_names=["boxes", "scores"],
                          output_names=["index", "kept_boxes", "kept_scores"], opset_version=17, dynamo=False,
                          dynamic_axes={"boxes": {0: "n"}, "scores": {0: "n"}})
    import onnx
    ops = {n.op_type for n in onnx.load(str(onnx_path)).graph.node}
    assert {"NonZero", "NonMaxSuppression"} <= ops, ops
    engine = tmp_path / "nms.engine"
    p = subprocess.run([unirt_bin, "build", str(onnx_path), "-o", str(engine), *args, "--min-shapes",
                        "boxes:1x4,scores:1", "--max-shapes", "boxes:4000x4,scores:4000"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    counts = set()
    for i, n in enumerate([50, 1, 300, 3000, 300]):
        boxes, scores = inputs(n, 10 + i)
        with torch.no_grad():
            ref = [t.numpy() for t in model(boxes, scores)]
        ort_out = sess.run(None, {"boxes": boxes.numpy(), "scores": scores.numpy()})
        d = tmp_path / f"run{i}"
        d.mkdir()
        np.save(d / "boxes.npy", boxes.numpy())
        np.save(d / "scores.npy", scores.numpy())
        p = subprocess.run([unirt_bin, "run", str(engine), *args[:2], "--input", f"boxes={d / 'boxes.npy'}", "--input",
                            f"scores={d / 'scores.npy'}", "--output-dir", str(d)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        out = [np.load(d / f"{name}.npy") for name in ("index", "kept_boxes", "kept_scores")]
        print(f"n={n}: {len(ref[0])} kept")
        counts.add(len(ref[0]))
        for o, r, x in zip(out, ref, ort_out):
            assert o.shape == r.shape == x.shape, (n, o.shape, r.shape, x.shape)
            np.testing.assert_array_equal(o, r)
            np.testing.assert_array_equal(o, x)
    assert len(counts) >= 4, counts  # the engine served several different sizes
