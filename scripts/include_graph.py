#!/usr/bin/env python3
"""Folder-level include graph of src/ and tools/: one line per edge, with how many files make it.

A layering check as well: `--check` exits 1 if an edge goes against the one-way stage order
(ir <- backend <- onnx/passes <- runtime <- cpu/cuda <- tools).
"""
import collections
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# what each folder may include besides itself
ALLOWED = {
    "ir": set(),
    "backend": {"ir"},
    "onnx": {"ir"},
    "passes": {"ir", "backend"},
    "runtime": {"ir", "backend", "onnx", "passes"},
    "cpu": {"ir", "backend"},
    "cuda": {"ir", "backend"},
    "tools": {"ir", "backend", "onnx", "passes", "runtime"},
}


def folder_of(path):
    rel = path.relative_to(ROOT)
    return "tools" if rel.parts[0] == "tools" else rel.parts[1]


def main():
    edges = collections.defaultdict(set)
    for path in sorted(list((ROOT / "src").rglob("*")) + list((ROOT / "tools").rglob("*"))):
        if path.suffix not in (".h", ".cpp", ".cu", ".cuh"):
            continue
        src = folder_of(path)
        for inc in re.findall(r'^#include "([^"]+)"', path.read_text(), re.M):
            if "/" not in inc:
                continue  # same folder
            dst = inc.split("/")[0]
            if dst != src and dst in ALLOWED:
                edges[(src, dst)].add(str(path.relative_to(ROOT)))
    bad = []
    for (src, dst), files in sorted(edges.items()):
        wrong = dst not in ALLOWED.get(src, set())
        if wrong:
            bad.append((src, dst, files))
        print(f"{src:8s} -> {dst:8s} {len(files):3d} file(s){'   AGAINST THE STAGE ORDER' if wrong else ''}")
    if "--check" in sys.argv and bad:
        for src, dst, files in bad:
            print(f"error: {src}/ includes {dst}/ in: {', '.join(sorted(files))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
