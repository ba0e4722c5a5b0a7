#!/usr/bin/env python3
"""UniFormer Mask R-CNN benchmark: the whole detector, preprocessed tensor in to dets/labels/masks
out, unirt FP32/FP16 against PyTorch eager FP32/FP16 and torch.compile FP16, all in this one run on
this one GPU; a per-stage breakdown and the GPU memory each uses.

    python3 bench/bench_detector.py --unirt build-dev/unirt --out docs/results/bench_detector_h200.md

PyTorch runs the same batched forward that is exported (`MaskRCNN.forward`, seeded random weights,
the same for every implementation); FP16 is autocast (box arithmetic, NMS and RoIAlign then run
in float32, as in unirt's FP16 engines); FP32 is true FP32 (TF32 off). Latency is the median over
--iters runs after --warmup (CUDA events for PyTorch, `unirt bench --json` for unirt). Stages:
PyTorch's are timed one at a time on their recorded inputs; unirt's come from `unirt bench
--profile` (every layer timed on its own, so they add up to more than the latency).
"""
import argparse
import datetime
import json
import os
import re
import sys
import tempfile
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_models import cuda_time_ms, run_unirt  # noqa: E402
from unirt_models.export import export_model  # noqa: E402

STAGES = ["backbone", "FPN", "RPN + NMS", "box head + NMS", "mask head"]


def stage_of(layer):
    for key, stage in (("/backbone/", "backbone"), ("/neck/", "FPN"), ("/rpn_head/", "RPN + NMS"),
                       ("/proposal_stage/", "RPN + NMS"), ("/box_stage/", "box head + NMS"), ("/mask_stage/", "mask head")):
        if key in layer:
            return stage
    return "other"


def unirt_stages(binary, engine, shape_arg, iters):
    out = run_unirt(binary, ["bench", engine, "--shapes", shape_arg, "--profile", "--iterations", str(iters), "--warmup", "3"])
    totals = {}
    # The per-layer table only: it ends at the first blank line (a per-op summary follows).
    table = out[out.index("per-layer time"):].split("\n\n")[0]
    for line in table.splitlines():
        m = re.match(r"^(\S+)\s+(\S+)\s+([0-9.]+)\s+[0-9.]+%", line)
        if m:
            totals[stage_of(m.group(1))] = totals.get(stage_of(m.group(1)), 0.0) + float(m.group(3))
    return totals


def torch_stages(model, x, iters, warmup, autocast):
    ctx = (lambda: torch.autocast("cuda", dtype=torch.float16)) if autocast else torch.no_grad
    with torch.no_grad(), ctx():
        B = x.shape[0]
        hw = x.new_tensor([float(x.shape[2]), float(x.shape[3])])
        feats_b = model.backbone(x)
        feats = model.neck(feats_b)
        rpn = model.rpn_head(feats)
        prop, valid, _, _ = model.rpn_proposals(*rpn, B, hw[0], hw[1])
        dets, labels, _, _, _ = model.detect(feats, prop, valid, hw[0], hw[1])
        t = {"backbone": cuda_time_ms(lambda: model.backbone(x), iters, warmup),
             "FPN": cuda_time_ms(lambda: model.neck(feats_b), iters, warmup),
             "RPN + NMS": cuda_time_ms(lambda: model.rpn_proposals(*model.rpn_head(feats), B, hw[0], hw[1]), iters, warmup),
             "box head + NMS": cuda_time_ms(lambda: model.detect(feats, prop, valid, hw[0], hw[1]), iters, warmup),
             "mask head": cuda_time_ms(lambda: model.segment(feats, dets, labels), iters, warmup)}
    return t


def host_side(binary, engine, work, runs=5):
    """Decode, preprocessing and mask paste of `unirt detect` on a 1333x800 image (every detection
    with score >= 0.3 pasted at full resolution), and the PyTorch reference's preprocessing and
    paste (unirt_models.train_mask_rcnn) on the same image and boxes."""
    import numpy as np
    from PIL import Image
    from unirt_models import train_mask_rcnn as T
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:800, 0:1333]
    img = np.stack([128 + 100 * np.sin(x / 37.0 + c) * np.cos(y / 23.0 - c) for c in range(3)], -1) + rng.normal(0, 12, (800, 1333, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    path = os.path.join(work, "host_1333x800.jpg")
    Image.fromarray(img).save(path, quality=92)
    out = run_unirt(binary, ["detect", engine, *([path] * (runs + 1)), "--batch", "1", "--score-thr", "0.3",
                             "--json", os.path.join(work, "host.json")])
    m = re.search(r"time: decode ([0-9.]+) ms, preprocess ([0-9.]+) ms, inference ([0-9.]+) ms .*?boxes \+ mask paste ([0-9.]+) ms", out)
    if not m:
        return []
    n = runs + 1
    dets = json.load(open(os.path.join(work, "host.json")))
    per_image = len(dets) / n
    decoded = np.asarray(Image.open(path).convert("RGB"))
    t0 = time.perf_counter()
    for _ in range(runs):
        T.preprocess([decoded], 1333, 800)
    pre_torch = (time.perf_counter() - t0) * 1000 / runs
    # The reference paste on the same boxes (random 28x28 masks: the paste's cost does not depend on them).
    boxes = [d["bbox"] for d in dets[: max(1, int(per_image))]]
    masks = torch.rand(len(boxes), 28, 28)
    t0 = time.perf_counter()
    for mk, (bx, by, bw, bh) in zip(masks, boxes):
        T.paste_mask_cpu(mk, (bx, by, bx + bw, by + bh), 800, 1333)
    paste_torch = (time.perf_counter() - t0) * 1000
    return [f"| decode (JPEG) | {float(m.group(1)) / n:.2f} | |",
            f"| preprocess (resize to 1333x800, normalise, pad) | {float(m.group(2)) / n:.2f} | {pre_torch:.2f} |",
            f"| boxes + mask paste ({per_image:.0f} detections per image) | {float(m.group(4)) / n:.2f} | {paste_torch:.2f} |"]


def torch_memory(fn):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unirt", default=os.path.join(REPO, "build-dev", "unirt"))
    p.add_argument("--model", default="uniformer_small_mask_rcnn")
    p.add_argument("--shapes", default="1x3x800x1344,2x3x800x1344,4x3x800x1344,1x3x640x640")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile-modes", default="default,max-autotune-no-cudagraphs",
                   help="torch.compile modes to try (comma-separated; empty: none)")
    p.add_argument("--out", default=None)
    p.add_argument("--workdir", default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_detector.py: no CUDA device: the benchmark runs on a GPU only")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    work = args.workdir or tempfile.mkdtemp(prefix="unirt_bench_det_")
    os.makedirs(work, exist_ok=True)
    onnx_path = os.path.join(work, f"{args.model}.onnx")
    model = export_model(args.model, onnx_path, verify_onnx=False, quiet=True).eval().cuda()
    maxs = "x".join(str(max(s[i] for s in shapes)) for i in range(4))
    mins = "x".join(str(min(s[i] for s in shapes)) for i in range(4))
    engines = {}
    for prec in ("fp32", "fp16"):
        eng = os.path.join(work, f"{args.model}.{prec}.engine")
        t0 = time.time()
        run_unirt(args.unirt, ["build", onnx_path, "-o", eng, "--backend", "cuda", *(["--fp16"] if prec == "fp16" else []),
                               "--min-shapes", f"input:{mins}", "--opt-shapes", "input:" + "x".join(map(str, shapes[0])),
                               "--max-shapes", f"input:{maxs}"])
        print(f"built {prec} engine in {time.time() - t0:.1f} s", flush=True)
        engines[prec] = eng
    rows, stage_rows, notes = [], [], []
    compiled = {}
    for mode in [m for m in args.compile_modes.split(",") if m]:
        compiled[mode] = torch.compile(model, mode=mode, dynamic=False)
    for shape in shapes:
        sname = "x".join(map(str, shape))
        x = torch.randn(*shape, device="cuda", generator=torch.Generator("cuda").manual_seed(1))
        res = {}
        with torch.no_grad():
            res["PyTorch eager fp32"] = (cuda_time_ms(lambda: model(x), args.iters, args.warmup), torch_memory(lambda: model(x)))
            with torch.autocast("cuda", dtype=torch.float16):
                res["PyTorch eager fp16 (autocast)"] = (cuda_time_ms(lambda: model(x), args.iters, args.warmup),
                                                        torch_memory(lambda: model(x)))
                for mode, fn in compiled.items():
                    key = f"torch.compile fp16 ({mode})"
                    try:
                        t0 = time.time()
                        for _ in range(2):
                            fn(x)
                        torch.cuda.synchronize()
                        print(f"{sname}: torch.compile {mode} ready in {time.time() - t0:.0f} s", flush=True)
                        res[key] = (cuda_time_ms(lambda: fn(x), args.iters, args.warmup), torch_memory(lambda: fn(x)))
                    except Exception as e:  # say which mode fails and why, keep the rest
                        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
                        notes.append(f"torch.compile mode '{mode}' failed at {sname}: {type(e).__name__}: {msg}")
                        print(notes[-1], flush=True)
        for prec in ("fp32", "fp16"):
            out = run_unirt(args.unirt, ["bench", engines[prec], "--shapes", f"input:{sname}", "--json",
                                         "--iterations", str(args.iters), "--warmup", str(args.warmup)])
            st = json.loads(out[out.index("{"):])
            mem = st.get("weight_bytes", 0) + st.get("peak_activation_bytes", 0) + st.get("workspace_bytes", 0)
            res[f"unirt {prec}"] = (float(st["median_ms"]), mem)
        eager16 = res["PyTorch eager fp16 (autocast)"][0]
        best_compile = min([v[0] for k, v in res.items() if k.startswith("torch.compile")], default=None)
        for impl, (ms, mem) in res.items():
            rows.append(f"| {sname} | {impl} | {ms:.2f} | {shape[0] * 1000.0 / ms:.1f} | {eager16 / ms:.2f}x | "
                        f"{(best_compile / ms) if best_compile else float('nan'):.2f}x | {mem / 2**20:.0f} |")
            print(rows[-1], flush=True)
        if shape[0] == 1 and shape[2] == 800:
            with torch.no_grad():
                ts32 = torch_stages(model, x, args.iters, args.warmup, False)
                ts16 = torch_stages(model, x, args.iters, args.warmup, True)
            us = {p: unirt_stages(args.unirt, engines[p], f"input:{sname}", 10) for p in ("fp32", "fp16")}
            for stage in STAGES + ["other"]:
                stage_rows.append(f"| {stage} | {ts32.get(stage, 0):.2f} | {ts16.get(stage, 0):.2f} | "
                                  f"{us['fp32'].get(stage, 0):.2f} | {us['fp16'].get(stage, 0):.2f} |")
    host_rows = host_side(args.unirt, engines["fp16"], work)
    gpu = torch.cuda.get_device_name(0)
    text = [f"Mask R-CNN ({args.model}) benchmark, {datetime.date.today().isoformat()}, {gpu}, torch {torch.__version__}; "
            f"median of {args.iters} runs after {args.warmup} warm-ups; preprocessed tensor in, dets/labels/masks out.", "",
            "| input | implementation | median ms | img/s | speed-up vs eager fp16 | vs best torch.compile | GPU memory MiB |",
            "|---|---|---|---|---|---|---|", *rows, ""]
    if stage_rows:
        text += ["Per stage at 1x3x800x1344, ms (PyTorch: each stage timed alone; unirt: sum of its layers timed one by "
                 "one with `unirt bench --profile`):", "",
                 "| stage | PyTorch fp32 | PyTorch fp16 | unirt fp32 | unirt fp16 |", "|---|---|---|---|---|", *stage_rows, ""]
    if host_rows:
        text += ["Host side, timed apart from the engine (`unirt detect`, one 1333x800 JPEG, batch 1, 5 runs after one warm-up; "
                 "the PyTorch reference's preprocessing and CPU paste on the same image and detections for comparison):", "",
                 "| step | unirt detect ms per image | PyTorch reference ms per image |", "|---|---|---|", *host_rows, ""]
    text += [f"- {n}" for n in notes]
    text += ["GPU memory: PyTorch's peak allocation during one forward (weights and input included); unirt's weights + "
             "activation arena + workspace of the plan for that shape (the CUDA context of either is not counted)."]
    print("\n".join(text))
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
