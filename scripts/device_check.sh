#!/usr/bin/env bash
# The one prepared GPU check, for a session that is lent a CUDA machine (CI has none). From the repository root:
#
#     bash scripts/device_check.sh               # on the GPU machine; results under $OUT (default /tmp/fakeclr-device-check)
#     bash scripts/device_check.sh --device cpu  # dry mode on any machine: the same parts with tiny sizes
#
# It uses the machine's own python3 with PyTorch (no install: the package is read from src/; the device machines
# have torch, safetensors, scikit-image, matplotlib, tensorboard and pytest). Each part runs under its own
# `timeout`, so a hang loses only that part; every figure goes to $OUT/summary.json (one entry per part: its exit
# status, seconds, and the part's JSON where it writes one) next to each part's log:
#   gpu         the device, driver, torch and CUDA versions                              (gpu.json)
#   tests       tests/test_cuda.py (CUDA vs CPU: G, D + R1 double backward, AugmentPipe, Inception, fp16 blocks
#               vs fp32, training resume, a 1-GPU torchrun NCCL run with resume), test_precision, test_dist,
#               test_nn                                                                   (tests.xml)
#   cost256     sec/kimg and peak GPU memory at fewshot256 (256 px, batch 64): ada, insgen, fakeclr and fakeclr
#               --no-reuse-forward, fp16 (4 resolutions) and fp32, ratio to ADA side by side   (cost256.json)
#   cost_small  the same for lfw-demo and tiny (small cases, dominated by overhead)       (cost_lfw-demo.json, ...)
# Budget: 8 minutes on one H200 (the parts' timeouts add up to 7.5 min; an estimate, not yet run on a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
if [ "${1:-}" = "--device" ]; then DEVICE="${2:?--device needs cpu or cuda}"; fi
export PYTHONPATH="$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/fakeclr-device-check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
: > "$OUT/parts.jsonl"
status=0

if [ "$DEVICE" = cpu ]; then            # dry mode: every part, tiny sizes, CPU-vs-CPU tests
  export FAKECLR_TEST_DEVICE=cpu
  BIG=tiny; BIG_KIMG=0.016; SMALL=tiny; SMALL_KIMG=0.016
else
  BIG=fewshot256; BIG_KIMG=0.5; SMALL=lfw-demo,tiny; SMALL_KIMG=0.5
fi

# part NAME SECONDS COMMAND...: run it under `timeout`, log to $OUT/NAME.txt, record rc and seconds.
part() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  [ $rc -ne 0 ] && status=1
  printf '{"part": "%s", "rc": %d, "seconds": %d, "timed_out": %s, "limit_s": %d}\n' "$name" "$rc" \
    $((SECONDS - t0)) "$([ $rc -eq 124 ] || [ $rc -eq 137 ] && echo true || echo false)" "$limit" >> "$OUT/parts.jsonl"
  tail -n 15 "$OUT/$name.txt"
}

part gpu 30 "$PY" -c "
import json, platform, subprocess, torch
info = {'torch': torch.__version__, 'cuda': torch.version.cuda, 'python': platform.python_version(),
        'device': torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}
try:
    info['nvidia_smi'] = subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version',
                                         '--format=csv,noheader'], capture_output=True, text=True).stdout.strip()
except OSError:
    info['nvidia_smi'] = None
json.dump(info, open('$OUT/gpu.json', 'w'), indent=1); print(info)"

part tests 180 "$PY" -m pytest -q -p no:cacheprovider --junitxml="$OUT/tests.xml" tests/test_cuda.py \
  tests/test_precision.py tests/test_dist.py tests/test_nn.py

part cost256 150 "$PY" benchmarks/method_cost.py --device "$DEVICE" --preset "$BIG" --kimg "$BIG_KIMG" --rounds 1 \
  --methods ada,insgen,fakeclr --variants --fp16 preset,off --json "$OUT/cost256.json"

for p in ${SMALL//,/ }; do
  part "cost_$p" 45 "$PY" benchmarks/method_cost.py --device "$DEVICE" --preset "$p" --kimg "$SMALL_KIMG" \
    --rounds 1 --methods ada,insgen,fakeclr --json "$OUT/cost_$p.json"
done

"$PY" - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
parts = [json.loads(line) for line in (out / "parts.jsonl").read_text().splitlines()]
for p in parts:
    for name in (f"{p['part']}.json", "gpu.json" if p["part"] == "gpu" else None):
        if name and (out / name).is_file():
            p["result"] = json.loads((out / name).read_text())
(out / "summary.json").write_text(json.dumps(parts, indent=1))
print(json.dumps([{k: p[k] for k in ("part", "rc", "seconds", "timed_out")} for p in parts]))
EOF
exit $status
