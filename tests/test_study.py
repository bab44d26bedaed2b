"""`fakeclr study`: runs trained and evaluated the same way, resumable, failures isolated, summaries and claims
checked against hand computations."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fakeclr.cli import build_train_config, main, make_parser
from fakeclr.config import AUGMENTATIONS, options as config_options
from fakeclr.errors import UserError
from fakeclr.provenance import short
from fakeclr.tools import study as st
from fakeclr.tools.study import render, runner

SPEC = """
description = "two methods and a run that cannot start"
subject = "fakeclr"

[runs.ada]
method = "ada"

[runs.fakeclr]
method = "fakeclr"
queue_size = 8
"contrastive.lam" = 0.2

[runs.bad]
gamma = -1
"""
ARGS = ["--scale", "tiny", "--data", "lfw", "--seeds", "0", "--kimg", "0.05", "--eval-every", "0.025",
        "--num-gen", "16", "--jobs", "2"]

# Skipping a finished run is asserted by its effect (no file of the run is written again, the log says so), not by
# a time: no benchmark times a study's bookkeeping; the costs that matter are training and evaluation, measured by
# benchmarks/train_speed.py (sec/kimg) and benchmarks/metrics_speed.py.


def _inception_or_skip():
    from fakeclr.metrics import load_inception
    try:
        load_inception("cpu")
    except UserError as e:
        pytest.skip(f"Inception unavailable (no cache and no PyPI): {e}")


def _kid_of_whole_sets(a: np.ndarray, b: np.ndarray) -> float:
    """The unbiased MMD^2 of the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3 between two whole sets of n
    features ``[n, D]`` (KID with one subset holding everything), written out."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    k = lambda x, y: (x @ y.T / x.shape[1] + 1) ** 3  # noqa: E731
    n = len(a)
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    return float(((kaa.sum() - np.trace(kaa)) + (kbb.sum() - np.trace(kbb))) / (n * (n - 1)) - 2 * kab.mean())


@pytest.fixture(scope="module")
def spec_study(tmp_path_factory):
    """A spec-file study (TOML) of two tiny runs and one whose options are invalid, run once for the module."""
    _inception_or_skip()
    root = tmp_path_factory.mktemp("study")
    spec = root / "mine.toml"
    spec.write_text(SPEC)
    code = main(["study", str(spec), "--outdir", str(root / "out"), *ARGS])
    return root, spec, code


def _files(run_dir: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}


@pytest.mark.slow
def test_spec_study_evaluates_every_run_and_reports_the_failed_one(spec_study):
    root, _, code = spec_study
    assert code == 1                                      # one run failed: non-zero exit, the others finished
    record = json.loads((root / "out" / "study.json").read_text())
    by = {r["name"]: r for r in record["runs"]}
    assert by["bad"]["status"] == "failed" and "--gamma must be non-negative" in by["bad"]["error"]
    for name in ("ada", "fakeclr"):
        r = by[name]
        assert r["status"] == "done" and r["seed"] == 0 and r["data"] == "lfw" and r["kimg"] == 0.05
        # Evaluation points 0.025 and 0.05 fall on the snapshots written when a batch of 8 crosses them.
        assert [p["kimg"] for p in r["curve"]] == [0.032, 0.056]
        m = r["metrics"]
        assert {"fid16_full", "kid16_full", "ppl2_wend", "continuity_w_lpips", "noise_fid16_full",
                "noise_kid16_full"} <= set(m)
        assert m["fid16_full"] > 0 and m["noise_fid16_full"] > 0 and r["sec_per_kimg"] > 0
        assert r["curve"][-1]["fid16_full"] == m["fid16_full"]
        lines = (Path(r["run_dir"]) / "metric-fid16_full.jsonl").read_text().splitlines()
        assert [json.loads(x)["kimg"] for x in lines] == [0.032, 0.056]
    assert by["fakeclr"]["method"] == "fakeclr+preset"
    assert [v["kimg"] for v in by["fakeclr"]["code"]] == [0.0] and by["bad"]["code"] is None
    cfg = json.loads((Path(by["fakeclr"]["run_dir"]) / "config.json").read_text())
    assert cfg["contrastive"]["method"] == "fakeclr" and cfg["contrastive"]["queue_size"] == 8
    assert cfg["contrastive"]["lam"] == 0.2                               # a config field without a flag, by path
    assert cfg["preset"] == "tiny" and cfg["kimg"] == 0.05 and cfg["seed"] == 0
    assert record["summary"]["lfw"]["ada"]["fid16_full"]["mean"] == by["ada"]["metrics"]["fid16_full"]
    assert [c["other"] for c in record["claims"]] == ["ada"] * 3          # fakeclr vs ada on kid, fid, ppl
    md = (root / "out" / "study.md").read_text()
    assert "| fakeclr |" in md and "bad" in md and "fid_vs_kimg.png" in md
    assert f"\nTrained with {short(by['ada']['code'][0])}.\n" in md
    assert (root / "out" / "study-files" / "fid_vs_kimg.png").stat().st_size > 1000
    html = (root / "out" / "study.html").read_text()
    assert html.count("data:image/png;base64,") >= 3                      # the curve and two sample grids


@pytest.mark.slow
def test_same_command_again_skips_finished_runs(spec_study, capsys):
    root, spec, _ = spec_study
    out = root / "out"
    before = {d: _files(out / "lfw" / d) for d in ("ada-seed0", "fakeclr-seed0")}
    assert main(["study", str(spec), "--outdir", str(out), *ARGS]) == 1   # "bad" fails again
    log = capsys.readouterr().out
    assert log.count("finished before, skipped") == 2
    assert {d: _files(out / "lfw" / d) for d in before} == before


@pytest.mark.slow
def test_interrupted_run_is_continued_and_equals_the_uninterrupted_one(spec_study, tmp_path, capsys):
    root, spec, _ = spec_study
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    done = json.loads((out / "lfw" / "fakeclr-seed0" / "study-run.json").read_text())
    # Kill "fakeclr" halfway: everything it wrote after its 0.032 kimg snapshot, and its evaluation, is gone.
    run = out / "lfw" / "fakeclr-seed0"
    final_net = (run / "network-snapshot-000000.056.safetensors").read_bytes()
    for p in list(run.iterdir()):
        if "000000.056" in p.name or p.name.startswith("metric-") or p.name == "study-run.json":
            p.unlink()
    untouched = _files(out / "lfw" / "ada-seed0")
    main(["study", str(spec), "--outdir", str(out), *ARGS])
    log = capsys.readouterr().out
    assert "lfw/ada-seed0: finished before, skipped" in log
    assert "resuming at kimg 0.032" in (run / "study.log").read_text()
    assert _files(out / "lfw" / "ada-seed0") == untouched
    again = json.loads((run / "study-run.json").read_text())
    assert again["metrics"] == done["metrics"] and again["curve"] == done["curve"]
    from safetensors.torch import load
    a, b = load(final_net), load((run / "network-snapshot-000000.056.safetensors").read_bytes())
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_noise_floor_of_the_study_equals_an_independent_computation(spec_study):
    """The recorded noise floor is FID and KID between G_ema's images of latent seeds 0 and 1_000_003, recomputed
    here without the metric code the study uses: the images drawn as documented (z from a generator seeded with
    the seed, the synthesis noise from the global RNG seeded with it, quantised as StyleGAN2-ADA's metrics do), FID
    by StyleGAN2-ADA's own formula (scipy's sqrtm of the product of the covariances, not fakeclr's nuclear norm),
    KID written out."""
    import scipy.linalg

    from fakeclr.metrics import load_inception
    from fakeclr.network_file import load_networks
    root, _, _ = spec_study
    run = root / "out" / "lfw" / "ada-seed0"
    rec = json.loads((run / "study-run.json").read_text())
    G = load_networks(run / "network-snapshot-000000.056.safetensors", ("G_ema",))["G_ema"].eval()
    net = load_inception("cpu")

    def features(seed: int) -> np.ndarray:
        with torch.random.fork_rng(), torch.no_grad():
            z = torch.randn(16, G.z_dim, generator=torch.Generator().manual_seed(seed))
            torch.manual_seed(seed)
            img = (G(z, None) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
            return net.features(img).double().numpy()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # as the study's runs (--jobs 2 on 2 cores): FID of 16 images is ill-conditioned
    try:
        a, b = features(0), features(1_000_003)
    finally:
        torch.set_num_threads(threads)
    s_a, s_b = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
    with warnings.catch_warnings():       # 16 samples in 2048 dimensions: the covariances are singular, as they are
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)      # for StyleGAN2-ADA's FID of few images
        tr_sqrt = np.trace(scipy.linalg.sqrtm(s_a @ s_b)).real
    fid = np.square(a.mean(0) - b.mean(0)).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_sqrt
    assert rec["metrics"]["noise_fid16_full"] == pytest.approx(fid, rel=1e-5)
    assert rec["metrics"]["noise_kid16_full"] == pytest.approx(_kid_of_whole_sets(a, b), rel=1e-5, abs=1e-9)


def test_noise_floor_is_measured_on_the_first_seeds_only(capsys):
    study = st.select_runs(st.STUDIES["table2"], ["ada", "fakeclr"])
    flags = lambda n: [(j.run, j.seed, j.noise_floor)
                       for j in st.plan_study(study, ["lfw"], "/o", "cpu32", [3, 1, 5], noise_seeds=n)]
    assert flags(1) == [("ada", 3, True), ("fakeclr", 3, True), ("ada", 1, False), ("fakeclr", 1, False),
                        ("ada", 5, False), ("fakeclr", 5, False)]          # the first of --seeds as given
    assert [f for *_, f in flags(2)] == [True] * 4 + [False] * 2
    assert not any(f for *_, f in flags(0)) and all(f for *_, f in flags(9))
    argv = ["study", "table2", "--runs", "ada", "--data", "lfw", "--outdir", "/tmp/x", "--seeds", "0-2", "--dry-run"]
    assert main(argv) == 0
    assert [ln.endswith("; noise floor)") for ln in capsys.readouterr().out.splitlines()] == [True, False, False]
    assert main(argv + ["--noise-seeds", "-1"]) == 2
    assert "--noise-seeds must be 0 or more" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_without_its_noise_floor_gets_only_that_on_the_next_call(spec_study, tmp_path, capsys):
    """A run evaluated without the noise floor is finished for a plan that does not want one; a plan that does
    measures just the floor (training and the other metrics untouched) and equals the run measured at once."""
    root, spec, _ = spec_study
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    run = out / "lfw" / "ada-seed0"
    full = json.loads((run / "study-run.json").read_text())
    (run / "metric-noise_floor.jsonl").unlink()
    rec = st.evaluate_run(run, full["points"], full["num_gen"], with_noise_floor=False)
    assert not any(k.startswith("noise_") for k in rec["metrics"]) and not (run / "metric-noise_floor.jsonl").exists()
    assert rec["metrics"] == {k: v for k, v in full["metrics"].items() if not k.startswith("noise_")}
    (run / "study-run.json").write_text(json.dumps(dict(full, metrics=rec["metrics"])))
    argv = ["study", str(spec), "--runs", "ada", "--outdir", str(out), *ARGS]
    assert main(argv + ["--noise-seeds", "0"]) == 0
    assert "lfw/ada-seed0: finished before, skipped" in capsys.readouterr().out
    nets = {p.name: p.read_bytes() for p in run.glob("network-snapshot-*")}
    assert main(argv) == 0
    assert "finished before" not in capsys.readouterr().out
    again = json.loads((run / "study-run.json").read_text())
    assert again["metrics"] == full["metrics"]                    # the same floor: same seeds, same network
    assert {p.name: p.read_bytes() for p in run.glob("network-snapshot-*")} == nets
    assert len((run / "metric-fid16_full.jsonl").read_text().splitlines()) == 2   # FID not measured again


def test_noise_floor_formulas():
    """A shifted copy of a feature set: FID is the squared shift (same covariance); KID is the unbiased MMD^2 of
    the cubic polynomial kernel on the whole sets, computed here directly."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 6))
    shift = np.array([0.3, -0.2, 0.0, 0.1, 0.5, 0.0])
    b = a + shift
    floor = st.noise_floor(a, b)
    assert floor["fid"] == pytest.approx(float(shift @ shift), abs=1e-6)
    assert floor["kid"] == pytest.approx(_kid_of_whole_sets(a, b), rel=1e-9)
    assert st.noise_floor(a, a)["fid"] == pytest.approx(0.0, abs=1e-6)


def _entry(name, seed, fid, kid, data="d", status="done", floor=None):
    metrics = {"fid1k_full": fid, "kid1k_full": kid, "ppl_wend": 10.0 + seed}
    if floor is not None:
        metrics["noise_fid1k_full"] = floor
    return {"name": name, "seed": seed, "data": data, "status": status, "metrics": metrics, "sec_per_kimg": 2.0}


def test_sample_grid_is_the_lowest_seed_whose_grid_is_on_disk(tmp_path):
    runs = []
    for seed in (2, 0, 1):
        run_dir = tmp_path / f"a-seed{seed}"
        run_dir.mkdir()
        if seed > 0:                                               # seed 0 kept only its study-run.json
            (run_dir / "fakes.png").write_bytes(b"png")
        runs.append(dict(_entry("a", seed, 1.0, 0.1), run_dir=str(run_dir), fakes="fakes.png", kimg=40))
    runs.append(dict(_entry("b", 0, 1.0, 0.1), run_dir=str(tmp_path / "b"), fakes=None, kimg=40))
    [(caption, png)] = render._grids({"runs": runs, "runs_spec": {"a": {}, "b": {}}})
    assert caption == "d / a, seed 1, 40 kimg" and png == tmp_path / "a-seed1" / "fakes.png"


def test_summary_mean_and_sample_std_against_a_hand_computation():
    entries = [_entry("a", 0, 1.0, 0.1), _entry("a", 1, 2.0, 0.2), _entry("a", 2, 4.0, 0.6),
               _entry("a", 3, 100.0, 9.0, status="failed"), _entry("b", 0, 5.0, 0.5)]
    s = st.summarise(entries)
    fid = s["d"]["a"]["fid1k_full"]
    # mean (1 + 2 + 4) / 3 = 7/3; sample variance ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3
    assert fid["n"] == 3 and fid["mean"] == pytest.approx(7 / 3) and fid["std"] == pytest.approx(math.sqrt(7 / 3))
    assert s["d"]["a"]["kid1k_full"]["std"] == pytest.approx(math.sqrt(((0.1 - 0.3) ** 2 + 0.01 + 0.09) / 2))
    assert s["d"]["b"]["fid1k_full"] == {"mean": 5.0, "std": None, "n": 1, "values": [5.0]}


def test_claims_count_seeds_and_pair_them_by_seed():
    entries = [_entry("fakeclr", 0, 10.0, 0.1, floor=2.0), _entry("fakeclr", 1, 30.0, 0.3, floor=4.0),
               _entry("fakeclr", 2, 12.0, 0.1),
               _entry("ada", 0, 20.0, 0.2, floor=6.0), _entry("ada", 1, 25.0, 0.1, floor=8.0),
               _entry("ada", 2, 40.0, 0.05), _entry("ada", 3, 1.0, 0.0)]
    out = {(c["other"], c["metric"]): c for c in st.claims(entries, "fakeclr")}
    fid = out[("ada", "fid1k_full")]
    # Seeds 0-2 are in both (3 only in ada): 10 < 20 yes, 30 < 25 no, 12 < 40 yes; differences -10, +5, -28;
    # floors (2 + 4 + 6 + 8) / 4.
    assert (fid["wins"], fid["seeds"]) == (2, 3)
    assert fid["mean_diff"] == pytest.approx(-11.0) and fid["noise_floor"] == pytest.approx(5.0)
    assert "2 of 3 seed(s)" in fid["text"]
    kid = out[("ada", "kid1k_full")]
    assert (kid["wins"], kid["mean_diff"]) == (1, pytest.approx(0.05))   # 0.1<0.2; (-0.1 + 0.2 + 0.05) / 3
    assert out[("ada", "ppl_wend")]["wins"] == 0                    # equal PPL is not "lower"
    assert st.claims(entries, None) == [] and st.claims(entries, "nobody") == []


def test_plan_of_a_built_in_study():
    jobs = st.plan_study(st.STUDIES["table2"], ["lfw", "/x/100-shot-obama"], "/out", "cpu32", [0, 1], kimg=20)
    assert len(jobs) == 2 * 2 * 7
    assert jobs[7].label == "100-shot-obama/ada-seed0"
    assert [j.label for j in jobs[:7]] == [f"lfw/{n}-seed0" for n in st.STUDIES["table2"].runs][:7]
    j = next(j for j in jobs if j.run == "insgen" and j.seed == 1 and j.data_name == "100-shot-obama")
    assert j.points == [10.0, 20.0]
    a = j.overrides
    assert j.preset == "lfw-demo" and a["data.resolution"] == 32 and a["data.source"] == "/x/100-shot-obama"
    assert a["contrastive.method"] == "insgen" and a["augment.kind"] == "ada-linear"
    assert a["snapshot_kimg"] == 5 and a["seed"] == 1 and a["kimg"] == 20
    assert "augment.speed_kimg" not in a                          # ADA-linear does not read the scale's option
    ada = next(j for j in jobs if j.run == "ada").overrides
    assert ada["augment.speed_kimg"] == 4                         # ADA does, before the run's own options
    assert a["augment.target"] == 0.6                             # cpu32's base, not the demo preset's 0.3
    assert str(j.run_dir) == "/out/100-shot-obama/insgen-seed1"
    assert st.evaluation_points(0.05, 0.025) == [0.025, 0.05]
    assert st.evaluation_points(10, 4) == [4, 8, 10]
    assert st.run_overrides("r", {"pl_weight": 5, "mirror": False, "cl-on-g": True, "contrastive.lam": 0.2,
                                  "ada-kimg": "500"}) == {
        "loss.pl_weight": 5, "data.mirror": False, "contrastive.fake_on_g": True, "contrastive.lam": 0.2,
        "augment.speed_kimg": 500.0}


def test_a_run_option_overrides_the_scales(tmp_path):
    (tmp_path / "s.json").write_text('{"runs": {"slow": {"aug": "ada", "ada_kimg": 500}}}')
    [job] = st.plan_study(st.load_study(str(tmp_path / "s.json")), ["lfw"], tmp_path, "cpu32", [0])
    assert job.overrides["augment.speed_kimg"] == 500
    assert job.config().augment.speed_kimg == 500.0


def test_dry_run_lists_the_runs(capsys):
    assert main(["study", "ablation", "--data", "lfw", "--outdir", "/tmp/x", "--seeds", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(st.STUDIES["ablation"].runs)
    assert any("queue200-forgetting-none-seed0" in ln and "--queue-size 200 --forgetting none" in ln for ln in out)


def test_runs_flag_selects_a_subset_in_the_same_directories(capsys):
    argv = ["study", "table2", "--data", "lfw", "--outdir", "/tmp/x", "--seeds", "0", "--dry-run"]
    assert main(argv + ["--runs", "fakeclr, ada-linear"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in out] == ["lfw/ada-linear-seed0", "lfw/fakeclr-seed0"]   # the study's order
    sub = st.select_runs(st.STUDIES["table2"], ["ada", "insgen"])
    assert sub.subject is None and sub.paper == "table2" and list(sub.runs) == ["ada", "insgen"]
    assert st.select_runs(st.STUDIES["table2"], ["fakeclr"]).subject == "fakeclr"
    assert main(argv + ["--runs", "fakeclr,adaa"]) == 2
    err = capsys.readouterr().err
    assert "--runs: 'adaa' is not a run of study table2" in err and err.count("\n") == 1


@pytest.mark.parametrize("spec, message", [
    ("nope", "neither a built-in study"),
    ("{not json", "not valid JSON"),
    ('{"runs": {"a": {"kimg": 3}}}', "sets --kimg, which the study sets"),
    ('{"runs": {"a": {"data.source": "x"}}}', "sets data.source, which the study sets"),
    ('{"runs": {"a": {"method": "ada"}, "b": {"contrastive.lamda": 0.2}}}',
     "Run 'b' in {spec} sets 'contrastive.lamda', which is neither a `fakeclr train` option nor a config field"),
    ('{"runs": {"a": {"ada_kimg": "fast"}}}', "sets --ada-kimg to 'fast', which is not a float"),
    ('{"runs": {"a b": {}}}', "must be letters"),
    ('{"runs": {"a": {}}, "subject": "z"}', "subject 'z'"),
    ("[1, 2]", "table of runs"),
])
def test_bad_specs_get_one_sentence(spec, message, tmp_path, capsys):
    if spec != "nope":
        (tmp_path / "s.json").write_text(spec)
        spec = str(tmp_path / "s.json")
    assert main(["study", spec, "--data", "lfw", "--outdir", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message.format(spec=spec) in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_study_flags(tmp_path, capsys):
    assert main(["study", "table2", "--outdir", str(tmp_path), "--dry-run"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["study", "table2", "--data", "a/x", "--data", "b/x", "--outdir", str(tmp_path), "--dry-run"]) == 2
    assert "share the name 'x'" in capsys.readouterr().err
    assert main(["study", "table2", "--data", "lfw", "--outdir", str(tmp_path), "--num-gen", "1", "--dry-run"]) == 2
    assert not (tmp_path / "lfw").exists()


@pytest.mark.slow
def test_built_in_table2_at_tiny_scale(tmp_path, capsys):
    """The acceptance command: every method of Table 2 trains and is evaluated; again, nothing is retrained."""
    _inception_or_skip()
    args = ["study", "table2", "--scale", "tiny", "--data", "lfw", "--seeds", "0", "--kimg", "0.05",
            "--num-gen", "64", "--outdir", str(tmp_path), "--jobs", "2"]
    assert main(args) == 0
    record = json.loads((tmp_path / "study.json").read_text())
    assert [r["name"] for r in record["runs"]] == list(st.STUDIES["table2"].runs)
    for r in record["runs"]:
        assert r["status"] == "done" and r["metrics"]["fid64_full"] > 0 and r["metrics"]["kid64_full"] > -1
    capsys.readouterr()
    before = {r["name"]: _files(Path(r["run_dir"])) for r in record["runs"]}
    assert main(args) == 0
    assert capsys.readouterr().out.count("finished before, skipped") == 7
    assert {r["name"]: _files(Path(r["run_dir"])) for r in record["runs"]} == before   # nothing trained or measured again


def test_threads_are_divided_between_the_jobs(tmp_path, monkeypatch):
    """``--threads T --jobs J`` gives each child ``T // J`` threads (at least one); without it, the cores."""
    seen = []
    monkeypatch.setattr(runner, "run_job",
                        lambda job, device, threads, log, procs: seen.append(threads) or {"status": "failed"})
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 8)
    study = st.STUDIES["table2"]
    jobs = st.plan_study(study, ["lfw"], tmp_path, "tiny", [0], kimg=0.05)[:2]
    for threads, n_jobs, expected in [(None, 2, 4), (None, 1, 8), (6, 2, 3), (1, 2, 1), (3, 1, 3)]:
        seen.clear()
        st.run_study(study, jobs, tmp_path, n_jobs, threads=threads, stream=open(tmp_path / "log", "w"))
        assert seen == [expected, expected]
    with pytest.raises(UserError, match="--threads must be at least 1"):
        st.run_study(study, jobs, tmp_path, 1, threads=0)


def test_study_names_every_code_version_with_its_runs():
    a = {"fakeclr": "0.1.0", "commit": "a" * 40, "dirty": False, "torch": "2.13.0", "kimg": 0.0}
    b = {**a, "commit": "b" * 40, "kimg": 20.0}
    runs = [{"label": "d/x-seed0", "status": "done", "code": [a]},
            {"label": "d/y-seed0", "status": "done", "code": [a]},
            {"label": "d/z-seed0", "status": "failed", "code": None}]
    assert st.code_summary(runs) == "Trained with fakeclr 0.1.0 at aaaaaaa, torch 2.13.0."
    runs += [{"label": "d/x-seed1", "status": "done", "code": [a, b]},
             {"label": "d/y-seed1", "status": "done", "code": None}]
    assert st.code_summary(runs) == (
        "Trained with 3 code versions; compare runs only within one: "
        "fakeclr 0.1.0 at aaaaaaa, torch 2.13.0: d/x-seed0, d/y-seed0; "
        "fakeclr 0.1.0 at aaaaaaa, torch 2.13.0, then from kimg 20 fakeclr 0.1.0 at bbbbbbb, torch 2.13.0: d/x-seed1; "
        "an unrecorded version of fakeclr: d/y-seed1.")
    assert st.code_summary([{"label": "d/y-seed1", "status": "done", "code": None}]) == (
        "Trained with an unrecorded version of fakeclr.")
    # The same code on other kernels trains another network: named apart.
    on = {**a, "kernels": "cpu AVX2"}
    assert st.code_summary([runs[0], {"label": "d/x-seed2", "status": "done", "code": [on]}]) == (
        "Trained with 2 code versions; compare runs only within one: "
        "fakeclr 0.1.0 at aaaaaaa, torch 2.13.0: d/x-seed0; "
        "fakeclr 0.1.0 at aaaaaaa, torch 2.13.0, cpu AVX2 kernels: d/x-seed2.")


def test_a_run_that_fails_reports_its_sentence_in_the_output_and_study_json(tmp_path, capsys):
    """The child process resolves the run's configuration; ``--p`` with no augmentation and a negative R1 weight
    are refused there, and the sentence comes back in the run's failure record, not scraped from its log."""
    (tmp_path / "s.json").write_text('{"runs": {"nop": {"aug": "none", "p": 0.5}, "neg": {"loss.r1_gamma": -1}}}')
    argv = ["study", str(tmp_path / "s.json"), "--outdir", str(tmp_path / "o"), "--scale", "tiny", "--data", "lfw",
            "--seeds", "0", "--jobs", "2"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    expected = {"nop": "--p is not used by --aug none; drop it, or choose an augmentation that uses it",
                "neg": "--gamma must be non-negative (got -1.0)."}
    record = json.loads((tmp_path / "o" / "study.json").read_text())
    by = {r["name"]: r for r in record["runs"]}
    for name, sentence in expected.items():
        assert by[name]["status"] == "failed" and sentence in by[name]["error"]
        assert f"lfw/{name}-seed0: FAILED: {by[name]['error']}" in out
        run = json.loads((tmp_path / "o" / "lfw" / f"{name}-seed0" / "study-run.json").read_text())
        assert run["status"] == "failed" and run["error"] == by[name]["error"]
    assert "Not finished" in (tmp_path / "o" / "study.html").read_text()
    # A failure record is not "finished": the same command runs the run again.
    assert main(argv) == 1 and "finished before" not in capsys.readouterr().out


def test_dry_run_checks_every_run_as_train_dry_run_does(tmp_path, capsys):
    (tmp_path / "s.json").write_text('{"runs": {"ok": {"method": "ada"}, "nop": {"aug": "none", "p": 0.5}}}')
    argv = ["study", str(tmp_path / "s.json"), "--data", "lfw", "--outdir", str(tmp_path / "o"), "--dry-run"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("fakeclr: error: Run lfw/nop-seed0: --p is not used by --aug none")
    assert main(["train", "--data", "lfw", "--aug", "none", "--p", "0.5", "--dry-run"]) == 2   # the same refusal
    assert "--p is not used by --aug none" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_config_field_without_a_flag_reaches_the_runs_config(tmp_path):
    (tmp_path / "s.json").write_text('{"runs": {"r": {"method": "fakeclr", "contrastive.radius": 0.25, '
                                     '"loss.r1_interval": 8}}}')
    [job] = st.plan_study(st.load_study(str(tmp_path / "s.json")), ["lfw"], tmp_path, "tiny", [0])
    cfg = job.config()
    assert cfg.contrastive.radius == 0.25 and cfg.loss.r1_interval == 8 and cfg.contrastive.method == "fakeclr"
    assert "with contrastive.radius=0.25 loss.r1_interval=8" in job.command()


def _old_train_argv(job, scale, options):
    """The ``fakeclr train`` arguments the study gave a run before it trained through the library (written out
    here as it was: the scale's flags, those of the augmentation section only where the run's augmentation reads
    them, then the run's own options as flags, ``--no-X`` for False)."""
    sc = st.SCALES[scale]
    every = sc.eval_every
    args = ["--preset", sc.preset, "--data", job.data, "--outdir", str(job.run_dir), "--seed", str(job.seed),
            "--kimg", f"{job.kimg:g}", "--snap", f"{min(every, job.kimg, sc.snap):g}", "--no-tensorboard",
            "--resolution", str(sc.resolution)]
    own = {str(k).lstrip("-").replace("_", "-"): v for k, v in options.items()}
    aug = own.get("aug", "ada-linear")
    paths = {o.flag.lstrip("-"): o.path for o in config_options()}
    merged = {k: v for k, v in sc.options.items()
              if not paths[k].startswith("augment.") or paths[k].split(".")[1] in AUGMENTATIONS.get(aug).uses}
    merged.update(own)
    for key, value in merged.items():
        args += [f"--{key}"] if value is True else [f"--no-{key}"] if value is False else [f"--{key}", str(value)]
    return args


@pytest.mark.parametrize("scale", ["cpu32", "tiny"])
def test_every_table2_run_resolves_as_fakeclr_train_resolved_its_old_arguments(scale):
    """The guard of resuming a run directory trained through ``fakeclr train`` argv: the configuration the study
    resolves now equals the one ``fakeclr train`` resolved from the arguments the study gave it."""
    study = st.STUDIES["table2"]
    jobs = st.plan_study(study, ["lfw"], "/out", scale, [1])
    assert [j.run for j in jobs] == list(study.runs)
    for job in jobs:
        args = make_parser().parse_args(["train", *_old_train_argv(job, scale, study.runs[job.run])])
        old = build_train_config(args)
        assert job.config().to_json() == old.to_json(), job.run
        assert job.config() == old


def _record_of(curves: dict[tuple[str, int], list[tuple[float, float, float]]]) -> dict:
    """A study record of runs (name, seed) with their curves ``[(kimg, fid, kid)]``, code unrecorded."""
    runs = [dict(_entry(name, seed, curve[-1][1], curve[-1][2]), label=f"d/{name}-seed{seed}", run_dir="/nowhere",
                 kimg=curve[-1][0], fakes=None, code=None,
                 curve=[{"kimg": k, "fid16_full": f, "kid16_full": c} for k, f, c in curve])
            for (name, seed), curve in curves.items()]
    return {"study": "s", "description": "two methods", "subject": None, "paper": None,
            "runs_spec": {"b": {}, "a": {}}, "runs": runs, "summary": st.summarise(runs), "claims": [],
            "compute_s": 0.0, "written": "2026-01-01 00:00:00"}


def test_a_study_with_one_evaluation_point_shows_each_seed_side_by_side(tmp_path):
    one = _record_of({("a", 0): [(40, 10.0, 0.015)], ("a", 1): [(40, 12.0, 0.02)], ("b", 1): [(40, 30.5, 0.1)]})
    files = st.write_study(one, tmp_path / "one")
    md, html = files["md"].read_text(), files["html"].read_text()
    assert "## FID of each seed" in md and "FID vs kimg" not in md + html
    assert (tmp_path / "one" / "study-files" / "fid_per_seed.png").stat().st_size > 1000
    assert "| run | seed 0 | seed 1 |" in md                          # the spec's order: b before a
    assert md.index("| b | – | 30.5 / 10 |") < md.index("| a | 10 / 1.5 | 12 / 2 |")
    assert "<td>30.5 / 10</td>" in html
    for text in (md, html):
        assert "Trained with an unrecorded version of fakeclr." in text and "Trained with unrecorded" not in text
    two = _record_of({("a", 0): [(20, 15.0, 0.03), (40, 10.0, 0.015)]})
    md = st.write_study(two, tmp_path / "two")["md"].read_text()
    assert "## FID vs kimg" in md and "seed 0 |" not in md


def test_table4_plans_each_backbone_on_its_preset():
    """Table 4 at the CPU scale: 12 runs (BigGAN conditional only), the BigGAN ones on biggan-cpu, the StyleGAN2
    ones on cifar-cpu; the settings set --cond and a 20 % subset; every run resolves."""
    study = st.STUDIES["table4"]
    assert len(study.runs) == 12
    jobs = st.plan_study(study, ["lfw"], "/out", "cifar-cpu", [0])
    by = {j.run: j for j in jobs}
    assert by["biggan-fakeclr-cond-20"].preset == "biggan-cpu" and by["stylegan2-insgen-uncond-full"].preset == "cifar-cpu"
    a = by["biggan-fakeclr-cond-20"].overrides
    assert (a["network.backbone"], a["augment.kind"], a["contrastive.method"]) == ("biggan", "apa", "fakeclr")
    assert a["data.use_labels"] is True and a["data.subset"] == 0.2 and a["kimg"] == 102.4
    assert "data.subset" not in by["stylegan2-fakeclr-uncond-full"].overrides
    assert "data.use_labels" not in by["stylegan2-fakeclr-uncond-full"].overrides
    assert by["stylegan2-fakeclr-cond-full"].points == [51.2, 102.4]
    assert a["augment.speed_kimg"] == 10                          # APA reads the scale's --ada-kimg
    st.check_jobs(jobs)
    cfg = by["biggan-apa-cond-full"].config()
    assert (cfg.network.backbone, cfg.network.width, cfg.d_steps, cfg.batch) == ("biggan", 16, 4, 16)
    assert ("biggan-fakeclr-cond-20", "biggan-apa-cond-20") in study.comparisons
    assert ("stylegan2-fakeclr-uncond-full", "stylegan2-insgen-uncond-full") in study.comparisons
    assert len(study.comparisons) == 6


def test_claims_of_given_comparisons_pair_only_those_runs():
    entries = [_entry("a-fakeclr", 0, 10.0, 0.1), _entry("a-apa", 0, 12.0, 0.2), _entry("b-fakeclr", 0, 9.0, 0.1),
               _entry("b-insgen", 0, 8.0, 0.05)]
    out = st.claims(entries, None, (("a-fakeclr", "a-apa"), ("b-fakeclr", "b-insgen"), ("c-fakeclr", "c-x")))
    assert {(c["subject"], c["other"]) for c in out} == {("a-fakeclr", "a-apa"), ("b-fakeclr", "b-insgen")}
    fid = {(c["subject"], c["metric"]): c["wins"] for c in out}
    assert fid[("a-fakeclr", "fid1k_full")] == 1 and fid[("b-fakeclr", "fid1k_full")] == 0


@pytest.mark.slow
def test_a_study_with_a_reference_set_measures_fid10k_as_the_metrics_command_does(tmp_path, capsys):
    """--ref: the study's FID is DiffAugment's fid10k against the reference images (here 24 LFW faces), the same
    number `fakeclr metrics --metrics fid10k --ref` gives for the final snapshot; a BigGAN run has no PPL."""
    _inception_or_skip()
    ref = tmp_path / "ref.zip"
    assert main(["dataset", "lfw", str(ref), "--resolution", "32", "--channels", "3", "--subset", "24",
                 "--seed", "5"]) == 0
    assert main(["study", "table4", "--outdir", str(tmp_path / "x"), "--scale", "cifar-cpu", "--data", "lfw",
                 "--runs", "biggan-apa-cond-full", "--ref", str(ref), "--dry-run"]) != 0
    assert "3 channel(s) but the network makes 32x32 with 1" in capsys.readouterr().err
    assert main(["dataset", "lfw", str(ref), "--resolution", "32", "--channels", "1", "--subset", "24",
                 "--seed", "5", "--force"]) == 0
    spec = tmp_path / "bg.toml"
    spec.write_text('[runs.bg]\nbackbone = "biggan"\naug = "diffaugment"\n"network.width" = 2\n')
    out = tmp_path / "out"
    assert main(["study", str(spec), "--outdir", str(out), "--scale", "cifar-cpu", "--data", "lfw", "--seeds", "0",
                 "--kimg", "0.064", "--eval-every", "0.064", "--num-gen", "20", "--noise-seeds", "0",
                 "--ref", str(ref)]) == 0
    record = json.loads((out / "study.json").read_text())
    (run,) = record["runs"]
    assert set(run["metrics"]) == {"fid20"} and run["curve"][0]["kimg"] == 0.064
    snapshot = Path(run["run_dir"]) / "network-snapshot-000000.064.safetensors"
    capsys.readouterr()
    assert main(["metrics", "--network", str(snapshot), "--metrics", "fid10k", "--ref", str(ref),
                 "--num-gen", "20"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["results"]["fid20"] == pytest.approx(run["metrics"]["fid20"], rel=1e-6)
    assert main(["study", str(spec), "--outdir", str(out), "--scale", "cifar-cpu", "--data", "lfw",
                 "--ref", str(tmp_path / "missing.zip"), "--dry-run"]) != 0
    assert "--ref" in capsys.readouterr().err


def _processes_of(run_dir: Path) -> list[int]:
    """The pids whose command line names ``run_dir`` (the study's job processes of that run)."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and str(run_dir) in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                pids.append(int(d.name))
        except OSError:
            pass
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the job processes in /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_study_stops_its_running_job_with_its_state_saved_and_starts_no_other(tmp_path, sig):
    """``kill`` (or Ctrl-C) on ``fakeclr study`` reaches its job: the training saves a state and stops, no other
    run starts, no job process is left behind, and the study exits with 128 + the signal number."""
    (tmp_path / "s.json").write_text('{"runs": {"a": {"method": "ada"}, "b": {"method": "ada"}}}')
    out = tmp_path / "o"
    first, second = out / "lfw" / "a-seed0", out / "lfw" / "b-seed0"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    argv = ["study", str(tmp_path / "s.json"), "--outdir", str(out), "--scale", "tiny", "--data", "lfw", "--seeds",
            "0", "--kimg", "2", "--jobs", "1", "--noise-seeds", "0", "--threads", "1"]
    study = subprocess.Popen([sys.executable, "-m", "fakeclr", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.time() + 300
        while not (first / "stats.jsonl").is_file() and study.poll() is None and time.time() < deadline:
            time.sleep(0.5)                   # the first tick of run a: it is training
        assert study.poll() is None, study.stdout.read()
        study.send_signal(sig)
        log, _ = study.communicate(timeout=300)
    finally:
        leftover = _processes_of(first)
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
        if study.poll() is None:
            study.kill()
    assert leftover == [], "a job process outlived the study"
    name = signal.Signals(sig).name
    assert study.returncode == 128 + sig, log
    assert f"Study s stopped by {name}: 0 of 2 run(s) finished; lfw/a-seed0 saved their progress." in log
    job_log = (first / "study.log").read_text()
    assert "Stopped by SIGTERM at kimg" in job_log
    kimg = float(job_log.split("Stopped by SIGTERM at kimg ")[1].split(";")[0])
    assert 0 < kimg < 2 and list(first.glob("training-state-*"))
    assert not (second / "study.log").exists()          # the other run never started
    record = json.loads((out / "study.json").read_text())
    assert {r["name"]: r["status"] for r in record["runs"]} == {"a": "stopped", "b": "pending"}
