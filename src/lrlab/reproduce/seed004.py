"""Seed 004: LipschitzLR (Yedida & Saha), the learning rate computed from the final layer.

The paper trains a Keras CNN on MNIST for 20 epochs, batch 128, with the LR set every epoch
to 1/K, K from the penultimate activations over the whole training set, and reports single
runs' best test accuracy: 99.5 (SGD), 99.57 (Momentum, "AdaMo"), 99.43 (Adam), with logged
LRs about 2.2-2.95 on MNIST. Here: task ``mnist5k`` with its narrow Keras-Glorot CNN, the
paper's three variants as its authors' code computes them, lrlab's sound ``bound=smooth``
variant and a fixed-LR SGD baseline, over seeds. CIFAR-10 (ResNet-20, 300 epochs in the
paper) runs only at a small CPU budget, and only when its binary files are present.

AdaMo's momentum is PyTorch's SGD with ``dampening=0.9``: ``b = 0.9 b + 0.1 g``, the paper's
``v = 0.9 v + 0.1 g``, except that PyTorch seeds the buffer with the first gradient itself
(``b = g``) where the paper starts from ``v = 0``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from lrlab.record import RunRecord
from lrlab.reproduce.runner import (
    Experiment,
    Method,
    Options,
    Plan,
    Results,
    Section,
    errors,
    markdown_table,
    save_plot,
)
from lrlab.reproduce.verdict import Comparison, finite, number, overall, spread

NAME = "seed-004"
TITLE = "Seed 004: LipschitzLR (Yedida & Saha) on MNIST and CIFAR-10"
EPOCHS, BATCH = 20, 128
CIFAR_EPOCHS, CIFAR_MAX_SEEDS = 2, 2
NEAR_PP = 0.5  # neighbourhood, in accuracy percentage points
PAPER_LRS = (2.2, 2.95)  # the LRs the paper logged on MNIST
PAPER_KZ = 206.695  # Kz of the paper's worked example (SPEC section 1)
ADAM_DEFAULT_LR = 0.001

MNIST_METHODS = (
    Method("SGD", "SGD + LipschitzLR (paper's bound)", "sgd", "lipschitz(bound=paper)", cost=4),
    Method(
        "Momentum",
        "AdaMo: SGD(momentum 0.9, dampening 0.9) + LipschitzLR (paper's, x = 0.1)",
        "momentum",
        "lipschitz(bound=paper, variant=adamo, initial_lr=0.1)",
        optimizer_args={"dampening": 0.9},
        cost=18,
    ),
    Method(
        "Adam",
        "Adam + LipschitzLR (paper's Adam variant, experimental)",
        "adam",
        "lipschitz(bound=paper, variant=adam, experimental=true)",
        cost=16,
    ),
    Method(
        "SGD-smooth",
        "SGD + LipschitzLR (bound=smooth, lrlab's sound variant)",
        "sgd",
        "lipschitz(bound=smooth)",
        cost=16,
    ),
    Method("SGD-fixed", "SGD, fixed LR 0.01 (baseline)", "sgd", lr=0.01, cost=13),
)
PUBLISHED_MNIST = {"SGD": 99.5, "Momentum": 99.57, "Adam": 99.43}

CIFAR_METHODS = (
    Method(
        "cifar:SGD",
        "CIFAR-10: SGD + LipschitzLR (paper's bound)",
        "sgd",
        "lipschitz(bound=paper)",
        cost=170,
    ),
    Method(
        "cifar:SGD-smooth",
        "CIFAR-10: SGD + LipschitzLR (bound=smooth)",
        "sgd",
        "lipschitz(bound=smooth)",
        cost=170,
    ),
    Method("cifar:SGD-fixed", "CIFAR-10: SGD, fixed LR 0.01 (baseline)", "sgd", lr=0.01, cost=160),
)
PUBLISHED_CIFAR = {"cifar:SGD": 89.37, "cifar:SGD-fixed": 60.33}


def cifar_available(data_dir: str | None) -> tuple[bool, str]:
    """Whether CIFAR-10's binary files are in the data directory, and what was found (a
    corrupt file is an error, not a reason to skip)."""
    from lrlab.data import load_cifar10, resolve_data_dir
    from lrlab.errors import DataNotFoundError

    directory = resolve_data_dir(data_dir)
    try:
        load_cifar10(directory)
    except DataNotFoundError as error:
        return False, str(error)
    return True, f"CIFAR-10 binary files found in {directory}"


def plan(options: Options) -> Plan:
    result = Plan()
    epochs = options.epochs or EPOCHS
    for method in MNIST_METHODS:
        result.add(
            method, options.seed_list, task="mnist5k", model="cnn", batch_size=BATCH, epochs=epochs
        )
    present, found = cifar_available(options.data_dir)
    if present:
        seeds = options.seed_list[:CIFAR_MAX_SEEDS]
        for method in CIFAR_METHODS:
            result.add(
                method,
                seeds,
                task="cifar10",
                model="cnn",
                batch_size=BATCH,
                epochs=options.epochs or CIFAR_EPOCHS,
                data_dir=options.data_dir,
            )
    result.notes.update(epochs=epochs, cifar=present, found=found)
    return result


# -- what a run tells ---------------------------------------------------------------------------


def best_percent(record: RunRecord) -> float | None:
    """Best test accuracy over the epochs, in percent (the paper's number)."""
    best = record.best_metric
    return None if best is None else 100.0 * best


def learned_nothing(record: RunRecord, classes: int = 10) -> bool:
    """Whether the run's best test accuracy stayed below twice chance."""
    best = record.best_metric
    return best is None or best <= 2.0 / classes


def history(record: RunRecord) -> list[dict[str, float]]:
    """LipschitzLR's per-epoch log (Kz, K, LR), empty for a fixed LR."""
    controller = record.extra.get("controller") or {}
    return list(controller.get("history") or [])


def first_kz(record: RunRecord) -> float | None:
    """Kz of the first epoch that computed one (AdaMo's epoch 0 uses x, not K)."""
    return next((h["kz"] for h in history(record) if "kz" in h), None)


def last_kz(record: RunRecord) -> float | None:
    return next((h["kz"] for h in reversed(history(record)) if "kz" in h), None)


def epoch_lrs(record: RunRecord) -> list[float]:
    return [e.lr for e in record.epochs]


def diverged_epoch(record: RunRecord) -> int | None:
    if record.diverged_at is None:
        return None
    return record.diverged_at // max(record.steps_per_epoch, 1)


def first_inverse_k(record: RunRecord) -> tuple[float, int] | None:
    """1/K (or 1/L) of the first epoch that computed K, and that epoch: what the bound alone
    would set, before AdaMo's or Adam's averaging."""
    for entry in history(record):
        if entry.get("K"):
            return 1.0 / entry["K"], int(entry["epoch"])
    return None


def _sizes() -> tuple[int, int]:
    """mnist5k's training and test set sizes."""
    from lrlab.tasks import load_tensor_data

    data = load_tensor_data("mnist5k", None, None)
    return data.train_size, int(data.y_test.shape[0]) if data.y_test is not None else 0


# -- the section ---------------------------------------------------------------------------------


def section(results: Results, options: Options) -> Section:
    train_size, test_size = _sizes()
    epochs = int(results.plan.notes["epochs"])
    lines = [
        f"Task `mnist5k` with `model=cnn` (two 3x3 conv blocks of 8 and 16 channels, a "
        f"64-unit layer, Keras' Glorot init), batch {BATCH}, {epochs} epochs (the paper's "
        f"MNIST budget: {EPOCHS}), LipschitzLR recomputed at the start of every epoch from a "
        f"pass over the training set, as the authors' code does. Scale: {train_size} training and "
        f"{test_size} test digits, against full MNIST's 60000 and 10000, so one test digit "
        f"is {100 / max(test_size, 1):.1f} points of accuracy here (0.01 in the paper). "
        f"Neighbourhood of a published accuracy: ±{NEAR_PP} points. AdaMo uses PyTorch's SGD "
        "with `dampening=0.9` (`b = 0.9 b + 0.1 g`, the paper's `v = 0.9 v + 0.1 g`), except "
        "that PyTorch seeds the buffer with the first gradient itself where the paper starts "
        "from 0.",
        "",
    ]
    lines += _table(results, MNIST_METHODS, PUBLISHED_MNIST)
    verdicts = []
    for method in MNIST_METHODS:
        sentence, verdict = _judge(results, method)
        lines += ["", f"**{method.label}.** {sentence}"]
        verdicts.append(verdict)
    lines += ["", *_plots(results)]
    cifar_lines, cifar_verdict = _cifar(results, options)
    lines += ["", "### CIFAR-10", "", *cifar_lines]
    verdicts.append(cifar_verdict)
    return Section(TITLE, lines, verdicts)


def _table(results: Results, methods: Sequence[Method], published: dict[str, float]) -> list[str]:
    header = [
        "method",
        "published best test acc (%)",
        "lrlab best test acc (%)",
        "near",
        "diverged",
        "at chance",
        "LR at epoch 0",
        "first 1/K (epoch)",
        "LRs over the epochs",
    ]
    rows = []
    for method in methods:
        records = results.records(method.key)
        values = [best_percent(r) for r in records]
        target = published.get(method.key)
        near = (
            Comparison("", target, tuple(values), NEAR_PP).near_text()
            if target is not None
            else "-"
        )
        all_lrs = [lr for r in records for lr in epoch_lrs(r)]
        rows.append(
            [
                method.label,
                f"{target:g}" if target is not None else "-",
                spread(values),
                near,
                f"{sum(r.status == 'diverged' for r in records)}/{len(records)}",
                f"{sum(learned_nothing(r) for r in records)}/{len(records)}",
                spread([r.epochs[0].lr if r.epochs else None for r in records], 3),
                _first_inverse_text(records),
                f"{number(min(all_lrs), 3)}-{number(max(all_lrs), 3)}" if all_lrs else "-",
            ]
        )
    failed = sum(len(results.failed(m.key)) for m in methods)
    notes = [
        "",
        "lrlab: median [min-max] over seeds. 'at chance': best test accuracy <= 20%. 'first "
        "1/K': the step the bound alone gives at the first epoch that computed K (AdaMo "
        "starts at x = 0.1 and computes K from epoch 1; Adam's variant then averages K).",
    ]
    if failed:
        notes.append(f"{failed} runs failed (no record); see the store.")
    return [*markdown_table(header, rows), *notes]


def _first_inverse_text(records: Sequence[RunRecord]) -> str:
    firsts = [f for r in records if (f := first_inverse_k(r)) is not None]
    if not firsts:
        return "-"
    epochs = sorted({epoch for _, epoch in firsts})
    return f"{spread([v for v, _ in firsts], 3)} ({', '.join(map(str, epochs))})"


def _judge(results: Results, method: Method) -> tuple[str, str]:
    """A paragraph on one method and its verdict line, from its runs."""
    records = results.records(method.key)
    values = tuple(best_percent(r) for r in records)
    lr0 = [r.epochs[0].lr for r in records if r.epochs]
    kz0 = [first_kz(r) for r in records]
    diverged = [r for r in records if r.status == "diverged"]
    dead = [r for r in records if learned_nothing(r)]
    paper_lrs = (
        f" (the paper logged {PAPER_LRS[0]}-{PAPER_LRS[1]} on MNIST)" if method.schedule else ""
    )
    facts = [
        f"Best test accuracy {spread(values)}% over {len(records)} runs; LR at epoch 0 "
        f"{spread(lr0, 3)}{paper_lrs}; {len(diverged)} diverged, {len(dead)} at chance."
    ]
    facts += _why(method, records, kz0, lr0)
    target = PUBLISHED_MNIST.get(method.key)
    label = f"{NAME} MNIST {method.key}"
    if target is None:
        return " ".join(facts), (
            f"{label}: no published MNIST number; lrlab best test acc {spread(values)}%, "
            f"LR at epoch 0 {spread(lr0, 3)}, {len(diverged)}/{len(records)} diverged, "
            f"{len(dead)}/{len(records)} at chance"
        )
    comparison = Comparison("best test accuracy (%)", target, values, NEAR_PP)
    facts.insert(1, comparison.sentence() + ".")
    if comparison.relation == "above" and records and not dead:
        facts.append(_scale_reason(*_sizes()))
    reason = _short_reason(records)
    return " ".join(facts), (
        f"{label}: {overall([comparison])}: published {target:g}%; lrlab {spread(values)}% "
        f"({comparison.near_text()}); {len(diverged)}/{len(records)} diverged"
        + (f" ({reason})" if reason else "")
        + f"; LR at epoch 0 {spread(lr0, 3)} vs the paper's {PAPER_LRS[0]}-{PAPER_LRS[1]}"
    )


def _short_reason(records: Sequence[RunRecord]) -> str:
    texts = {r.error for r in records if r.error}
    if any("all-zero" in t for t in texts):
        epochs = sorted({e for r in records if (e := diverged_epoch(r)) is not None})
        return f"all-zero activations at epoch {', '.join(map(str, epochs))}"
    return "; ".join(sorted(texts))[:120]


def _why(
    method: Method, records: Sequence[RunRecord], kz0: list[float | None], lr0: list[float]
) -> list[str]:
    """The reasons the numbers point to: dead activations, a too-large LR, a collapse."""
    if not records:
        return []
    out = []
    zeroed = [r for r in records if r.error and "all-zero" in r.error]
    kz = finite(kz0)
    if zeroed:
        out.append(
            f"{len(zeroed)} of {len(records)} runs were recorded `diverged` with "
            f'"{zeroed[0].error}": one epoch at LR {spread(lr0, 3)} drove every ReLU '
            "feeding the head to zero, so the next epoch's Kz and K are 0 and no LR follows. "
            "Why so large: the paper's K = (k - 1) Kz / (k m) is not an upper bound of the "
            "loss's Lipschitz constant (its softmax maximum is taken at a uniform softmax), so "
            f"1/K is no safe step; and with Glorot init our narrow CNN's penultimate activations "
            f"are small, Kz {spread(kz, 4)} at init against {PAPER_KZ} in the paper's worked "
            "example, so 1/K is larger than the LRs the paper logged."
        )
    collapsed = [
        r
        for r in records
        if learned_nothing(r)
        and r.status == "done"
        and (k0 := first_kz(r)) is not None
        and (k1 := last_kz(r)) is not None
        and k1 < 0.1 * k0
    ]
    if collapsed:
        first = statistics.median(finite([first_kz(r) for r in collapsed]))
        last = statistics.median(finite([last_kz(r) for r in collapsed]))
        out.append(
            f"{len(collapsed)} runs ended at chance with the head's input activations "
            f"collapsed (median Kz {first:.3g} at the first LR update, {last:.3g} at the "
            "last): the ReLUs below the head died."
        )
    if method.optimizer == "adam" and lr0 and statistics.median(lr0) > 10 * ADAM_DEFAULT_LR:
        out.append(
            f"The variant's LR ({statistics.median(lr0):.3g}) is "
            f"{statistics.median(lr0) / ADAM_DEFAULT_LR:.0f} times Adam's usual "
            f"{ADAM_DEFAULT_LR}; Adam's steps are about the LR per weight whatever the "
            "gradient's size, so this is a large step."
        )
    if method.key == "SGD-smooth" and lr0:
        out.append(
            "`bound=smooth` makes 1/L a guaranteed descent step for the last layer only; "
            "it says nothing about the layers below."
        )
    return out


def _scale_reason(train_size: int, test_size: int) -> str:
    return (
        f"The published runs trained on 60000 digits and were scored on 10000; here a CNN "
        f"narrow enough for a CPU trains on {train_size} and is scored on {test_size}, so a "
        "lower ceiling is expected from the scale alone, before any difference in method."
    )


def _plots(results: Results) -> list[str]:
    from lrlab.report import plot_per_epoch

    keys = [m.key for m in MNIST_METHODS]
    summaries = results.summaries(keys)
    if not summaries:
        return []
    lines = ["### Plots", ""]
    ax = plot_per_epoch(summaries, "lr")
    ax.axhspan(*PAPER_LRS, color="grey", alpha=0.2, label="the paper's logged LRs on MNIST")
    ax.legend(fontsize="x-small")
    ax.set_title("seed 004 (the paper's Figure 2): LR per epoch on MNIST, median over seeds")
    lines += [save_plot(ax, results.out, "seed-004-lr.png"), ""]
    ax = plot_per_epoch(summaries, "metric")
    ax.set_ylabel("test accuracy")
    ax.set_title("seed 004: test accuracy per epoch on MNIST, median over seeds")
    lines.append(save_plot(ax, results.out, "seed-004-accuracy.png"))
    return lines


def _cifar(results: Results, options: Options) -> tuple[list[str], str]:
    if not results.plan.notes["cifar"]:
        text = (
            f"Skipped: {results.plan.notes['found']}. To run it, put CIFAR-10's binary "
            "distribution in a folder (`lrlab download cifar10 --data-dir DIR`, or extract "
            "`cifar-10-binary.tar.gz` there) and run `lrlab reproduce seed-004 --data-dir DIR`: "
            f"{len(CIFAR_METHODS)} methods x {CIFAR_MAX_SEEDS} seeds of {CIFAR_EPOCHS} epochs with "
            "the small CNN, about 80 s an epoch per run on one core."
        )
        return [text], f"{NAME} CIFAR-10: skipped (no CIFAR-10 binary files; see the report)"
    first = next((r for m in CIFAR_METHODS for r in results.records(m.key)), None)
    epochs = len(first.epochs) if first else 0
    lines = [
        f"Budget chosen for 2 CPU cores: the small CNN (`model=cnn`), {epochs} epochs, "
        f"{min(len(options.seed_list), CIFAR_MAX_SEEDS)} seeds, flips and translations. "
        "The paper ran "
        "ResNet-20 for 300 epochs on a GPU (SGD 89.37 vs fixed-LR baseline 60.33): at this "
        "budget only the direction of the difference, and whether the LR is usable, can be "
        "compared, not the accuracies.",
        "",
        *_table(results, CIFAR_METHODS, PUBLISHED_CIFAR),
    ]
    for method in CIFAR_METHODS:
        problems = errors(results, method.key)
        if problems:
            lines += ["", f"{method.label}: " + "; ".join(problems)]
    sgd = [best_percent(r) for r in results.records("cifar:SGD")]
    fixed = [best_percent(r) for r in results.records("cifar:SGD-fixed")]
    better = (
        _median(sgd) is not None
        and _median(fixed) is not None
        and ((_median(sgd) or 0) > (_median(fixed) or 0))
    )
    direction = "above" if better else "not above"
    lines += [
        "",
        f"LipschitzLR SGD's median best accuracy ({spread(sgd)}%) is {direction} the fixed-LR "
        f"baseline's ({spread(fixed)}%); the paper found it "
        f"{PUBLISHED_CIFAR['cifar:SGD'] - PUBLISHED_CIFAR['cifar:SGD-fixed']:.3g} points above.",
    ]
    word = "PARTLY" if better else "DISAGREES"
    return lines, (
        f"{NAME} CIFAR-10 ({epochs} epochs, small CNN): {word}: published SGD 89.37 vs fixed "
        f"60.33 (ResNet-20, 300 epochs); lrlab {spread(sgd)}% vs {spread(fixed)}%"
    )


def _median(values: Sequence[float | None]) -> float | None:
    kept = finite(values)
    return statistics.median(kept) if kept else None


EXPERIMENT = Experiment(NAME, TITLE, plan, section)
