#!/usr/bin/env bash
# The first thing to run on a machine with a CUDA GPU, sized for one 10-minute command inside a 15-minute lease:
# build with CUDA required, check the build, run the CUDA tests, then the benchmarks, in the order of what only a
# GPU can tell. Every section runs under its own time limit, cut to what is left of BUDGET_S, so the script ends
# on time with a summary; a section that fails or times out is recorded and the next one still runs. Logs (one per
# section, and the benchmarks' JSON) go to $OUT when it is set (the device tool's folder that comes back), else to
# benchmarks/out; the summary and the benchmark tables print last.
#
#   bash benchmarks/gpu_check.sh                         (repository root; python3 is the one that has torch)
#
# Env: PYTHON (default python3); SKIP_INSTALL=1 reuses an installed build; BUDGET_S (default 540) is the whole
# run's seconds; FULL=1 adds the slow CUDA tests and the whole suite when time is left; DEVICE (default cuda) and
# REQUIRE_GPU (default 1) exist so the script itself can be tried on a CPU machine (DEVICE=cpu REQUIRE_GPU=0).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
BUDGET_S="${BUDGET_S:-540}"
DEVICE="${DEVICE:-cuda}"
LOG="${OUT:-benchmarks/out}"
mkdir -p "$LOG"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}" PYTHONUNBUFFERED=1
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
SUMMARY=()
RESERVE_S=15  # kept back for the summary

# section NAME CAP_S COMMAND...: run COMMAND under min(CAP_S, what is left), log to $LOG/NAME.log, record how it went.
section() {
  local name="$1" cap="$2"
  shift 2
  local left=$((BUDGET_S - SECONDS - RESERVE_S))
  local limit=$((cap < left ? cap : left))
  if ((limit < 20)); then
    SUMMARY+=("$(printf '%-20s skipped: %d s of the budget left' "$name" "$((left > 0 ? left : 0))")")
    return
  fi
  echo "== $name (limit $limit s)"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=10 "$limit" "$@" 2>&1 | tee "$LOG/$name.log"
  local rc=${PIPESTATUS[0]} verdict=ok
  if ((rc == 124 || rc == 137)); then verdict="TIMED OUT"; elif ((rc != 0)); then verdict="FAILED (rc $rc)"; fi
  SUMMARY+=("$(printf '%-20s %-15s %4d s  %s' "$name" "$verdict" "$((SECONDS - t0))" \
    "$(grep -v '^\s*$' "$LOG/$name.log" | tail -n 1 | cut -c1-110)")")
}

section gpu 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv

if [ "${SKIP_INSTALL:-0}" != "1" ]; then
  # --no-build-isolation: the device machine has no network; scikit-build-core and pybind11 are installed there.
  section build 300 env DIFFPOSE_FAST_CUDA=ON "$PY" -m pip install --no-build-isolation --no-deps . \
    -Ccmake.define.CMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc"
fi

section build_info 60 "$PY" -c "
import sys
from diffpose_fast._build_info import format_build_info, build_info
print(format_build_info())
info = build_info()
if ${REQUIRE_GPU:-1} and not info['gpu']['usable']:
    sys.exit('native CUDA kernels not usable: ' + str(info['gpu']['reason']))
print('build_info: CUDA kernels usable' if info['gpu']['usable'] else 'build_info: no GPU (REQUIRE_GPU=0)')"

# Every CUDA test (EM, fused denoiser in fp32/bf16/fp16, Triton update, graph-captured loop, build), large cases apart.
section cuda_tests 180 "$PY" -m pytest python_tests -m "cuda and not slow" -q -rs -p no:cacheprovider

# The issue-9 table: reference / fast / official, N = 5, DDIM 5, batch 1 to 4096; then 50 steps.
section denoiser_s5 150 "$PY" benchmarks/bench_denoiser.py --device "$DEVICE" --batches 1 64 1024 4096 \
  --steps 5 --repeats 5
section pipeline 120 "$PY" benchmarks/bench_pipeline.py --device "$DEVICE" --frames 1 1024 --repeats 3
section em 120 "$PY" -m pytest benchmarks/bench_em.py --benchmark-only -s -q -p no:cacheprovider -k cuda \
  --benchmark-json="$LOG/bench_em_gpu.json"
section denoiser_s50 90 "$PY" benchmarks/bench_denoiser.py --device "$DEVICE" --batches 1 1024 --steps 50 \
  --repeats 3 --impls reference fast official

if [ "${FULL:-0}" = "1" ]; then
  section cuda_tests_slow 180 "$PY" -m pytest python_tests -m "cuda and slow" -q -rs -p no:cacheprovider
  section suite 300 "$PY" -m pytest python_tests -q -p no:cacheprovider
fi

echo
echo "== tables"
for name in denoiser_s5 pipeline denoiser_s50; do
  [ -f "$LOG/$name.log" ] && grep -E '^(\||#)' "$LOG/$name.log"
done
if [ -f "$LOG/bench_em_gpu.json" ]; then
  "$PY" - "$LOG/bench_em_gpu.json" <<'PYEOF'
import json, sys
data = json.load(open(sys.argv[1]))
print(f"{'EM benchmark':<45}{'min ms':>10}  extra")
for b in data["benchmarks"]:
    extra = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in b["extra_info"].items()
             if k.startswith(("speedup", "ms_", "us_", "gpu"))}
    print(f"{b['name']:<45}{b['stats']['min'] * 1e3:>10.2f}  {extra}")
PYEOF
fi
echo
echo "== summary ($SECONDS s of $BUDGET_S; logs in $LOG)"
printf '%s\n' "${SUMMARY[@]}"
