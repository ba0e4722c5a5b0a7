#!/usr/bin/env bash
# Quickstart: set up, export UniFormer-S (seeded random weights: official checkpoints are not
# downloadable here; pass CHECKPOINT=path to use one), build an engine for the GPU when one is
# present (else the CPU), and classify the bundled image: prints the top-5 and the latency.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
bash scripts/setup.sh
mkdir -p artifacts
ckpt=()
[ -n "${CHECKPOINT:-}" ] && ckpt=(--checkpoint "$CHECKPOINT")
PYTHONPATH=python python3 -m unirt_models.export uniformer_small "${ckpt[@]}" -o artifacts/uniformer_small.onnx

backend=cpu
precision=()
if "./$BUILD_DIR/unirt" --version 2>/dev/null | grep -q "cuda: available"; then
  backend=cuda
  precision=(--fp16)
fi
echo "quickstart: building a $backend engine"
"./$BUILD_DIR/unirt" build artifacts/uniformer_small.onnx -o "artifacts/uniformer_small.$backend.engine" \
  --backend "$backend" "${precision[@]}" \
  --min-shapes input:1x3x224x224 --opt-shapes input:1x3x224x224 --max-shapes input:32x3x448x448
if [ -z "${CHECKPOINT:-}" ]; then
  echo "quickstart: NOTE the weights are seeded random (no CHECKPOINT given): the top-5 below shows the engine runs, it is not a classification"
fi
"./$BUILD_DIR/unirt" classify "artifacts/uniformer_small.$backend.engine" assets/sample.jpg --backend "$backend"
