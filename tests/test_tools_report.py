"""``fakeclr report``: reading run directories leniently, tables with the best run bolded, plots, and an HTML page
that a real browser renders (headless Chromium: skipped when it is not installed, but failed under CI, whose
.ci/run installs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from PIL import Image

from fakeclr.cli import main
from fakeclr.errors import UserError
from fakeclr.tools import report as rp


def _png(path, color, size=(64, 32)):
    Image.fromarray(np.full((size[1], size[0], 3), color, np.uint8)).save(path)


def make_run(root, name, lr, fids, kimgs=(1.0, 2.0, 3.0, 4.0), metric_layout="value"):
    """A run directory as fakeclr train (and the metrics code) would leave it."""
    run = root / name
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"batch": 16, "optim": {"lr": lr, "beta1": 0.0},
                                                 "augment": {"kind": "ada" if lr < 0.003 else "diffaugment"}}))
    with open(run / "stats.jsonl", "w") as f:
        for i, k in enumerate(kimgs):
            f.write(json.dumps({"kimg": k, "time_s": 20.0 * k, "sec_per_kimg": 30.0 if i == 0 else 20.0 + i,
                                "augment_p": 0.05 * i, "Loss/G/loss": 1.0 + 0.1 * i, "Loss/D/loss": 1.2 - 0.1 * i}) + "\n")
        f.write("not json\n")
    with open(run / "metric-fid5k_full.jsonl", "w") as f:
        for k, v in fids:
            if metric_layout == "value":
                rec = {"kimg": k, "metric": "fid5k_full", "value": v}
            else:  # fakeclr metrics --run-dir / StyleGAN2-ADA: a results dict, kimg only in the snapshot name
                rec = {"metric": "fid5k_full", "results": {"fid5k_full": v}, "num": 5000, "total_time": 3.5,
                       "snapshot": str(run / f"network-snapshot-{int(k):06d}.safetensors"), "timestamp": 1.8e9,
                       "seed": 0}
            f.write(json.dumps(rec) + "\n")
    with open(run / "metric-pr.jsonl", "w") as f:
        f.write(json.dumps({"kimg": kimgs[-1], "precision": 0.5 + lr, "recall": 0.3}) + "\n")
    _png(run / "reals.png", (200, 200, 200))
    _png(run / "fakes000000.png", (0, 0, 0))
    _png(run / f"fakes{int(kimgs[-1]):06d}.png", (255, 0, 0) if lr < 0.003 else (0, 0, 255))
    return run


@pytest.fixture
def runs(tmp_path):
    a = make_run(tmp_path, "ada", 0.002, [(2.0, 80.0), (4.0, 60.0)])
    b = make_run(tmp_path, "diffaug", 0.0025 + 0.001, [(2.0, 62.0), (4.0, 65.0)], metric_layout="results")
    return a, b


def test_load_run_reads_every_layout(runs):
    a, b = rp.load_runs(list(runs))
    assert a.metrics["fid5k_full"] == [(2.0, 80.0), (4.0, 60.0)]
    assert b.metrics["fid5k_full"] == [(2.0, 62.0), (4.0, 65.0)]      # kimg from the snapshot name
    assert a.metrics["precision"] == [(4.0, 0.502)] and a.metrics["recall"] == [(4.0, 0.3)]
    assert a.kimg == 4.0 and a.sec_per_kimg == pytest.approx(22.0)   # median of ticks after the first
    assert a.fakes.name == "fakes000004.png" and a.fakes_kimg == 4.0 and a.reals is not None
    assert a.config["optim.lr"] == 0.002 and any("not JSON" in w for w in a.warnings)


def test_best_run_per_metric_follows_its_direction(runs):
    loaded = rp.load_runs(list(runs))
    assert rp.best_runs(loaded, "fid5k_full") == {0}          # lower is better: 60 < 65
    assert rp.best_runs(loaded, "precision") == {1}           # higher is better
    assert rp.higher_is_better("is50k") and rp.higher_is_better("recall") and not rp.higher_is_better("kid50k_full")
    assert rp.higher_is_better("is500_mean") and rp.higher_is_better("pr500_3_full_precision")
    assert not rp.higher_is_better("is5k_std") and not rp.higher_is_better("fid500_full")
    cells = rp.metric_cells(loaded, "fid5k_full")
    assert cells[0] == ("60 @ 4 kimg", True)
    assert cells[1] == ("65 @ 4 kimg (best 62 @ 2)", False)      # the run's own best snapshot, not bold
    diff, same = rp.config_rows(loaded)
    assert [k for k, _ in diff] == ["augment.kind", "optim.lr"] and ("batch", ["16", "16"]) in same


def test_metric_record_layouts():
    assert rp.metric_values({"kimg": 1, "metric": "kid", "value": {"mean": 0.1}}, "x") == {"kid": 0.1}
    assert rp.metric_values({"kimg": 1, "value": 3.0}, "fid5k") == {"fid5k": 3.0}
    assert rp.metric_values({"kimg": 1, "fid": 2.0, "time_s": 9, "ok": "yes"}, "x") == {"fid": 2.0}


def test_write_report_html_and_markdown(runs, tmp_path):
    out = tmp_path / "report"
    files = rp.write_report(list(runs), out)
    html = files.html.read_text()
    assert html.count("data:image/png;base64,") >= 3 + 3       # plots + reals + two fakes, all inline
    assert "<td class=\"best\">60 @ 4 kimg</td>" in html
    assert "fid5k_full ↓" in html and "precision ↑" in html
    assert 'class="diff"' in html and "optim.lr" in html
    assert "src='plots/" not in html and "src=\"plots/" not in html      # nothing outside the file
    md = files.markdown.read_text()
    assert "**60 @ 4 kimg**" in md and "![Metrics vs kimg](plots/metrics.png)" in md
    for name in ("metrics.png", "losses.png", "augment_p.png"):
        assert (out / "plots" / name).is_file()
    assert len(list((out / "samples").glob("*.png"))) == 3


def test_report_cli_and_errors(runs, tmp_path, capsys):
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "r")]) == 0
    assert "report.html" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty), "--out", str(tmp_path / "r2")]) == 2
    assert "fakeclr run directory" in capsys.readouterr().err
    with pytest.raises(UserError, match="does not exist"):
        rp.load_run(tmp_path / "missing")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def screenshot(html_path, png_path, width=1280, height=2000, timeout=120) -> None:
    """Render ``html_path`` with headless Chromium into ``png_path`` (raises if Chromium fails)."""
    profile = tempfile.mkdtemp(prefix="fakeclr-chromium-")
    try:
        cmd = [_chromium(), "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--screenshot={png_path}", f"--window-size={width},{height}",
               f"file://{os.path.abspath(html_path)}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(2, "--no-sandbox")   # Chromium refuses to run as root with its sandbox
        subprocess.run(cmd, check=True, timeout=timeout, capture_output=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


_NO_CHROMIUM = "headless Chromium is not installed (Debian: apt-get install chromium)"
_IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.mark.skipif(_chromium() is None and not _IN_CI, reason=_NO_CHROMIUM)
def test_report_renders_in_headless_chromium(runs, tmp_path):
    assert _chromium() is not None, f"{_NO_CHROMIUM}; CI is set, so this test must run: .ci/run installs it"
    files = rp.write_report(list(runs), tmp_path / "report")
    shot = tmp_path / "shot.png"
    screenshot(files.html, shot, height=3000)
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (3000, 1280)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50          # text, tables and plots, not a blank page
    red = (img[:, :, 0] > 240) & (img[:, :, 1] < 20) & (img[:, :, 2] < 20)
    blue = (img[:, :, 2] > 240) & (img[:, :, 0] < 20) & (img[:, :, 1] < 20)
    assert red.sum() > 1000 and blue.sum() > 1000                    # both runs' sample grids were decoded and drawn
