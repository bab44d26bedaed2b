"""A study's pages: ``study.json``, ``study.md`` (+ ``study-files/*.png``) and a self-contained ``study.html``
(one summary table per data set with the paper's columns, the claims, the runs that did not finish, FID vs kimg
or, with one evaluation point, each run's seeds side by side, and the final sample grids)."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from ..pages import CSS, data_uri, html_table, md_table
from .summary import code_summary, paper_columns

__all__ = ["write_study", "write_text"]

def _fmt_ms(s: dict[str, Any] | None, scale: float = 1.0) -> str:
    if not s:
        return "–"
    m = s["mean"] * scale
    if s["std"] is None:
        return f"{m:.4g} (n=1)"
    return f"{m:.4g} ± {s['std'] * scale:.2g} (n={s['n']})"


def _tables(record: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """``[(title, header, rows)]``: one summary table per data set, with the paper's columns."""
    out = []
    run_order = list(record["runs_spec"])
    for data, by_run in record["summary"].items():
        keys = sorted({k for s in by_run.values() for k in s if _in_table(k)}, key=_column_order)
        paper = paper_columns(record.get("paper"), data)
        header = ["run"] + [f"{k}{' ×100' if 'kid' in k else ''}" for k in keys] + ["sec/kimg"]
        header += [label for label, _, _ in paper]
        rows = []
        for name in [n for n in run_order if n in by_run]:
            s = by_run[name]
            row = [name] + [_fmt_ms(s.get(k), 100.0 if "kid" in k else 1.0) for k in keys]
            row.append(_fmt_ms(s.get("sec_per_kimg")))
            row += [f"{vals[name]:g}" if name in vals else "–" for _, _, vals in paper]
            rows.append(row)
        out.append((data, header, rows))
    return out


def _in_table(key: str) -> bool:
    """The summary tables show FID, KID, PPL, the continuity LPIPS score and the noise floor (study.json has all)."""
    return key != "sec_per_kimg" and (not key.startswith("continuity") or key.endswith("_lpips"))


def _column_order(key: str) -> tuple[int, str]:
    for i, prefix in enumerate(("fid", "kid", "ppl", "continuity", "noise_fid", "noise_kid")):
        if key.startswith(prefix):
            return i, key
    return 9, key


def _evaluated(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in record["runs"] if e["status"] == "done" and e["curve"]]


def _one_point(record: dict[str, Any]) -> bool:
    """Whether every finished run was evaluated at one point only (a curve would be one dot per run)."""
    done = _evaluated(record)
    return bool(done) and all(len(e["curve"]) == 1 for e in done)


def _fid_key(point: dict[str, Any]) -> str:
    return next(k for k in point if k.startswith("fid"))


def _seed_tables(record: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """``[(title, header, rows)]``: per data set, each run's FID and KID (×100) of every seed side by side, for a
    study evaluated at one point."""
    out = []
    done = _evaluated(record)
    for data in sorted({e["data"] for e in done}):
        mine = [e for e in done if e["data"] == data]
        seeds = sorted({e["seed"] for e in mine})
        fid = _fid_key(mine[0]["curve"][-1])
        kid = next((k for k in mine[0]["curve"][-1] if k.startswith("kid")), None)
        kimgs = sorted({e["curve"][-1]["kimg"] for e in mine})
        rows = []
        for name in [n for n in record["runs_spec"] if any(e["name"] == n for e in mine)]:
            by_seed = {e["seed"]: e["curve"][-1] for e in mine if e["name"] == name}
            rows.append([name] + [(f"{by_seed[s][fid]:.4g}" + (f" / {by_seed[s][kid] * 100:.3g}" if kid else ""))
                                  if s in by_seed else "–" for s in seeds])
        title = (f"{data}: {fid}{' / ' + kid + ' ×100' if kid else ''} of each seed at "
                 f"{', '.join(f'{k:g}' for k in kimgs)} kimg")
        out.append((title, ["run"] + [f"seed {s}" for s in seeds], rows))
    return out


def _seed_plot(record: dict[str, Any], path: Path) -> Path | None:
    """For a study evaluated at one point: per data set, one row per run name with a dot per seed (FID)."""
    done = _evaluated(record)
    if not done:
        return None
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    datas = sorted({e["data"] for e in done})
    names = {d: [n for n in record["runs_spec"] if any(e["name"] == n and e["data"] == d for e in done)]
             for d in datas}
    rows = max(len(v) for v in names.values())
    fig, axes = plt.subplots(1, len(datas), figsize=(7 * len(datas), 1.5 + 0.45 * rows), squeeze=False)
    for ax, data in zip(axes[0], datas):
        key = _fid_key(next(e for e in done if e["data"] == data)["curve"][-1])
        for idx, name in enumerate(names[data]):
            runs = sorted((e for e in done if e["name"] == name and e["data"] == data), key=lambda e: e["seed"])
            values = [e["curve"][-1][key] for e in runs]
            ax.scatter(values, [idx] * len(values), color=f"C{idx % 10}", s=28, zorder=3)
            for e, v in zip(runs, values):
                ax.annotate(f"{e['seed']}", (v, idx), textcoords="offset points", xytext=(0, 5), ha="center",
                            fontsize=7, color="#555")
        ax.set_yticks(range(len(names[data])), names[data])
        ax.set_ylim(len(names[data]) - 0.5, -0.7)
        ax.set_title(f"{data}: {key} of each seed\n(the number over a dot is its seed)", fontsize=10)
        ax.set_xlabel(key)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _curve_plot(record: dict[str, Any], path: Path) -> Path | None:
    """FID vs kimg per data set: mean over seeds per run name, the band from the lowest to the highest seed."""
    done = _evaluated(record)
    if not done:
        return None
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    datas = sorted({e["data"] for e in done})
    fig, axes = plt.subplots(1, len(datas), figsize=(6 * len(datas), 4), squeeze=False)
    for ax, data in zip(axes[0], datas):
        names = [n for n in record["runs_spec"] if any(e["name"] == n and e["data"] == data for e in done)]
        for idx, name in enumerate(names):
            curves = [e["curve"] for e in done if e["name"] == name and e["data"] == data]
            key = next(k for k in curves[0][0] if k.startswith("fid"))
            kimgs = [p["kimg"] for p in curves[0]]
            vals = [[c[i][key] for c in curves if i < len(c)] for i in range(len(kimgs))]
            mean = [statistics.fmean(v) for v in vals]
            ax.plot(kimgs, mean, marker="o", markersize=3, color=f"C{idx % 10}", label=f"{name} (n={len(curves)})")
            if len(curves) > 1:
                ax.fill_between(kimgs, [min(v) for v in vals], [max(v) for v in vals], color=f"C{idx % 10}", alpha=0.15)
        ax.set_title(f"{data}: {key}\n(mean over seeds; band: lowest to highest seed)", fontsize=10)
        ax.set_xlabel("kimg")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _grids(record: dict[str, Any]) -> list[tuple[str, Path]]:
    """``[(caption, png)]``: per data set, the final sample grid of each run name's lowest finished seed whose grid
    is on disk (a study moved without its run directories keeps only their study-run.json)."""
    out = []
    for data in sorted({e["data"] for e in record["runs"]}):
        for name in record["runs_spec"]:
            runs = sorted((e for e in record["runs"] if e["data"] == data and e["name"] == name
                           and e["status"] == "done" and e.get("fakes")
                           and (Path(e["run_dir"]) / e["fakes"]).is_file()), key=lambda e: e["seed"])
            if runs:
                e = runs[0]
                out.append((f"{data} / {name}, seed {e['seed']}, {e['kimg']:g} kimg", Path(e["run_dir"]) / e["fakes"]))
    return out


def write_study(record: dict[str, Any], outdir: str | Path) -> dict[str, Path]:
    """Write ``study.json``, ``study.md`` (+ ``study-files/*.png``) and a self-contained ``study.html``."""
    import html
    import shutil
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    files = outdir / "study-files"
    write_text(outdir / "study.json", json.dumps(record, indent=1) + "\n")
    tables = _tables(record)
    one_point = _one_point(record)
    if one_point:
        plot, plot_title = _seed_plot(record, files / "fid_per_seed.png"), "FID of each seed"
    else:
        plot, plot_title = _curve_plot(record, files / "fid_vs_kimg.png"), "FID vs kimg"
    grids = []
    for k, (caption, src) in enumerate(_grids(record)):
        if src.is_file():
            dst = files / f"grid{k:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', caption.split(',')[0])}.png"
            files.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            grids.append((caption, dst))
    failed = [e for e in record["runs"] if e["status"] != "done"]
    title = f"fakeclr study {record['study']}: {record['description']}"
    note = ("Final metrics on G_ema, mean ± sample std over seeds (n = seeds finished). KID is shown ×100, the "
            "paper's unit. noise_* is the noise floor: the same metric between two independent generated sets of "
            "one network. The paper's columns are at the paper's scale (256 px, thousands of kimg, A100s), so "
            "compare orderings, not values.")
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{e(title)}</h1>",
             f"<p class='muted'>{len(record['runs'])} run(s), written {e(record['written'])} by "
             "<code>fakeclr study</code></p>", f"<p>{e(note)}</p>"]
    hours = record.get("compute_s", 0.0) / 3600
    code = code_summary(record["runs"])
    parts += [f"<p>{e(code)}</p>"] if code else []
    md = [f"# {title}", "", f"{len(record['runs'])} run(s), written {record['written']} by `fakeclr study`; training "
          f"and evaluation of the finished runs took {hours:.1f} process-hours.", "", note, ""] + ([code, ""] if code else [])
    for data, header, rows in tables:
        parts += [f"<h2>{e(data)}</h2>", html_table(header, rows)]
        md += [f"## {data}", "", md_table(header, rows), ""]
    if record["claims"]:
        parts.append("<h2>Claims</h2><ul>" + "".join(f"<li>{e(c['text'])}</li>" for c in record["claims"]) + "</ul>")
        md += ["## Claims", ""] + [f"- {c['text']}" for c in record["claims"]] + [""]
    if failed:
        lines = [f"{f['label']}: {f['status']}{' (' + f['error'] + ')' if f.get('error') else ''}" for f in failed]
        parts.append("<h2>Not finished</h2><ul>" + "".join(f"<li>{e(t)}</li>" for t in lines) + "</ul>")
        md += ["## Not finished", ""] + [f"- {t}" for t in lines] + [""]
    if plot:
        parts.append(f"<h2>{plot_title}</h2><img class='plot' alt='{plot_title}' src='{data_uri(plot)}'>")
        md += [f"## {plot_title}", "", f"![{plot_title}](study-files/{plot.name})", ""]
    for title, header, rows in _seed_tables(record) if one_point else []:
        parts += [f"<p>{e(title)}</p>", html_table(header, rows)]
        md += [title, "", md_table(header, rows), ""]
    if grids:
        parts.append("<h2>Final samples</h2><div class='samples'>" + "".join(
            f"<figure><img alt='{e(c)}' src='{data_uri(p)}'><figcaption>{e(c)}</figcaption></figure>"
            for c, p in grids)
            + "</div>")
        md += ["## Final samples", ""] + [f"![{c}](study-files/{p.name})  \n{c}\n" for c, p in grids]
    parts.append("</body></html>")
    write_text(outdir / "study.html", "\n".join(parts))
    write_text(outdir / "study.md", "\n".join(md) + "\n")
    return {"json": outdir / "study.json", "md": outdir / "study.md", "html": outdir / "study.html"}



def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a file)."""
    from ...files import atomic_write
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
