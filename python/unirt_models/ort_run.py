"""Runs an ONNX model with ONNX Runtime (CPU) on .npy inputs; used by `unirt compare`.

    python3 ort_run.py model.onnx OUT_DIR name=input.npy [name=input.npy ...]
"""
import os
import re
import sys

import numpy as np
import onnxruntime as ort


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    model, out_dir = argv[0], argv[1]
    feeds = {}
    for spec in argv[2:]:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    os.makedirs(out_dir, exist_ok=True)
    for meta, value in zip(sess.get_outputs(), outs):
        np.save(os.path.join(out_dir, re.sub(r"[^A-Za-z0-9_.-]", "_", meta.name) + ".npy"), np.ascontiguousarray(value))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
