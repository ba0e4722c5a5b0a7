#!/usr/bin/env bash
# Installs what unirt needs (Debian packages, PyPI packages) and builds it into build/.
# Safe to re-run: apt/pip skip what is present and the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(cmake ninja-build g++ pkg-config libprotobuf-dev protobuf-compiler libopenblas-dev
  libcli11-dev nlohmann-json3-dev libstb-dev libgtest-dev libgmock-dev libbenchmark-dev libonnx-testdata)
source scripts/apt_install.sh
apt_install setup "${APT_PACKAGES[@]}"

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import torch, onnx, onnxruntime, numpy, pytest, PIL" 2>/dev/null; then
  echo "setup: installing Python packages (torch from PyPI is large: several minutes)"
  "$PYTHON" -m pip install -q --disable-pip-version-check -r requirements.txt
fi
"$PYTHON" -m pip install -q --disable-pip-version-check --no-deps -e . >/dev/null

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${UNIRT_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "setup: built $BUILD_DIR/unirt"
