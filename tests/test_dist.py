"""torchrun with 2 gloo processes on CPU: training runs, ranks stay in sync, checkpoints are written once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


def run_torchrun(outdir, method="ada", nproc=2, timeout=900):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(WORKER), str(outdir), method]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("method", ["ada", "fakeclr"])
def test_two_process_gloo_training(tmp_path, method):
    proc = run_torchrun(tmp_path, method)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = json.loads((tmp_path / "ranks.json").read_text())
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == 2 for r in ranks)
    # Batch 8 over 2 processes: 64 images are 8 iterations on each rank.
    assert all(r["iterations"] == 8 for r in ranks)
    names = {"G", "D", "G_ema"} | ({"D_ema", "fake_head", "fake_head_ema", "fake_queue"} if method == "fakeclr" else set())
    assert names <= set(ranks[0])
    for name in names:
        assert ranks[0][name] == ranks[1][name], f"{name} differs between ranks"
    states = sorted(p.name for p in tmp_path.glob("training-state-*.pt"))
    assert states == ["training-state-000000.032.pt", "training-state-000000.064.pt"]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert len(list(tmp_path.glob("stats.jsonl"))) == 1
    assert len((tmp_path / "stats.jsonl").read_text().splitlines()) == 2


def test_batch_not_divisible_by_processes(tmp_path):
    from fakeclr.config import preset_config, validate
    from fakeclr.errors import UserError
    cfg = preset_config("tiny")
    cfg.batch = 6
    with pytest.raises(UserError, match=r"--batch 6 is not divisible by the number of processes \(4\)"):
        validate(cfg, world_size=4)
