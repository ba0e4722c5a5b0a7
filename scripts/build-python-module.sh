#!/usr/bin/env bash
# Builds unirt's Python module for another Python (e.g. the GPU machine's 3.12) against the core
# library an existing build made (build/python/unirt/libunirt_core.so): one file compiled, seconds.
# The module uses the stable ABI, so a 3.12 build also loads on later versions.
#   bash scripts/build-python-module.sh PYTHON [OUT_BUILD_DIR]      e.g. ~/.pyenv/versions/3.12.1/bin/python3.12
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:?usage: build-python-module.sh PYTHON [OUT_BUILD_DIR]}
out=${2:-build-py$("$py" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')}
core=${UNIRT_CORE:-build/python/unirt/libunirt_core.so}
[ -f "$core" ] || { echo "build-python-module: $core is missing (bash scripts/setup.sh builds it)" >&2; exit 1; }
"$py" -c "import nanobind" 2>/dev/null || "$py" -m pip install -q --disable-pip-version-check nanobind
cmake -S . -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNIRT_PYTHON=ON -DUNIRT_BUILD_TESTS=OFF \
  -DPython_EXECUTABLE="$(command -v "$py")" -DUNIRT_CORE_LIBRARY="$PWD/$core" >/dev/null
cmake --build "$out" --target _unirt _unirt_stub
ls -l "$out/python/unirt"
