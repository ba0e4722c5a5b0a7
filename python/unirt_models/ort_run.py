"""Runs an ONNX model with ONNX Runtime (CPU) on .npy inputs and saves every output as .npy; the
reference side of `unirt compare`.

    python3 ort_run.py MODEL.onnx OUT_DIR NAME=INPUT.npy [NAME=INPUT.npy ...]
    python3 -m unirt_models.ort_run MODEL.onnx OUT_DIR NAME=INPUT.npy ...

Output files are named after the outputs with characters outside [A-Za-z0-9_.-] replaced by '_'
(the same rule `unirt run` uses).
"""
import os
import re
import sys

import numpy as np


def sanitize(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    model, out_dir = argv[0], argv[1]
    try:
        import onnxruntime as ort
    except ImportError as e:
        print(f"ort_run: onnxruntime is not installed ({e})", file=sys.stderr)
        return 1
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    expected = {i.name for i in sess.get_inputs()}
    feeds = {}
    for spec in argv[2:]:
        if "=" not in spec:
            print(f"ort_run: '{spec}' should be NAME=FILE.npy", file=sys.stderr)
            return 2
        name, path = spec.split("=", 1)
        if name not in expected:
            print(f"ort_run: '{name}' is not an input of {model} (inputs: {sorted(expected)})", file=sys.stderr)
            return 1
        feeds[name] = np.load(path)
    missing = expected - feeds.keys()
    if missing:
        print(f"ort_run: no value for inputs {sorted(missing)}", file=sys.stderr)
        return 1
    outs = sess.run(None, feeds)
    os.makedirs(out_dir, exist_ok=True)
    for meta, value in zip(sess.get_outputs(), outs):
        np.save(os.path.join(out_dir, sanitize(meta.name) + ".npy"), np.ascontiguousarray(value))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
