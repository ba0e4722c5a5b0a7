"""The `unirt` command of an installed package: the CLI binary installed beside the native module
(unirt/bin), told where the package keeps its assets and ONNX Runtime script (in a source tree the
binary finds them beside itself)."""
import os
import pathlib
import sys


def main() -> None:
    import unirt
    pkg = pathlib.Path(unirt._native.__file__).resolve().parent
    exe = pkg / "bin" / "unirt"
    if not exe.exists():
        exe = pkg.parent.parent / "unirt"  # a source checkout: <build>/python/unirt -> <build>/unirt
    if not exe.exists():
        sys.exit(f"unirt: the CLI binary is not in this installation ({pkg / 'bin' / 'unirt'})")
    env = dict(os.environ)
    if (pkg / "assets").exists():
        env.setdefault("UNIRT_HOME", str(pkg))  # assets/ (labels)
    env.setdefault("UNIRT_PYTHON_DIR", str(pathlib.Path(__file__).resolve().parent.parent))  # unirt_models/ort_run.py
    env.setdefault("UNIRT_PYTHON", sys.executable)
    os.execve(str(exe), [str(exe), *sys.argv[1:]], env)
