#!/usr/bin/env bash
# The test command: builds (incrementally) and runs every test: GoogleTest (unit tests, ONNX node
# tests, CUDA tests which skip visibly without a GPU), pytest (models vs PyTorch/ONNX Runtime,
# hostile inputs) and libFuzzer (fixed seed, 0.5M-1.2M executions per harness, about a minute each) under ASan+UBSan
# (UNIRT_SKIP_FUZZ=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
bash scripts/setup.sh
export UNIRT_BIN="$PWD/$BUILD_DIR/unirt"
echo "== GoogleTest (ctest) =="
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" -E onnx_node_tests | tail -n 40
echo "== ONNX backend node tests =="
"./$BUILD_DIR/unirt_tests_onnx_node" --gtest_brief=1 | tail -n 30 || { echo "ONNX node tests failed"; exit 1; }
echo "== pytest =="
python3 -m pytest -q tests/python "$@"
if [ "${UNIRT_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzzing (fixed seed and execution counts) =="
  bash scripts/fuzz.sh --ci
fi
