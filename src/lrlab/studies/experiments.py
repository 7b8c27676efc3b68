"""Every reproducible source document, by name (``lrlab reproduce NAME``)."""

from __future__ import annotations

from lrlab.studies import seed000, seed002, seed003, seed004
from lrlab.studies.runner import Experiment

EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        seed000.EXPERIMENT,
        seed002.EXPERIMENT,
        seed003.EXPERIMENT,
        seed004.EXPERIMENT,
    )
}
