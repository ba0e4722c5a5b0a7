#!/usr/bin/env bash
# Nsight Compute on chosen kernels of one engine inference (on the device machine): where the time
# of a kernel goes (speed of light, pipe utilisation, issue slots, warp stalls), as text.
#   bash scripts/ncu-kernels.sh ENGINE SHAPES NAME_REGEX LAUNCH_SKIP LAUNCH_COUNT OUT.txt
# e.g. the first four CUTLASS GEMMs of a UniFormer-S INT8 engine at batch 128 (stage 1, block 0):
#   bash scripts/ncu-kernels.sh s.int8.engine input:128x3x224x224 device_kernel 0 4 $OUT/ncu_int8.txt
# An engine records its tactics, so `unirt run` launches each layer's kernel once, in graph order.
set -euo pipefail
engine=$1 shapes=$2 regex=$3 skip=$4 count=$5 out=$6
UNIRT_BIN=${UNIRT_BIN:-build-dev/unirt}
rep=$(mktemp -d)/k
ncu --clock-control none --kernel-name "regex:$regex" --launch-skip "$skip" --launch-count "$count" \
  --section SpeedOfLight --section ComputeWorkloadAnalysis --section InstructionStats --section SchedulerStats \
  --section WarpStateStats --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy \
  -o "$rep" "$UNIRT_BIN" run "$engine" --backend cuda --shapes "$shapes" --output-dir "$(dirname "$rep")/outputs" > /dev/null
ncu --import "$rep.ncu-rep" --page details --print-units base >> "$out"
