"""Studies: the paper's comparisons as one resumable command (FakeCLR supplementary Tables 2, 3, 5, ablations).

A study is a set of named runs (name -> options: config fields by path or ``fakeclr train`` flag names), trained
on one or more data sets for one or more seeds at one scale, then evaluated the same way:

``DIR/<data>/<run>-seed<k>/``
    an ordinary run directory (trained by the library as ``fakeclr train`` would; ``fakeclr report`` reads it), plus
    ``metric-<name>.jsonl`` lines of the study's evaluation at every evaluation point and
    ``study-run.json`` once the run is trained *and* evaluated (``"status": "done"`` means "finished"; a run that
    failed holds ``"status": "failed"`` and the error's sentence).
``DIR/study.json``, ``DIR/study.md``, ``DIR/study.html``
    every run's final metrics, mean ± std over seeds per run name and data set, the paper's numbers for the same
    comparison, the noise floor, one line per claim, and the code that trained the runs (each run directory's
    ``code.jsonl``; study.md names every version with its runs when there are several, since the same seed and
    options train another network under other code).

Calling the same study again skips finished runs and continues unfinished ones from their newest training state
(the training loop resumes by itself), so a study can be stopped at any point and continued, here or on another
machine. Each run trains and is evaluated in its own process (``--jobs`` of them at once, the CPU threads divided
between them); a run that fails is reported and the others go on.

One job per module: :mod:`.specs` (scales, built-in studies, the paper's numbers, spec files), :mod:`.plan` (jobs),
:mod:`.runner` (processes, ``--jobs``), :mod:`.evaluate`, :mod:`.summary` (statistics, claims, noise floor),
:mod:`.render` (study.md, study.html).

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

from .evaluate import EVAL_SEED, NOISE_SEED, evaluate_run, snapshots
from .plan import Job, check_jobs, data_name, evaluation_points, plan_study
from .render import write_study
from .runner import StudyStopped, run_study
from .specs import (PAPER, SCALES, STUDIES, Scale, Study, load_study, option_path, run_init, run_overrides,
                    select_runs)
from .summary import claims, code_summary, mean_std, noise_floor, paper_columns, study_record, summarise

__all__ = ["Scale", "SCALES", "Study", "STUDIES", "PAPER", "load_study", "select_runs", "option_path",
           "run_overrides", "run_init", "Job", "plan_study", "check_jobs", "data_name", "evaluation_points",
           "run_study", "StudyStopped", "evaluate_run", "snapshots", "EVAL_SEED", "NOISE_SEED", "summarise", "claims",
           "noise_floor", "mean_std", "paper_columns", "study_record", "code_summary", "write_study"]
