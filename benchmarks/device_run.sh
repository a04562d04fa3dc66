#!/usr/bin/env bash
# The device-machine entry point: install the carried wheels (the machine has no
# network), run benchmarks/gpu_check.sh, then the CLI smoke of the GPU-ready topologies.
#   run with: carry=[".wheelhouse"], command="bash benchmarks/device_run.sh"
# Build the (git-ignored) wheelhouse first, for the device's Python 3.12 on x86_64:
#   pip download -d .wheelhouse --python-version 3.12 --only-binary=:all: \
#     --platform manylinux2014_x86_64 --platform any \
#     pydantic typer rich pyyaml pytest pytest-asyncio hypothesis pytest-timeout click
set -uo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python3)
for cand in python3.12 python3; do
  if command -v "$cand" >/dev/null && "$cand" -c "import cupy" 2>/dev/null; then PY=$(command -v "$cand"); break; fi
done
export PYTHON=$PY OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ -d .wheelhouse ]; then
  "$PY" -m pip install -q --no-index --find-links .wheelhouse \
    pydantic typer rich pyyaml pytest pytest-asyncio hypothesis pytest-timeout 2>&1 | tail -3
fi
bash benchmarks/gpu_check.sh
status=$?
echo "=== ringctl smoke (CLI) on the GPU machine"
PYTHONPATH=$PWD timeout 180 "$PY" -m ringctl.cli smoke topologies/spectrum.yaml \
  topologies/pagerank.yaml topologies/sensor-anomaly.yaml --junit "$OUT/smoke.xml" || status=1
PYTHONPATH=$PWD timeout 60 "$PY" -m ringctl.cli up topologies/spectrum.yaml --no-dashboard \
  2>&1 | tail -6
exit $status
