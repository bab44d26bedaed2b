#!/usr/bin/env bash
# Create .venv and install fakeclr with its test tools and the export extra (ONNX), which the tests exercise.
#
# PyTorch: the CPU build is pinned first (torch==2.13.0). On this project's machines pip takes it from local disk
# in seconds; elsewhere it comes from PyPI (on Linux PyPI's default torch is a CUDA build of several GB; if you
# want the small CPU build add --index-url https://download.pytorch.org/whl/cpu yourself, or set FAKECLR_TORCH to
# any torch requirement, e.g. FAKECLR_TORCH='torch>=2.1' to keep an already installed GPU build). fakeclr needs no
# torchvision and no compiled extension.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q "${FAKECLR_TORCH:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e '.[test,export]'
.venv/bin/python -c "import torch, fakeclr; print(f'fakeclr {fakeclr.__version__} with torch {torch.__version__} installed in .venv')"
