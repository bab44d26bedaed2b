"""Two "machines" on localhost (two torchrun launches, one process each, gloo), and a rank killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_dist import WORKER, _GLOO_TEARDOWN

pytestmark = [pytest.mark.slow,              # every test here launches torchrun
              pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(outdir: Path, port: int) -> list[subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                              "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port),
                              str(WORKER), str(outdir), "ada"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for node in (0, 1)]


def test_two_nodes_train_one_run_in_sync(tmp_path):
    for attempt in ("run", "again"):                       # once more only after gloo's teardown abort (test_dist)
        procs = _two_nodes(tmp_path / attempt, _free_port())
        outs = [p.communicate(timeout=600)[0] for p in procs]
        if all(p.returncode == 0 for p in procs) or not any(_GLOO_TEARDOWN in o for o in outs):
            break
    out = tmp_path / attempt
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-2000:] for o in outs)
    ranks = json.loads((out / "ranks.json").read_text())
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == 2 for r in ranks)
    assert all(ranks[0][n] == ranks[1][n] for n in ("G", "D", "G_ema"))     # the two machines stay in sync
    # one run directory, written once (by global rank 0): one status line per tick, one state per snapshot
    assert sorted(p.name for p in out.glob("training-state-*.pt")) == ["training-state-000000.032.pt",
                                                                       "training-state-000000.064.pt"]
    assert len((out / "stats.jsonl").read_text().splitlines()) == 2
    assert sum("Training tiny on lfw" in o for o in outs) == 1


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_killed_rank_ends_the_run_promptly_and_the_same_command_resumes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "fakeclr",
           "train", "--preset", "tiny", "--data", "lfw", "--outdir", str(tmp_path), "--snap", "0.032", "--kimg", "2",
           "--no-tensorboard", "--device", "cpu"]
    agent = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not list(tmp_path.glob("training-state-*.pt")) and time.time() < deadline and agent.poll() is None:
        time.sleep(0.5)
    assert agent.poll() is None and list(tmp_path.glob("training-state-*.pt")), "no state was written in time"
    workers = _children(agent.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    t0 = time.time()
    out = agent.communicate(timeout=120)[0]
    ended = time.time() - t0
    assert agent.returncode != 0 and ended < 60, (ended, out[-2000:])       # no hang: torchrun ends the others
    assert "SIGKILL" in out and "Root Cause" in out                           # torchrun names the killed rank
    done = sorted(tmp_path.glob("training-state-*.pt"))
    last = done[-1].name
    kimg = float(last[len("training-state-"):-len(".pt")])
    resumed = subprocess.run(cmd[:-5] + ["--kimg", f"{kimg + 0.032:g}", "--no-tensorboard", "--device", "cpu"],
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 or _GLOO_TEARDOWN in resumed.stdout + resumed.stderr, resumed.stdout[-2000:]
    assert f"resuming at kimg {kimg:g}" in resumed.stdout
