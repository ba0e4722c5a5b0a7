#!/usr/bin/env bash
# Packs this machine's CUDA build for the device: the stripped unirt and unirt_tests_cuda binaries
# (about 44 MB each, over the 64 MiB a call may carry together) xz-compressed into build-dx/
# (about 7 MB each). Carry build-dx; scripts/device-check.sh unpacks them into build-dev/ there
# (python's lzma: the device has no xz binary).
#   bash scripts/device-pack.sh [build-dir]          then run: bash scripts/device-check.sh quant
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-build}
mkdir -p build-dx
for f in unirt unirt_tests_cuda; do
  [ -x "$src/$f" ] || { echo "device-pack: $src/$f is missing (build with CUDA first)" >&2; exit 1; }
  strip -o "build-dx/$f.stripped" "$src/$f"
  xz -T2 -6 -c "build-dx/$f.stripped" > "build-dx/$f.xz"
  rm "build-dx/$f.stripped"
done
# unirt serve's load generator, and the shared libraries the device may lack: cpp-httplib (Debian
# builds it as a shared library) and its brotli dependencies, and OpenSSL in lib/ssl (used only
# where the device has none: scripts/device-check.sh).
if [ -x "$src/unirt_bench_serve" ]; then
  strip -o build-dx/unirt_bench_serve "$src/unirt_bench_serve"
fi
mkdir -p build-dx/lib/ssl
for l in $(ldd "$src/unirt" | awk '/libcpp-httplib|libbrotli/ {print $3}'); do cp -L "$l" build-dx/lib/; done
for l in $(ldd "$src/unirt" | awk '/libssl|libcrypto/ {print $3}'); do cp -L "$l" build-dx/lib/ssl/; done
# The Python package's native half for the device's Python (3.12): the core library (stripped,
# xz), the module built against it (scripts/build-python-module.sh) and libprotobuf, which the core
# links as a shared library; scripts/device-check.sh unpacks them into build-dev/python/unirt.
py_build=${PY_BUILD:-build-py312}
if [ -f "$src/python/unirt/libunirt_core.so" ] && ls "$py_build"/python/unirt/_unirt*.so >/dev/null 2>&1; then
  mkdir -p build-dx/python
  strip -o build-dx/python/libunirt_core.so "$src/python/unirt/libunirt_core.so"
  xz -T2 -6 -f build-dx/python/libunirt_core.so
  cp "$py_build"/python/unirt/_unirt*.so "$py_build"/python/unirt/_unirt.pyi build-dx/python/
  pb=$(ldd "$src/python/unirt/libunirt_core.so" | awk '/libprotobuf.so/ {print $3}')
  [ -n "$pb" ] && cp "$pb" build-dx/python/
else
  echo "device-pack: no Python module packed (build $src with nanobind, then scripts/build-python-module.sh PYTHON3.12)" >&2
fi
# pycocotools for the detector's mAP (the device has no package index): a wheel for its Python 3.12.
if [ ! -f build-dx/wheels/pycocotools-*.whl ] 2>/dev/null; then
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 -d build-dx/wheels pycocotools ||
    echo "device-pack: no pycocotools wheel (the detector's mAP will not run there)" >&2
fi
ls -l build-dx/*.xz build-dx/python build-dx/wheels 2>/dev/null
