#!/usr/bin/env bash
# The wheels benchmarks/gpu_checks.sh needs on a GPU machine that has Python, PyTorch and
# torchvision (with numpy, Pillow, PyYAML) but no network: run this on a machine with PyPI access,
# then carry the folder (well under 30 MB) along with the repository.
#
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION] [FOLDER]     # e.g. 3.12 .whl (the defaults)
#
# The versions are requirements.lock's; rpds-py is compiled, so its wheel must match the GPU
# machine's Python (gpu_checks.sh says which one it has) and platform (manylinux x86_64).
set -euo pipefail
PY=${1:-3.12}
DIR=${2:-.whl}
LOCK=$(dirname "$0")/../requirements.lock
# jsonschema validates the configs; the rest is its dependency closure (PyYAML ships with the
# GPU machine's stack and is added only in case it does not)
PACKAGES="jsonschema jsonschema-specifications referencing rpds-py attrs typing_extensions PyYAML"
pins=()
for name in $PACKAGES; do
  pin=$(grep -iE "^${name//[-_]/[-_]}==" "$LOCK") || { echo "gpu_wheels: $name is not in requirements.lock" >&2; exit 1; }
  pins+=("$pin")
done
rm -rf "$DIR" && mkdir -p "$DIR"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$DIR" \
  --python-version "$PY" --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  "${pins[@]}"
echo "$PY" > "$DIR/PYTHON_VERSION"
ls "$DIR"
du -sh "$DIR"
