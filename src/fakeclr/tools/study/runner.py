"""Running a study: every unfinished run trained and evaluated in a process of its own (``--jobs`` of them at once,
the CPU threads divided between them), finished runs skipped, a failed run reported with its sentence while the
others go on, and the study's pages rewritten as runs finish.

The child process (``python -m fakeclr.tools.study JOB.json``, :func:`child`) reads the job as JSON (its preset,
``overrides`` and evaluation plan), resolves and trains the configuration with the library
(:func:`fakeclr.train.resolve.resolve`, :func:`fakeclr.train.loop.train`, which continues a run directory from its
newest training state), evaluates it, and writes ``study-run.json``: the results (``"status": "done"``), or
``{"status": "failed", "error": <the one-sentence error>}``. The parent reads that record; the child's output
goes to the run's ``study.log``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ...errors import UserError
from .plan import Job
from .render import write_study, write_text
from .specs import Study
from .summary import study_record

__all__ = ["run_study", "run_job", "child", "StudyStopped"]


class StudyStopped(Exception):
    """A signal stopped the study; the running jobs saved their states. ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class _Jobs:
    """The running job processes, and the stop: after SIGINT or SIGTERM to the study no job starts, and each running
    one gets SIGTERM, on which its training saves a state and stops (an evaluation stops too; the next call
    continues it from its metric lines). The handlers are the study's only while it runs, in the main thread."""

    def __init__(self):
        self.signum: int | None = None
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.RLock()    # re-entrant: a second signal may arrive inside the handler
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Jobs":
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: the caller's handlers stay
                pass
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    def _handle(self, signum, frame) -> None:
        with self._lock:
            self.signum = self.signum or signum
            for proc in self._procs:
                proc.send_signal(signal.SIGTERM)

    def start(self, args: list[str], **kwargs) -> subprocess.Popen | None:
        """The started process, or None once the study is stopping (checked and started under one lock, so a job
        that starts as the signal arrives is still stopped)."""
        with self._lock:
            if self.signum is not None:
                return None
            proc = subprocess.Popen(args, **kwargs)
            self._procs.add(proc)
            return proc

    def wait(self, proc: subprocess.Popen) -> int:
        code = proc.wait()
        with self._lock:
            self._procs.discard(proc)
        return code


def _record(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "study-run.json").read_text())
    except (OSError, ValueError):
        return None


def _finished(job: Job) -> dict[str, Any] | None:
    """The run's ``study-run.json`` if it is finished with this plan (same kimg, points and sample count, and the
    noise floor where the plan wants it)."""
    rec = _record(job.run_dir)
    if rec is None:
        return None
    same = (rec.get("status") == "done" and abs(float(rec.get("kimg", -1)) - job.kimg) < 1e-9
            and rec.get("num_gen") == job.num_gen and rec.get("points") == job.points
            and rec.get("ref") == job.ref)
    if job.noise_floor and not any(k.startswith("noise_") for k in rec.get("metrics", {})):
        same = False
    return rec if same else None


def run_job(job: Job, device: str, threads: int, log, procs: _Jobs | None = None) -> dict[str, Any]:
    """Train (or continue) and evaluate one unfinished run in a child process; its study-run.json, or a failure
    record ``{"status": "failed", "error": sentence}`` (``"stopped"`` when the study was stopped: ``procs``, the
    study's running jobs, passed the signal on)."""
    procs = procs or _Jobs()
    job.run_dir.mkdir(parents=True, exist_ok=True)
    attempt = uuid.uuid4().hex                 # tells this attempt's failure record from an older one
    spec = dict(dataclasses.asdict(job), run_dir=str(job.run_dir), device=device, attempt=attempt)
    write_text(job.run_dir / "study-job.json", json.dumps(spec, indent=1) + "\n")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.time()
    with open(job.run_dir / "study.log", "a") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} fakeclr study, {threads} thread(s)\n")
        out.flush()
        proc = procs.start([sys.executable, "-m", "fakeclr.tools.study", str(job.run_dir / "study-job.json")],
                           stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
        if proc is None:
            return {"status": "pending"}
        log(f"{job.label}: training and evaluating (log: {job.run_dir / 'study.log'})")
        procs.wait(proc)
    rec = _finished(job)
    if proc.returncode == 0 and rec is not None:
        log(f"{job.label}: done in {time.time() - start:.0f} s")
        return rec
    rec = _record(job.run_dir) or {}
    if rec.get("status") == "failed" and rec.get("attempt") == attempt:
        reason = rec["error"]
    else:                                      # a bug (its traceback is in the log) or a killed process
        reason = f"its process ended with exit code {proc.returncode}; see {job.run_dir / 'study.log'}."
    status = "stopped" if procs.signum is not None else "failed"
    log(f"{job.label}: {status.upper()}: {reason}")
    return {"status": status, "error": reason, "exit_code": proc.returncode}


def run_study(study: Study, jobs: list[Job], outdir: str | Path, n_jobs: int = 1, device: str = "cpu",
              stream=None, threads: int | None = None) -> dict[str, Any]:
    """Run (or continue) every job, ``n_jobs`` at a time, then write study.json/.md/.html; the study record.

    ``threads`` CPU threads in all (default: every core) are divided between the ``n_jobs`` runs, at least one
    each; fewer leave cores to other work on the machine. SIGINT or SIGTERM (Ctrl-C, ``kill``) stops every running
    job with its state saved, starts no other, writes the study files and raises :class:`StudyStopped`.
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
        if procs.signum is not None:
            return
        with lock:
            k = next(counter)
        skipped = _finished(jobs[index])
        results[index] = skipped or run_job(jobs[index], device, threads, lambda m: log(f"({k}/{total}) {m}"), procs)
        if skipped:
            log(f"({k}/{total}) {jobs[index].label}: finished before, skipped")
            return
        with lock:  # the study files are rewritten as runs finish, so a long study can be read while it runs
            write_study(study_record(study, jobs, results), outdir)

    print(f"Study {study.name}: {total} run(s) in {outdir}, {n_jobs} at a time with {threads} thread(s) each.",
          file=stream, flush=True)
    with _Jobs() as procs, concurrent.futures.ThreadPoolExecutor(max_workers=n_jobs) as pool:
        for future in [pool.submit(work, i) for i in range(total)]:
            future.result()
    record = study_record(study, jobs, results)
    files = write_study(record, outdir)
    if procs.signum is not None:
        name = signal.Signals(procs.signum).name
        stopped = [r["label"] for r in record["runs"] if r["status"] == "stopped"]
        raise StudyStopped(f"Study {study.name} stopped by {name}: "
                           f"{sum(r['status'] == 'done' for r in record['runs'])} of {total} run(s) finished"
                           f"{'; ' + ', '.join(stopped) + ' saved their progress' if stopped else ''}. "
                           "Run the same command to continue.", 128 + int(procs.signum))
    failed = [r for r in record["runs"] if r["status"] != "done"]
    print(f"Study {study.name}: {total - len(failed)} of {total} run(s) finished"
          f"{'; failed: ' + ', '.join(r['label'] for r in failed) if failed else ''}. "
          f"Results: {files['json']}, {files['md']}, {files['html']}", file=stream, flush=True)
    return record


def child(job_file: str) -> int:
    """The process of one run: resolve its configuration, train it (continuing it if stopped), evaluate it, and
    write ``study-run.json`` (the results, or the failure's sentence); the exit code."""
    from ... import dist
    from ...train.loop import TrainingStopped, train
    from .evaluate import evaluate_run
    job = json.loads(Path(job_file).read_text())
    run_dir = Path(job["run_dir"])
    plan = {k: job.get(k) for k in ("kimg", "points", "num_gen", "run", "seed", "data", "ref")}
    try:
        notes: list[str] = []
        cfg = Job(**{k: job.get(k) for k in ("run", "data", "data_name", "seed", "run_dir", "preset", "overrides",
                                             "kimg", "points", "num_gen", "continuity_paths", "noise_floor",
                                             "init", "ref")}).config(notes)
        for note in notes:
            print(f"fakeclr study: {note}", flush=True)
        try:
            train(cfg, run_dir, device=job["device"], tensorboard=False)
        finally:
            dist.shutdown()
        rec = evaluate_run(run_dir, job["points"], job["num_gen"], job["continuity_paths"], device=job["device"],
                           with_noise_floor=job.get("noise_floor", True), ref=job.get("ref"))
    except (UserError, TrainingStopped) as e:
        print(f"fakeclr study: error: {e}", flush=True)
        write_text(run_dir / "study-run.json", json.dumps(dict(plan, status="failed", error=str(e),
                                                               attempt=job.get("attempt")), indent=1) + "\n")
        return getattr(e, "exit_code", 2)
    rec.update(plan)
    write_text(run_dir / "study-run.json", json.dumps(rec, indent=1) + "\n")
    return 0
