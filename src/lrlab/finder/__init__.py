"""The LR range test: `find` (any PyTorch model, optimizer and data), `find_on_task` (an lrlab
task), its result `RangeTest`, and the suggestion rules it reads off the curve.

What is measured about its suggestions against a tuned grid is in docs/lr-finder.md.
"""

from lrlab.finder.core import (
    DEFAULT_RULES,
    RECOMMENDED,
    Curve,
    RangeTest,
    RuleResult,
    find,
    lr_ramp,
    sgd_family,
    smooth,
)
from lrlab.finder.doubt import Doubt, doubts
from lrlab.finder.rules import Rule, Suggestion, minimum, rule_name, steepest, valley, window
from lrlab.finder.tasks import find_on_task, task_batches

__all__ = [
    "DEFAULT_RULES",
    "RECOMMENDED",
    "Curve",
    "Doubt",
    "RangeTest",
    "Rule",
    "RuleResult",
    "Suggestion",
    "doubts",
    "find",
    "find_on_task",
    "lr_ramp",
    "minimum",
    "rule_name",
    "sgd_family",
    "smooth",
    "steepest",
    "task_batches",
    "valley",
    "window",
]
