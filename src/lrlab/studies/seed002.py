"""Seed 002: exponential decay on ``loss = (w + 1)^2`` from ``w = 5`` (TF2 tutorial).

The seed runs 40 epochs of ``w -= lr * dloss/dw`` in float32 with
``lr = 0.2 * 0.99 ** (epoch / 1)`` and prints, per epoch, ``w`` after the update and the loss
and LR used for it. Here the same run is ``torch.optim.SGD`` driven by `lrlab.ScheduleLR` with
``Exponential(lr=0.2, rate=0.99, every=1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lrlab import Exponential, ScheduleLR
from lrlab.report import markdown_table
from lrlab.studies import published
from lrlab.studies.runner import (
    Experiment,
    Options,
    Plan,
    Results,
    Section,
    new_axes,
    save_plot,
)

SCHEDULE = Exponential(lr=0.2, rate=0.99, every=1)
EPOCHS = 40
W0 = 5.0

SOURCE = published.load("seed-002")
# The lines the seed printed, by epoch (the rest it elided with "...").
PUBLISHED = {int(epoch): line for epoch, line in SOURCE.texts("printed.lines").items()}


@dataclass(frozen=True)
class Epoch:
    """One printed line: ``w`` after the update, the loss and LR the update used."""

    epoch: int
    w: float
    loss: float
    lr: float

    def line(self) -> str:
        """The seed's own format: ``After 0 epoch,w is 2.600000,loss is 36.000000,lr is ...``."""
        return "After %s epoch,w is %f,loss is %f,lr is %f" % (  # noqa: UP031 - the seed's format
            self.epoch,
            self.w,
            self.loss,
            self.lr,
        )


def run(epochs: int = EPOCHS) -> list[Epoch]:
    """Run the seed's experiment; one `Epoch` per epoch."""
    w = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float32))
    optimizer = torch.optim.SGD([w], lr=SCHEDULE.reference_lr)
    scheduler = ScheduleLR(optimizer, SCHEDULE)
    history = []
    for epoch in range(epochs):
        lr = float(scheduler.get_last_lr()[0])
        loss = (w + 1) ** 2
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        history.append(Epoch(epoch, w.item(), loss.item(), lr))
    return history


# -- the report section ------------------------------------------------------------------------


def compare_published(history: list[Epoch]) -> dict[int, bool]:
    """For each published epoch: does lrlab's line equal the published one character for
    character (every printed digit of w, loss and lr)?"""
    lines = {epoch.epoch: epoch.line() for epoch in history}
    return {epoch: lines.get(epoch) == text for epoch, text in PUBLISHED.items()}


def plan(options: Options) -> Plan:
    """Nothing for the run store: the experiment is one deterministic run (no seed)."""
    return Plan()


def section(results: Results, options: Options) -> Section:
    history = run()
    matches = compare_published(history)
    matched = sum(matches.values())
    lines = [
        "Minimise `(w + 1)^2` from `w = 5` with `w -= lr * dloss/dw` for 40 epochs, "
        "`lr = 0.2 * 0.99 ** epoch` (float32): `torch.optim.SGD` driven by `lrlab.ScheduleLR` "
        "and `Exponential(lr=0.2, rate=0.99, every=1)`. Deterministic, so it runs once (no "
        f"seeds, nothing stored). The seed printed {len(PUBLISHED)} of its {EPOCHS} lines; each "
        "is compared character for character with lrlab's line for that epoch.",
        "",
    ]
    rows = [
        [str(epoch), f"`{text}`", f"`{history[epoch].line()}`", "yes" if ok else "NO"]
        for epoch, text in PUBLISHED.items()
        for ok in [matches[epoch]]
    ]
    lines += markdown_table(["epoch", "published", "lrlab", "match"], rows)
    differing = [str(e) for e, ok in matches.items() if not ok]
    statement = (
        f"All {len(PUBLISHED)} published lines match lrlab's to the printed digit."
        if matched == len(PUBLISHED)
        else f"{matched} of {len(PUBLISHED)} published lines match lrlab's to the printed "
        f"digit; epochs {', '.join(differing)} differ."
    )
    lines += ["", statement, "", save_plot(_plot(history), results.out, "seed-002-w.png")]
    word = "AGREES" if matched == len(PUBLISHED) else ("PARTLY" if matched else "DISAGREES")
    verdict = (
        f"{NAME}: {word}: {matched}/{len(PUBLISHED)} published lines match lrlab's to the "
        "printed digit (w, loss, lr at 6 decimals)"
    )
    return Section(TITLE, lines, [verdict], SOURCE.text("source.citation"))


def _plot(history: list[Epoch]) -> Any:
    ax = new_axes(7.5, 4.0)
    ax.plot([e.epoch for e in history], [e.w for e in history], label="lrlab: w after the update")
    printed_w = [float(text.split("w is ")[1].split(",")[0]) for text in PUBLISHED.values()]
    ax.scatter(list(PUBLISHED), printed_w, color="red", marker="x", label="published w")
    ax.axhline(-1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("w")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("seed 002: w per epoch, lrlab beside the published lines")
    return ax


NAME = "seed-002"
TITLE = "Seed 002: exponential decay on (w + 1)^2 (TF2)"
EXPERIMENT = Experiment(NAME, TITLE, plan, section)
