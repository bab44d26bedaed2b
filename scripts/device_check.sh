#!/usr/bin/env bash
# The one prepared GPU check, for a session that is lent a CUDA machine (CI has none). From the repository root:
#
#     bash scripts/device_check.sh            # results also under $OUT (default /tmp/fakeclr-device-check)
#
# It uses the machine's own python3 with PyTorch (no install: the package is read from src/), and runs
#   1. tests/test_cuda.py (CUDA vs CPU: G, D + R1 double backward, AugmentPipe, training resume, Inception) and the
#      CPU parity tests of the networks, augmentation and contrastive parts on that machine's torch;
#   2. sec/kimg and peak GPU memory of the tiny, lfw-demo and fewshot256 presets;
#   3. the method-cost table (paper Table 1) at 256 px: ada, insgen, fakeclr and fakeclr --no-reuse-forward.
# About 5-8 minutes on one H100 (an estimate: this script has not yet run on a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/fakeclr-device-check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
    2>&1 | tee -a "$OUT/gpu.txt"

"$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_nn.py tests/test_augment.py \
    tests/test_contrastive.py 2>&1 | tee "$OUT/tests.txt" || status=1

timeout 240 "$PY" benchmarks/train_speed.py --device cuda --presets tiny,lfw-demo,fewshot256 --kimg 1 \
    2>&1 | tee "$OUT/train_speed.txt" || status=1

timeout 240 "$PY" benchmarks/method_cost.py --device cuda --preset fewshot256 --kimg 0.5 --rounds 1 \
    --methods ada,insgen,fakeclr --variants 2>&1 | tee "$OUT/method_cost.txt" || status=1

exit $status
