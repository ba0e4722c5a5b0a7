"""Mask R-CNN parity: unirt (CPU or CUDA, FP32 and FP16) against the PyTorch reference.

    python3 scripts/detector_parity.py --unirt build/unirt --backend cuda --precisions fp32,fp16 \\
        --shapes 1x3x800x1344,2x3x640x640 --out docs/results/detector_parity_h200.md

One engine per precision, built from an export with the tensors before each NMS as extra outputs,
serves every shape. Per shape it reports:
  * RPN scores and deltas of every anchor (before TopK/NMS) and the box head's class logits and
    deltas: max abs error, relative to max(1, |reference|); the head tensors compare rows whose
    proposal is the same box in both (IoU > 0.99), because they are computed for the proposals;
  * proposals: share of PyTorch's that unirt has (IoU >= 0.9);
  * detections against mmdetection-style `simple_test` (image by image): share of PyTorch
    detections with score > 0.3 that unirt reproduces (same label, IoU >= 0.9), the mean IoU of
    their 28x28 masks (thresholded at 0.5) and the largest box / score error.
Required: >= 99% of detections matched in FP32, >= 97% in FP16 (exit status 1 otherwise).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))

from unirt_models import det_metrics  # noqa: E402
from unirt_models.export import build, export_model  # noqa: E402
from unirt_models.mask_rcnn import DEBUG_OUTPUTS, OUTPUTS  # noqa: E402

REQUIRED = {"fp32": 0.99, "fp16": 0.97}


def parse_shape(s):
    return tuple(int(v) for v in s.split("x"))


def rel_err(got, ref):
    d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    return float(d.max()) / max(1.0, float(np.abs(ref).max())) if d.size else 0.0, float(d.mean()) if d.size else 0.0


def proposal_match(ref, got):
    """Share of valid reference proposals that got has (IoU >= 0.9), and the rows where both
    hold the same box (IoU > 0.99)."""
    n_ref = n_hit = 0
    same_rows = []
    for b in range(ref.shape[0]):
        rv, gv = ref[b, ref[b, :, 4] > 0, :4], got[b, got[b, :, 4] > 0, :4]
        n_ref += len(rv)
        if len(rv) and len(gv):
            n_hit += int((det_metrics.box_iou(rv, gv).max(1) >= 0.9).sum())
        k = min(ref.shape[1], got.shape[1])
        iou = np.array([det_metrics.box_iou(ref[b, i:i + 1, :4], got[b, i:i + 1, :4])[0, 0] for i in range(k)])
        same_rows.append(np.nonzero((iou > 0.99) & (ref[b, :k, 4] > 0) & (got[b, :k, 4] > 0))[0])
    return n_hit / max(1, n_ref), same_rows


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return p.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unirt", default=os.path.join(REPO, "build", "unirt"))
    ap.add_argument("--model", default="uniformer_small_mask_rcnn")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precisions", default="fp32")
    ap.add_argument("--shapes", default="1x3x224x256,2x3x256x320")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", default="auto", choices=["auto", "nchw", "nhwc"], help="unirt build --layout")
    ap.add_argument("--torch-device", default="cpu")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    shapes = [parse_shape(s) for s in a.shapes.split(",")]
    work = a.workdir or tempfile.mkdtemp(prefix="unirt_parity_")
    os.makedirs(work, exist_ok=True)
    onnx_path = os.path.join(work, f"{a.model}_debug.onnx")
    if not os.path.exists(onnx_path):
        export_model(a.model, onnx_path, seed=a.seed, debug_outputs=True, verify_shapes=[(1, 3, 224, 256)], quiet=True)
    model = build(a.model, seed=a.seed).to(a.torch_device)
    model.debug_outputs = True
    maxs = "x".join(str(max(s[i] for s in shapes)) for i in range(4))
    rows, ok = [], True
    for prec in a.precisions.split(","):
        engine = os.path.join(work, f"{a.model}_{a.backend}_{prec}_{a.layout}.engine")
        run([a.unirt, "build", onnx_path, "-o", engine, "--backend", a.backend, "--layout", a.layout, *(["--fp16"] if prec == "fp16" else []),
             "--min-shapes", "input:1x3x64x64", "--opt-shapes", "input:" + "x".join(map(str, shapes[0])),
             "--max-shapes", "input:" + maxs])
        for shape in shapes:
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape) + a.seed))
            np.save(os.path.join(work, "x.npy"), x.numpy())
            outdir = os.path.join(work, "out")
            run([a.unirt, "run", engine, "--input", f"input={os.path.join(work, 'x.npy')}", "--output-dir", outdir])
            got = {n: np.load(os.path.join(outdir, f"{n}.npy")) for n in OUTPUTS + DEBUG_OUTPUTS}
            with torch.no_grad():
                xd = x.to(a.torch_device)
                ref = dict(zip(OUTPUTS + DEBUG_OUTPUTS, [t.cpu().numpy() for t in model(xd)]))
                per_image = model.simple_test(xd)
            ref_dets = [dict(dets=r["dets"].cpu().numpy().astype(np.float64), labels=r["labels"].cpu().numpy(),
                             masks=r["masks"].cpu().numpy()) for r in per_image]
            m = det_metrics.match_detections(ref_dets, det_metrics.split_batched(*(got[n] for n in OUTPUTS)))
            rs, _ = rel_err(got["rpn_scores"], ref["rpn_scores"])
            rd, _ = rel_err(got["rpn_deltas"], ref["rpn_deltas"])
            share_p, same = proposal_match(ref["proposals"], got["proposals"])
            cls_e = reg_e = 0.0
            n_same = 0
            for b, idx in enumerate(same):
                n_same += len(idx)
                if len(idx):
                    cls_e = max(cls_e, rel_err(got["cls_score"][b, idx], ref["cls_score"][b, idx])[0])
                    reg_e = max(reg_e, rel_err(got["bbox_pred"][b, idx], ref["bbox_pred"][b, idx])[0])
            passed = m["share"] >= REQUIRED[prec]
            ok = ok and passed
            rows.append(f"| {prec} | {'x'.join(map(str, shape))} | {rs:.1e} | {rd:.1e} | {share_p:.1%} | {cls_e:.1e} | "
                        f"{reg_e:.1e} | {m['n_matched']}/{m['n_ref']} = {m['share']:.1%} | {m['mean_mask_iou']:.4f} | "
                        f"{m['max_box_err']:.2e} | {m['max_score_err']:.1e} | {'pass' if passed else 'FAIL'} |")
            print(rows[-1], flush=True)
    table = ("| precision | input | RPN scores err | RPN deltas err | proposals matched | cls logits err | box deltas err | "
             "detections matched (score > 0.3) | mean mask IoU | max box err (px) | max score err | |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    header = (f"unirt {a.backend} vs PyTorch ({a.torch_device}, float32, TF32 off), {a.model}, seeded random weights "
              f"(seed {a.seed}); errors are max abs / max(1, |reference|).\n\n")
    print(table)
    if a.out:
        with open(a.out, "w") as f:
            f.write(header + table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
