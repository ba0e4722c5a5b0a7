"""scripts/classifier_accuracy.py end to end on the CPU (a smoke run: 64 training images of 64x64,
2 iterations): it generates the set, trains, exports, calibrates, builds every INT8/FP8 variant,
runs `unirt debug precision`, quantizes with ONNX Runtime's quantize_static and runs that QDQ graph
with ONNX Runtime and unirt, and writes the table. The numbers of an untrained model mean nothing;
what is checked is that every row is there and that unirt FP32 agrees with PyTorch on every image
(the real run is on the GPU: docs/results/classifier_accuracy_h200.md)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_classifier_accuracy_smoke_run(unirt_bin, tmp_path):
    pytest.importorskip("onnxruntime.quantization")
    p = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "classifier_accuracy.py"), "--unirt", unirt_bin, "--device", "cpu",
                        "--train", "64", "--val", "32", "--size", "64", "--iters", "2", "--batch", "8", "--calib-images", "16",
                        "--keep", "2", "--qdq-calib", "1", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    table = (tmp_path / "o" / "classifier_accuracy.md").read_text()
    print(table)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    for name in ["PyTorch FP32", "unirt FP32", "unirt INT8", "unirt INT8 percentile", "unirt FP8", "unirt FP8, P·V in FP16",
                 "unirt FP8, attention in FP16", "unirt INT8, worst 2 layers kept in FP32", "unirt FP8, worst 2 layers kept in FP32",
                 "ONNX Runtime QDQ int8 (CPU)", "unirt QDQ int8 (cpu)"]:
        assert name in rows, name
    assert rows["unirt FP32"].rstrip().endswith("100.00% |")
    assert "FP8 again build" in table and "reused fp8.cache" in table
