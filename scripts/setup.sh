#!/usr/bin/env bash
# One-shot, idempotent set-up of a fresh Debian machine for rsscale:
#   - Debian packages: the Fashion-MNIST data set and a single-node SLURM cluster with accounting
#   - a virtual environment in .venv with rsscale (editable) and its dev tools
# Safe to re-run; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(dataset-fashion-mnist slurm-wlm slurmdbd munge mariadb-server)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to apt-get install: ${missing[*]} (or install them yourself)" >&2
    exit 1
  fi
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
echo "setup: pip install -e .[dev]"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import rsscale, torch, torchvision, hydra, submitit, optuna, wandb, timm" \
  || { echo "setup: the environment is incomplete" >&2; exit 1; }
echo "setup: done"
