"""torchrun with 2 gloo processes on CPU: training runs, ranks stay in sync, checkpoints are written once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


# A known teardown crash of gloo, not of fakeclr: in about 1 of 10 runs on a loaded 2-core machine one rank aborts
# with "terminate called without an active exception" *after* training, the checkpoints and ranks.json are
# complete and the process group was destroyed (also with this repository's code before the collectives moved
# into dist.py: 1 of 12 runs). A run that ends that way is run once more, in a fresh folder; any other failure,
# or that crash twice, fails the test.
_GLOO_TEARDOWN = "terminate called without an active exception"


def run_torchrun(outdir, method="ada", nproc=2, timeout=900):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(WORKER), str(outdir), method]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def run_torchrun_once_more_after_teardown_crash(tmp_path, method):
    proc = run_torchrun(tmp_path / "run", method)
    if proc.returncode != 0 and _GLOO_TEARDOWN in proc.stderr + proc.stdout and (tmp_path / "run" / "ranks.json").is_file():
        proc = run_torchrun(tmp_path / "again", method)
        return proc, tmp_path / "again"
    return proc, tmp_path / "run"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ada", "fakeclr"])
def test_two_process_gloo_training(tmp_path, method):
    proc, tmp_path = run_torchrun_once_more_after_teardown_crash(tmp_path, method)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = json.loads((tmp_path / "ranks.json").read_text())
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == 2 for r in ranks)
    # Batch 8 over 2 processes: 64 images are 8 iterations on each rank.
    assert all(r["iterations"] == 8 for r in ranks)
    names = {"G", "D", "G_ema"} | ({"D_ema", "fake_head", "fake_head_ema", "fake_queue"} if method == "fakeclr" else set())
    assert names <= set(ranks[0])
    for name in names:
        assert ranks[0][name] == ranks[1][name], f"{name} differs between ranks"
    # NCCL takes CUDA tensors only: every collective must go through fakeclr/dist.py, which moves its tensors to
    # the backend's device (a CPU tensor handed straight to torch.distributed stops an NCCL run).
    for r in ranks:
        calls = r["collectives"]
        assert {"all_reduce", "all_gather_object", "broadcast"} <= {c["op"] for c in calls}
        if method == "fakeclr":
            assert "all_gather" in {c["op"] for c in calls}                   # the queues' keys
        for c in calls:
            assert Path(c["caller"]).as_posix().endswith("fakeclr/dist.py"), c
            assert all(d == c["expected"] for d in c["devices"]), c
            assert c["devices"] or c["op"].endswith(("_object", "_object_list")), c
    states = sorted(p.name for p in tmp_path.glob("training-state-*.pt"))
    assert states == ["training-state-000000.032.pt", "training-state-000000.064.pt"]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert len(list(tmp_path.glob("stats.jsonl"))) == 1
    assert len((tmp_path / "stats.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_two_process_gloo_training_of_biggan(tmp_path):
    """BigGAN with FakeCLR on 2 gloo processes: each rank normalises with its own batch, the running statistics
    are averaged, so every network (BatchNorm statistics and power-iteration vectors included) is the same on
    both ranks; 64 images of 2 D steps of batch 8 are 4 iterations."""
    proc, tmp_path = run_torchrun_once_more_after_teardown_crash(tmp_path, "fakeclr:biggan")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = json.loads((tmp_path / "ranks.json").read_text())
    assert all(r["iterations"] == 4 for r in ranks)
    for name in ("G", "D", "G_ema", "D_ema", "fake_head", "fake_queue"):
        assert ranks[0][name] == ranks[1][name], f"{name} differs between ranks"
    for r in ranks:
        assert all(Path(c["caller"]).as_posix().endswith("fakeclr/dist.py") for c in r["collectives"])


@pytest.mark.slow
def test_two_process_streamed_training_equals_in_memory(tmp_path):
    """Each process streams its own draws through a DataLoader worker; the networks equal the in-memory run's."""
    runs = {}
    for feed in ("ada", "ada:stream"):
        proc, out = run_torchrun_once_more_after_teardown_crash(tmp_path / feed.replace(":", "-"), feed)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[feed] = json.loads((out / "ranks.json").read_text())
    for rank in (0, 1):
        for name in ("G", "D", "G_ema"):
            assert runs["ada"][rank][name] == runs["ada:stream"][rank][name], (rank, name)


def test_batch_not_divisible_by_processes(tmp_path):
    from fakeclr.config import preset_config, validate
    from fakeclr.errors import UserError
    cfg = preset_config("tiny")
    cfg.batch = 6
    with pytest.raises(UserError, match=r"--batch 6 is not divisible by the number of processes \(4\)"):
        validate(cfg, world_size=4)


def test_backend_device_is_the_current_cuda_device_under_nccl(monkeypatch):
    import torch
    from fakeclr import dist
    assert dist.backend_device() == torch.device("cpu")                      # not distributed
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist.dist, "get_backend", lambda *a: "gloo")
    assert dist.backend_device() == torch.device("cpu")
    monkeypatch.setattr(dist.dist, "get_backend", lambda *a: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert dist.backend_device() == torch.device("cuda", 3)


def test_collectives_return_in_place_on_the_callers_tensor(monkeypatch):
    """A two-process group faked in one process: every rank holds the same tensor, so a sum doubles it."""
    import torch
    from fakeclr import dist
    seen = []

    def fake_all_reduce(t, op=None):
        seen.append(t.is_contiguous())
        t.mul_(2)

    def fake_all_gather(out, t):
        for o in out:
            o.copy_(t)

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(dist.dist, "get_backend", lambda *a: "gloo")
    monkeypatch.setattr(dist.dist, "all_reduce", fake_all_reduce)
    monkeypatch.setattr(dist.dist, "all_gather", fake_all_gather)
    base = torch.arange(6.0).reshape(2, 3)
    col = base[:, 1]                                                          # a strided view
    assert dist.all_reduce_sum(col) is col and seen == [True]
    assert base.tolist() == [[0, 2, 2], [3, 8, 5]]                            # summed into the caller's storage
    x = torch.arange(4.0).reshape(2, 2).t()
    assert dist.all_gather_cat(x).tolist() == [[0, 2], [1, 3], [0, 2], [1, 3]]
    m = torch.nn.Linear(2, 1)
    m.weight.grad = torch.ones_like(m.weight)
    dist.average_gradients(m.parameters())                                    # bias has no gradient: left out
    assert m.weight.grad.tolist() == [[1.0, 1.0]] and m.bias.grad is None
