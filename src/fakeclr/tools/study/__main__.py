"""``python -m fakeclr.tools.study JOB.json``: the process of one run of a study (:func:`.runner.child`)."""

import sys

from .runner import child

raise SystemExit(child(sys.argv[1]))
