"""Compare training runs: one self-contained HTML page and a Markdown summary.

``write_report([run_dir, ...], out)`` reads each run directory (``config.json``, ``stats.jsonl``,
``metric-*.jsonl``, ``fakes*.png``, ``reals.png``) and writes into ``out``:

``report.html``
    Everything inline (CSS, plots and sample grids as base64 PNGs): open it anywhere, mail it, archive it.
``report.md``
    The same tables, linking ``plots/*.png`` and ``samples/*.png`` written next to it.

Contents: a summary per run (kimg reached, sec/kimg, time, augment p), the latest value of every metric with the
best run in bold, plots of each metric, of the G/D losses and of augment p against kimg (matplotlib), the latest
sample grid of each run beside the reals, and the configurations side by side with differing keys first.
"""

from __future__ import annotations

import datetime
import html
import json
import math
import re
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..metrics.registry import higher_is_better as registry_direction
from ..train.checkpoint import tagged_kimg
from .pages import CSS, data_uri, html_table, md_table

# Keys of a flat metric record that are bookkeeping, not results.
_NOT_METRICS = {"kimg", "cur_nimg", "nimg", "num", "time", "time_s", "total_time", "total_time_str", "timestamp", "num_gpus",
                "seed", "step", "iteration", "tick", "snapshot", "snapshot_pkl", "network", "higher_is_better"}
LOSS_KEYS = ("Loss/G/loss", "Loss/D/loss")


# ---------------------------------------------------------------------------------------------------- reading
@dataclass
class Run:
    """What a run directory holds, read leniently (any part may be missing)."""

    path: Path
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    stats: list[dict[str, Any]] = field(default_factory=list)                # one per tick, sorted by kimg
    metrics: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # name -> [(kimg, value)]
    higher_better: dict[str, bool] = field(default_factory=dict)
    fakes: Path | None = None                                                 # the latest sample grid
    fakes_kimg: float | None = None
    reals: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def series(self, key: str) -> list[tuple[float, float]]:
        """``[(kimg, stats[key])]`` over ticks that report ``key``."""
        return [(s["kimg"], float(s[key])) for s in self.stats if _is_number(s.get(key)) and _is_number(s.get("kimg"))]

    @property
    def kimg(self) -> float | None:
        return self.stats[-1]["kimg"] if self.stats else None

    @property
    def sec_per_kimg(self) -> float | None:
        """Median sec/kimg over ticks (the first tick includes start-up and is left out when there are more)."""
        v = [x for _, x in self.series("sec_per_kimg")]
        v = v[1:] if len(v) > 1 else v
        return statistics.median(v) if v else None

    @property
    def time_s(self) -> float | None:
        t = [x for _, x in self.series("time_s")]
        return t[-1] if t else None


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _read_jsonl(path: Path, run: Run) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(path.read_text(errors="replace").splitlines()):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            run.warnings.append(f"{path.name} line {i + 1} is not JSON (skipped)")
            continue
        if isinstance(rec, dict):
            rows.append(rec)
    return rows


def _kimg_of(rec: dict[str, Any]) -> float | None:
    if _is_number(rec.get("kimg")):
        return float(rec["kimg"])
    if _is_number(rec.get("cur_nimg")):
        return rec["cur_nimg"] / 1000
    for key in ("snapshot", "snapshot_pkl", "network"):
        kimg = _snapshot_kimg(str(rec.get(key, "")))
        if kimg is not None:
            return kimg
    return None


def _snapshot_kimg(name: str) -> float | None:
    """kimg of a snapshot or grid name: fakeclr's (``network-snapshot-000004.safetensors``, ``fakes000004.png``)
    or StyleGAN2-ADA's (``network-snapshot-000004.pkl``)."""
    kimg = tagged_kimg(Path(name).name)
    if kimg is None and (m := re.search(r"network-snapshot-(\d{6})\.pkl$", name)):
        kimg = float(m.group(1))
    return kimg


def metric_values(rec: dict[str, Any], default_name: str) -> dict[str, float]:
    """The results in one metric record, whatever its layout.

    Understood: ``{"metric": m, "value": v}``; StyleGAN2-ADA's ``{"results": {m: v, ...}}``; flat
    ``{"kimg": k, m: v, ...}``; a value that is a dict with ``"value"`` or ``"mean"``; ``{"value": v}`` alone
    (named after the file, ``metric-NAME.jsonl``).
    """
    def number(v):
        if isinstance(v, dict):
            v = v.get("value", v.get("mean"))
        return float(v) if _is_number(v) else None

    if "value" in rec:
        v = number(rec["value"])
        return {str(rec.get("metric", default_name)): v} if v is not None else {}
    source = rec["results"] if isinstance(rec.get("results"), dict) else rec
    out = {}
    for k, v in source.items():
        if k in _NOT_METRICS or k == "metric":
            continue
        v = number(v)
        if v is not None:
            out[str(k)] = v
    return out


def higher_is_better(name: str) -> bool:
    """``True`` where the metric registry says a higher value is better (IS, precision, recall); ``False`` for
    FID, KID, PPL, continuity, for a spread (``is5k_std``) and for a name no fakeclr metric writes (a record can
    say otherwise with its own ``higher_is_better``)."""
    return bool(registry_direction(name))


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _latest_fakes(run_dir: Path) -> tuple[Path | None, float | None]:
    found = []
    for p in run_dir.glob("fakes*.png"):
        kimg = tagged_kimg(p.name, "fakes")
        found.append((kimg if kimg is not None else -1.0, p.name, p))
    if not found:
        return None, None
    kimg, _, path = max(found)
    return path, (kimg if kimg >= 0 else None)


def load_run(run_dir: str | Path, name: str | None = None) -> Run:
    """Read one run directory; a missing or empty directory is a :class:`UserError`."""
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"Run directory {path} does not exist; pass directories written by fakeclr train.")
    run = Run(path=path, name=name or path.name)
    found_any = False
    if (path / "config.json").is_file():
        found_any = True
        try:
            run.config = _flatten(json.loads((path / "config.json").read_text()))
        except json.JSONDecodeError:
            run.warnings.append("config.json is not valid JSON (ignored)")
    if (path / "stats.jsonl").is_file():
        found_any = True
        by_kimg = {}
        for rec in _read_jsonl(path / "stats.jsonl", run):
            if _is_number(rec.get("kimg")):
                by_kimg[float(rec["kimg"])] = rec  # a resumed run repeats ticks: keep the last record
        run.stats = [by_kimg[k] for k in sorted(by_kimg)]
    for mfile in sorted(path.glob("metric-*.jsonl")):
        found_any = True
        default = mfile.stem[len("metric-"):]
        for rec in _read_jsonl(mfile, run):
            kimg = _kimg_of(rec)
            if kimg is None:
                run.warnings.append(f"{mfile.name}: a record without kimg or snapshot name (skipped)")
                continue
            for metric, value in metric_values(rec, default).items():
                run.metrics.setdefault(metric, []).append((kimg, value))
                stated = rec.get("higher_is_better")        # one bool for the record, or one per result key
                if isinstance(stated, dict):
                    stated = stated.get(metric)
                if isinstance(stated, bool):
                    run.higher_better[metric] = stated
    for metric, values in run.metrics.items():
        run.metrics[metric] = sorted(dict(values).items())
    run.fakes, run.fakes_kimg = _latest_fakes(path)
    run.reals = path / "reals.png" if (path / "reals.png").is_file() else None
    if not found_any and run.fakes is None:
        raise UserError(f"{path} holds no config.json, stats.jsonl, metric-*.jsonl or fakes*.png; "
                        "is it a fakeclr run directory?")
    return run


def load_runs(run_dirs: list[str | Path]) -> list[Run]:
    """Read runs, naming each by its directory (with its parent when two names clash)."""
    if not run_dirs:
        raise UserError("Give at least one run directory to report on.")
    paths = [Path(p) for p in run_dirs]
    names = [p.resolve().name for p in paths]
    for i, p in enumerate(paths):
        if names.count(names[i]) > 1:
            names[i] = f"{p.resolve().parent.name}/{p.resolve().name}"
    return [load_run(p, n) for p, n in zip(paths, names)]


# ---------------------------------------------------------------------------------------------------- tables
def metric_names(runs: list[Run]) -> list[str]:
    return sorted({m for r in runs for m in r.metrics})


def _direction(runs: list[Run], metric: str) -> bool:
    for r in runs:
        if metric in r.higher_better:
            return r.higher_better[metric]
    return higher_is_better(metric)


def best_runs(runs: list[Run], metric: str) -> set[int]:
    """Indices of the runs whose latest ``metric`` is the best (ties all count)."""
    latest = {i: r.metrics[metric][-1][1] for i, r in enumerate(runs) if r.metrics.get(metric)}
    if not latest:
        return set()
    best = (max if _direction(runs, metric) else min)(latest.values())
    return {i for i, v in latest.items() if v == best}


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}g}" if abs(x) < 1e5 else f"{x:.3e}"


def summary_rows(runs: list[Run]) -> list[list[str]]:
    """``[[run, kimg, ticks, sec/kimg, time, augment p, fakes kimg], ...]``."""
    rows = []
    for r in runs:
        p = r.series("augment_p")
        t = r.time_s
        rows.append([r.name, _fmt(r.kimg), str(len(r.stats)), _fmt(r.sec_per_kimg, 3),
                     "–" if t is None else str(datetime.timedelta(seconds=round(t))),
                     _fmt(p[-1][1], 3) if p else "–", _fmt(r.fakes_kimg)])
    return rows


SUMMARY_HEADER = ["run", "kimg", "ticks", "sec/kimg (median)", "time", "augment p (last)", "samples at kimg"]


def metric_cells(runs: list[Run], metric: str) -> list[tuple[str, bool]]:
    """Per run: ``("value @ kimg (best b @ kimg)", is_best)`` for the latest value of ``metric``."""
    best = best_runs(runs, metric)
    better = max if _direction(runs, metric) else min
    cells = []
    for i, r in enumerate(runs):
        values = r.metrics.get(metric)
        if not values:
            cells.append(("–", False))
            continue
        kimg, v = values[-1]
        text = f"{_fmt(v)} @ {_fmt(kimg)} kimg"
        bk, bv = better(values, key=lambda kv: kv[1])
        if bv != v:
            text += f" (best {_fmt(bv)} @ {_fmt(bk)})"
        cells.append((text, i in best))
    return cells


def config_rows(runs: list[Run]) -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]]]:
    """``(differing, same)``: ``(key, [value per run])`` rows of the flattened configs."""
    keys = sorted({k for r in runs for k in r.config})
    diff, same = [], []
    for k in keys:
        vals = [json.dumps(r.config[k]) if k in r.config else "–" for r in runs]
        (diff if len(set(vals)) > 1 else same).append((k, vals))
    return diff, same


# ---------------------------------------------------------------------------------------------------- plots
def make_plots(runs: list[Run], outdir: Path) -> list[tuple[str, Path]]:
    """Write ``metrics.png``, ``losses.png``, ``augment_p.png`` (those with data) into ``outdir``; ``[(title, path)]``."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    written = []

    def panel_figure(titles: list[str], series_of) -> plt.Figure | None:
        titles = [t for t in titles if any(series_of(r, t) for r in runs)]
        if not titles:
            return None
        cols = min(len(titles), 3)
        rows = math.ceil(len(titles) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
        for ax, t in zip(axes.flat, titles):
            for idx, r in enumerate(runs):
                pts = series_of(r, t)
                if pts:  # one colour per run in every panel
                    ax.plot([k for k, _ in pts], [v for _, v in pts], marker="o" if len(pts) < 30 else None,
                            markersize=3, label=r.name, color=f"C{idx % 10}")
            ax.set_title(t)
            ax.set_xlabel("kimg")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        for ax in list(axes.flat)[len(titles):]:
            ax.axis("off")
        fig.tight_layout()
        return fig

    figures = [
        ("Metrics vs kimg", "metrics.png", panel_figure(metric_names(runs), lambda r, m: r.metrics.get(m, []))),
        ("Losses vs kimg", "losses.png", panel_figure(list(LOSS_KEYS), lambda r, k: r.series(k))),
        ("Augmentation probability p vs kimg", "augment_p.png",
         panel_figure(["augment_p"], lambda r, k: r.series(k))),
        ("sec/kimg vs kimg", "speed.png", panel_figure(["sec_per_kimg"], lambda r, k: r.series(k))),
    ]
    for title, fname, fig in figures:
        if fig is None:
            continue
        fig.savefig(outdir / fname, dpi=100)
        plt.close(fig)
        written.append((title, outdir / fname))
    return written


# ---------------------------------------------------------------------------------------------------- writing
def _sample_figures(runs: list[Run]) -> list[tuple[str, Path]]:
    """``[(caption, png)]``: the reals of the first run that has them, then each run's latest fakes."""
    figs = []
    reals = next((r for r in runs if r.reals), None)
    if reals:
        figs.append((f"reals ({reals.name})", reals.reals))
    for r in runs:
        if r.fakes:
            figs.append((f"{r.name}: fakes at {_fmt(r.fakes_kimg)} kimg", r.fakes))
    return figs


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    plots: list[Path]


def write_report(run_dirs: list[str | Path], outdir: str | Path, title: str = "fakeclr run comparison") -> ReportFiles:
    """Read ``run_dirs`` and write ``report.html`` (self-contained) and ``report.md`` (+ PNGs) into ``outdir``."""
    runs = load_runs(run_dirs)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    plots = make_plots(runs, outdir / "plots")
    samples = _sample_figures(runs)
    sample_copies = []
    (outdir / "samples").mkdir(exist_ok=True)
    for k, (caption, src) in enumerate(samples):
        owner = re.sub(r"[^A-Za-z0-9_.-]+", "_", src.parent.name)
        dst = outdir / "samples" / f"{k:02d}_{owner}_{src.name}"
        shutil.copyfile(src, dst)
        sample_copies.append((caption, dst))

    metrics = metric_names(runs)
    metric_rows, metric_classes = [], []
    for m in metrics:
        cells = metric_cells(runs, m)
        arrow = "↑" if _direction(runs, m) else "↓"
        metric_rows.append([f"{m} {arrow}"] + [c for c, _ in cells])
        metric_classes.append([""] + ["best" if b else "" for _, b in cells])
    diff, same = config_rows(runs)
    run_names = [r.name for r in runs]
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    e = html.escape

    # ---- HTML
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{e(title)}</h1><p class='muted'>{len(runs)} run(s), generated {e(stamp)} by <code>fakeclr report</code></p>",
             "<ul>" + "".join(f"<li><b>{e(r.name)}</b>: <code>{e(str(r.path.resolve()))}</code></li>" for r in runs) + "</ul>",
             "<h2>Summary</h2>", html_table(SUMMARY_HEADER, summary_rows(runs)),
             "<h2>Metrics (latest snapshot; best run in bold)</h2>"]
    if metrics:
        parts.append(html_table(["metric"] + run_names, metric_rows, metric_classes))
        parts.append("<p class='muted'>↓ lower is better, ↑ higher is better; (best …) is the run's best snapshot.</p>")
    else:
        parts.append("<p class='muted'>No metric-*.jsonl files in these runs yet.</p>")
    parts.append("<h2>Plots</h2>")
    for ptitle, p in plots:
        parts.append(f"<h3>{e(ptitle)}</h3><img class='plot' alt='{e(ptitle)}' src='{data_uri(p)}'>")
    if not plots:
        parts.append("<p class='muted'>Nothing to plot: no stats.jsonl or metric files.</p>")
    parts.append("<h2>Samples</h2><div class='samples'>")
    for caption, p in samples:
        parts.append(f"<figure><img alt='{e(caption)}' src='{data_uri(p)}'><figcaption>{e(caption)}</figcaption></figure>")
    parts.append("</div>" + ("" if samples else "<p class='muted'>No sample grids found.</p>"))
    parts.append(f"<h2>Configuration</h2><p class='muted'>{len(diff)} differing key(s) first (highlighted), "
                 f"then {len(same)} shared.</p>")
    parts.append(html_table(["key"] + run_names, [[k] + v for k, v in diff + same],
                             row_classes=["diff"] * len(diff) + [""] * len(same)))
    warnings = [f"{r.name}: {w}" for r in runs for w in r.warnings]
    if warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{e(w)}</li>" for w in warnings) + "</ul>")
    parts.append("</body></html>")
    html_path = outdir / "report.html"
    html_path.write_text("\n".join(parts), encoding="utf-8")

    # ---- Markdown
    md = [f"# {title}", "", f"{len(runs)} run(s), generated {stamp} by `fakeclr report`.", ""]
    md += [f"- **{r.name}**: `{r.path.resolve()}`" for r in runs]
    md += ["", "## Summary", "", md_table(SUMMARY_HEADER, summary_rows(runs)), "", "## Metrics", ""]
    if metrics:
        md_rows = [[row[0]] + [f"**{c}**" if cls == "best" else c for c, cls in zip(row[1:], classes[1:])]
                   for row, classes in zip(metric_rows, metric_classes)]
        md += [md_table(["metric"] + run_names, md_rows), "", "Best run per metric in bold (↓ lower / ↑ higher is better)."]
    else:
        md.append("No metric-*.jsonl files yet.")
    md += ["", "## Plots", ""] + [f"![{t}](plots/{p.name})" for t, p in plots]
    md += ["", "## Samples", ""] + [f"![{c}](samples/{p.name})  \n{c}\n" for c, p in sample_copies]
    md += ["", "## Configuration (differing keys)", ""]
    md.append(md_table(["key"] + run_names, [[k] + v for k, v in diff]) if diff else "All configurations are equal.")
    md_path = outdir / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return ReportFiles(html_path, md_path, [p for _, p in plots])
