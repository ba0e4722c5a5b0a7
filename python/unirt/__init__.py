"""unirt from Python: build, save and load engines, run them on numpy arrays or on torch/CuPy GPU
tensors without a copy, compare them with ONNX Runtime, classify and detect images.

    import unirt
    engine = unirt.build("uniformer_small.onnx", precision="fp16",
                         min_shapes={"input": (1, 3, 224, 224)}, opt_shapes={"input": (8, 3, 224, 224)},
                         max_shapes={"input": (32, 3, 224, 224)})
    engine.save("s.engine")
    session = unirt.Session(unirt.load("s.engine"))
    logits = session.run({"input": x})["logits"]          # numpy in, numpy out
    y = session.run({"input": x_cuda})["logits"]           # torch CUDA tensor in, torch CUDA tensor out

Errors from the engine raise unirt.Error (a RuntimeError) with the message the CLI prints.
"""
from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np


def _import_native():
    """The native module. In a source checkout (this file under <repo>/python/unirt), the build
    tree's <build>/python/unirt ($UNIRT_BUILD_DIR, else <repo>/build) comes first, so a rebuild is
    what Python runs even when an editable install holds an older copy; else the package's own
    (an installed wheel)."""
    import importlib.machinery
    import importlib.util
    import sys
    repo = pathlib.Path(__file__).resolve().parent.parent.parent
    if (repo / "CMakeLists.txt").exists():
        for build in filter(None, [os.environ.get("UNIRT_BUILD_DIR"), str(repo / "build")]):
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                f = pathlib.Path(build) / "python" / "unirt" / ("_unirt" + suffix)
                if f.exists():
                    spec = importlib.util.spec_from_file_location(__name__ + "._unirt", f)
                    native = importlib.util.module_from_spec(spec)
                    sys.modules[spec.name] = native
                    spec.loader.exec_module(native)
                    return native
    try:
        from . import _unirt as native
        return native
    except ImportError as e:
        raise ImportError("unirt's native module (_unirt) is not built for this Python: run `pip install .` "
                          "or scripts/setup.sh (a source checkout looks in build/python/unirt)") from e


_native = _import_native()
Error = _native.Error
__version__ = _native.__version__

_ASSETS = pathlib.Path(__file__).resolve().parent / "assets"
_REPO_ASSETS = pathlib.Path(__file__).resolve().parent.parent.parent / "assets"

ShapeSpec = Union[None, str, Mapping[str, Sequence[int]]]


def cuda_available() -> Tuple[bool, str]:
    """(usable, why not): whether this build has CUDA and a GPU is usable here."""
    return tuple(_native.cuda_available())


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: its name, element type (numpy's name), shape (ints where fixed,
    symbolic expressions as strings, e.g. 'batch') and, for inputs, the profile's min/opt/max."""
    name: str
    dtype: str
    shape: Tuple[Union[int, str], ...]
    min: Optional[Tuple[int, ...]] = None
    opt: Optional[Tuple[int, ...]] = None
    max: Optional[Tuple[int, ...]] = None

    @staticmethod
    def _of(d: dict) -> "TensorInfo":
        tup = lambda v: None if v is None else tuple(v)  # noqa: E731
        return TensorInfo(d["name"], d["dtype"], tuple(d["shape"]), tup(d["min"]), tup(d["opt"]), tup(d["max"]))


class Engine:
    """A built engine: the graph after passes plus how it was built (backend, precision, profile)."""

    def __init__(self, native_engine):
        self._e = native_engine

    @staticmethod
    def load(path: Union[str, os.PathLike]) -> "Engine":
        return Engine(_native.Engine.load(os.fspath(path)))

    def save(self, path: Union[str, os.PathLike]) -> None:
        self._e.save(os.fspath(path))

    @property
    def inputs(self) -> List[TensorInfo]:
        return [TensorInfo._of(d) for d in self._e.inputs]

    @property
    def outputs(self) -> List[TensorInfo]:
        return [TensorInfo._of(d) for d in self._e.outputs]

    backend = property(lambda self: self._e.backend, doc="'cpu' or 'cuda'")
    precision = property(lambda self: self._e.precision, doc="the float precision of its layers: fp32 or fp16")
    quantization = property(lambda self: self._e.quantization, doc="none, int8 or fp8 (the layers placed in 8 bits)")
    source = property(lambda self: self._e.source, doc="the ONNX file it was built from")
    metadata = property(lambda self: dict(self._e.metadata), doc="the model's ONNX metadata_props")
    version = property(lambda self: self._e.version, doc="the unirt version that built it")
    tactics = property(lambda self: dict(self._e.tactics), doc="node -> implementation chosen at build time")

    @property
    def random_weights(self) -> bool:
        """True when the model says its weights are seeded random (unirt.weights metadata): its
        outputs show the engine runs, they are not predictions."""
        return bool(self._e.random_weights_note("outputs"))

    def random_inputs(self, shapes: ShapeSpec = None, seed: int = 0) -> Dict[str, np.ndarray]:
        """Normal(0, 1) inputs exactly as `unirt run --shapes ... --seed N` makes them."""
        return self._e.random_inputs(shapes, seed)

    def create_session(self, **kwargs) -> "Session":
        return Session(self, **kwargs)

    def __repr__(self) -> str:
        q = "" if self.quantization == "none" else f", {self.quantization}"
        return f"<unirt.Engine {self.backend} {self.precision}{q}, inputs {[i.name for i in self.inputs]}>"


def load(path: Union[str, os.PathLike]) -> Engine:
    """An engine file written by Engine.save or `unirt build`."""
    return Engine.load(path)


def build(onnx: Union[str, os.PathLike], precision: str = "fp32", backend: str = "auto",
          min_shapes: ShapeSpec = None, opt_shapes: ShapeSpec = None, max_shapes: ShapeSpec = None,
          fuse: bool = True, layout: str = "auto", calib: Union[None, str, os.PathLike, Sequence[Union[str, os.PathLike]]] = None,
          calib_cache: Optional[Union[str, os.PathLike]] = None, calibrator: Optional[str] = None,
          calib_batches: int = 0, calib_batch: int = 8, layer_precision: Optional[Mapping[str, str]] = None,
          threads: int = 0) -> Engine:
    """ONNX -> engine, as `unirt build` does.

    precision: fp32, fp16, int8 or fp8. int8/fp8 place the GEMM-like layers in 8 bits (per-channel
      weights, per-tensor activations from calibration); the rest run FP16 on CUDA, FP32 on the CPU
      (which simulates the 8-bit layers in float32). They need `calib` (image folders or .npy
      batches) or an existing `calib_cache`; a named cache that does not exist yet is written.
    backend: auto (CUDA when usable), cpu or cuda.
    min/opt/max_shapes: {"input": (1, 3, 224, 224)} or "input:1x3x224x224"; on CUDA the opt shapes
      are where the kernels' tactics are timed.
    layer_precision: {"node name": "fp16"} keeps a layer out of 8 bits (or puts one in).
    """
    if isinstance(calib, (str, os.PathLike)):
        calib = [calib]
    return Engine(_native.build(os.fspath(onnx), precision, backend, min_shapes, opt_shapes, max_shapes, fuse, layout,
                                [os.fspath(c) for c in (calib or [])], os.fspath(calib_cache) if calib_cache else "",
                                calibrator or "", calib_batches, calib_batch, dict(layer_precision or {}), threads))


def _framework(x) -> str:
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        return "torch"
    if mod == "cupy":
        return "cupy"
    return "numpy"


def _is_device_array(x) -> bool:
    fw = _framework(x)
    if fw == "torch":
        return x.is_cuda
    return fw == "cupy"


class Session:
    """Runs an engine: kernels created once, weights uploaded once, one plan (and on CUDA one
    captured graph) per input-shape signature. Thread-safe: concurrent calls run one at a time."""

    def __init__(self, engine: Engine, threads: int = 0, cuda_graphs: bool = True):
        if not isinstance(engine, Engine):
            raise TypeError(f"Session needs a unirt.Engine, got {type(engine).__name__}")
        self.engine = engine
        self._s = _native.Session(engine._e, "", threads, cuda_graphs)
        self._inputs = [i.name for i in engine.inputs]
        self._outputs = [o.name for o in engine.outputs]

    @property
    def backend(self) -> str:
        return self._s.backend

    def output_shapes(self, input_shapes: Mapping[str, Sequence[int]]) -> Dict[str, Tuple[int, ...]]:
        """Output buffer shapes for these input shapes (upper bounds where a size depends on data)."""
        shapes = [list(input_shapes[n]) for n in self._inputs]
        return {n: tuple(s) for n, s in zip(self._outputs, self._s.output_shapes(shapes))}

    def run(self, feed: Mapping[str, Any], outputs: Optional[Mapping[str, Any]] = None,
            stream: Optional[int] = None) -> Dict[str, Any]:
        """Inputs by name -> outputs by name.

        Host arrays (numpy, or CPU torch tensors) -> numpy arrays. CUDA arrays (torch, CuPy; CUDA
        engines only) run in place: the engine reads them and writes its outputs into device
        memory, `outputs` if given (preallocated, one per output) or new tensors of the inputs'
        framework, with no host copy. The work is ordered after what `stream` (a cudaStream_t as an
        int; default: the framework's current stream) holds and the stream waits for it, so the
        results can be used on it at once.
        """
        if not isinstance(feed, Mapping):
            raise TypeError("run() takes a dict of input name -> array")
        unknown = [k for k in feed if k not in self._inputs]
        if unknown:
            raise Error(f"'{unknown[0]}' is not an input of this engine (inputs: {', '.join(self._inputs)})")
        device = [_is_device_array(v) for v in feed.values()]
        if feed and all(device):
            return self._run_device(feed, outputs, stream)
        if any(device):
            raise Error("inputs mix host and CUDA arrays: give all of them on one side")
        if outputs is not None:
            raise Error("outputs= (preallocated buffers) applies to CUDA arrays; host runs return new numpy arrays")
        host = {}
        for k, v in feed.items():
            if _framework(v) == "torch":
                v = v.detach().numpy()
            host[k] = np.ascontiguousarray(v)
        return self._s.run_host(host)

    def _run_device(self, feed, outputs, stream):
        missing = [n for n in self._inputs if n not in feed]
        if missing:
            raise Error(f"input '{missing[0]}' was not given")
        first = next(iter(feed.values()))
        fw = _framework(first)
        ins = [feed[n].contiguous() if fw == "torch" else feed[n] for n in self._inputs]
        if stream is None:
            if fw == "torch":
                import torch
                stream = torch.cuda.current_stream(ins[0].device).cuda_stream
            else:
                import cupy
                stream = cupy.cuda.get_current_stream().ptr
        bufs = self.output_shapes({n: tuple(t.shape) for n, t in zip(self._inputs, ins)})
        infos = {o.name: o for o in self.engine.outputs}
        if outputs is not None:
            extra = [k for k in outputs if k not in bufs]
            if extra:
                raise Error(f"'{extra[0]}' is not an output of this engine (outputs: {', '.join(self._outputs)})")
            missing = [n for n in self._outputs if n not in outputs]
            if missing:
                raise Error(f"outputs= lacks output '{missing[0]}' (give a buffer for every output)")
            outs = [outputs[n] for n in self._outputs]
        else:
            outs = [_empty_like_framework(fw, bufs[n], infos[n].dtype, first) for n in self._outputs]
        shapes = self._s.run_device(ins, outs, int(stream))
        result = {}
        for n, buf, actual in zip(self._outputs, outs, shapes):
            actual = tuple(actual)
            if tuple(buf.shape) != actual:  # a data-dependent size fills the start of its buffer
                count = int(np.prod(actual)) if actual else 1
                buf = buf.reshape(-1)[:count].reshape(actual)
            result[n] = buf
        return result

    def classify(self, image: Union[str, os.PathLike, bytes], top: int = 5, size: int = 224,
                 labels: Union[None, str, os.PathLike, Sequence[str]] = None) -> "Classification":
        """An image file or its bytes -> the `top` most probable classes, as `unirt classify`."""
        return classify(self, image, top=top, size=size, labels=labels)

    def detect(self, images, **kwargs) -> List[List["Detection"]]:
        return detect(self, images, **kwargs)


def _empty_like_framework(fw: str, shape, dtype: str, like):
    if fw == "torch":
        import torch
        return torch.empty(tuple(shape), dtype=getattr(torch, "bool" if dtype == "bool" else dtype), device=like.device)
    import cupy
    with cupy.cuda.Device(like.device.id):
        return cupy.empty(tuple(shape), dtype=dtype)


def _labels(labels, default_name: str) -> List[str]:
    if labels is None:
        for base in (_ASSETS, _REPO_ASSETS):
            p = base / default_name
            if p.exists():
                return p.read_text().splitlines()
        return []
    if isinstance(labels, (str, os.PathLike)):
        p = pathlib.Path(labels)
        if not p.exists():
            raise Error(f"cannot open labels file '{p}'")
        return p.read_text().splitlines()
    return list(labels)


def _session_of(model) -> Session:
    if isinstance(model, Session):
        return model
    if isinstance(model, Engine):
        return Session(model)
    if isinstance(model, (str, os.PathLike)):
        return Session(load(model))
    raise TypeError(f"expected a unirt.Session, Engine or engine path, got {type(model).__name__}")


@dataclass(frozen=True)
class ClassScore:
    index: int
    probability: float
    label: str


@dataclass(frozen=True)
class Classification:
    """The most probable classes, best first. `note` is non-empty when the model's weights are
    seeded random: then the classes show the engine runs and are not predictions."""
    classes: List[ClassScore]
    note: str = ""

    def __str__(self) -> str:
        lines = [self.note.strip()] if self.note else []
        lines += [f"{100 * c.probability:6.2f}%  {c.index:4d}  {c.label}" for c in self.classes]
        return "\n".join(lines)


def classify(model, image: Union[str, os.PathLike, bytes], top: int = 5, size: int = 224,
             labels: Union[None, str, os.PathLike, Sequence[str]] = None) -> Classification:
    """Image -> top classes with the CLI's preprocessing (resize the shorter side to size*256/224,
    centre crop, ImageNet mean/std) and softmax. `model`: a Session, Engine or engine path;
    `labels`: a file, a list, or ImageNet's by default."""
    s = _session_of(model)
    img = image if isinstance(image, bytes) else os.fspath(image)
    raw = s._s.classify(img, top, size, _labels(labels, "imagenet_labels.txt"))
    return Classification([ClassScore(int(i), float(p), l) for i, p, l in raw], s.engine._e.random_weights_note("classes"))


@dataclass(frozen=True)
class Detection:
    """One instance on the original image: box (x0, y0, x1, y1) in pixels, score, label index and
    name, and its mask as COCO compressed RLE ({'size': [h, w], 'counts': str}) when the engine
    has masks."""
    box: Tuple[float, float, float, float]
    score: float
    label: int
    name: str = ""
    mask: Optional[Dict[str, Any]] = None
    mask_area: int = 0


def detect(model, images, score_thr: float = 0.3, mask_thr: float = 0.5, long_edge: int = 1333, short_edge: int = 800,
           size_divisor: int = 32, labels: Union[None, str, os.PathLike, Sequence[str]] = None) -> List[List[Detection]]:
    """Images (paths or bytes; one or a list, run as one batch) -> per image its detections, with
    `unirt detect`'s preprocessing (keep-ratio resize, normalise, pad) and postprocessing (boxes
    rescaled, masks pasted at full resolution and thresholded at mask_thr)."""
    s = _session_of(model)
    single = isinstance(images, (str, bytes, os.PathLike))
    items = [images] if single else list(images)
    items = [i if isinstance(i, bytes) else os.fspath(i) for i in items]
    names = _labels(labels, "coco_labels.txt")
    note = s.engine._e.random_weights_note("detections")
    if note:
        import warnings
        warnings.warn(note.strip())
    raw = s._s.detect(items, score_thr, mask_thr, long_edge, short_edge, size_divisor)
    out = [[Detection(tuple(d["box"]), float(d["score"]), int(d["label"]),
                      names[d["label"]] if 0 <= d["label"] < len(names) else "", d["mask"], int(d.get("mask_area", 0)))
            for d in per] for per in raw]
    return out


from .compare import CompareResult, OutputStats, compare  # noqa: E402

__all__ = ["Error", "Engine", "Session", "TensorInfo", "build", "load", "compare", "CompareResult", "OutputStats",
           "classify", "Classification", "ClassScore", "detect", "Detection", "cuda_available", "__version__"]
