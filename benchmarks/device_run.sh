#!/usr/bin/env bash
# The device-machine entry point: GPU persistent kernels, phase by phase (~3 minutes).
# Each phase runs in its own process under a timeout and writes $OUT/PHASE.json and
# $OUT/PHASE.log as soon as it ends, so a phase that hangs (a kernel that never returns)
# costs its own timeout and nothing else.
#
#   bash benchmarks/device_run.sh                 # on the GPU machine (backend cuda)
#   bash benchmarks/device_run.sh --twin          # the dry run here: same phases, CPU twin
#   bash benchmarks/device_run.sh --with-kernels  # also benchmarks/gpu_check.sh and the
#                                                 # CLI smoke of the GPU-ready topologies
#
# Phases: env (canMapHostMemory, compute capability, driver), tests (the protocol tests
# on the GPU and the twin, the PTX check), roundtrip (p50/p99 over 200k records),
# stream (1M records with sequence numbers), baseline (CuPy launch + synchronize per
# message), blocking (what waits while the kernel runs), forcestop (kill and recover),
# summary (the goals: p50 <= 5 us, p99 <= 20 us, >= 3x the baseline, 0 ordering errors).
#
# The device has no network: build the (git-ignored) wheelhouse first, for its Python
# 3.12 on x86_64, and carry it:
#   pip download -d .wheelhouse --python-version 3.12 --only-binary=:all: \
#     --platform manylinux2014_x86_64 --platform any \
#     pydantic typer rich pyyaml pytest pytest-asyncio hypothesis pytest-timeout click
#   run with: carry=[".wheelhouse"], command="bash benchmarks/device_run.sh"
set -uo pipefail
cd "$(dirname "$0")/.."
BACKEND=cuda
KERNELS=0
for arg in "$@"; do
  case $arg in
    --twin) BACKEND=twin ;;
    --with-kernels) KERNELS=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-$(command -v python3)}
if [ "$BACKEND" = twin ] && [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then
  PY=$PWD/.venv/bin/python
elif [ "$BACKEND" = cuda ]; then
  for cand in python3.12 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c "import cupy" 2>/dev/null; then
      PY=$(command -v "$cand"); break
    fi
  done
fi
export PYTHON=$PY OUT=${OUT:-/tmp/out}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
export RINGCTL_CACHE_DIR=${RINGCTL_CACHE_DIR:-/tmp/ringctl-device-cache}
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/ringctl-device-numba}
export RAY_USAGE_STATS_ENABLED=0
mkdir -p "$OUT"
if [ -d .wheelhouse ]; then
  "$PY" -m pip install -q --no-index --find-links .wheelhouse \
    pydantic typer rich pyyaml pytest pytest-asyncio hypothesis pytest-timeout 2>&1 | tail -3
fi
STATUS=0
BENCH=benchmarks/gpu_persistent.py
phase() {  # phase NAME TIMEOUT_S [extra args]: one process, its JSON and log in $OUT
  local name=$1 limit=$2; shift 2
  printf '\n=== %s (%s, at most %ss)\n' "$name" "$(date +%T)" "$limit"
  timeout -k 5 "$limit" "$PY" "$BENCH" "$name" --backend "$BACKEND" \
    --json "$OUT/$name.json" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -40 "$OUT/$name.log"
  [ "$rc" -eq 0 ] || { echo "phase $name: exit $rc"; STATUS=1; }
}

phase env 60
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  | tee "$OUT/nvidia-smi.txt"

printf '\n=== tests (%s)\n' "$(date +%T)"
timeout -k 5 240 "$PY" -m pytest -q -rs -p no:cacheprovider -o addopts="" \
  tests/persistent/test_native.py tests/persistent/test_native_ptx.py \
  --junit-xml "$OUT/tests.xml" >"$OUT/tests.log" 2>&1
rc=$?
tail -15 "$OUT/tests.log"
[ "$rc" -eq 0 ] || { echo "tests: exit $rc"; STATUS=1; }

phase roundtrip 90
phase stream 90
phase baseline 60
phase blocking 90
phase forcestop 90
phase summary 30 --dir "$OUT"

if [ "$KERNELS" = 1 ]; then
  bash benchmarks/gpu_check.sh || STATUS=1
  echo "=== ringctl smoke (CLI) on the GPU machine"
  timeout 180 "$PY" -m ringctl.cli smoke topologies/spectrum.yaml \
    topologies/pagerank.yaml topologies/sensor-anomaly.yaml --junit "$OUT/smoke.xml" || STATUS=1
fi
printf '\n=== done: status %s (results in %s)\n' "$STATUS" "$OUT"
exit $STATUS
