#!/usr/bin/env bash
# Run a command inside the project's virtual environment, creating it first if needed.
#   bash workflow/scripts/in-venv.sh snakemake --cores all            # the main job
#   bash workflow/scripts/in-venv.sh --with-latex pytest              # the tests
# The environment is (re)built whenever requirements.lock changes: every package at the
# pinned version, from PyPI. --with-latex also installs a TeX Live for the table-compiling
# test when pdflatex is missing and apt-get can be used (root on Debian/Ubuntu).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" = "--with-latex" ]; then
  shift
  if ! command -v pdflatex >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "in-venv: installing TeX Live (texlive-latex-base, texlive-latex-recommended) for pdflatex" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      texlive-latex-base texlive-latex-recommended >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ] || ! cmp -s requirements.lock .venv/.installed-lock; then
  echo "in-venv: creating .venv from requirements.lock" >&2
  python3 -m venv .venv
  # torch must be PyPI's build: torchvision's compiled operators fail to load with a
  # locally provided "+cpu" torch wheel, so local pip find-links/config are bypassed here.
  pypi() { env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null .venv/bin/python -m pip "$@"; }
  pypi install --quiet --upgrade pip
  pypi install --quiet -r requirements.lock
  pypi install --quiet --no-deps --no-build-isolation -e .
  cp requirements.lock .venv/.installed-lock
fi
export PATH="$PWD/.venv/bin:$PATH"
export DVC_NO_ANALYTICS=1
exec "$@"
