#!/usr/bin/env python3
"""Seed corpora for scripts/fuzz.sh: ONNX node-test models (onnx/), payloads of engines built from
some of them (engine/: the bytes between the 20-byte header and the 8-byte checksum) and .npy files
and images (inputs/: first byte 0 for .npy, 1 for an image, as fuzz_inputs.cpp reads them)."""
import argparse
import glob
import io
import os
import shutil
import subprocess

import numpy as np

NODE_TESTS = "/usr/include/onnx/backend/test/data/node"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--unirt", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    models = sorted(glob.glob(os.path.join(NODE_TESTS, "*", "model.onnx")))
    for m in models:
        shutil.copy(m, os.path.join(a.out, "onnx", os.path.basename(os.path.dirname(m)) + ".onnx"))
    built = 0
    for m in models[::6]:
        e = os.path.join(a.out, "engine", "tmp.engine")
        r = subprocess.run([a.unirt, "build", m, "-o", e, "--backend", "cpu"], capture_output=True)
        if r.returncode == 0:
            with open(e, "rb") as f:
                b = f.read()
            with open(os.path.join(a.out, "engine", os.path.basename(os.path.dirname(m))), "wb") as f:
                f.write(b[20:-8])
            built += 1
        if os.path.exists(e):
            os.remove(e)
    rng = np.random.default_rng(0)
    n = 0
    for dt in (np.float32, np.float16, np.float64, np.int64, np.int32, np.int8, np.uint8, np.bool_):
        for shape in ((), (3,), (2, 3), (1, 3, 4, 4)):
            buf = io.BytesIO()
            np.save(buf, rng.standard_normal(shape).astype(dt))
            with open(os.path.join(a.out, "inputs", f"npy{n}"), "wb") as f:
                f.write(b"\0" + buf.getvalue())
            n += 1
    from PIL import Image
    img = Image.fromarray((rng.random((12, 17, 3)) * 255).astype(np.uint8))
    for fmt in ("PNG", "JPEG", "BMP"):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        with open(os.path.join(a.out, "inputs", f"img_{fmt.lower()}"), "wb") as f:
            f.write(b"\1" + buf.getvalue())
    print(f"fuzz seeds: {len(models)} ONNX models, {built} engine payloads, {n} .npy files, 3 images")


if __name__ == "__main__":
    main()
