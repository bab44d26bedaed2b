"""Which code trained a run: the git commit and state of the package source, against git run independently, and
the kernels torch ran on."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from fakeclr import __version__
from fakeclr.provenance import code_version, kernels, record_start, recorded_code, short

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """A git repository holding a package ``src/pkg`` and, beside it, a file outside the package."""
    pkg = tmp_path / "repo" / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    (tmp_path / "repo" / "README").write_text("readme\n")
    _git(tmp_path / "repo", "init", "-q")
    _git(tmp_path / "repo", "add", ".")
    _git(tmp_path / "repo", "commit", "-qm", "one")
    return pkg


def test_commit_and_dirty_state_of_the_package_source(checkout):
    v = code_version(checkout)
    assert v == {"fakeclr": __version__, "commit": _git(checkout, "rev-parse", "HEAD"), "dirty": False,
                 "torch": torch.__version__}
    (checkout.parents[1] / "README").write_text("changed outside the package\n")
    (checkout / "new.py").write_text("untracked\n")
    assert code_version(checkout)["dirty"] is False          # only tracked files under the package count
    (checkout / "__init__.py").write_text("x = 2\n")
    assert code_version(checkout)["dirty"] is True
    _git(checkout, "commit", "-qam", "two")
    v2 = code_version(checkout)
    assert v2["dirty"] is False and v2["commit"] == _git(checkout, "rev-parse", "HEAD") != v["commit"]


def test_an_untracked_copy_inside_a_repository_has_no_commit(checkout):
    copy = checkout.parents[1] / "venv" / "site-packages" / "pkg"   # e.g. an installed copy in an ignored .venv
    shutil.copytree(checkout, copy)
    assert code_version(copy)["commit"] is None and code_version(copy)["dirty"] is None
    assert code_version(checkout.parents[3])["commit"] is None      # not a checkout at all


def test_code_log_keeps_each_version_once_with_where_it_started(checkout, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert recorded_code(run) == []
    first = record_start(run, 0.0, checkout)
    record_start(run, 2.0, checkout)                          # resumed under the same code
    (checkout / "__init__.py").write_text("x = 3\n")
    record_start(run, 4.0, checkout)                          # resumed after an edit
    lines = [json.loads(x) for x in (run / "code.jsonl").read_text().splitlines()]
    assert [x["kimg"] for x in lines] == [0.0, 2.0, 4.0]
    versions = recorded_code(run)
    assert [(v["kimg"], v["dirty"]) for v in versions] == [(0.0, False), (4.0, True)]
    assert versions[0]["commit"] == first["commit"]
    here = f"cpu {torch.backends.cpu.get_cpu_capability()}"
    assert first["kernels"] == versions[1]["kernels"] == here
    assert short(versions[1]) == (f"fakeclr {__version__} at {first['commit'][:7]} (+ uncommitted changes), "
                                  f"torch {torch.__version__}, {here} kernels")


def test_a_resume_on_other_kernels_is_another_version(checkout, tmp_path):
    """ATen's kernels round differently per instruction set (docs/results.md: other weights after 0.4 kimg), so a
    start under ATEN_CPU_CAPABILITY=default is recorded apart from one on this machine's best kernels."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "code.jsonl").write_text(json.dumps({"kimg": 0.0, **code_version(checkout)}) + "\n")  # before kernels
    record_start(run, 1.0, checkout)
    script = "import sys; from fakeclr.provenance import record_start; record_start(sys.argv[1], 2.0, sys.argv[2])"
    subprocess.run([sys.executable, "-c", script, str(run), str(checkout)], check=True,
                   env={**os.environ, "ATEN_CPU_CAPABILITY": "default"})
    here = kernels("cpu")
    assert here == f"cpu {torch.backends.cpu.get_cpu_capability()}"
    expected = [(0.0, None), (1.0, here)] + ([(2.0, "cpu DEFAULT")] if here != "cpu DEFAULT" else [])
    assert [(v["kimg"], v["kernels"]) for v in recorded_code(run)] == expected
    assert short(recorded_code(run)[0]).endswith(f"torch {torch.__version__}")     # an old line: no kernels named
