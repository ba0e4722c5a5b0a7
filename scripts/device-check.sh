#!/usr/bin/env bash
# Everything the GPU machine does for unirt in one call: GPU unit tests, the GPU parity suite
# (pytest: every variant FP32/FP16 vs PyTorch FP32), compute-sanitizer (memcheck, initcheck,
# synccheck, racecheck) on one inference per model, and the
# benchmark. Build here (cmake -S . -B build-gpu -DUNIRT_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a),
# copy build-gpu/unirt and build-gpu/unirt_tests_cuda into build-dev/ (strip them), carry build-dev,
# and run from the repo root on the device (or pack them with scripts/device-pack.sh and carry
# build-dx: they are unpacked into build-dev/ here):
#   bash scripts/device-check.sh [tests|sanitize|bench|detector|quant|python|serve|all]     (logs go to $OUT or artifacts/)
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
OUT=${OUT:-artifacts}
mkdir -p "$OUT" artifacts
BIN_DIR=${UNIRT_BUILD:-build-dev}
if [ ! -x "$BIN_DIR/unirt" ] && [ -f build-dx/unirt.xz ]; then
  mkdir -p "$BIN_DIR"
  for f in unirt unirt_tests_cuda; do
    python3 -c "import lzma, sys; open(sys.argv[2], 'wb').write(lzma.open(sys.argv[1]).read())" "build-dx/$f.xz" "$BIN_DIR/$f"
    chmod +x "$BIN_DIR/$f"
  done
fi
if [ -d build-dx/python ] && [ ! -f "$BIN_DIR/python/unirt/libunirt_core.so" ]; then
  mkdir -p "$BIN_DIR/python/unirt"
  python3 -c "import lzma, sys; open(sys.argv[2], 'wb').write(lzma.open(sys.argv[1]).read())" build-dx/python/libunirt_core.so.xz \
    "$BIN_DIR/python/unirt/libunirt_core.so"
  cp build-dx/python/*.so* build-dx/python/*.pyi "$BIN_DIR/python/unirt/" && rm -f "$BIN_DIR/python/unirt/libunirt_core.so.xz"
fi
# Libraries the device lacks (cpp-httplib, brotli; OpenSSL only where it has none), carried by
# scripts/device-pack.sh.
if [ -d build-dx/lib ]; then
  export LD_LIBRARY_PATH="$PWD/build-dx/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if ldd "$BIN_DIR/unirt" | grep -q "libssl.*not found"; then export LD_LIBRARY_PATH="$PWD/build-dx/lib/ssl:$LD_LIBRARY_PATH"; fi
fi
[ -f build-dx/unirt_bench_serve ] && cp build-dx/unirt_bench_serve "$BIN_DIR/" && chmod +x "$BIN_DIR/unirt_bench_serve"
export UNIRT_BIN="$PWD/$BIN_DIR/unirt"
export UNIRT_BUILD_DIR="$PWD/$BIN_DIR"  # python/unirt loads its native module from $BIN_DIR/python/unirt
export PYTHONPATH="$PWD/python:$PWD/artifacts/pylib${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

if [ "$what" = tests ] || [ "$what" = all ]; then
  echo "== CUDA unit tests"
  "./$BIN_DIR/unirt_tests_cuda" --gtest_brief=1 2>&1 | tee "$OUT/cuda_tests.log" | tail -n 25 || status=1
  echo "== engine build with timed tactics, per-layer profiles, memory (UniFormer-S FP16)"
  python3 -m unirt_models.export uniformer_small -o artifacts/uniformer_small.onnx --no-verify >/dev/null 2>&1 || status=1
  "$UNIRT_BIN" build artifacts/uniformer_small.onnx --fp16 --backend cuda -o artifacts/uniformer_small.fp16.engine \
    --min-shapes input:1x3x224x224 --opt-shapes input:128x3x224x224 --max-shapes input:128x3x224x224 | tee "$OUT/build_tactics.txt" || status=1
  "$UNIRT_BIN" inspect artifacts/uniformer_small.fp16.engine | sed -n '/^tactics:/,$p' >> "$OUT/build_tactics.txt"
  for b in 1 128; do
    "$UNIRT_BIN" bench artifacts/uniformer_small.fp16.engine --shapes input:${b}x3x224x224 --profile > "$OUT/profile_s_fp16_b$b.txt" 2>&1 || status=1
    head -n 4 "$OUT/profile_s_fp16_b$b.txt"
  done
  echo "== layout: the same FP16 engine with NCHW convolution regions"
  "$UNIRT_BIN" build artifacts/uniformer_small.onnx --fp16 --backend cuda --layout nchw -o artifacts/uniformer_small.fp16.nchw.engine \
    --min-shapes input:1x3x224x224 --opt-shapes input:128x3x224x224 --max-shapes input:128x3x224x224 > /dev/null || status=1
  for b in 1 128; do
    for e in uniformer_small.fp16.engine uniformer_small.fp16.nchw.engine; do
      printf '%s batch %s: ' "$e" "$b"
      "$UNIRT_BIN" bench "artifacts/$e" --shapes input:${b}x3x224x224 | grep -E '^latency' || status=1
    done
  done | tee "$OUT/layout.txt"
  echo "== GPU parity (pytest)"
  UNIRT_RESULTS="$OUT/gpu_parity.md" python3 -m pytest -q -s tests/python/test_gpu_parity.py 2>&1 | tee "$OUT/gpu_parity.log" | tail -n 40 || status=1
fi
if [ "$what" = detector ] || [ "$what" = all ]; then
  # The whole Mask R-CNN: parity with PyTorch (FP32/FP16, several sizes and batches), then the
  # benchmark; with DET_TRAIN_ITERS, the trained detector's mAP. DET_SHAPES / DET_BENCH_SHAPES /
  # DET_COMPILE narrow a run to fit one device call; DET_PARITY=0 / DET_BENCH=0 leave those parts out.
  if [ "${DET_PARITY:-1}" = 1 ]; then
    echo "== Mask R-CNN parity (CUDA FP32/FP16 vs PyTorch)"
    python3 scripts/detector_parity.py --unirt "$UNIRT_BIN" --backend cuda --precisions fp32,fp16 --torch-device cuda \
      --shapes "${DET_SHAPES:-1x3x800x1344,2x3x640x640,1x3x544x736}" --workdir artifacts/parity \
      --out "$OUT/detector_parity.md" 2>&1 | tee "$OUT/detector_parity.log" | tail -n 12 || status=1
  fi
  # pycocotools is not on the device: a wheel carried in build-dx/wheels (scripts/device-pack.sh
  # downloads it) or build-dev/wheels is unpacked onto PYTHONPATH (the device's pip installs where
  # its python3 does not look).
  if ! python3 -c "import pycocotools" 2>/dev/null; then
    w=$(ls "$BIN_DIR"/wheels/pycocotools-*.whl build-dx/wheels/pycocotools-*.whl 2>/dev/null | head -n 1)
    if [ -n "$w" ]; then python3 -m zipfile -e "$w" artifacts/pylib; else echo "no pycocotools wheel carried"; status=1; fi
  fi
  if [ -n "${DET_TRAIN_ITERS:-}" ]; then
    echo "== Mask R-CNN trained on the generated shapes: COCO mAP of PyTorch FP32, unirt FP32/FP16/INT8/FP8"
    # DET_ACCURACY_ARGS: more flags (e.g. --precisions fp16 int8 fp8 --calib-images 64).
    python3 scripts/detector_accuracy.py --unirt "$UNIRT_BIN" --iters "$DET_TRAIN_ITERS" --out "$OUT" ${DET_ACCURACY_ARGS:-} 2>&1 | tail -n 12 || status=1
  fi
  if [ "${DET_BENCH:-1}" = 1 ]; then
    echo "== Mask R-CNN benchmark"
    python3 bench/bench_detector.py --unirt "$UNIRT_BIN" --shapes "${DET_BENCH_SHAPES:-1x3x800x1344,2x3x800x1344,4x3x800x1344,1x3x640x640}" \
      --compile-modes "${DET_COMPILE-default,max-autotune-no-cudagraphs}" --workdir artifacts/bench_det \
      --out "$OUT/bench_detector.md" 2>&1 | tee "$OUT/bench_detector.log" | tail -n 40 || status=1
  fi
fi
if [ "$what" = sanitize ] || [ "$what" = all ]; then
  # All four compute-sanitizer tools, one FP32 and one FP16 inference of S, B and the hybrid
  # detection backbone. What the tools cannot see into (docs/results/sanitizers_h200.md):
  # cuBLASLt's Hopper GEMMs (nvjet_*, TMA + mbarrier) read as racy to racecheck and their TMA
  # stores as never written to initcheck, and they make racecheck slow. racecheck therefore runs
  # on our kernels (library GEMMs excluded, FP32, plus the CUDA unit tests), initcheck is reported
  # as it is, and the poisoned-arena test (PatchEmbeddingOutputIsWrittenEverywhere) shows every
  # flagged buffer is written.
  LIB="kns=nvjet,kns=gemm,kns=xmma,kns=cutlass,kns=cudnn,kns=cublas"
  # SAN_TOOLS / SAN_MODELS narrow a run to fit one device call; SAN_TESTS=0 skips the unit tests;
  # SAN_PRECS="int8 fp8" checks quantized engines instead of FP32/FP16.
  summary="$OUT/sanitize_summary.md"
  [ -f "$summary" ] || printf '| tool | model | precision | shape | seconds | result |\n|---|---|---|---|---|---|\n' > "$summary"
  for tool in ${SAN_TOOLS:-memcheck initcheck synccheck racecheck}; do
    [ "$tool" = none ] && continue
    echo "== compute-sanitizer $tool: one inference per model"
    for m in ${SAN_MODELS:-uniformer_small uniformer_base uniformer_small_det_hybrid}; do
      [ -f "artifacts/$m.onnx" ] || python3 -m unirt_models.export "$m" -o "artifacts/$m.onnx" --no-verify >/dev/null 2>&1 ||
        { echo "export $m failed"; status=1; continue; }
      shape=input:1x3x224x224; case $m in *det*|*rcnn*) shape=input:1x3x320x416;; esac
      extra=""
      if [ $tool = racecheck ]; then extra="--kernel-name-exclude $LIB"; shape=input:1x3x64x64; fi
      precs=${SAN_PRECS:-fp32 fp16}
      # FP16 racecheck of a whole model stops inside the sanitizer (cuBLASLt's TMA GEMMs excluded or
      # not); our FP16 kernels are checked per unit test below (sanitizers_h200.md).
      [ $tool = racecheck ] && precs=fp32
      for prec in $precs; do
        flag=""; [ $prec = fp16 ] && flag=--fp16
        model="artifacts/$m.onnx"
        if [ $prec = int8 ] || [ $prec = fp8 ]; then
          # An INT8/FP8 engine (FP16 elsewhere), calibrated on two random batches, built outside the sanitizer.
          dims=${shape#input:}
          python3 -c "import numpy as np, sys; [np.save(f'artifacts/calib_{sys.argv[1]}_{k}.npy', np.random.default_rng(k).standard_normal([2] + [int(d) for d in sys.argv[2].split('x')[1:]]).astype(np.float32)) for k in range(2)]" "$m" "$dims"
          "$UNIRT_BIN" build "$model" -o "artifacts/$m.$prec.engine" --backend cuda --fp16 --$prec --calib artifacts/calib_${m}_0.npy artifacts/calib_${m}_1.npy \
            > "$OUT/build_${m}_$prec.log" 2>&1 || { echo "build $m $prec failed"; tail -n 3 "$OUT/build_${m}_$prec.log"; status=1; continue; }
          model="artifacts/$m.$prec.engine"; flag=""
        fi
        log="$OUT/${tool}_${m}_$prec.log"
        t0=$(date +%s)
        timeout ${SAN_TIMEOUT:-600} compute-sanitizer --tool $tool $extra --print-limit 5 "$UNIRT_BIN" run "$model" --backend cuda $flag \
          --shapes "$shape" --output-dir artifacts/sanitize > "$log" 2>&1
        rc=$?
        t1=$(date +%s)
        result=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$log" | tail -n 1)
        [ $rc = 124 ] && result="did not finish in ${SAN_TIMEOUT:-600} s"
        [ -z "$result" ] && result="exit $rc: $(grep -v '^=========' "$log" | tail -n 1)"
        echo "-- $m $prec: $result ($((t1 - t0)) s)"
        printf '| %s | %s | %s | %s | %s | %s |\n' "$tool" "$m" "$prec" "${shape#input:}" "$((t1 - t0))" "$result" >> "$summary"
        [ $rc = 0 ] || [ $tool = initcheck ] || status=1
      done
    done
  done
  if [ "${SAN_TESTS:-1}" = 1 ]; then
    # Our kernels in FP32 and FP16 one unit test at a time (each compares FP32 and FP16 against the
    # CPU), library GEMMs excluded; tests whose graphs need cuBLASLt FP16 GEMMs are left out: with
    # those kernels excluded the sanitizer fails on a hardware exception (sanitizers_h200.md).
    echo "== racecheck per CUDA unit test (our kernels)"
    for t in $("./$BIN_DIR/unirt_tests_cuda" --gtest_list_tests | awk '/^[A-Za-z]/{s=$1} /^  /{print s $1}'); do
      case $t in *MatMul*|*Gemm*|*ChannelsLast*|*PatchEmbedding*|*ViaCudnn*|*OmittedOptional*|*Dense*|*TwoGemms*) continue;; esac
      t0=$(date +%s)
      timeout ${SAN_TEST_TIMEOUT:-300} compute-sanitizer --tool racecheck --kernel-name-exclude $LIB "./$BIN_DIR/unirt_tests_cuda" \
        --gtest_filter="$t" --gtest_brief=1 > "$OUT/racecheck_test.log" 2>&1
      rc=$?
      result=$(grep -E "RACECHECK SUMMARY" "$OUT/racecheck_test.log" | tail -n 1)
      [ $rc = 124 ] && result="did not finish"
      grep -q "FAILED" "$OUT/racecheck_test.log" && result="$result; the test FAILED"
      echo "-- $t: $result ($(( $(date +%s) - t0 )) s)"
      printf '| racecheck | unit test %s | fp32+fp16 | | %s | %s |\n' "$t" "$(( $(date +%s) - t0 ))" "$result" >> "$summary"
      [ $rc = 0 ] || { status=1; cp "$OUT/racecheck_test.log" "$OUT/racecheck_$t.log"; }
    done
  fi
fi
if [ "$what" = python ] || [ "$what" = all ]; then
  # The Python package on the GPU: its whole pytest file, the GPU tests (zero-copy torch tensors on
  # the caller's stream) included.
  echo "== Python package (pytest, GPU)"
  python3 -m pytest -q -rs tests/python/test_python_api.py 2>&1 | tee "$OUT/python_api.log" | tail -n 15 || status=1
fi
if [ "$what" = serve ]; then
  # unirt serve under load: UniFormer-S FP16, concurrency 1/8/32/128 with and without dynamic
  # batching, against the same engine in-process; RSS over 10k requests; an overload burst.
  echo "== unirt serve load benchmark"
  python3 bench/bench_serve.py --unirt "$UNIRT_BIN" --load "$BIN_DIR/unirt_bench_serve" ${SERVE_BENCH_ARGS:-} --out "$OUT/serve_bench.md" \
    2>&1 | tee "$OUT/serve_bench.log" | tail -n 30 || status=1
fi
if [ "$what" = quant ]; then
  # INT8/FP8 in one call: the quantized-kernel unit tests, UniFormer-S FP16/INT8/FP8 engines
  # (calibrated on two random batches: speed only), unirt bench at batch 1/8/32/128, and the
  # per-layer profiles and tactics at batch 128, in two files (a call returns at most eight).
  echo "== quantized kernels: CUDA unit tests"
  "./$BIN_DIR/unirt_tests_cuda" --gtest_brief=1 --gtest_filter='*Quantiz*:*Codes*:*Float8*:*EightBit*' 2>&1 | tail -n 5 || status=1
  python3 -m unirt_models.export uniformer_small -o artifacts/uniformer_small.onnx --no-verify >/dev/null 2>&1 || status=1
  python3 -c "import numpy as np; [np.save(f'artifacts/calib_s_{k}.npy', np.random.default_rng(k).standard_normal((8, 3, 224, 224)).astype(np.float32)) for k in range(2)]"
  q="$OUT/quant_bench.txt"; : > "$q"
  for p in fp16 int8 fp8; do
    extra="--fp16"; [ $p != fp16 ] && extra="--fp16 --$p --calib artifacts/calib_s_0.npy artifacts/calib_s_1.npy"
    "$UNIRT_BIN" build artifacts/uniformer_small.onnx -o artifacts/uniformer_small.$p.engine --backend cuda $extra \
      --min-shapes input:1x3x224x224 --opt-shapes input:128x3x224x224 --max-shapes input:128x3x224x224 >> "$q" 2>&1 || status=1
  done
  for b in 1 8 32 128; do
    for p in fp16 int8 fp8; do
      echo "UniFormer-S $p batch $b: $("$UNIRT_BIN" bench artifacts/uniformer_small.$p.engine --shapes input:${b}x3x224x224 2>&1 | grep -E '^latency')"
    done
  done | tee -a "$q"
  for p in int8 fp8; do
    "$UNIRT_BIN" bench artifacts/uniformer_small.$p.engine --shapes input:128x3x224x224 --profile >> "$OUT/quant_profiles.txt" 2>&1 || status=1
    "$UNIRT_BIN" inspect artifacts/uniformer_small.$p.engine | sed -n '/^tactics:/,$p' >> "$OUT/quant_profiles.txt"
  done
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  echo "== benchmark"
  # BENCH_ARGS narrows the run (e.g. --models uniformer_small) to fit one device call.
  python3 bench/bench_models.py --unirt "$UNIRT_BIN" ${BENCH_ARGS:-} --out "$OUT/bench.md" --json-out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log" || status=1
fi
exit $status
