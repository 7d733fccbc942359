#!/usr/bin/env bash
# Run a command inside the project's virtual environment, creating it first if needed.
#   bash workflow/scripts/in-venv.sh snakemake --cores all            # the main job
#   bash workflow/scripts/in-venv.sh --with-latex --with-slurm pytest # the tests
# The environment is (re)built whenever requirements.lock changes: every package at the
# pinned version, from PyPI. When a tool is missing and apt-get can be used (root on
# Debian/Ubuntu), --with-latex installs a TeX Live for the table-compiling test and
# --with-slurm installs SLURM and munge for the test that starts a one-node cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."

# apt_install "<commands that must exist>" <packages>: install the packages if a command is missing.
apt_install() {
  local tool missing=""
  for tool in $1; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
  shift
  if [ -n "$missing" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "in-venv: installing $* (for$missing)" >&2
    [ -n "${apt_updated:-}" ] || { apt-get update -qq >/dev/null; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

while true; do
  case "${1:-}" in
    --with-latex) apt_install pdflatex texlive-latex-base texlive-latex-recommended ;;
    --with-slurm) apt_install "munged mungekey slurmctld slurmd sbatch" slurm-wlm munge ;;
    *) break ;;
  esac
  shift
done

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
