"""Comparing two parity traces, and the golden summary of an anchor's trace (shared by run.py and the test).

A trace is a list of records ``{"iteration", "phase", "losses": {name: float}, "tensors": {name: tensor}}``, one
after every phase's optimizer step and one (phase ``"end"``) after ``G_ema`` and ``p`` are updated. Tensors are
grouped into quantities by name (``G.``, ``adam.exp_avg.`` ...), and each tensor is compared at its own scale.
"""

from __future__ import annotations

import math

import torch

# Longest prefixes first: a name belongs to the first group it starts with.
GROUPS = ("G_ema", "D_ema", "fake_head_ema", "real_head_ema", "fake_head", "real_head", "fake_queue.keys",
          "real_queue.keys", "fake_queue.iters", "real_queue.iters", "adam.exp_avg_sq", "adam.exp_avg", "adam.step", "augment.p",
          "pl_mean", "G", "D")
# Tolerance of each quantity: the largest difference of a tensor over the largest magnitude of the anchor's
# tensor, the worst tensor of the quantity; the same for every loss (over max(|loss|, 1e-3)).
# Float32 over 8 iterations: the loops sum gradients in another order (one backward per phase here, one per loss
# part there); the largest relative differences are in tensors that start at zero (biases, Adam's first moment).
GROUP_TOLERANCE: dict[str, float] = {}
DEFAULT_TOLERANCE = 5e-4
LOSS_TOLERANCE = 1e-4


def group_of(name: str) -> str:
    return next(g for g in GROUPS if name == g or name.startswith(g + "."))


def grouped(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """``{quantity: {name: float64 tensor}}``."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        out.setdefault(group_of(name), {})[name] = t.detach().double()
    return out


def _rel(diff: float, scale: float) -> float:
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def compare(anchor: list[dict], ours: list[dict]) -> list[dict]:
    """Rows ``{quantity, abs, rel, tol, first}`` over all records; ``first`` is ``"it 3 Dmain"`` where a quantity
    first exceeds its tolerance, or where a quantity is on one side only."""
    steps = [(r["iteration"], r["phase"]) for r in anchor]
    if steps != [(r["iteration"], r["phase"]) for r in ours]:
        raise SystemExit(f"The loops ran different phases:\n anchor  {steps}\n fakeclr "
                         f"{[(r['iteration'], r['phase']) for r in ours]}")
    rows: dict[str, dict] = {}

    def note(q, step, abs_diff, rel, tol):
        row = rows.setdefault(q, {"quantity": q, "abs": 0.0, "rel": 0.0, "tol": tol, "first": None})
        row["abs"], row["rel"] = max(row["abs"], abs_diff), max(row["rel"], rel)
        if row["first"] is None and not rel <= tol:
            row["first"] = f"it {step[0]} {step[1]}"

    for a, b in zip(anchor, ours):
        step = (a["iteration"], a["phase"])
        for name in sorted(set(a["losses"]) & set(b["losses"])):
            x, y = a["losses"][name], b["losses"][name]
            note("loss " + name, step, abs(x - y), _rel(abs(x - y), max(abs(x), 1e-3)), LOSS_TOLERANCE)
        ga, gb = grouped(a["tensors"]), grouped(b["tensors"])
        for q in sorted(set(ga) | set(gb)):
            if q.endswith("_queue.iters") and q not in ga:
                continue                         # InsGen's queues have no iterations
            if q not in ga or q not in gb or set(ga[q]) != set(gb[q]):
                only = sorted(set(ga.get(q, {})) ^ set(gb.get(q, {})))
                row = rows.setdefault(q, {"quantity": q, "abs": math.nan, "rel": math.nan, "tol": 0, "first": None})
                row["first"] = row["first"] or f"it {step[0]} {step[1]}: on one side only ({only[:3]})"
                continue
            # Each tensor against its own magnitude: G's mapping weights (stored x100 for their lr multiplier)
            # would otherwise hide the synthesis weights' differences.
            per = [(float((ga[q][n] - gb[q][n].reshape(ga[q][n].shape)).abs().max()), float(ga[q][n].abs().max()))
                   for n in ga[q]]
            note(q, step, max(d for d, _ in per), max(_rel(d, s) for d, s in per),
                 GROUP_TOLERANCE.get(q, DEFAULT_TOLERANCE))
    return sorted(rows.values(), key=lambda r: (not r["quantity"].startswith("loss"), r["quantity"]))


def checksums(tensors: dict[str, torch.Tensor], scales: dict[str, float]) -> dict[str, list[float]]:
    """``{quantity: [c, r]}``: ``c`` sums, over the quantity's tensors, ``sum_i w_i x_i / s`` with fixed weights
    ``w_i = sin(0.7 i + 1)`` and ``s`` the tensor's mean ``|x|`` where it was first non-zero in the trace (``scales``,
    filled in here), so that every tensor counts at its own scale and any change moves ``c``; ``r`` is the root of
    ``sum_i (x_i / s)^2``: a change of relative size d in every element moves ``c`` by about ``d r``."""
    out = {}
    for q, ts in grouped(tensors).items():
        c, r2 = 0.0, 0.0
        for name in sorted(ts):
            x = ts[name].flatten()
            if not scales.get(name):               # the first non-zero mean (a queue's iterations start at 0)
                scales[name] = float(x.abs().mean()) if x.numel() else 0.0
            if scales[name] > 0:
                w = torch.sin(torch.arange(x.numel(), dtype=torch.float64) * 0.7 + 1)
                c += float((x * w).sum()) / scales[name]
                r2 += float((x / scales[name]).square().sum())
        out[q] = [c, math.sqrt(r2)]
    return out


def golden_of(case, trace: dict) -> dict:
    """The numbers a test needs to hold fakeclr to the anchor's run of ``case`` without the anchor."""
    scales: dict[str, float] = {}
    records = [{"iteration": r["iteration"], "phase": r["phase"], "losses": r["losses"],
                "sums": checksums(r["tensors"], scales)} for r in trace["records"]]
    gen_c = [g.argmax(-1).tolist() for g in trace["gen_c"]] if case.cond and trace["gen_c"] else None
    return {"anchor": case.anchor, "iterations": case.iterations, "records": records, "gen_c_classes": gen_c}


def compare_golden(golden: dict, ours: list[dict], tolerance_scale: float = 1.0) -> list[str]:
    """Where ``ours`` (fakeclr's records) leaves the golden numbers: one line each; empty when all agree."""
    bad = []
    steps = [(r["iteration"], r["phase"]) for r in golden["records"]]
    if steps != [(r["iteration"], r["phase"]) for r in ours]:
        return [f"phases differ: golden {steps}, fakeclr {[(r['iteration'], r['phase']) for r in ours]}"]
    scales: dict[str, float] = {}
    for g, r in zip(golden["records"], ours):
        where = f"it {g['iteration']} {g['phase']}"
        for name, want in g["losses"].items():
            got = r["losses"].get(name)
            if got is None:
                continue                     # the anchor reports some statistics that fakeclr does not
            if not abs(got - want) <= LOSS_TOLERANCE * tolerance_scale * max(abs(want), 1e-3):
                bad.append(f"{where}: loss {name} {got:.7g}, anchor {want:.7g}")
        sums = checksums(r["tensors"], scales)
        for q, (want, size) in g["sums"].items():
            if q not in sums:
                if not q.endswith("_queue.iters"):
                    bad.append(f"{where}: {q} missing")
                continue
            tol = GROUP_TOLERANCE.get(q, DEFAULT_TOLERANCE) * tolerance_scale * max(size, 1e-12)
            if not abs(sums[q][0] - want) <= tol:
                bad.append(f"{where}: {q} checksum {sums[q][0]:.9g}, anchor {want:.9g} (tolerance {tol:.2g})")
    return bad
