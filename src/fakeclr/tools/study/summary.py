"""Statistics of a study's runs: mean and spread over seeds, the claims tested seed by seed, the noise floor, the
paper's numbers beside ours, the code that trained the runs, and the study record (study.json) that holds them."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from ...provenance import short
from .plan import Job
from .specs import PAPER, Study, run_overrides

__all__ = ["mean_std", "summarise", "claims", "CLAIM_METRICS", "noise_floor", "paper_columns", "study_record",
           "code_summary"]

def noise_floor(gen_a, gen_b, seed: int = 0) -> dict[str, float]:
    """FID and KID between two generated feature sets ``[N, D]`` of the same network: what two samples of one
    generator differ by, and so the smallest difference between two networks these metrics can show."""
    from ...metrics.fid import fid_from_features
    from ...metrics.kid import kernel_inception_distance
    return {"fid": fid_from_features(gen_a, gen_b), "kid": kernel_inception_distance(gen_a, gen_b, seed=seed)}



def mean_std(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}``; ``std`` is the sample standard deviation (n - 1), ``None`` for one value."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values), "values": list(values)}


def summarise(entries: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per data set and run name, :func:`mean_std` over seeds of every final metric and of sec/kimg:
    ``{data: {run: {key: {"mean", "std", "n", "values"}}}}``. Runs that did not finish are left out."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in entries:
        if e["status"] == "done":
            groups.setdefault((e["data"], e["name"]), []).append(e)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (data, name), runs in groups.items():
        keys = sorted({k for r in runs for k in r["metrics"]})
        summary = {k: mean_std([r["metrics"][k] for r in runs if _finite(r["metrics"].get(k))]) for k in keys
                   if any(_finite(r["metrics"].get(k)) for r in runs)}
        speeds = [r["sec_per_kimg"] for r in runs if _finite(r.get("sec_per_kimg"))]
        if speeds:
            summary["sec_per_kimg"] = mean_std(speeds)
        out.setdefault(data, {})[name] = summary
    return out


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# Metrics the claims are made on, as key prefixes of the final metrics (lower is better for all three).
CLAIM_METRICS = ("kid", "fid", "ppl")


def _metric_key(metrics: dict[str, Any], kind: str) -> str | None:
    """The final-metric key of a kind: ``kid`` -> ``kid1k_full``, ``ppl`` -> ``ppl_wend`` (or ``ppl2_wend``)."""
    keys = sorted(k for k in metrics if k.startswith(kind) and not k.startswith("noise_"))
    return keys[0] if keys else None


def claims(entries: list[dict[str, Any]], subject: str | None,
           comparisons: tuple[tuple[str, str], ...] = ()) -> list[dict[str, Any]]:
    """One claim per data set, other run and metric kind: "subject < other", tested seed by seed; with
    ``comparisons``, one per given pair ``(subject, other)`` instead.

    Each claim: ``data``, ``subject``, ``other``, ``metric``, ``wins`` (seeds where the subject's value is lower),
    ``seeds`` (seeds both finished), ``mean_diff`` (mean over those seeds of subject - other), ``noise_floor``
    (mean of both runs' noise floor of that metric, where it has one) and ``text``.
    """
    done = [e for e in entries if e["status"] == "done"]
    names = {e["name"] for e in done}
    if comparisons:
        pairs_of_runs = [(a, b) for a, b in comparisons if a in names and b in names]
    elif subject is not None and subject in names:
        pairs_of_runs = [(subject, other) for other in sorted(names - {subject})]
    else:
        return []
    out = []
    for data, (subject, other) in [(d, p) for d in sorted({e["data"] for e in done}) for p in pairs_of_runs]:
        mine = {e["seed"]: e for e in done if e["data"] == data and e["name"] == subject}
        theirs = {e["seed"]: e for e in done if e["data"] == data and e["name"] == other}
        seeds = sorted(set(mine) & set(theirs))
        for kind in CLAIM_METRICS:
            key = _metric_key(mine[seeds[0]]["metrics"], kind) if seeds else None
            pairs = [(mine[s]["metrics"].get(key), theirs[s]["metrics"].get(key)) for s in seeds] if key else []
            pairs = [(a, b) for a, b in pairs if _finite(a) and _finite(b)]
            if not pairs:
                continue
            wins = sum(a < b for a, b in pairs)
            diff = statistics.fmean(a - b for a, b in pairs)
            floors = [e["metrics"].get(f"noise_{key}") for e in (*mine.values(), *theirs.values())]
            floors = [f for f in floors if _finite(f)]
            floor = statistics.fmean(floors) if floors else None
            text = (f"{subject} < {other} on {key} ({data}): true in {wins} of {len(pairs)} seed(s), mean "
                    f"difference {diff:+.4g}" + (f", noise floor {floor:.3g}" if floor is not None else ""))
            out.append({"data": data, "subject": subject, "other": other, "metric": key, "wins": wins,
                        "seeds": len(pairs), "mean_diff": diff, "noise_floor": floor, "text": text})
    return out


def paper_columns(study_name: str | None, data: str) -> list[tuple[str, str, dict[str, float]]]:
    """``[(column label, metric kind, {run: value})]`` of the paper's numbers for this study and data set."""
    cols = []
    for label, match, kind, values in PAPER.get(study_name or "", []):
        if match is None or match in data.lower():
            cols.append((label, kind, values))
    return cols


def study_record(study: Study, jobs: list[Job], results: list[dict[str, Any]]) -> dict[str, Any]:
    """The content of study.json: every run (finished or not), the summaries and the claims."""
    entries = []
    for job, res in zip(jobs, results):
        entries.append({"name": job.run, "label": job.label, "method": _method(job.run, study.runs[job.run]),
                        "options": study.runs[job.run], "overrides": job.overrides, "data": job.data_name,
                        "data_source": job.data,
                        "seed": job.seed, "kimg": job.kimg, "run_dir": str(job.run_dir),
                        "status": res.get("status", "failed"), "error": res.get("error"),
                        "sec_per_kimg": res.get("sec_per_kimg"), "train_time_s": res.get("train_time_s"),
                        "eval_time_s": res.get("eval_time_s"),
                        "metrics": res.get("metrics", {}), "curve": res.get("curve", []),
                        "fakes": res.get("fakes"), "code": res.get("code")})
    times = [(e["train_time_s"] or 0.0) + (e["eval_time_s"] or 0.0) for e in entries if e["status"] == "done"]
    return {"study": study.name, "description": study.description, "subject": study.subject, "paper": study.paper,
            "runs_spec": study.runs, "runs": entries, "summary": summarise(entries),
            "compute_s": sum(times),  # training + evaluation seconds of the finished runs, added up
            "claims": claims(entries, study.subject, study.comparisons),
            "written": time.strftime("%Y-%m-%d %H:%M:%S")}


# What the pages say of a run whose code.jsonl is missing (trained before fakeclr recorded its version).
UNRECORDED = "an unrecorded version of fakeclr"


def code_summary(entries: list[dict[str, Any]]) -> str:
    """One sentence on the code that trained the finished runs (:mod:`fakeclr.provenance`): its version, or each
    version with the runs it trained, since the same seed and options train another network under other code."""
    by: dict[str, list[str]] = {}
    for entry in entries:
        if entry["status"] != "done":
            continue
        versions = entry.get("code") or [None]
        key = (short(versions[0]) if versions[0] else UNRECORDED) + "".join(
            f", then from kimg {v.get('kimg'):g} {short(v)}" for v in versions[1:])
        by.setdefault(key, []).append(entry["label"])
    if len(by) <= 1:
        return f"Trained with {next(iter(by))}." if by else ""
    return (f"Trained with {len(by)} code versions; compare runs only within one: "
            + "; ".join(f"{key}: {', '.join(labels)}" for key, labels in by.items()) + ".")


def _method(run: str, options: dict[str, Any]) -> str:
    """The contrastive method and the augmentation a run's options name (``preset`` for one they leave to the
    preset)."""
    opts = run_overrides(run, options)
    return f"{opts.get('contrastive.method', 'preset')}+{opts.get('augment.kind', 'preset')}"
