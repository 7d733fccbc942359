#!/usr/bin/env bash
# The GPU checks of the training engine in one call, for a machine with a CUDA GPU, Python,
# PyTorch and torchvision but maybe without this project's other packages or a network.
# Run from the repository root (about 5 minutes on one H100):
#
#   OUT=<folder for the logs> bash benchmarks/gpu_checks.sh [--dry-run] [--only PREFIXES]
#
# The missing packages come as wheels in .whl/ (made where PyPI is reachable by
# `bash benchmarks/gpu_wheels.sh <python version>`); they are installed offline into a folder on
# PYTHONPATH, nothing else is touched. Each check's row is printed and appended to
# $OUT/gpu_checks.jsonl as it finishes; $OUT/summary.txt is the table at the end and
# $OUT/step_times.json the planner's table with this GPU's rows (copy it to src/compressible/).
# --dry-run imports every module the checks use and lists them (no GPU needed).
set -uo pipefail
OUT=${OUT:-gpu-checks}
WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT"
PY=$(python3 -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
echo "python $PY; wheels needed for it: jsonschema, jsonschema-specifications, referencing, attrs," \
     "typing_extensions, rpds-py (cp${PY/./}), PyYAML if absent (bash benchmarks/gpu_wheels.sh $PY)"
if [ -d "$WHEELS" ]; then
  if [ "$(cat "$WHEELS/PYTHON_VERSION" 2>/dev/null)" != "$PY" ]; then
    echo "gpu_checks: $WHEELS holds wheels for python $(cat "$WHEELS/PYTHON_VERSION" 2>/dev/null || echo '?'), this is $PY;" \
         "run bash benchmarks/gpu_wheels.sh $PY where PyPI is reachable" >&2
    exit 1
  fi
  SITE=$(mktemp -d)/site
  if python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl || exit 1
  else  # no pip: a wheel is a zip of what goes into site-packages
    for w in "$WHEELS"/*.whl; do python3 -m zipfile -e "$w" "$SITE" || exit 1; done
  fi
  export PYTHONPATH="$SITE"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'cuda', torch.version.cuda,
      'cudnn', torch.backends.cudnn.version(), 'torchvision', torchvision.__version__)" | tee "$OUT/gpu.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/gpu.txt"
python3 benchmarks/gpu_checks.py --out "$OUT" "$@"
status=$?
[ -f src/compressible/step_times.json ] && cp src/compressible/step_times.json "$OUT/"
exit $status
