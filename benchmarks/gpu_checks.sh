#!/usr/bin/env bash
# The GPU checks of the training engine in one call, for a machine with a CUDA GPU and PyTorch
# but maybe without this project's other packages or a network. Run from the repository root:
#
#   OUT=<folder for the logs> bash benchmarks/gpu_checks.sh
#
# Packages missing there can come as wheels in .whl/ (pip download --only-binary=:all: ... on a
# machine with a network): jsonschema, jsonschema-specifications, referencing, rpds-py, mlxtend.
# What it writes under $OUT: the GPU's description, the CUDA test run, the epoch and step
# benchmarks and the planner's step-time table with the GPU's rows added (copy it back to
# src/compressible/step_times.json).
set -uo pipefail
OUT=${OUT:?set OUT to a folder for the logs}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())" | tee -a "$OUT/gpu.txt"
# the device tests run their CUDA cases here (skipped on a CPU-only machine)
python3 -m pytest -q -rs tests/test_device.py tests/test_train.py tests/test_sfw_init.py 2>&1 | tee "$OUT/pytest.log"
python3 benchmarks/bench_epoch.py --device cuda --steps 0 --workers 8 --record 2>&1 | tee "$OUT/bench_epoch.log"
python3 benchmarks/bench_cram_step.py --device cuda --rounds 30 --warmup 5 2>&1 | tee "$OUT/bench_cram_step.log"
cp src/compressible/step_times.json "$OUT/"
