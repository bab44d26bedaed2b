"""fakeclr trains step for step like the code behind the published numbers (issue 26; docs/parity.md).

tests/assets/parity_golden.json holds, for every case of benchmarks/parity/cases.py, what the anchor's own
training loop (StyleGAN2-ADA, InsGen, the released FakeCLR or DiffAugment's BigGAN-CIFAR, run by
benchmarks/parity/run.py --write-golden on the CPU) computed after every phase of every iteration: each loss
statistic and a checksum of every quantity (G, D, G_ema, D_ema, heads and their momentum copies, queue keys and
iterations, Adam's moments and step counts, ADA's p, the path-length mean; BigGAN's power-iteration vectors and
BatchNorm statistics are among G's and D's buffers). Here fakeclr runs alone from the same weights, batches and reseeded draws, and must land
on those numbers within the harness's tolerances (benchmarks/parity/traces.py). No anchor is needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

PARITY = Path(__file__).resolve().parents[1] / "benchmarks" / "parity"
sys.path.insert(0, str(PARITY))

import cases  # noqa: E402
import fakeclr_side  # noqa: E402
import traces  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "assets" / "parity_golden.json").read_text())


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # the harness's setting: the summation order of one thread
    yield
    torch.set_num_threads(threads)


def _fakeclr_records(name: str, tmp_path) -> list[dict]:
    golden, case = GOLDEN[name], cases.CASES[name]
    run = fakeclr_side.build(case, tmp_path)
    gen_c = None
    if golden["gen_c_classes"] is not None:           # the anchor's labels of the fakes (drawn with numpy there)
        gen_c = [torch.nn.functional.one_hot(torch.tensor(g), cases.CLASSES).float() for g in golden["gen_c_classes"]]
    return fakeclr_side.train(run, case, gen_c=gen_c)


def test_every_case_has_golden_numbers():
    assert sorted(GOLDEN) == sorted(cases.CASES)
    for name, g in GOLDEN.items():
        phases = [r["phase"] for r in g["records"]]
        case = cases.CASES[name]
        assert phases.count("end") == g["iterations"] == case.iterations
        if case.anchor == "biggan":
            # d_steps D steps then one G step per iteration, and G_ema's copy (iteration 1) and decay branches.
            assert phases == (["Dmain"] * case.fetches + ["Gmain", "end"]) * case.iterations, name
            assert 0 < 1 < case.overrides["ema_start"] < case.iterations, name
            continue
        # Each StyleGAN2 case reaches a lazy R1 step and a path-length step (but the cifar case, which has none).
        assert "Dreg" in phases and ("Greg" in phases or name == "cifar"), name


@pytest.mark.parametrize("name", sorted(cases.CASES))
def test_fakeclr_trains_like_its_anchor(name, tmp_path, one_thread):
    bad = traces.compare_golden(GOLDEN[name], _fakeclr_records(name, tmp_path))
    assert not bad, f"{len(bad)} departures from {GOLDEN[name]['anchor']}:\n" + "\n".join(bad[:15])


def test_the_checksums_see_a_small_change(tmp_path, one_thread):
    """The comparison is not blind: every G_ema tensor scaled by 1 + 1e-2 at the last iteration, or one queue key's
    iteration moved by 1, leaves the golden numbers."""
    records = _fakeclr_records("fakeclr-released", tmp_path)
    assert not traces.compare_golden(GOLDEN["fakeclr-released"], records)
    last = records[-1]["tensors"]
    original = dict(last)
    for name in [n for n in last if n.startswith("G_ema.")]:
        last[name] = last[name] * (1 + 1e-2)
    assert [b for b in traces.compare_golden(GOLDEN["fakeclr-released"], records) if "G_ema" in b]
    last.update(original)
    last["fake_queue.iters"] = last["fake_queue.iters"].clone()
    last["fake_queue.iters"][0] += 1
    assert [b for b in traces.compare_golden(GOLDEN["fakeclr-released"], records) if "fake_queue.iters" in b]
