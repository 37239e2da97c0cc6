#!/usr/bin/env bash
# The first thing to run on a machine with a CUDA GPU: build with CUDA required, report the build, run the
# CUDA tests and the rest, run the EM benchmarks, print a table.
#   bash benchmarks/gpu_check.sh            (from the repository root, in the venv that has torch)
# Env: PYTHON (default: python), SKIP_INSTALL=1 to reuse an existing install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"

echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "(nvidia-smi not available)"

if [ "${SKIP_INSTALL:-0}" != "1" ]; then
  echo "== build (DIFFPOSE_FAST_CUDA=ON: fails if nvcc is missing)"
  # --no-build-isolation: this machine may have no network; scikit-build-core and pybind11 must be installed.
  DIFFPOSE_FAST_CUDA=ON "$PY" -m pip install --no-build-isolation --no-deps . \
    -Ccmake.define.CMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc"
fi

echo "== build_info"
"$PY" -c "from diffpose_fast._build_info import format_build_info, build_info; print(format_build_info()); \
import sys; i = build_info(); sys.exit(0 if i['gpu']['usable'] else 'native CUDA kernels not usable: ' + str(i['gpu']['reason']))"

echo "== CUDA tests"
"$PY" -m pytest python_tests/test_em_native.py python_tests/test_build.py -m "cuda" -q -rs
echo "== CUDA tests, large cases"
"$PY" -m pytest python_tests/test_em_native.py -m "cuda and slow" -q -rs
echo "== the rest of the suite"
"$PY" -m pytest python_tests -q -rs

echo "== benchmarks"
mkdir -p benchmarks/out
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" "$PY" -m pytest benchmarks/bench_em.py --benchmark-only -s -q \
  --benchmark-json=benchmarks/out/bench_em_gpu.json | tee benchmarks/out/bench_em_gpu.txt

echo "== denoiser: reference vs fast vs the official code's denoiser, N=5, DDIM 5 and 50 steps"
"$PY" benchmarks/bench_denoiser.py --device cuda --batches 1 64 1024 4096 --steps 5 50 --repeats 5 \
  | tee benchmarks/out/bench_denoiser_gpu.txt

echo "== summary"
"$PY" - <<'PYEOF'
import json
data = json.load(open("benchmarks/out/bench_em_gpu.json"))
print(f"{'benchmark':<55}{'min ms':>10}  extra")
for b in data["benchmarks"]:
    extra = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in b["extra_info"].items()
             if k.startswith(("speedup", "ms_", "us_"))}
    print(f"{b['name']:<55}{b['stats']['min'] * 1e3:>10.2f}  {extra}")
PYEOF
