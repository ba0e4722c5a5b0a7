#!/usr/bin/env bash
# libFuzzer under AddressSanitizer + UndefinedBehaviorSanitizer, three harnesses (fuzz/):
#   onnx    ONNX bytes -> importer -> shape inference -> passes -> plan -> CPU run at a small shape
#   engine  engine-file payloads (framed with a valid checksum) -> loader -> plan -> CPU run
#   inputs  the CLI's .npy and image readers, and shape strings
# Builds build-fuzz/ with clang (CUDA off), replays the committed regression inputs
# (fuzz/regressions/<harness>/), seeds each corpus (ONNX node-test models, engines built from
# them, generated .npy files and images) and fuzzes each harness.
#   bash scripts/fuzz.sh [SECONDS]      per harness, random seed
#   bash scripts/fuzz.sh --runs N       N executions per harness instead (e.g. 1000000)
#   bash scripts/fuzz.sh --ci           what CI runs: seed 1, a fixed number of executions per
#                                       harness (about a minute each on 2 cores), so a run repeats
# Crashing inputs land in build-fuzz/crashes/; a run with any crash exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=(-max_total_time="${1:-60}")
declare -A CI_RUNS=([onnx]=1200000 [engine]=500000 [inputs]=500000)
if [ "${1:-}" = "--runs" ]; then LIMIT=(-runs="$2"); fi

source scripts/apt_install.sh
apt_install fuzz clang libomp-dev

B=build-fuzz
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DUNIRT_WITH_CUDA=OFF -DUNIRT_BUILD_TESTS=OFF -DUNIRT_FUZZ=ON >/dev/null
cmake --build $B -j "$(nproc)" --target unirt_fuzz_onnx unirt_fuzz_engine unirt_fuzz_inputs unirt
mkdir -p $B/corpus/onnx $B/corpus/engine $B/corpus/inputs $B/crashes
python3 scripts/fuzz_seeds.py --unirt $B/unirt --out $B/corpus

export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for h in onnx engine inputs; do
  if compgen -G "fuzz/regressions/$h/*" >/dev/null; then
    echo "== $h: regression inputs"
    ./$B/unirt_fuzz_$h fuzz/regressions/$h/* 2>&1 | tail -n 2 || status=1
  fi
  [ "${1:-}" = "--ci" ] && LIMIT=(-runs="${CI_RUNS[$h]}" -seed=1)
  echo "== $h: fuzzing (${LIMIT[*]})"
  ./$B/unirt_fuzz_$h $B/corpus/$h "${LIMIT[@]}" -rss_limit_mb=3072 -timeout=20 -max_len=200000 -print_final_stats=1 \
    -artifact_prefix=$B/crashes/$h- > $B/fuzz_$h.log 2>&1 || status=1
  grep -E "^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb)|cov:" $B/fuzz_$h.log | tail -n 3
  grep -E "ERROR: |runtime error|SUMMARY" $B/fuzz_$h.log | head -n 5 || true
done
ls $B/crashes | head -n 20
[ $status -eq 0 ] && echo "fuzz: no crashes" || echo "fuzz: CRASHES (see $B/crashes and $B/fuzz_*.log)"
exit $status
