#!/usr/bin/env python3
"""A trained classifier to measure quantization on: generate the 16-class shapes classification
set, train UniFormer-S on it (seeded, a fixed number of iterations), then top-1 on held-out images
of PyTorch FP32 and of unirt FP32 / FP16 / INT8 / FP8 engines, with each one's agreement with
PyTorch FP32. INT8 and FP8 are calibrated on training images (entropy, one cache for both).

    python3 scripts/classifier_accuracy.py --unirt build-dev/unirt --out $OUT            # the GPU run
    python3 scripts/classifier_accuracy.py --device cpu --train 64 --val 32 --size 64 \\
        --iters 2 --batch 8 --calib-images 16                                          # a CPU smoke run

Writes classifier_accuracy.md (the table, calibration time, cache reuse) and the log into --out.
"""
import argparse
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))

from unirt_models import create_model  # noqa: E402
from unirt_models.run_log import RunLog  # noqa: E402
from unirt_models.export import export_onnx  # noqa: E402
from unirt_models.shapes_classification import CLASSES, make_split, normalize  # noqa: E402


def _split(args):
    return make_split(*args)


def generate(first_seed, count, size, workers):
    chunk = max(1, -(-count // workers))
    jobs = [(first_seed + s, min(chunk, count - s), size) for s in range(0, count, chunk)]
    with mp.Pool(workers) as p:
        parts = p.map(_split, jobs)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])




def train(model, images, labels, iters, batch, lr, seed, device, say):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    warm = max(1, iters // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(i, iters) / iters)))
    model.train()
    x_all = torch.from_numpy(normalize(images))
    y_all = torch.from_numpy(labels)
    for it in range(iters):
        idx = torch.randint(0, len(labels), (batch,), generator=g)
        x, y = x_all[idx].to(device), y_all[idx].to(device)
        if torch.rand(1, generator=g).item() < 0.5:
            x = x.flip(3)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if it % max(1, iters // 10) == 0 or it == iters - 1:
            say(f"iter {it}: loss {loss.item():.3f}")
    model.eval()


@torch.no_grad()
def predict(model, images, batch, device):
    out = []
    for s in range(0, len(images), batch):
        out.append(model(torch.from_numpy(normalize(images[s:s + batch])).to(device)).float().cpu().numpy())
    return np.concatenate(out)


def qdq_rows(a, log, onnx_path, calib, val_files, backend, profile, record, notes):
    """Explicit quantization: ONNX Runtime's quantize_static (QDQ format, symmetric int8, weights per
    channel, the Conv/MatMul/Gemm layers as unirt's placement takes) on the same calibration batches,
    then the QDQ graph run by ONNX Runtime (CPU) and by unirt."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, files):
            self.files = iter(files)

        def get_next(self):
            f = next(self.files, None)
            return None if f is None else {"input": np.load(f)}

    qdq_path = os.path.join(a.workdir, "uniformer_small_shapes.qdq.onnx")
    t = time.time()
    calib = calib[:a.qdq_calib] if a.qdq_calib else calib
    quantize_static(onnx_path, qdq_path, Reader(calib), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    notes.append(f"QDQ graph: onnxruntime {ort.__version__} quantize_static (minmax calibration, symmetric int8, weights per "
                 f"channel, Conv/MatMul/Gemm) on the same {len(calib)} batches in {time.time() - t:.0f} s")
    sess = ort.InferenceSession(qdq_path, providers=["CPUExecutionProvider"])
    t = time.time()
    ort_logits = np.concatenate([sess.run(None, {"input": np.load(f)})[0] for f in val_files])
    ort_pred = ort_logits.argmax(1)
    notes.append(f"ONNX Runtime ran the QDQ graph on its CPU provider in {time.time() - t:.0f} s")
    record("ONNX Runtime QDQ int8 (CPU)", ort_pred)
    engine = os.path.join(a.workdir, "s.qdq.engine")
    flags = ["--fp16"] if backend == "cuda" else []
    log.run([a.unirt, "build", qdq_path, "-o", engine, "--backend", backend, *profile, *flags])
    logits = unirt_logits(a, log, engine, val_files)
    pred = record(f"unirt QDQ int8 ({backend})", logits.argmax(1))
    # ORT's default session fuses the QDQ pairs into its integer kernels; with graph optimizations off it runs the
    # nodes as written, in float, which is what unirt's simulation computes.
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    literal = ort.InferenceSession(qdq_path, so, providers=["CPUExecutionProvider"])
    literal_logits = np.concatenate([literal.run(None, {"input": np.load(f)})[0] for f in val_files])
    for what, ref in (("ONNX Runtime's int8 kernels", ort_logits), ("ONNX Runtime running the QDQ nodes as written", literal_logits)):
        d = np.abs(logits.astype(np.float64) - ref)
        notes.append(f"QDQ logits, unirt against {what}: max abs {d.max():.3g}, mean {d.mean():.3g}, median {np.median(d):.3g} "
                     f"(logits up to {np.abs(ref).max():.3g})")
    notes.append(f"unirt and ONNX Runtime agree on {100 * float((pred == ort_pred).mean()):.2f}% of the QDQ graph's predictions")


def keep_flags(onnx_path, pattern):
    """--layer-precision NAME=fp16 for the quantizable layers whose names contain `pattern`."""
    import onnx
    names = [n.name for n in onnx.load(onnx_path, load_external_data=False).graph.node
             if n.op_type in ("MatMul", "Conv", "Gemm") and pattern in n.name]
    return [f for n in names for f in ("--layer-precision", f"{n}=fp16")]


def unirt_logits(a, log, engine, val_files):
    logits = []
    for f in val_files:
        od = os.path.join(a.workdir, "out")
        log.run([a.unirt, "run", engine, "--input", f"input={f}", "--output-dir", od])
        logits.append(np.load(os.path.join(od, "logits.npy")).astype(np.float32))
    return np.concatenate(logits)


def unirt_predict_files(a, log, engine, val_files):
    return unirt_logits(a, log, engine, val_files).argmax(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unirt", default=os.path.join(REPO, "build-dev", "unirt"))
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--val", type=int, default=1200)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calib-images", type=int, default=512, help="training images to calibrate on")
    ap.add_argument("--calibrator", default="entropy", choices=["entropy", "percentile", "minmax"])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke run of the whole pipeline")
    ap.add_argument("--no-qdq", action="store_true", help="skip the ONNX Runtime-quantized (QDQ) graph")
    ap.add_argument("--no-debug", action="store_true", help="skip unirt debug precision and the INT8 build that keeps its worst layers")
    ap.add_argument("--keep", type=int, default=4, help="layers debug precision keeps out of INT8")
    ap.add_argument("--variants", default="", help="';'-separated names of the unirt rows to run (default: all)")
    ap.add_argument("--qdq-calib", type=int, default=0, help="calibration batches for ONNX Runtime's quantize_static (0: all)")
    ap.add_argument("--workdir", default="artifacts/cls_accuracy")
    ap.add_argument("--out", default="artifacts/cls_accuracy")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    log = RunLog(a.out, "classifier_accuracy.log")
    say = log.say

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.time()
    workers = max(1, min(16, os.cpu_count() or 1))
    xtr, ytr = generate(a.seed, a.train, a.size, workers)
    xva, yva = generate(a.seed + 10_000_000, a.val, a.size, workers)
    say(f"dataset: {len(CLASSES)} classes, {len(ytr)} train / {len(yva)} held-out images of {a.size}x{a.size}, {time.time() - t0:.0f} s")

    torch.manual_seed(a.seed)
    model = create_model("uniformer_small", num_classes=len(CLASSES)).to(a.device)
    t1 = time.time()
    train(model, xtr, ytr, a.iters, a.batch, a.lr, a.seed, a.device, say)
    say(f"trained {a.iters} iterations of batch {a.batch} in {time.time() - t1:.0f} s")
    ref_logits = predict(model, xva, a.batch, a.device)
    ref_pred = ref_logits.argmax(1)

    onnx_path = os.path.join(a.workdir, "uniformer_small_shapes.onnx")
    export_onnx(model.cpu().eval(), "uniformer_small", onnx_path)
    # Calibration batches: training images, preprocessed as the evaluation is.
    calib = []
    for s in range(0, min(a.calib_images, len(ytr)), a.batch):
        calib.append(os.path.join(a.workdir, f"calib_{s // a.batch:04d}.npy"))
        np.save(calib[-1], normalize(xtr[s:min(s + a.batch, a.calib_images)]))
    val_files = [os.path.join(a.workdir, "val.npy")]  # one run over every held-out image
    np.save(val_files[0], normalize(xva))

    backend = "cuda" if a.device == "cuda" else "cpu"
    shape = f"x3x{a.size}x{a.size}"
    profile = ["--min-shapes", f"input:1{shape}", "--opt-shapes", f"input:{a.batch}{shape}", "--max-shapes", f"input:{max(a.batch, len(yva))}{shape}"]
    # INT8: the entropy calibrator (TensorRT's default) and percentile 99.99; FP8: minmax (unirt's
    # default for FP8, as TensorRT and modelopt calibrate E4M3); each writes its own cache.
    variants = [("FP32", []), ("FP16", ["--fp16"]),
                ("INT8", ["--fp16", "--int8", "--calib", *calib, "--calibrator", a.calibrator]),
                ("INT8 percentile", ["--fp16", "--int8", "--calib", *calib, "--calibrator", "percentile"]),
                ("FP8", ["--fp16", "--fp8", "--calib", *calib]),
                ("FP8 again", ["--fp16", "--fp8"]),  # the FP8 cache reused: no calibration data
                ("FP8, P·V in FP16", ["--fp16", "--fp8", *keep_flags(onnx_path, "attn/MatMul_1")]),
                ("FP8, fc2 in FP16", ["--fp16", "--fp8", *keep_flags(onnx_path, "mlp/fc2/")]),
                ("FP8, attention in FP16", ["--fp16", "--fp8", *keep_flags(onnx_path, "/attn/")])]
    if a.variants:
        wanted = [v.strip() for v in a.variants.split(";")]
        variants = [v for v in variants if v[0] in wanted]
    if backend == "cpu":  # the CPU backend runs float32 only (quantized layers simulated in float32)
        variants = [(n, [f for f in flags if f != "--fp16"]) for n, flags in variants if n != "FP16"]
    say(f"{time.time() - t0:.0f} s: exported and saved the batches")
    rows, notes = {}, []

    def unirt_predict(engine):
        return unirt_predict_files(a, log, engine, val_files)

    def table():  # written after every row, so a run stopped by its time limit keeps what it measured
        ref_top1 = float((ref_pred == yva).mean())
        dev = torch.cuda.get_device_name(0) if a.device == "cuda" else "the CPU"
        lines = [f"UniFormer-S trained from scratch (seed {a.seed}, {a.iters} iterations of batch {a.batch}, {dev}) on {len(ytr)} generated "
                 f"{a.size}x{a.size} images of {len(CLASSES)} classes; top-1 on {len(yva)} held-out images. INT8/FP8 calibrated on "
                 f"{min(a.calib_images, len(ytr))} training images (INT8: {a.calibrator} unless named, FP8: minmax).", "",
                 "| implementation | top-1 | top-1 - PyTorch FP32 | agreement with PyTorch FP32 |", "|---|---|---|---|",
                 f"| PyTorch FP32 | {100 * ref_top1:.2f}% | | |"]
        for k, (top1, agree) in rows.items():
            lines.append(f"| {k} | {100 * top1:.2f}% | {100 * (top1 - ref_top1):+.2f} | {100 * agree:.2f}% |")
        lines += [""] + [f"- {n}" for n in notes]
        text = "\n".join(lines) + "\n"
        open(os.path.join(a.out, "classifier_accuracy.md"), "w").write(text)
        return text

    def record(name, pred):
        rows[name] = (float((pred == yva).mean()), float((pred == ref_pred).mean()))
        say(f"{time.time() - t0:.0f} s: {name}: top-1 {100 * rows[name][0]:.2f}%, agreement with PyTorch FP32 {100 * rows[name][1]:.2f}%")
        table()
        return pred

    def cache_of(name):  # one cache per calibrator: INT8 entropy (or --calibrator), INT8 percentile, FP8 minmax
        kind = "fp8" if name.startswith("FP8") else "int8_" + ("percentile" if "percentile" in name else a.calibrator)
        return os.path.join(a.workdir, kind + ".cache")

    for c in {cache_of(n) for n, f in variants if "--calib" in f}:
        if os.path.exists(c):
            os.remove(c)
    for name, flags in variants:
        engine = os.path.join(a.workdir, "s." + "".join(ch if ch.isalnum() else "_" for ch in name.lower()) + ".engine")
        quantized = "--int8" in flags or "--fp8" in flags
        extra = ["--calib-cache", cache_of(name)] if quantized else []
        out, secs = log.run([a.unirt, "build", onnx_path, "-o", engine, "--backend", backend, *profile, *flags, *extra])
        if quantized:
            how = f"calibrated on {len(calib)} batches" if "--calib" in flags else f"reused {os.path.basename(cache_of(name))}, no data"
            said = " ".join(line.strip() for line in out.splitlines() if "layers quantized" in line or line.startswith("calibrated"))
            notes.append(f"{name} build: {secs:.1f} s ({how}); {said}")
        if name == "FP8 again":
            continue  # same engine as FP8: the build time is the point
        record(f"unirt {name}", unirt_predict(engine))
    ran = {n for n, _ in variants}
    for mode in ([] if a.no_debug else [m for m in ("INT8", "FP8") if m in ran]):
        # The sensitivity ranking on one calibration batch (training images), then the mode with its worst layers kept in FP16.
        flag, base = f"--{mode.lower()}", ["--fp16"] if backend == "cuda" else []
        rank = os.path.join(a.out, f"debug_precision_{mode.lower()}.json")
        out, secs = log.run([a.unirt, "debug", "precision", onnx_path, "--backend", backend, *base, flag, "--calib-cache", cache_of(mode),
                             "--input", f"input={calib[0]}", "--keep", str(a.keep), "--json", rank])
        open(os.path.join(a.out, f"debug_precision_{mode.lower()}.txt"), "w").write(out)
        keep = json.load(open(rank))["suggested"]
        notes.append(f"unirt debug precision ({mode}, one batch of {a.batch} training images) took {secs:.0f} s; worst {a.keep}: " +
                     ", ".join(k.split("=")[0] for k in keep))
        engine = os.path.join(a.workdir, f"s.{mode.lower()}_keep.engine")
        log.run([a.unirt, "build", onnx_path, "-o", engine, "--backend", backend, *profile, *base, flag, "--calib-cache", cache_of(mode),
                 *[f for k in keep for f in ("--layer-precision", k)]])
        record(f"unirt {mode}, worst {a.keep} layers kept in {'FP16' if backend == 'cuda' else 'FP32'}", unirt_predict(engine))
    if not a.no_qdq:
        qdq_rows(a, log, onnx_path, calib, val_files, backend, profile, record, notes)
    say(table())
    say(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
