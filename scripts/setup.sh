#!/usr/bin/env bash
# Installs what unirt needs (Debian packages, PyPI packages) and builds it into build/.
# Safe to re-run: apt/pip skip what is present and the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(cmake ninja-build g++ pkg-config libprotobuf-dev protobuf-compiler libopenblas-dev
  libcli11-dev nlohmann-json3-dev libstb-dev libgtest-dev libgmock-dev libbenchmark-dev libonnx-testdata libcpp-httplib-dev
  chromium)  # chromium: the web page test (tests/python/test_web_page.py, Playwright)
source scripts/apt_install.sh
apt_install setup "${APT_PACKAGES[@]}"

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import torch, onnx, onnxruntime, numpy, pytest, PIL, nanobind, scikit_build_core, tritonclient.http, playwright" 2>/dev/null; then
  echo "setup: installing Python packages (torch from PyPI is large: several minutes)"
  "$PYTHON" -m pip install -q --disable-pip-version-check -r requirements.txt
fi

# CUTLASS headers for the CUDA backend's 8-bit GEMMs: the C++ include tree shipped inside PyPI's
# nvidia-cutlass wheel (pinned), unpacked into third_party/cutlass/include (not committed).
CUTLASS_VERSION=4.2.0.0
CUTLASS_DIR=third_party/cutlass
if command -v nvcc >/dev/null && [ ! -f "$CUTLASS_DIR/include/cutlass/cutlass.h" -o "$(cat "$CUTLASS_DIR/VERSION" 2>/dev/null)" != "$CUTLASS_VERSION" ]; then
  echo "setup: fetching CUTLASS $CUTLASS_VERSION headers (nvidia-cutlass wheel)"
  tmp=$(mktemp -d)
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "nvidia-cutlass==$CUTLASS_VERSION"
  rm -rf "$CUTLASS_DIR" && mkdir -p "$CUTLASS_DIR"
  "$PYTHON" - "$tmp"/nvidia_cutlass-*.whl "$CUTLASS_DIR" <<'PY'
import sys, zipfile, os
whl, dest = sys.argv[1], sys.argv[2]
prefix = "cutlass_library/source/include/"
n = 0
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(dest, "include", name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as f:
                f.write(z.read(name))
            n += 1
        elif name.endswith("licenses/LICENSE.txt"):
            with open(os.path.join(dest, "LICENSE.txt"), "wb") as f:
                f.write(z.read(name))
if n == 0:
    sys.exit("setup: no CUTLASS headers in " + whl)
PY
  echo "$CUTLASS_VERSION" > "$CUTLASS_DIR/VERSION"
  rm -rf "$tmp"
fi

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${UNIRT_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "setup: built $BUILD_DIR/unirt"
# The Python packages unirt and unirt_models, editable over this build tree (scikit-build-core
# reuses it: nothing is compiled twice). A source checkout's unirt loads its native module from
# $BUILD_DIR/python/unirt, so a later rebuild needs no reinstall.
"$PYTHON" -m pip uninstall -q -y unirt-models >/dev/null 2>&1 || true  # the package's name before it held unirt
"$PYTHON" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e . \
  -Cbuild-dir="$BUILD_DIR" -Ccmake.define.UNIRT_BUILD_TESTS=ON >/dev/null
echo "setup: installed the Python packages unirt and unirt_models (editable)"
