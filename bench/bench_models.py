#!/usr/bin/env python3
"""UniFormer latency benchmark: unirt (FP32, FP16) against PyTorch eager FP32/FP16 and
torch.compile(mode="reduce-overhead") FP16, all measured in this one run on this one GPU.

Prints a markdown table (median latency over --iters timed runs after --warmup, CUDA events for
PyTorch, `unirt bench --json` for unirt), throughput, the ratio to torch.compile and the max abs
error of each implementation's output against PyTorch FP32 on the same input.

    python3 bench/bench_models.py --unirt build-gpu/unirt --out bench/results.md
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))
from unirt_models import create_model  # noqa: E402
from unirt_models.export import export_model  # noqa: E402

CLASSIFIERS = ["uniformer_small", "uniformer_small_plus", "uniformer_base"]
DETECTOR = "uniformer_small_det_hybrid"


def cuda_time_ms(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def first_output(out):
    if isinstance(out, (list, tuple)):
        return out[0]
    return out


def run_unirt(binary, args):
    proc = subprocess.run([binary] + args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"unirt {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def unirt_outputs(binary, engine, x, workdir):
    xin = os.path.join(workdir, "x.npy")
    np.save(xin, x)
    outdir = os.path.join(workdir, "out")
    os.makedirs(outdir, exist_ok=True)
    run_unirt(binary, ["run", engine, "--input", f"input={xin}", "--output-dir", outdir, "--backend", "cuda"])
    names = sorted(f for f in os.listdir(outdir) if f.endswith(".npy"))
    return [np.load(os.path.join(outdir, n)) for n in names]


def bench_model(args, name, shapes, workdir, rows):
    is_det = "det" in name
    onnx_path = os.path.join(workdir, f"{name}.onnx")
    # The exported weights (seeded random init) are the ones every implementation runs.
    model = export_model(name, onnx_path, verify_onnx=False, quiet=True).eval().cuda()
    hs = [s[2] for s in shapes]
    ws = [s[3] for s in shapes]
    bs = [s[0] for s in shapes]
    lo = f"input:{min(bs)}x3x{min(hs)}x{min(ws)}"
    hi = f"input:{max(bs)}x3x{max(hs)}x{max(ws)}"
    engines = {}
    calib = []
    if {"int8", "fp8"} & set(args.precisions):
        # Speed only: two random batches set the ranges (accuracy: scripts/classifier_accuracy.py).
        for k in range(2):
            calib.append(os.path.join(workdir, f"{name}.calib{k}.npy"))
            # Batches of at most the profile's largest batch (the detector's is 2).
            cb = min(8, max(bs))
            np.save(calib[-1], np.random.default_rng(k).standard_normal((cb, 3, shapes[0][2], shapes[0][3])).astype(np.float32))
    for prec in args.precisions:
        eng = os.path.join(workdir, f"{name}.{prec}.engine")
        t0 = time.time()
        extra = {"fp32": [], "fp16": ["--fp16"], "int8": ["--fp16", "--int8", "--calib", *calib],
                 "fp8": ["--fp16", "--fp8", "--calib", *calib]}[prec]
        run_unirt(args.unirt, ["build", onnx_path, "-o", eng, "--backend", "cuda", "--min-shapes", lo,
                               "--opt-shapes", f"input:{shapes[0][0]}x3x{shapes[0][2]}x{shapes[0][3]}",
                               "--max-shapes", hi] + extra)
        print(f"  built {name} {prec} engine in {time.time() - t0:.1f} s", flush=True)
        engines[prec] = eng

    for shape in shapes:
        b = shape[0]
        x = torch.randn(*shape, device="cuda")
        with torch.no_grad():
            ref = [o.float().cpu().numpy() for o in (model(x) if is_det else [model(x)])]

            def err_of(outs):
                return max(float(np.max(np.abs(o.astype(np.float32) - r))) for o, r in zip(outs, ref))

            results = {}
            if not args.skip_eager_fp32:
                results["torch eager fp32"] = (cuda_time_ms(lambda: model(x), args.iters, args.warmup), 0.0)
            model_h = create_model(name).eval().cuda()
            model_h.load_state_dict(model.state_dict())
            model_h = model_h.half()
            xh = x.half()
            out_h = model_h(xh)
            out_h = [o.float().cpu().numpy() for o in (out_h if is_det else [out_h])]
            results["torch eager fp16"] = (cuda_time_ms(lambda: model_h(xh), args.iters, args.warmup), err_of(out_h))
            if not args.skip_compile:
                compiled = torch.compile(model_h, mode="reduce-overhead")
                t0 = time.time()
                for _ in range(3):
                    compiled(xh)
                torch.cuda.synchronize()
                print(f"  torch.compile {name} b{b}: {time.time() - t0:.1f} s to compile", flush=True)
                oc = compiled(xh)
                oc = [o.float().cpu().numpy() for o in (oc if is_det else [oc])]
                results["torch.compile fp16"] = (cuda_time_ms(lambda: compiled(xh), args.iters, args.warmup), err_of(oc))
                del compiled
            del model_h
        xs = f"input:{'x'.join(str(d) for d in shape)}"
        for prec in args.precisions:
            out = run_unirt(args.unirt, ["bench", engines[prec], "--shapes", xs, "--backend", "cuda", "--json",
                                         "--iterations", str(args.iters), "--warmup", str(args.warmup)])
            stats = json.loads(out[out.index("{"):])
            outs = unirt_outputs(args.unirt, engines[prec], x.cpu().numpy(), workdir)
            results[f"unirt {prec}"] = (float(stats["median_ms"]), err_of(outs))
        ref_ms = results.get("torch.compile fp16", (None,))[0]
        for impl, (ms, err) in results.items():
            rows.append({"model": name, "shape": "x".join(str(d) for d in shape), "impl": impl, "median_ms": ms,
                         "img_s": b * 1000.0 / ms, "ratio": (ms / ref_ms) if ref_ms else None, "max_abs_err": err})
            ratio = f"{ms / ref_ms:.2f}x" if ref_ms else "-"
            print(f"  {name:28s} {rows[-1]['shape']:>16s} {impl:20s} {ms:9.3f} ms  {ratio:>7s}  err {err:.2e}",
                  flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unirt", default=os.path.join(REPO, "build-gpu", "unirt"))
    p.add_argument("--models", nargs="*", default=CLASSIFIERS + [DETECTOR])
    p.add_argument("--batches", nargs="*", type=int, default=[1, 8, 32, 128])
    p.add_argument("--det-batches", nargs="*", type=int, default=[1, 2])
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--skip-compile", action="store_true")
    p.add_argument("--skip-eager-fp32", action="store_true")
    p.add_argument("--precisions", nargs="*", default=["fp32", "fp16"], choices=["fp32", "fp16", "int8", "fp8"],
                   help="unirt engines to time; int8/fp8 are FP16 engines with INT8/FP8 layers, calibrated on random batches")
    p.add_argument("--out", default=None, help="write the markdown table here too")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_models.py: no CUDA device: the benchmark runs on a GPU only")
    torch.backends.cudnn.benchmark = True
    # "torch eager fp32" and the error reference are true FP32 (no TF32), like unirt's FP32 engine.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models:
            if "det" in name:
                shapes = [(b, 3, 800, 1216) for b in args.det_batches]
            else:
                shapes = [(b, 3, 224, 224) for b in args.batches]
            print(f"== {name}", flush=True)
            try:
                bench_model(args, name, shapes, workdir, rows)
            except Exception as e:  # keep the other models' numbers; say loudly what failed
                print(f"  FAILED {name}: {e}", flush=True)
                rows.append({"model": name, "shape": "-", "impl": f"FAILED: {str(e).splitlines()[0][:80]}",
                             "median_ms": float("nan"), "img_s": float("nan"), "ratio": None, "max_abs_err": float("nan")})
    gpu = torch.cuda.get_device_name(0)
    lines = [f"Benchmark {datetime.date.today().isoformat()} on {gpu}, torch {torch.__version__}, "
             f"median of {args.iters} runs after {args.warmup} warm-ups.", "",
             "| model | input | implementation | median ms | img/s | vs torch.compile | max abs err vs torch FP32 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] else "-"
        lines.append(f"| {r['model']} | {r['shape']} | {r['impl']} | {r['median_ms']:.3f} | {r['img_s']:.0f} | "
                     f"{ratio} | {r['max_abs_err']:.2e} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
