#!/usr/bin/env python3
"""A trained detector to test with: generate the shapes dataset, train UniFormer-S Mask R-CNN on
the GPU (seeded, a fixed number of iterations), then COCO box/mask mAP on held-out images of PyTorch FP32,
unirt FP32, FP16, INT8 and FP8 (`unirt detect --json`, the same preprocessing; INT8/FP8 calibrated on
training images with detect's preprocessing), and one drawn image.

    python3 scripts/detector_accuracy.py --unirt build-dev/unirt --iters 600 --out $OUT

Writes detector_accuracy.md (the table), detect_example.png / .json (unirt detect on a held-out
image) and the training log into --out. The trained weights stay in --workdir (too large to ship).
"""
import argparse
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))

from unirt_models import shapes_dataset, train_mask_rcnn as T  # noqa: E402
from unirt_models.run_log import RunLog  # noqa: E402
from unirt_models.export import export_model  # noqa: E402
from unirt_models.mask_rcnn import create_mask_rcnn  # noqa: E402


def _make(seed):
    return shapes_dataset.make_image(seed)


def generate(first_seed, count, workers):
    with mp.Pool(workers) as p:
        return p.map(_make, range(first_seed, first_seed + count), chunksize=8)


def pad32(v):
    return -(-v // 32) * 32




def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unirt", default=os.path.join(REPO, "build-dev", "unirt"))
    ap.add_argument("--train-images", type=int, default=3000)
    ap.add_argument("--val-images", type=int, default=200)
    ap.add_argument("--iters", type=int, default=600, help="training iterations (the LR schedule's length)")
    ap.add_argument("--minutes", type=float, default=6.0, help="stop training early past this many minutes")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--long-edge", type=int, default=512)
    ap.add_argument("--short-edge", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8", "fp8"], choices=["fp32", "fp16", "int8", "fp8"],
                    help="unirt engines to evaluate (the CPU backend runs fp32 only)")
    ap.add_argument("--calib-images", type=int, default=128, help="training images to calibrate INT8/FP8 on")
    ap.add_argument("--workdir", default="artifacts/det_accuracy")
    ap.add_argument("--out", default="artifacts/det_accuracy")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke run of the whole pipeline")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    log = RunLog(a.out, "detector_accuracy.log")
    say = log.say

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.time()
    workers = max(1, min(16, os.cpu_count() or 1))
    train = generate(a.seed, a.train_images, workers)
    val = generate(a.seed + 10_000_000, a.val_images, workers)
    say(f"dataset: {len(train)} train / {len(val)} held-out images, {sum(len(s[1]) for s in train)} / "
        f"{sum(len(s[1]) for s in val)} instances, {time.time() - t0:.0f} s")
    from PIL import Image
    val_dir = os.path.join(a.workdir, "val")
    os.makedirs(val_dir, exist_ok=True)
    val_coco = shapes_dataset.coco_dict(val, "val_")
    for im, (img, _) in zip(val_coco["images"], val):
        Image.fromarray(img).save(os.path.join(val_dir, im["file_name"]))
    gt_json = os.path.join(a.workdir, "val.json")
    json.dump(val_coco, open(gt_json, "w"))
    train_coco = shapes_dataset.coco_dict(train, "train_")  # file names unused: the images stay in memory

    torch.manual_seed(a.seed)
    model = create_mask_rcnn("uniformer_small_mask_rcnn").to(a.device)
    t1 = time.time()
    T.train(model, train_coco, [s[0] for s in train], a.iters, a.batch, a.lr, a.long_edge, a.short_edge, seed=a.seed, log=say,
            device=a.device, max_seconds=a.minutes * 60)
    iters = model.trained_iters
    say(f"trained {iters} iterations of batch {a.batch} in {time.time() - t1:.0f} s")
    ckpt = os.path.join(a.workdir, "mask_rcnn_shapes.pth")
    torch.save({"meta": {"iters": iters, "seed": a.seed}, "state_dict": model.state_dict()}, ckpt)

    val_imgs = [s[0] for s in val]
    ids = [im["id"] for im in val_coco["images"]]
    rows = {}
    res = T.coco_results(model, val_imgs, ids, a.long_edge, a.short_edge, batch=a.batch, device=a.device)
    rows["PyTorch FP32"] = T.coco_map(gt_json, res)
    say(f"PyTorch FP32: {rows['PyTorch FP32']}")

    onnx_path = os.path.join(a.workdir, "mask_rcnn_shapes.onnx")
    export_model("uniformer_small_mask_rcnn", onnx_path, checkpoint=ckpt, quiet=True, verify_shapes=[(1, 3, 224, 256)])
    labels = os.path.join(a.workdir, "shapes_labels.txt")
    open(labels, "w").write("\n".join(shapes_dataset.CLASSES) + "\n")
    cats = ",".join(str(i + 1) for i in range(80))
    paths = [os.path.join(val_dir, im["file_name"]) for im in val_coco["images"]]
    backend = "cuda" if a.device == "cuda" else "cpu"
    calib_dir = os.path.join(a.workdir, "calib")
    if any(p in ("int8", "fp8") for p in a.precisions):
        os.makedirs(calib_dir, exist_ok=True)
        for k, (img, _) in enumerate(train[:a.calib_images]):
            Image.fromarray(img).save(os.path.join(calib_dir, f"train_{k:05d}.png"))
    notes = []
    for prec in a.precisions if backend == "cuda" else ("fp32",):
        engine = os.path.join(a.workdir, f"shapes.{prec}.engine")
        flags = {"fp32": [], "fp16": ["--fp16"], "int8": ["--fp16", "--int8"], "fp8": ["--fp16", "--fp8"]}[prec]
        if prec in ("int8", "fp8"):  # entropy for INT8, minmax for FP8: unirt's defaults
            flags += ["--calib", calib_dir, "--calib-preprocess", "detect", "--calib-long-edge", str(a.long_edge), "--calib-short-edge",
                      str(a.short_edge), "--calib-batch-size", str(a.batch), "--calib-cache", os.path.join(a.workdir, f"shapes.{prec}.cache")]
        out, took = log.run([a.unirt, "build", onnx_path, "-o", engine, "--backend", backend, *flags, "--min-shapes",
             "input:1x3x64x64", "--opt-shapes", f"input:{a.batch}x3x{pad32(a.short_edge)}x{pad32(a.long_edge)}", "--max-shapes",
             f"input:{a.batch}x3x{pad32(a.long_edge)}x{pad32(a.long_edge)}"])
        if prec in ("int8", "fp8"):
            said = " ".join(line.strip() for line in out.splitlines() if "quantized" in line or line.startswith("calibrated"))
            notes.append(f"unirt {prec.upper()}: built in {took:.0f} s, calibrated on {min(a.calib_images, len(train))} training "
                         f"images; {said}")
        out_json = os.path.join(a.workdir, f"dets_{prec}.json")
        log.run([a.unirt, "detect", engine, *paths, "--batch", str(a.batch), "--score-thr", "0", "--json", out_json, "--labels", labels,
             "--category-ids", cats, "--image-ids", *map(str, ids), "--long-edge", str(a.long_edge), "--short-edge", str(a.short_edge)])
        rows[f"unirt {prec.upper()}"] = T.coco_map(gt_json, json.load(open(out_json)))
        say(f"unirt {prec.upper()}: {rows[f'unirt {prec.upper()}']}")
    # One drawn example and its JSON, from the FP16 engine.
    ex = paths[0]
    log.run([a.unirt, "detect", os.path.join(a.workdir, f"shapes.{'fp16' if backend == 'cuda' else 'fp32'}.engine"), ex, "--score-thr", "0.5", "--labels", labels,
         "--category-ids", cats, "-o", os.path.join(a.out, "detect_example.png"), "--json", os.path.join(a.out, "detect_example.json"),
         "--long-edge", str(a.long_edge), "--short-edge", str(a.short_edge)])
    Image.fromarray(val_imgs[0]).save(os.path.join(a.out, "detect_example_input.png"))
    ref = rows["PyTorch FP32"]
    lines = [f"Trained UniFormer-S Mask R-CNN (seed {a.seed}, {iters} iterations of batch {a.batch} on "
             f"{torch.cuda.get_device_name(0) if a.device == 'cuda' else 'the CPU'}) on {len(train)} generated images; COCO AP on {len(val)} held-out images "
             f"(pycocotools, 0.5:0.95), input resized to {a.long_edge}x{a.short_edge}.", "",
             "| implementation | box AP | box AP50 | mask AP | mask AP50 | box AP - PyTorch | mask AP - PyTorch |",
             "|---|---|---|---|---|---|---|"]
    for k, v in rows.items():
        lines.append(f"| {k} | {100 * v['bbox']:.1f} | {100 * v['bbox50']:.1f} | {100 * v['segm']:.1f} | {100 * v['segm50']:.1f} | "
                     f"{100 * (v['bbox'] - ref['bbox']):+.2f} | {100 * (v['segm'] - ref['segm']):+.2f} |")
    lines += [""] + [f"- {n}" for n in notes]
    open(os.path.join(a.out, "detector_accuracy.md"), "w").write("\n".join(lines) + "\n")
    say("\n".join(lines))
    say(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
