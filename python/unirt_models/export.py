"""PyTorch -> ONNX with dynamic batch/height/width, verified against ONNX Runtime.

    python -m unirt_models.export uniformer_small -o uniformer_small.onnx [--checkpoint ckpt.pth]

The graph is written only if ONNX Runtime reproduces the PyTorch forward at every checked shape
(batch > 1 included; for detectors an H/W that is a multiple of neither 14 nor 32).
"""
import argparse
import os
import sys
import tempfile
import warnings

import numpy as np
import torch

from . import det_metrics
from .mask_rcnn import DEBUG_OUTPUTS, MASK_RCNN_NAMES, create_mask_rcnn, randomize_detector_
from .uniformer import MODEL_NAMES as BACKBONE_NAMES
from .uniformer import create_model, is_detector, load_checkpoint, randomize_

MODEL_NAMES = BACKBONE_NAMES + MASK_RCNN_NAMES
CLASSIFIER_CHECK_SHAPES = [(1, 3, 224, 224), (2, 3, 160, 192), (3, 3, 256, 224)]
DETECTOR_CHECK_SHAPES = [(1, 3, 200, 232), (2, 3, 256, 320), (1, 3, 229, 301)]
MASK_RCNN_CHECK_SHAPES = [(1, 3, 224, 256), (2, 3, 256, 320), (1, 3, 229, 301)]
MASK_RCNN_OUTPUTS = ["dets", "labels", "masks", "num_dets"]


def is_mask_rcnn(name):
    return name in MASK_RCNN_NAMES


def output_names(name, model=None):
    if is_mask_rcnn(name):
        return MASK_RCNN_OUTPUTS + (DEBUG_OUTPUTS if model is not None and model.debug_outputs else [])
    return [f"feat{i}" for i in range(4)] if is_detector(name) else ["logits"]


def build(name, checkpoint=None, seed=0):
    model = (create_mask_rcnn(name) if is_mask_rcnn(name) else create_model(name)).eval()
    if checkpoint:
        load_checkpoint(model, checkpoint)
    elif is_mask_rcnn(name):
        randomize_detector_(model, seed)
    else:
        randomize_(model, seed)
    return model


def export_onnx(model, name, path, opset=17):
    """Exports with the TorchScript-based exporter: it is present in every torch we run on
    and writes the dynamic-shape arithmetic as Shape/Gather/Concat subgraphs, which unirt resolves."""
    outs = output_names(name, model)
    dyn = {"input": {0: "batch", 2: "height", 3: "width"}}
    for o in outs:
        dyn[o] = {0: "batch"} if o in ["logits"] + MASK_RCNN_OUTPUTS + DEBUG_OUTPUTS else \
            {0: "batch", 2: f"{o}_h", 3: f"{o}_w"}
    if "rpn_scores" in outs:
        dyn["rpn_scores"] = dyn["rpn_deltas"] = {0: "batch", 1: "anchors"}
    example = torch.randn(*(MASK_RCNN_CHECK_SHAPES if is_mask_rcnn(name) else
                            DETECTOR_CHECK_SHAPES if is_detector(name) else CLASSIFIER_CHECK_SHAPES)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), path, dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=outs, dynamic_axes=dyn, do_constant_folding=True)


def stats(out, ref):
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    scale = max(1.0, float(np.max(np.abs(ref))))
    rel = diff / np.maximum(np.abs(ref), 1e-6)
    return dict(max_abs=float(diff.max()), mean_abs=float(diff.mean()), median_abs=float(np.median(diff)),
                max_rel_to_scale=float(diff.max() / scale), median_rel=float(np.median(rel)), scale=scale)


def verify(model, name, path, shapes=None, tol=1e-4, seed=1):
    """Runs ONNX Runtime and PyTorch at each shape; returns rows, raises if any disagrees."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(path))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    shapes = shapes or (MASK_RCNN_CHECK_SHAPES if is_mask_rcnn(name) else
                        DETECTOR_CHECK_SHAPES if is_detector(name) else CLASSIFIER_CHECK_SHAPES)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for shape in shapes:
        x = torch.randn(*shape, generator=g)
        with torch.no_grad():
            ref = model(x)
        refs = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
        got = sess.run(None, {"input": x.numpy()})
        if is_mask_rcnn(name):
            rows.append((shape, "dets", verify_detections(name, shape, got[:4], refs[:4], tol)))
            continue
        for oname, o, r in zip(output_names(name), got, refs):
            if o.shape != r.shape:
                raise RuntimeError(f"{name}: ONNX output '{oname}' has shape {o.shape}, PyTorch {r.shape} "
                                   f"at input {shape}")
            s = stats(o, r)
            rows.append((shape, oname, s))
            if s["max_rel_to_scale"] > tol:
                raise RuntimeError(f"{name}: ONNX Runtime disagrees with PyTorch at input {shape}, output "
                                   f"'{oname}': max abs error {s['max_abs']:.3e} (scale {s['scale']:.3g}, "
                                   f"allowed {tol:.0e} x scale)")
    return rows


def verify_detections(name, shape, got, refs, tol):
    """NMS makes outputs discrete: a box on an IoU threshold may flip between two correct runtimes.
    So ORT must reproduce 99% of PyTorch's detections (score > 0.3: same label, IoU >= 0.9), and the
    matched boxes, scores and masks must agree to tol x scale."""
    for oname, o, r in zip(MASK_RCNN_OUTPUTS, got, refs):
        if o.shape != r.shape:
            raise RuntimeError(f"{name}: ONNX output '{oname}' has shape {o.shape}, PyTorch {r.shape} at input {shape}")
    m = det_metrics.match_detections(det_metrics.split_batched(*refs), det_metrics.split_batched(*got))
    scale = max(1.0, float(np.abs(refs[0][..., :4]).max()))
    s = dict(max_abs=m["max_box_err"], mean_abs=float("nan"), max_rel_to_scale=m["max_box_err"] / scale,
             matched=m["share"], n_ref=m["n_ref"], mask_err=m["max_mask_err"])
    if m["share"] < 0.99 or s["max_rel_to_scale"] > tol or m["max_score_err"] > tol or m["max_mask_err"] > 10 * tol:
        raise RuntimeError(f"{name}: ONNX Runtime disagrees with PyTorch at input {shape}: "
                           f"{m['n_matched']} of {m['n_ref']} detections matched, box error {m['max_box_err']:.3e} "
                           f"(scale {scale:.3g}), score error {m['max_score_err']:.3e}, mask error "
                           f"{m['max_mask_err']:.3e} (allowed: 99%, {tol:.0e} x scale)")
    return s


def tag_weights(path, origin):
    """Records where the weights came from (ONNX metadata unirt.weights); unirt classify/detect say
    so when they are random."""
    import onnx
    m = onnx.load(path)
    del m.metadata_props[:]
    m.metadata_props.add(key="unirt.weights", value=origin)
    onnx.save(m, path)


def export_model(name, path, checkpoint=None, seed=0, opset=17, verify_shapes=None, verify_onnx=True, quiet=False,
                 debug_outputs=False):
    model = build(name, checkpoint, seed)
    if debug_outputs:
        if not is_mask_rcnn(name):
            raise RuntimeError(f"{name}: debug outputs exist for the Mask R-CNN detectors only")
        model.debug_outputs = True
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=d)
    os.close(fd)
    try:
        export_onnx(model, name, tmp, opset)
        tag_weights(tmp, f"checkpoint {os.path.basename(checkpoint)}" if checkpoint else f"seeded random (seed {seed})")
        if verify_onnx:
            rows = verify(model, name, tmp, verify_shapes)
            if not quiet:
                print(f"{name}: ONNX Runtime vs PyTorch (float32)")
                print(f"  {'input':>18s} {'output':>7s} {'max abs':>10s} {'mean abs':>10s} {'max/scale':>10s}")
                for shape, oname, s in rows:
                    extra = f"  {s['matched']:.1%} of {s['n_ref']} detections matched" if "matched" in s else ""
                    print(f"  {'x'.join(map(str, shape)):>18s} {oname:>7s} {s['max_abs']:10.2e} "
                          f"{s['mean_abs']:10.2e} {s['max_rel_to_scale']:10.2e}{extra}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description="Export a UniFormer model to ONNX (dynamic batch/H/W), verified "
                                            "with ONNX Runtime.")
    p.add_argument("model", choices=MODEL_NAMES)
    p.add_argument("-o", "--output", default=None)
    p.add_argument("--checkpoint", default=None, help="official checkpoint (.pth); seeded random weights if absent")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime check (not recommended)")
    p.add_argument("--debug-outputs", action="store_true",
                   help="detectors: also output the tensors before each NMS (" + ", ".join(DEBUG_OUTPUTS) + ")")
    a = p.parse_args(argv)
    if a.opset < 17:
        p.error("opset must be 17 or newer")
    out = a.output or f"{a.model}.onnx"
    try:
        export_model(a.model, out, a.checkpoint, a.seed, a.opset, verify_onnx=not a.no_verify,
                     debug_outputs=a.debug_outputs)
    except RuntimeError as e:
        print(f"unirt-export: error: {e}; nothing written", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
