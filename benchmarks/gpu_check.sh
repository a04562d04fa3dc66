#!/usr/bin/env bash
# One prepared check for a GPU machine: versions, the GPU tests, GPU topologies, and the
# kernel benchmark with a short budget (CPU baseline in the same run). ~3-6 minutes.
#
#   bash benchmarks/gpu_check.sh            # from the repository root (or anywhere)
#   OUT=/some/dir bash benchmarks/gpu_check.sh   # also keep logs and bench JSON there
#
# Written for the device machines seen so far: an H100/H200, CUDA 13 driver, Python 3.12
# with cupy-cuda13x and numba-cuda preinstalled, and no network. Nothing is installed
# unless it is missing: ringctl is imported from the source tree (PYTHONPATH), which
# works offline where `pip install -e .` would need to fetch a build backend. A missing
# pure-Python dependency is installed from $WHEELHOUSE when given, else from the index
# if one is reachable; what cannot be had is reported and the steps that need it skip.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/.gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-$(command -v python3.12 || command -v python3)}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export NUMBA_CACHE_DIR="$OUT/numba-cache"
STATUS=0
step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4
"$PY" - <<'PY'
import importlib, platform
print("python", platform.python_version(), platform.machine())
for name in ("numpy", "numba", "numba_cuda", "cupy", "pydantic", "typer", "rich", "yaml",
             "pytest", "pytest_asyncio", "hypothesis"):
    try:
        mod = importlib.import_module(name)
        print(f"  {name:15} {getattr(mod, '__version__', '?')}")
    except Exception as exc:
        print(f"  {name:15} MISSING ({type(exc).__name__})")
try:
    import cupy
    print("  cupy.is_available():", cupy.is_available())
    print("  CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(),
          "driver", cupy.cuda.runtime.driverGetVersion())
except Exception as exc:
    print("  cupy probe failed:", exc)
PY

step "dependencies"
missing=$("$PY" - <<'PY'
import importlib
need = {"pydantic": "pydantic", "typer": "typer", "rich": "rich", "yaml": "pyyaml",
        "pytest": "pytest", "pytest_asyncio": "pytest-asyncio", "hypothesis": "hypothesis"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
PY
)
if [ -n "$missing" ]; then
  echo "missing: $missing"
  if [ -n "${WHEELHOUSE:-}" ]; then
    "$PY" -m pip install -q --no-index --find-links "$WHEELHOUSE" $missing 2>&1 | tail -3
  else
    timeout 60 "$PY" -m pip install -q $missing 2>&1 | tail -3 || true
  fi
else
  echo "all present"
fi
have() { "$PY" -c "import $1" >/dev/null 2>&1; }
if ! have ringctl; then echo "ringctl does not import from $ROOT: cannot continue"; exit 1; fi

step "pytest -m gpu tests/kernels"
if have pytest; then
  # Only the GPU file: the CPU files also need hypothesis, which is not the point here.
  deselect=()
  if ! have pytest_asyncio; then
    echo "pytest-asyncio missing: the two async pipeline tests are deselected"
    deselect=(-k "not kernels_on_cuda and not feeds_zscore")
  fi
  timeout 240 "$PY" -m pytest -m gpu tests/kernels/test_kernels_gpu.py -q -rs -p no:cacheprovider \
    -o addopts="" "${deselect[@]}" 2>&1 | tee "$OUT/pytest-gpu.log" | tail -25
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || STATUS=1
  grep -q " passed" "$OUT/pytest-gpu.log" || { echo "no GPU test passed"; STATUS=1; }
else
  echo "pytest missing: skipped"; STATUS=1
fi

step "GPU topologies (spectrum, pagerank with backend: auto -> cuda)"
if have pytest && have pytest_asyncio && have yaml; then
  timeout 120 "$PY" -m pytest tests/kernels/test_kernels_topologies.py -q -p no:cacheprovider \
    -o addopts="" -k "smoke_expectations and (spectrum or pagerank)" 2>&1 | tail -5
  [ "${PIPESTATUS[0]}" -eq 0 ] || STATUS=1
else
  echo "pytest-asyncio or pyyaml missing: skipped"
fi

step "benchmark (short budget; CPU baseline and GPU in one run)"
timeout 240 "$PY" benchmarks/kernels_bench.py --budget 0.1 --rows 262144 \
  --json "$OUT/kernels_bench.json" 2>&1 | tee "$OUT/kernels_bench.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || STATUS=1

step "done: status $STATUS (logs in $OUT)"
exit $STATUS
