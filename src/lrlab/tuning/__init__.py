"""`lrlab.tune`: the LR (or a schedule's peak LR) a tuned grid would choose, at a fifth of its
cost, chosen on the validation split (`lrlab.tuning.core` says how, and why).

- `lrlab.tuning.core`: `tune`, the method and its sources.
- `lrlab.tuning.template`: the schedule with its LR left free, at any LR and horizon.
- `lrlab.tuning.plan`: the rung plan (grid, budgets, counts, windows, bracket).
- `lrlab.tuning.choice`: a trial's score and the noise-robust choice among LRs.
- `lrlab.tuning.result`: `TuneResult`, `Rung`, `Trial`.
"""

from lrlab.tuning.choice import Choice, choose, choose_runs, objective
from lrlab.tuning.core import DEFAULT_BUDGET, minimum_lr, tune
from lrlab.tuning.result import GRID_RUNS, Rung, Trial, TuneResult
from lrlab.tuning.template import TUNABLE, LRTemplate, parse_template

__all__ = [
    "DEFAULT_BUDGET",
    "GRID_RUNS",
    "TUNABLE",
    "Choice",
    "LRTemplate",
    "Rung",
    "Trial",
    "TuneResult",
    "choose",
    "choose_runs",
    "minimum_lr",
    "objective",
    "parse_template",
    "tune",
]
