"""unirt.compare: an engine against ONNX Runtime (CPU) on the same inputs, as `unirt compare` does
(polygraphy's run --onnxrt): per output the max/mean/median absolute and relative error, the
elements outside |ours - ort| <= atol + rtol * |ort|, and top-1 agreement for [batch, classes]."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Union

import numpy as np


@dataclass(frozen=True)
class OutputStats:
    name: str
    max_abs: float
    mean_abs: float
    median_abs: float
    max_rel: float
    mean_rel: float
    median_rel: float
    mismatches: int
    top1: Optional[str] = None  # "agreeing rows/rows" for [batch, classes] outputs


@dataclass(frozen=True)
class CompareResult:
    outputs: List[OutputStats]
    atol: float
    rtol: float
    inputs: Dict[str, tuple]

    @property
    def passed(self) -> bool:
        return all(o.mismatches == 0 for o in self.outputs)

    def __str__(self) -> str:
        head = f"{'output':16s} {'max abs':>11s} {'mean abs':>11s} {'median abs':>11s} {'max rel':>11s} {'mean rel':>11s} " \
               f"{'median rel':>11s} {'mismatch':>10s} {'top-1':>8s}"
        rows = [f"{o.name[:16]:16s} {o.max_abs:11.3e} {o.mean_abs:11.3e} {o.median_abs:11.3e} {o.max_rel:11.3e} "
                f"{o.mean_rel:11.3e} {o.median_rel:11.3e} {o.mismatches:10d} {o.top1 or '-':>8s}" for o in self.outputs]
        verdict = "PASSED" if self.passed else "FAILED"
        return "\n".join([head, *rows, f"{verdict} (atol {self.atol:.1e}, rtol {self.rtol:.1e})"])


def output_stats(name: str, ours: np.ndarray, ref: np.ndarray, atol: float, rtol: float) -> OutputStats:
    from . import Error
    if ours.shape != ref.shape:
        raise Error(f"output '{name}' is {list(ours.shape)} here but {list(ref.shape)} in ONNX Runtime")
    a = ours.astype(np.float64).ravel()
    b = ref.astype(np.float64).ravel()
    abs_e = np.abs(a - b)
    rel_e = abs_e / np.maximum(np.abs(b), 1e-12)
    bad = (np.isnan(a) != np.isnan(b)) | (abs_e > atol + rtol * np.abs(b))
    n = max(a.size, 1)
    top1 = None
    if ours.ndim == 2 and ours.shape[1] > 1:
        top1 = f"{int(np.sum(ours.argmax(1) == ref.argmax(1)))}/{ours.shape[0]}"
    stat = lambda f, v: float(f(v)) if v.size else 0.0  # noqa: E731
    return OutputStats(name, stat(np.max, abs_e), float(abs_e.sum() / n), stat(np.median, abs_e), stat(np.max, rel_e),
                       float(rel_e.sum() / n), stat(np.median, rel_e), int(bad.sum()), top1)


def compare(onnx: Union[str, os.PathLike], engine=None, inputs: Optional[Mapping[str, np.ndarray]] = None,
            shapes=None, seed: int = 0, atol: float = 1e-3, rtol: float = 1e-3, precision: str = "fp32",
            backend: str = "auto") -> CompareResult:
    """Runs `engine` (a unirt.Engine or engine path; default: built now from `onnx` with
    `precision`/`backend`) and ONNX Runtime's CPU provider on the same inputs: `inputs`, else
    random ones of `shapes` (the engine's opt shapes by default) drawn as `unirt compare --seed`."""
    import onnxruntime as ort

    from . import Engine, Session, build, load
    if engine is None:
        engine = build(onnx, precision=precision, backend=backend)
    elif not isinstance(engine, Engine):
        engine = load(engine)
    feed = dict(inputs) if inputs is not None else engine.random_inputs(shapes, seed)
    ours = Session(engine).run(feed)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(os.fspath(onnx), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    ref = dict(zip(names, sess.run(names, {k: np.asarray(v) for k, v in feed.items()})))
    stats = [output_stats(n, np.asarray(v), ref[n], atol, rtol) for n, v in ours.items()]
    return CompareResult(stats, atol, rtol, {k: tuple(np.shape(v)) for k, v in feed.items()})
