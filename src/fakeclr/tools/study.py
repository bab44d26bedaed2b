"""Studies: the paper's comparisons as one resumable command (FakeCLR supplementary Tables 2, 3, 5, ablations).

A study is a set of named runs (name -> ``fakeclr train`` options), trained on one or more data sets for one or
more seeds at one scale, then evaluated the same way:

``DIR/<data>/<run>-seed<k>/``
    an ordinary run directory (``fakeclr train`` writes it; ``fakeclr report`` reads it), plus
    ``metric-<name>.jsonl`` lines of the study's evaluation at every evaluation point and
    ``study-run.json`` once the run is trained *and* evaluated (its presence means "finished").
``DIR/study.json``, ``DIR/study.md``, ``DIR/study.html``
    every run's final metrics, mean ± std over seeds per run name and data set, the paper's numbers for the same
    comparison, the noise floor, one line per claim, and the code that trained the runs (each run directory's
    ``code.jsonl``; study.md names every version with its runs when there are several, since the same seed and
    options train another network under other code).

Calling the same study again skips finished runs and continues unfinished ones from their newest training state
(``fakeclr train`` resumes by itself), so a study can be stopped at any point and continued, here or on another
machine. Each run trains and is evaluated in its own process (``--jobs`` of them at once, the CPU threads divided
between them); a run that fails is reported and the others go on.

Evaluation of one run (:func:`evaluate_run`), on ``G_ema`` against the training images without x-flips:

* at every evaluation point (a network snapshot): FID and KID of ``num_gen`` generated images (their names carry
  the count, e.g. ``fid1k_full``);
* at the end, also: PPL in W at path ends (``ppl_wend``, StyleGAN2-ADA's protocol, ``num_gen`` samples; the
  uncropped ``ppl2_wend`` for generators under 32 px), the latent continuity score (``continuity_w``, the
  paper's Fig. 1 as a number), and, on the first ``noise_seeds`` seeds of each run name (one by default), the
  **noise floor**: FID and KID between two independent generated sets of the same network
  (``noise_fid1k_full``, ``noise_kid1k_full``). A difference between two methods smaller than the noise floor,
  or than the spread over seeds, says nothing. One seed's floor stands for its run name: over the 54 ``cpu32``
  runs of docs/results.md it lay between 13 and 28 FID1k (one method's seeds at most 14 apart), far below the
  seed spreads there (up to 95), and skipping it on the other seeds saves their second generated set.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import AUGMENTATIONS, options as config_options, preset_config
from ..errors import UserError
from ..train.checkpoint import tagged_kimg
from ..provenance import code_version, recorded_code, short

__all__ = ["Scale", "SCALES", "Study", "STUDIES", "load_study", "select_runs", "plan_study", "run_study", "evaluate_run",
           "summarise", "claims", "noise_floor", "write_study"]


# ---------------------------------------------------------------------------------------------------- scales
@dataclass(frozen=True)
class Scale:
    """How big every run of a study is: a ``fakeclr train`` preset and the study's defaults for it.

    ``kimg``: training length; ``eval_every``: kimg between evaluation points; ``snap``: kimg between snapshots
    (at most ``eval_every``), so a run stopped without warning loses at most that much; ``num_gen``:
    generated images per FID/KID (and PPL samples);
    ``continuity_paths``: interpolation paths of the continuity score; ``options``: ``fakeclr train`` options
    of every run at this scale (a run's own options come after them and win).
    """
    preset: str
    resolution: int | None
    kimg: float
    eval_every: float
    num_gen: int
    continuity_paths: int
    snap: float
    options: dict[str, Any] = field(default_factory=dict)


SCALES: dict[str, Scale] = {
    # Every code path in seconds (tests): 16 px, a few iterations, final evaluation only.
    "tiny": Scale("tiny", 16, kimg=0.05, eval_every=0.05, num_gen=64, continuity_paths=8, snap=0.025),
    # 32 px with the lfw-demo network (channels 64..32, batch 16, ADA-linear, mirror): about 30-40 sec/kimg per
    # run with one thread each on this 2-core machine (docs/results.md).
    # An adaptive p (ADA, APA) moves by at most batch * interval / (ada_kimg * 1000) per update: with
    # StyleGAN2-ADA's ada_kimg = 500, p could not pass 0.08 in a 40-kimg run. 4 kimg lets it cross [0, 1] in a
    # tenth of the run, as 500 kimg does in a few-thousand-kimg run (the ADA-linear schedule scales by itself).
    # The target stays FakeCLR's 0.6 (the paper's setting, and the base every cpu32 result was measured on),
    # whatever the README demo's preset uses.
    "cpu32": Scale("lfw-demo", 32, kimg=40.0, eval_every=10.0, num_gen=1000, continuity_paths=50, snap=5.0,
                   options={"ada-kimg": 4, "target": 0.6}),
    # The paper's few-shot setting (256 px, batch 64): a GPU job.
    "paper256": Scale("fewshot256", 256, kimg=10000.0, eval_every=500.0, num_gen=5000, continuity_paths=50,
                      snap=100.0),
}


# ---------------------------------------------------------------------------------------------------- studies
@dataclass(frozen=True)
class Study:
    """Runs by name (``fakeclr train`` options without the ``--``), the run the claims are about (``subject``),
    and the paper's numbers for the same comparison (:data:`PAPER`)."""
    name: str
    description: str
    runs: dict[str, dict[str, Any]]
    subject: str | None = None
    paper: str | None = None


# The contrastive methods run on ADA-linear, the augmentation of FakeCLR's released training command; `ada-linear`
# alone is in every comparison so that what the contrastive term adds can be read off directly.
_LINEAR = {"aug": "ada-linear"}
_RELEASED = {"forgetting": "official", "mixing": "independent", "reuse-forward": False, "positive-first": True,
             "head-momentum": "forward", "head-optimizer": "own"}
STUDIES: dict[str, Study] = {
    "table2": Study("table2", "supplementary Table 2: augmentation baselines, InsGen and FakeCLR", {
        "ada": {"method": "ada", "aug": "ada"},
        "ada-linear": {"method": "ada", **_LINEAR},
        "diffaugment": {"method": "ada", "aug": "diffaugment"},
        "apa": {"method": "ada", "aug": "apa"},
        "insgen": {"method": "insgen", **_LINEAR},
        "fakeclr": {"method": "fakeclr", **_LINEAR},
        # The released code's behaviour, every switch of docs/parity.md: m_i = 1 on every negative, the perturbed
        # view style-mixed independently, a second D forward for the queries drawn after the positive view, the
        # momentum head stepped at each of its forwards and trained by an Adam of its own with G's settings.
        "fakeclr-released": {"method": "fakeclr", **_RELEASED, **_LINEAR},
    }, subject="fakeclr", paper="table2"),
    "ablation": Study("ablation", "FakeCLR with each technique switched off (Sec. 4; supp. Eq. 1, Alg. 1)", {
        "fakeclr": {"method": "fakeclr", **_LINEAR},
        "fixed-perturbation": {"method": "fakeclr", "perturbation": "fixed", **_LINEAR},
        "forgetting-official": {"method": "fakeclr", "forgetting": "official", **_LINEAR},
        "forgetting-none": {"method": "fakeclr", "forgetting": "none", **_LINEAR},
        "mixing-independent": {"method": "fakeclr", "mixing": "independent", **_LINEAR},
        "queue-generated": {"method": "fakeclr", "queue-sizer": "generated", **_LINEAR},
        # A fixed queue of 200 keys spans several iterations, so the forgetting factor can act (Table 3's setting).
        "queue200": {"method": "fakeclr", "queue-size": 200, **_LINEAR},
        "queue200-forgetting-official": {"method": "fakeclr", "queue-size": 200, "forgetting": "official", **_LINEAR},
        "queue200-forgetting-none": {"method": "fakeclr", "queue-size": 200, "forgetting": "none", **_LINEAR},
    }, subject="fakeclr"),
    "table3": Study("table3", "supplementary Table 3: path-length weight 2 / 5 / 10 "
                              "(FakeCLR with a fixed queue of 200)", {
        **{f"insgen-pl{w}": {"method": "insgen", "pl-weight": w, **_LINEAR} for w in (2, 5, 10)},
        **{f"fakeclr-pl{w}": {"method": "fakeclr", "pl-weight": w, "queue-size": 200, **_LINEAR} for w in (2, 5, 10)},
    }, subject="fakeclr-pl2", paper="table3"),
    "table5": Study("table5", "supplementary Table 5: real images in the fake queue (Config A / B on the "
                              "instance-perturbation baseline)", {
        "instance-perturbation": {"method": "instance-perturbation", **_LINEAR},
        "fakeclr": {"method": "fakeclr", **_LINEAR},
        "config-a": {"method": "instance-perturbation", "real-in-fake-queue": "start", **_LINEAR},
        "config-b": {"method": "instance-perturbation", "real-in-fake-queue": "half", **_LINEAR},
    }, subject="instance-perturbation", paper="table5"),
}

# The paper's numbers (../shared/paper-tables.md): study -> [(column label, data-name filter, metric kind,
# {run name: value})]. Metric kinds: "kid" (the paper prints KID x 1e-2, compared with ours x 100), "ppl", "fid".
PAPER: dict[str, list[tuple[str, str | None, str, dict[str, float]]]] = {
    "table2": [
        ("paper KID×100, Obama 256 px", "obama", "kid", {"ada": 1.29, "apa": 1.12, "insgen": 0.605, "fakeclr": 0.296}),
        ("paper PPL, Obama 256 px", "obama", "ppl", {"ada": 843, "apa": 836, "insgen": 818, "fakeclr": 752}),
        ("paper FID, Obama 256 px (released code)", "obama", "fid", {"diffaugment": 46.87, "fakeclr": 26.95}),
        ("paper FID, Grumpy Cat 256 px (released code)", "grumpy", "fid", {"diffaugment": 27.08, "fakeclr": 19.56}),
    ],
    "table3": [
        ("paper FID, FFHQ-2K 256 px", None, "fid", {"insgen-pl2": 12.11, "insgen-pl5": 13.87, "insgen-pl10": 12.29,
                                                  "fakeclr-pl2": 10.40, "fakeclr-pl5": 10.78, "fakeclr-pl10": 11.32}),
        ("paper PPL, FFHQ-2K 256 px", None, "ppl", {"insgen-pl2": 199, "insgen-pl5": 183, "insgen-pl10": 180,
                                                  "fakeclr-pl2": 171, "fakeclr-pl5": 160, "fakeclr-pl10": 145}),
    ],
    "table5": [
        ("paper FID, FFHQ-2K 256 px", None, "fid", {"instance-perturbation": 11.29, "config-a": 12.46,
                                                  "config-b": 13.71}),
    ],
}

# Options a study sets itself for every run; a spec may not set them per run.
_RESERVED = {"data", "outdir", "seed", "kimg", "preset", "resolution", "snap", "resume", "dry-run", "metrics",
             "metrics-num-gen", "device"}


def load_study(name_or_spec: str) -> Study:
    """A built-in study by name, or a SPEC file (``.toml`` / ``.json``): ``{"runs": {name: {option: value}}}``
    (or the run table alone), optionally with ``subject`` (the run the claims are about) and ``description``."""
    if name_or_spec in STUDIES:
        return STUDIES[name_or_spec]
    path = Path(name_or_spec)
    if not path.is_file():
        raise UserError(f"'{name_or_spec}' is neither a built-in study ({', '.join(STUDIES)}) nor a spec file; "
                        "give one of those names or the path of a .toml/.json file.")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib
            spec = tomllib.loads(path.read_text())
        else:
            spec = json.loads(path.read_text())
    except ImportError:
        raise UserError(f"Reading {path} needs Python 3.11 (tomllib); write the spec as JSON instead.") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"Spec file {path} is not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'} "
                        f"({e}); fix it and run the study again.") from None
    if not isinstance(spec, dict):
        raise UserError(f"Spec file {path} must hold a table of runs: name -> {{option: value}}.")
    runs = spec.get("runs", spec) if isinstance(spec.get("runs"), dict) else spec
    runs = {k: v for k, v in runs.items() if k not in ("subject", "description")}
    if not runs or not all(isinstance(v, dict) for v in runs.values()):
        raise UserError(f"Spec file {path} must hold a table of runs: name -> {{option: value}} "
                        "(e.g. {\"runs\": {\"ada\": {\"method\": \"ada\"}}}).")
    for name, options in runs.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
            raise UserError(f"Run name '{name}' in {path} must be letters, digits and _.+- (it names a directory).")
        reserved = sorted(_flag(k) for k in options if _flag(k) in _RESERVED)
        if reserved:
            raise UserError(f"Run '{name}' in {path} sets --{', --'.join(reserved)}, which the study sets for every "
                            "run (use the study's --data, --seeds, --kimg, --scale instead).")
    subject = spec.get("subject")
    if subject is not None and subject not in runs:
        raise UserError(f"subject '{subject}' in {path} is not one of its runs ({', '.join(runs)}).")
    return Study(path.stem, str(spec.get("description", f"runs of {path.name}")), runs, subject=subject)


def select_runs(study: Study, names: list[str]) -> Study:
    """``study`` with only the runs ``names`` (in the study's order); the same run directories, so a subset run
    now is skipped when the whole study runs later. The subject stays only if it is among them."""
    unknown = [n for n in names if n not in study.runs]
    if unknown:
        raise UserError(f"--runs: '{unknown[0]}' is not a run of study {study.name} "
                        f"({', '.join(study.runs)}); give a comma-separated list of those names.")
    runs = {k: v for k, v in study.runs.items() if k in names}
    return dataclasses.replace(study, runs=runs, subject=study.subject if study.subject in runs else None)


def _flag(key: str) -> str:
    return str(key).strip().lstrip("-").replace("_", "-")


def option_args(options: dict[str, Any]) -> list[str]:
    """``{"pl_weight": 5, "mirror": False}`` -> ``["--pl-weight", "5", "--no-mirror"]`` (``fakeclr train`` flags)."""
    out = []
    for key, value in options.items():
        flag = "--" + _flag(key)
        if value is True:
            out.append(flag)
        elif value is False:
            out.append("--no-" + _flag(key))
        elif value is not None:
            out += [flag, str(value)]
    return out


# ---------------------------------------------------------------------------------------------------- plan
@dataclass
class Job:
    """One run of a study: where it lives and the ``fakeclr train`` arguments that make it."""
    run: str
    data: str
    data_name: str
    seed: int
    run_dir: Path
    train_args: list[str]
    kimg: float
    points: list[float]
    num_gen: int
    continuity_paths: int
    noise_floor: bool = True  # whether this seed's evaluation measures the noise floor

    @property
    def label(self) -> str:
        return f"{self.data_name}/{self.run}-seed{self.seed}"


def data_name(data: str) -> str:
    """The directory name a data set's runs go under: ``lfw`` or the folder/zip name without extension."""
    if data == "lfw":
        return "lfw"
    p = Path(data)
    return p.stem if p.suffix.lower() == ".zip" else p.name


def evaluation_points(kimg: float, every: float) -> list[float]:
    """kimg of the evaluation points: every ``every`` kimg, and the end. ``[kimg]`` alone if ``every >= kimg``."""
    n = int(math.floor(kimg / every + 1e-9))
    points = [round(every * i, 6) for i in range(1, n + 1)]
    if not points or abs(points[-1] - kimg) > 1e-9:
        points.append(kimg)
    return points


def plan_study(study: Study, datas: list[str], outdir: str | Path, scale: str = "cpu32",
               seeds: list[int] = (0, 1, 2), kimg: float | None = None, num_gen: int | None = None,
               eval_every: float | None = None, noise_seeds: int = 1) -> list[Job]:
    """Every run of ``study`` on every data set and seed, in the order they will run (seed-major, so that the
    first seed of every method finishes first). The noise floor is measured on the first ``noise_seeds`` of
    ``seeds`` (0: on none)."""
    if scale not in SCALES:
        raise UserError(f"Unknown scale '{scale}' (--scale); choose one of: {', '.join(SCALES)}.")
    if not datas:
        raise UserError("Give at least one data set: --data DIR (repeatable), or --data lfw.")
    sc = SCALES[scale]
    kimg = sc.kimg if kimg is None else kimg
    every = sc.eval_every if eval_every is None else eval_every
    num_gen = sc.num_gen if num_gen is None else num_gen
    if kimg <= 0 or every <= 0:
        raise UserError("--kimg and --eval-every must be positive.")
    if num_gen < 2:
        raise UserError("--num-gen must be at least 2.")
    if noise_seeds < 0:
        raise UserError("--noise-seeds must be 0 or more.")
    noisy = set(list(seeds)[:noise_seeds])
    names = [data_name(d) for d in datas]
    if len(set(names)) != len(names):
        raise UserError(f"Two --data sets share the name '{next(n for n in names if names.count(n) > 1)}'; "
                        "rename one (runs are stored under DIR/<data name>/).")
    outdir = Path(outdir)
    jobs = []
    for seed in seeds:
        for data, dname in zip(datas, names):
            source = data if data == "lfw" else str(Path(data).resolve())
            for run, options in study.runs.items():
                run_dir = outdir / dname / f"{run}-seed{seed}"
                args = ["--preset", sc.preset, "--data", source, "--outdir", str(run_dir), "--seed", str(seed),
                        "--kimg", f"{kimg:g}", "--snap", f"{min(every, kimg, sc.snap):g}", "--no-tensorboard"]
                if sc.resolution is not None:
                    args += ["--resolution", str(sc.resolution)]
                merged = {**_scale_options(sc, options), **{_flag(k): v for k, v in options.items()}}
                jobs.append(Job(run, source, dname, seed, run_dir, args + option_args(merged), kimg,
                                evaluation_points(kimg, every), num_gen, sc.continuity_paths, seed in noisy))
    return jobs


def _scale_options(sc: "Scale", options: dict[str, Any]) -> dict[str, Any]:
    """The scale's options (by flag name) that the run's augmentation reads: ``--ada-kimg`` goes to ADA and APA
    runs, not to ADA-linear or DiffAugment ones, which would refuse it."""
    aug = {_flag(k): v for k, v in options.items()}.get("aug", preset_config(sc.preset).augment.kind)
    uses = AUGMENTATIONS.get(aug).uses if aug in AUGMENTATIONS else ()
    paths = {o.flag.lstrip("-"): o.path for o in config_options()}
    out = {}
    for key, value in sc.options.items():
        path = paths.get(_flag(key), "")
        if not path.startswith("augment.") or path.partition(".")[2] in uses:
            out[_flag(key)] = value
    return out


# ---------------------------------------------------------------------------------------------------- running
def _finished(job: Job) -> dict[str, Any] | None:
    """The run's ``study-run.json`` if it is finished with this plan (same kimg, points and sample count, and the
    noise floor where the plan wants it)."""
    path = job.run_dir / "study-run.json"
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except ValueError:
        return None
    same = (rec.get("status") == "done" and abs(float(rec.get("kimg", -1)) - job.kimg) < 1e-9
            and rec.get("num_gen") == job.num_gen and rec.get("points") == job.points)
    if job.noise_floor and not any(k.startswith("noise_") for k in rec.get("metrics", {})):
        same = False
    return rec if same else None


def _run_job(job: Job, device: str, threads: int, log) -> dict[str, Any]:
    """Train (or continue) and evaluate one unfinished run in a child process; its study-run.json, or a failure
    record."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    (job.run_dir / "study-job.json").write_text(json.dumps(dict(dataclasses.asdict(job), run_dir=str(job.run_dir),
                                                                device=device), indent=1) + "\n")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.time()
    log(f"{job.label}: training and evaluating (log: {job.run_dir / 'study.log'})")
    with open(job.run_dir / "study.log", "a") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} fakeclr study, {threads} thread(s)\n")
        out.flush()
        proc = subprocess.run([sys.executable, "-m", "fakeclr.tools.study", str(job.run_dir / "study-job.json")],
                              stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    rec = _finished(job)
    if proc.returncode == 0 and rec is not None:
        log(f"{job.label}: done in {time.time() - start:.0f} s")
        return rec
    reason = _last_error(job.run_dir / "study.log") or f"exit code {proc.returncode}"
    log(f"{job.label}: FAILED ({reason})")
    return {"status": "failed", "error": reason, "exit_code": proc.returncode}


def _last_error(log_path: Path) -> str | None:
    """What the child's last attempt (after the last ``====`` line of its log) said went wrong: the CLI's one
    sentence (``fakeclr: error: ...``), else an exception line, else its last line."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    starts = [i for i, ln in enumerate(lines) if ln.startswith("==== ")]
    lines = lines[starts[-1] + 1:] if starts else lines
    for test in (lambda ln: ln.startswith("fakeclr: error:") and not ln.startswith("fakeclr: error: training "),
                 lambda ln: re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt)\b", ln) is not None,
                 lambda ln: True):
        found = [ln for ln in lines if test(ln)]
        if found:
            return found[-1]
    return None


def run_study(study: Study, jobs: list[Job], outdir: str | Path, n_jobs: int = 1, device: str = "cpu",
              stream=None, threads: int | None = None) -> dict[str, Any]:
    """Run (or continue) every job, ``n_jobs`` at a time, then write study.json/.md/.html; the study record.

    ``threads`` CPU threads in all (default: every core) are divided between the ``n_jobs`` runs, at least one
    each; fewer leave cores to other work on the machine.
    """
    stream = sys.stdout if stream is None else stream
    if n_jobs < 1:
        raise UserError("--jobs must be at least 1.")
    if threads is not None and threads < 1:
        raise UserError("--threads must be at least 1.")
    threads = max(1, (threads or os.cpu_count() or 1) // n_jobs)
    lock = threading.Lock()
    total = len(jobs)
    counter = iter(range(1, total + 1))

    def log(msg: str) -> None:
        with lock:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=stream, flush=True)

    results: list[dict[str, Any]] = [{"status": "pending"} for _ in jobs]

    def work(index: int) -> None:
        with lock:
            k = next(counter)
        skipped = _finished(jobs[index])
        results[index] = skipped or _run_job(jobs[index], device, threads, lambda m: log(f"({k}/{total}) {m}"))
        if skipped:
            log(f"({k}/{total}) {jobs[index].label}: finished before, skipped")
            return
        with lock:  # the study files are rewritten as runs finish, so a long study can be read while it runs
            write_study(study_record(study, jobs, results), outdir)

    print(f"Study {study.name}: {total} run(s) in {outdir}, {n_jobs} at a time with {threads} thread(s) each.",
          file=stream, flush=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=n_jobs) as pool:
        for future in [pool.submit(work, i) for i in range(total)]:
            future.result()
    record = study_record(study, jobs, results)
    files = write_study(record, outdir)
    failed = [r for r in record["runs"] if r["status"] != "done"]
    print(f"Study {study.name}: {total - len(failed)} of {total} run(s) finished"
          f"{'; failed: ' + ', '.join(r['label'] for r in failed) if failed else ''}. "
          f"Results: {files['json']}, {files['md']}, {files['html']}", file=stream, flush=True)
    return record


# ---------------------------------------------------------------------------------------------------- the child
def _child(job_file: str) -> int:
    """Child process: ``fakeclr train`` the job's run (continuing it if stopped), then :func:`evaluate_run`."""
    job = json.loads(Path(job_file).read_text())
    run_dir = Path(job["run_dir"])
    code = subprocess.run([sys.executable, "-m", "fakeclr", "train", *job["train_args"], "--device", job["device"]],
                          stdin=subprocess.DEVNULL).returncode
    if code != 0:
        print(f"fakeclr study: error: training {run_dir} ended with exit code {code} (see above).", flush=True)
        return code
    try:
        rec = evaluate_run(run_dir, job["points"], job["num_gen"], job["continuity_paths"], device=job["device"],
                           with_noise_floor=job.get("noise_floor", True))
    except UserError as e:
        print(f"fakeclr study: error: evaluating {run_dir}: {e}", flush=True)
        return 2
    rec.update(kimg=job["kimg"], points=job["points"], num_gen=job["num_gen"], run=job["run"], seed=job["seed"],
               data=job["data"])
    _write_text(run_dir / "study-run.json", json.dumps(rec, indent=1) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------------- evaluation
EVAL_SEED = 0           # the generated set every run is measured with (the same latents for every run)
NOISE_SEED = 1_000_003  # the second, independent generated set of the noise floor


def snapshots(run_dir: Path) -> list[tuple[float, Path]]:
    """``[(kimg, network file)]`` of a run directory, by kimg."""
    out = [(k, p) for p in Path(run_dir).iterdir()
           if p.suffix == ".safetensors" and (k := tagged_kimg(p.name, "network-snapshot-")) is not None]
    return sorted(out)


def _snapshot_at(snaps: list[tuple[float, Path]], kimg: float) -> tuple[float, Path]:
    """The first snapshot at or after ``kimg`` (the loop writes one when a batch crosses the boundary)."""
    for k, p in snaps:
        if k >= kimg - 1e-6:
            return k, p
    raise UserError(f"No network snapshot at or after kimg {kimg:g} in {snaps[-1][1].parent if snaps else '?'}; "
                    "the run did not reach it.")


def _recorded(run_dir: Path) -> tuple[dict[tuple[str, str], dict[str, float]], float]:
    """Study results already in ``metric-*.jsonl``: ``{(snapshot file, metric): results}``, and the seconds
    they took to compute in all."""
    out, seconds = {}, 0.0
    for path in Path(run_dir).glob("metric-*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("study") and rec.get("snapshot"):
                out[(rec["snapshot"], rec["metric"])] = rec["results"]
                seconds += float(rec.get("total_time") or 0.0)
    return out, seconds


def noise_floor(gen_a, gen_b, seed: int = 0) -> dict[str, float]:
    """FID and KID between two generated feature sets ``[N, D]`` of the same network: what two samples of one
    generator differ by, and so the smallest difference between two networks these metrics can show."""
    from ..metrics.fid import fid_from_features
    from ..metrics.kid import kernel_inception_distance
    return {"fid": fid_from_features(gen_a, gen_b), "kid": kernel_inception_distance(gen_a, gen_b, seed=seed)}


def evaluate_run(run_dir: str | Path, points: list[float], num_gen: int, continuity_paths: int = 50,
                 device: str = "cpu", with_noise_floor: bool = True) -> dict[str, Any]:
    """Evaluate a trained run at ``points`` (kimg): FID/KID at each, and PPL, continuity and (``with_noise_floor``)
    the noise floor at the last. Results are appended to ``metric-<name>.jsonl`` (marked ``"study": true``) as they are computed, so
    an interrupted evaluation continues where it stopped and ``fakeclr report`` plots them.

    Returns ``{"status": "done", "metrics": {key: value} at the end, "curve": [{"kimg", fid, kid}], ...}``.
    """
    from ..metrics.inputs import load_generator, training_dataset
    from ..metrics.ppl import compared_size
    from ..metrics.registry import METRICS, MetricContext, MetricResult, append_metric_jsonl, calc_metric, metric_label
    from .report import load_run
    run_dir = Path(run_dir)
    snaps = snapshots(run_dir)
    if not snaps:
        raise UserError(f"{run_dir} holds no network snapshot; train the run first.")
    done, _ = _recorded(run_dir)
    fid_l, kid_l = metric_label("fid5k_full", num_gen), metric_label("kid5k_full", num_gen)
    dataset, curve, final = None, [], {}

    def record(res: MetricResult, snapshot: Path, kimg: float) -> None:
        append_metric_jsonl(run_dir, res, snapshot=snapshot.name, kimg=kimg, study=True)
        done[(snapshot.name, res.metric)] = res.results
        print(f"  kimg {kimg:g} {res.metric}: " + " ".join(f"{k} {v:.4g}" for k, v in res.results.items())
              + f" ({res.seconds:.0f} s)", flush=True)

    for i, point in enumerate(points):
        kimg, snapshot = _snapshot_at(snaps, point)
        last = i == len(points) - 1
        G = load_generator(snapshot, "G_ema", device)
        dataset = dataset or training_dataset(snapshot, None, G)
        ctx = MetricContext(G, dataset, device, seed=EVAL_SEED, num_gen=num_gen, progress=False)
        wanted = [("fid5k_full", ctx), ("kid5k_full", ctx)]
        if last:
            wanted.append(("ppl_wend" if compared_size(G.img_resolution, True) >= 16 else "ppl2_wend", ctx))
            if continuity_paths:
                wanted.append(("continuity_w", MetricContext(G, dataset, device, seed=EVAL_SEED,
                                                             num_gen=continuity_paths, progress=False)))
        results: dict[str, float] = {}
        for name, c in wanted:
            label = metric_label(name, c.count(METRICS[name].default_num))
            if (snapshot.name, label) not in done:
                record(calc_metric(name, c), snapshot, kimg)
            results.update(done[(snapshot.name, label)])
        if last and with_noise_floor:
            if (snapshot.name, "noise_floor") not in done:
                start = time.time()
                other = MetricContext(G, dataset, device, seed=NOISE_SEED, num_gen=num_gen, progress=False)
                floor = noise_floor(ctx.gen_features(num_gen), other.gen_features(num_gen), seed=EVAL_SEED)
                record(MetricResult("noise_floor", {f"noise_{fid_l}": floor["fid"], f"noise_{kid_l}": floor["kid"]},
                                    num_gen, time.time() - start), snapshot, kimg)
            results.update(done[(snapshot.name, "noise_floor")])
        if last:
            final = results
        curve.append({"kimg": kimg, fid_l: results[fid_l], kid_l: results[kid_l]})
    run = load_run(run_dir)
    return {"status": "done", "metrics": final, "curve": curve, "final_kimg": curve[-1]["kimg"],
            "sec_per_kimg": run.sec_per_kimg, "train_time_s": run.time_s, "eval_time_s": _recorded(run_dir)[1],
            "fakes": run.fakes.name if run.fakes else None,
            "code": recorded_code(run_dir), "eval_code": code_version()}


def _write_text(path: Path, text: str) -> None:
    from ..files import atomic_write
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


# ---------------------------------------------------------------------------------------------------- summaries
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


def claims(entries: list[dict[str, Any]], subject: str | None) -> list[dict[str, Any]]:
    """One claim per data set, other run and metric kind: "subject < other", tested seed by seed.

    Each claim: ``data``, ``subject``, ``other``, ``metric``, ``wins`` (seeds where the subject's value is lower),
    ``seeds`` (seeds both finished), ``mean_diff`` (mean over those seeds of subject - other), ``noise_floor``
    (mean of both runs' noise floor of that metric, where it has one) and ``text``.
    """
    done = [e for e in entries if e["status"] == "done"]
    if subject is None or not any(e["name"] == subject for e in done):
        return []
    out = []
    for data in sorted({e["data"] for e in done}):
        mine = {e["seed"]: e for e in done if e["data"] == data and e["name"] == subject}
        others = sorted({e["name"] for e in done if e["data"] == data and e["name"] != subject})
        for other in others:
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
        entries.append({"name": job.run, "label": job.label, "method": _method(study.runs[job.run]),
                        "options": study.runs[job.run], "data": job.data_name, "data_source": job.data,
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
            "claims": claims(entries, study.subject),
            "written": time.strftime("%Y-%m-%d %H:%M:%S")}


def code_summary(entries: list[dict[str, Any]]) -> str:
    """One sentence on the code that trained the finished runs (:mod:`fakeclr.provenance`): its version, or each
    version with the runs it trained, since the same seed and options train another network under other code."""
    by: dict[str, list[str]] = {}
    for entry in entries:
        if entry["status"] != "done":
            continue
        versions = entry.get("code") or [None]
        key = short(versions[0]) + "".join(f", then from kimg {v.get('kimg'):g} {short(v)}" for v in versions[1:])
        by.setdefault(key, []).append(entry["label"])
    if len(by) <= 1:
        return f"Trained with {next(iter(by))}." if by else ""
    return (f"Trained with {len(by)} code versions; compare runs only within one: "
            + "; ".join(f"{key}: {', '.join(labels)}" for key, labels in by.items()) + ".")


def _method(options: dict[str, Any]) -> str:
    """The ``--method`` and ``--aug`` a run's options name (the preset's when absent)."""
    opts = {_flag(k): v for k, v in options.items()}
    return f"{opts.get('method', 'preset')}+{opts.get('aug', 'preset')}"


# ---------------------------------------------------------------------------------------------------- writing
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


def _curve_plot(record: dict[str, Any], path: Path) -> Path | None:
    """FID vs kimg per data set: mean over seeds per run name, the band from the lowest to the highest seed."""
    done = [e for e in record["runs"] if e["status"] == "done" and e["curve"]]
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
    from .report import _CSS, _data_uri, _html_table, _md_table
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    files = outdir / "study-files"
    _write_text(outdir / "study.json", json.dumps(record, indent=1) + "\n")
    tables = _tables(record)
    plot = _curve_plot(record, files / "fid_vs_kimg.png")
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
             f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>",
             f"<p class='muted'>{len(record['runs'])} run(s), written {e(record['written'])} by "
             "<code>fakeclr study</code></p>", f"<p>{e(note)}</p>"]
    hours = record.get("compute_s", 0.0) / 3600
    code = code_summary(record["runs"])
    parts += [f"<p>{e(code)}</p>"] if code else []
    md = [f"# {title}", "", f"{len(record['runs'])} run(s), written {record['written']} by `fakeclr study`; training "
          f"and evaluation of the finished runs took {hours:.1f} process-hours.", "", note, ""] + ([code, ""] if code else [])
    for data, header, rows in tables:
        parts += [f"<h2>{e(data)}</h2>", _html_table(header, rows)]
        md += [f"## {data}", "", _md_table(header, rows), ""]
    if record["claims"]:
        parts.append("<h2>Claims</h2><ul>" + "".join(f"<li>{e(c['text'])}</li>" for c in record["claims"]) + "</ul>")
        md += ["## Claims", ""] + [f"- {c['text']}" for c in record["claims"]] + [""]
    if failed:
        lines = [f"{f['label']}: {f['status']}{' (' + f['error'] + ')' if f.get('error') else ''}" for f in failed]
        parts.append("<h2>Not finished</h2><ul>" + "".join(f"<li>{e(t)}</li>" for t in lines) + "</ul>")
        md += ["## Not finished", ""] + [f"- {t}" for t in lines] + [""]
    if plot:
        parts.append(f"<h2>FID vs kimg</h2><img class='plot' alt='FID vs kimg' src='{_data_uri(plot)}'>")
        md += ["## FID vs kimg", "", f"![FID vs kimg](study-files/{plot.name})", ""]
    if grids:
        parts.append("<h2>Final samples</h2><div class='samples'>" + "".join(
            f"<figure><img alt='{e(c)}' src='{_data_uri(p)}'><figcaption>{e(c)}</figcaption></figure>"
            for c, p in grids)
            + "</div>")
        md += ["## Final samples", ""] + [f"![{c}](study-files/{p.name})  \n{c}\n" for c, p in grids]
    parts.append("</body></html>")
    _write_text(outdir / "study.html", "\n".join(parts))
    _write_text(outdir / "study.md", "\n".join(md) + "\n")
    return {"json": outdir / "study.json", "md": outdir / "study.md", "html": outdir / "study.html"}


if __name__ == "__main__":  # the child process of one run (see _run_job)
    raise SystemExit(_child(sys.argv[1]))
