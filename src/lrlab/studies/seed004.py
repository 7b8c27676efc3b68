"""Seed 004: LipschitzLR (Yedida & Saha), the learning rate computed from the final layer.

What the authors ran on MNIST (repository yrahul3910/adaptive-lr-dnn: ``MNIST/MNIST.ipynb``,
``MNIST/MNIST Momentum.ipynb``, ``MNIST/MNIST_Adam.ipynb``, ``MNIST/model.png``,
``paper/paper.pdf`` section 9.1 and Table 2), and what runs here:

- the network of `lrlab.models.PaperCNN` (``model=paper-cnn``), Keras 2.2.4's initialisers;
- batch 256, pixels / 255, ``ImageDataGenerator(rotation_range=15, zoom_range=0.1,
  width_shift_range=0.1, height_shift_range=0.1)`` (`lrlab.augment.KerasAffine`), Keras'
  ``categorical_crossentropy`` on a softmax, which clips the probabilities
  (``loss=keras_cross_entropy``);
- ``LearningRateScheduler(lr_schedule)``: at the start of every epoch, epoch 0 included, Kz =
  the largest Frobenius norm of the head's input (``K.function`` on ``model.layers[-2]``,
  inference mode) over the *un-augmented* ``x_train`` in consecutive batches of 256, and
  ``LR = 1 / (9 Kz / (10 * 256))`` with no L2 term (commented out in the notebooks);
- 20 epochs of ``fit_generator(steps_per_epoch=60000 / 256)``, 235 steps; on the 4000
  offline digits an epoch is still 235 steps (``epoch_steps``), cycling them with fresh
  shuffles and augmentation, so the LR changes as often as theirs; with full MNIST in the
  data directory it is their setup exactly.

They logged LRs of 1.93-2.95 with SGD (2.624 at epoch 0, so Kz was about 108), best
validation accuracy 99.5 (SGD), 99.57 (AdaMo, which sets K1 = 0.1 and LR 0.1 at epoch 0, then
logged 1.43 at epoch 1) and 99.43 (Adam variant). Kz 206.695 is the paper's worked example
at m = 128 (lrlab's check-value test), not the MNIST run.

Methods: SGD + the paper's bound, AdaMo (PyTorch SGD with ``dampening=0.9``, the ``ema-momentum``
rule ``b = 0.9 b + 0.1 g``: PyTorch seeds the buffer with the first gradient where the
authors' ``Momentum.py`` starts from 0), Adam's variant (experimental; Keras' eps 1e-7), lrlab's
``bound=smooth``, a fixed LR of 0.01, and SGD + the paper's bound under PyTorch's unclipped
cross-entropy for a few steps, to show what Keras' clipping does. CIFAR-10 (ResNet-20, 300
epochs in the paper) runs only at a small CPU budget, and only when its binary files are
present.

What the paper and the notebooks published (accuracies, logged LRs and validation accuracies,
the worked example, what the authors' files say) is data: ``lrlab/studies/data/seed-004.toml``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lrlab.report import markdown_table, plot_per_epoch
from lrlab.studies import published
from lrlab.studies.runner import (
    Arm,
    Experiment,
    Options,
    Plan,
    Results,
    Section,
    data_available,
    errors,
    save_plot,
    tensor_data,
)
from lrlab.studies.verdict import (
    Overall,
    PublishedValue,
    count_holding,
    finite_values,
    number,
    overall,
    spread,
)

if TYPE_CHECKING:
    from lrlab import RunRecord

NAME = "seed-004"
TITLE = "Seed 004: LipschitzLR (Yedida & Saha) on MNIST and CIFAR-10"
BATCH = 256
EPOCH_STEPS = 235  # fit_generator(steps_per_epoch=60000 / 256) ran 235 steps an epoch
FULL_EPOCHS = 20
# The CPU budget: one epoch and a few steps of the next, so every run sets its LR twice
# (epoch 0 and epoch 1) at their epoch length. The network costs about 26 GFLOP a step of 256
# (0.37 s on one core here, 0.5 s on a busy machine): 240 steps are 100-130 s a run; 5 seeds
# of SGD + one of each other method + 1 short one keep `lrlab reproduce all` inside 15 minutes
# on 2 cores, with the other seeds' runs (about 300 s of CPU).
CPU_STEPS = EPOCH_STEPS + 5
CPU_OTHER_SEEDS = 1  # seeds of the methods other than SGD + the paper's bound at CPU budget
TORCH_LOSS_STEPS = 40  # enough to see PyTorch's unclipped loss blow up
LOSS = "keras_cross_entropy"
CHANCE = 0.2  # best test accuracy at or below this: the run learned nothing (chance is 0.1)
BLOWN_UP_LOSS = 10.0  # a batch loss above this (ln 10 = 2.3 at chance): blown up

SOURCE = published.load(NAME)
# What the authors' notebooks printed ("Epoch e LR = ..." and Keras' val_acc per epoch), by
# the arm that stands for each notebook's run.
PAPER_LOGGED = {key: SOURCE.numbers(f"logged.lr.{key}.values") for key in SOURCE.keys("logged.lr")}
PAPER_VAL_ACC = {
    key: SOURCE.numbers(f"logged.val_acc.{key}.values") for key in SOURCE.keys("logged.val_acc")
}
PAPER_SGD_LRS, PAPER_ADAMO_LRS, PAPER_ADAM_LRS = (
    PAPER_LOGGED[key] for key in ("SGD", "Momentum", "Adam")
)
PAPER_LRS = (round(min(PAPER_SGD_LRS), 2), round(max(PAPER_SGD_LRS), 2))  # (1.93, 2.95)
PAPER_EPOCH0_LR = round(PAPER_SGD_LRS[0], 3)  # 2.624
PAPER_KZ0 = 10 * BATCH / (9 * PAPER_SGD_LRS[0])  # 108.4: Kz behind the epoch-0 LR
WORKED_EXAMPLE_KZ = SOURCE.number("worked_example.kz.value")  # m = 128, not the MNIST run
# AdaMo's epoch 1: LR = 1 / (0.9 * 0.1 + 0.1 * K), K = 9 Kz / 2560, logged 1.4273: Kz 1736.8.
PAPER_ADAMO_KZ1 = (1 / PAPER_ADAMO_LRS[1] - 0.9 * 0.1) / 0.1 * 10 * BATCH / 9
# The paper's best test accuracies (%), by arm key, with their neighbourhoods.
PUBLISHED_MNIST = {
    key: SOURCE.quantity(f"published.mnist.{key}") for key in SOURCE.keys("published.mnist")
}
PUBLISHED_CIFAR = {
    f"cifar:{key}": SOURCE.quantity(f"published.cifar.{key}")
    for key in SOURCE.keys("published.cifar")
}
# What the authors' files say on the points lrlab follows (the report's first table).
AUTHORS_FILES = SOURCE.rows("authors_files", ("point", "says", "file"))

MNIST_ARMS = (
    Arm("SGD", "SGD + LipschitzLR (paper's bound)", "sgd", "lipschitz(bound=paper)", cost=100),
    Arm(
        "Momentum",
        "AdaMo: EMA momentum + LipschitzLR (paper's, x = 0.1, K1 = x at epoch 0)",
        "ema-momentum",
        "lipschitz(bound=paper, variant=adamo, initial_lr=0.1)",
        cost=100,
    ),
    Arm(
        "Adam",
        "Adam + LipschitzLR (paper's Adam variant, experimental)",
        "adam",
        "lipschitz(bound=paper, variant=adam, experimental=true)",
        optimizer_args={"eps": 1e-7},
        cost=100,
    ),
    Arm(
        "SGD-smooth",
        "SGD + LipschitzLR (bound=smooth, lrlab's sound variant)",
        "sgd",
        "lipschitz(bound=smooth)",
        cost=100,
    ),
    Arm("SGD-fixed", "SGD, fixed LR 0.01 (baseline)", "sgd", lr=0.01, cost=95),
    Arm(
        "SGD-torch-loss",
        "SGD + LipschitzLR (paper's bound) under PyTorch's unclipped cross-entropy",
        "sgd",
        "lipschitz(bound=paper)",
        cost=20,
    ),
)
CIFAR_BATCH, CIFAR_EPOCHS, CIFAR_MAX_SEEDS = 128, 2, 2
CIFAR_ARMS = (
    Arm(
        "cifar:SGD",
        "CIFAR-10: SGD + LipschitzLR (paper's bound)",
        "sgd",
        "lipschitz(bound=paper)",
        cost=170,
    ),
    Arm(
        "cifar:SGD-smooth",
        "CIFAR-10: SGD + LipschitzLR (bound=smooth)",
        "sgd",
        "lipschitz(bound=smooth)",
        cost=170,
    ),
    Arm("cifar:SGD-fixed", "CIFAR-10: SGD, fixed LR 0.01 (baseline)", "sgd", lr=0.01, cost=160),
)


def plan(options: Options) -> Plan:
    """The MNIST methods (on full MNIST when its files are in the data directory, else on
    the 4000 offline digits in epochs of 235 steps), and CIFAR-10 when its files are."""
    result = Plan()
    full_mnist, found_mnist = data_available("mnist", options.data_dir)
    run: dict[str, Any] = {"model": "paper-cnn", "batch_size": BATCH, **budget(options)}
    if options.full:
        run["device"] = "auto"  # the paper's budget is a GPU's: CUDA when there is one
    if full_mnist:
        run.update(task="mnist", data_dir=options.data_dir)
    else:
        run.update(task="mnist5k", epoch_steps=EPOCH_STEPS)
    for arm in MNIST_ARMS:
        if arm.key == "SGD-torch-loss":
            steps = min(TORCH_LOSS_STEPS, options.steps or TORCH_LOSS_STEPS)
            short = {k: v for k, v in run.items() if k not in ("steps", "epochs")}
            result.add(arm, seeds_for(arm, options), **short, steps=steps)
        else:
            result.add(arm, seeds_for(arm, options), **run, loss=LOSS)
    present, found = data_available("cifar10", options.data_dir)
    if present:
        seeds = options.seed_list[:CIFAR_MAX_SEEDS]
        for arm in CIFAR_ARMS:
            result.add(
                arm,
                seeds,
                task="cifar10",
                model="cnn",
                batch_size=CIFAR_BATCH,
                epochs=options.epochs or CIFAR_EPOCHS,
                data_dir=options.data_dir,
            )
    result.notes.update(
        task=run["task"], found_mnist=found_mnist, cifar=present, found=found, full=options.full
    )
    return result


def budget(options: Options) -> dict[str, int]:
    """``--steps`` if given, else ``--epochs``, else the paper's 20 epochs with ``--full``,
    else the CPU budget of `CPU_STEPS` steps."""
    if options.steps is not None:
        return {"steps": options.steps}
    if options.epochs is not None:
        return {"epochs": options.epochs}
    if options.full:
        return {"epochs": FULL_EPOCHS}
    return {"steps": CPU_STEPS}


def seeds_for(arm: Arm, options: Options) -> tuple[int, ...]:
    """Every seed for SGD + the paper's bound (the claim judged per seed), with ``--full`` or
    an explicit ``--seeds``; else the first `CPU_OTHER_SEEDS`."""
    if arm.key == "SGD" or options.full or options.seeds is not None:
        return options.seed_list
    return options.seed_list[:CPU_OTHER_SEEDS]


# -- what a run tells ---------------------------------------------------------------------------


def best_percent(record: RunRecord) -> float | None:
    """Best test accuracy over the epochs, in percent (the paper's number)."""
    best = record.best_metric
    return None if best is None else 100.0 * best


def best_train_percent(record: RunRecord) -> float | None:
    """Best running training accuracy over the epochs, in percent (what Keras prints)."""
    values = finite_values([e.train_metric for e in record.epochs])
    return 100.0 * max(values) if values else None


def learned_nothing(record: RunRecord) -> bool:
    """Whether both the best test accuracy and the best running training accuracy stayed at
    or below `CHANCE` (twice chance). Training accuracy counts too: a network whose batch-norm
    running statistics lag scores near chance in eval mode while it trains (the authors'
    own epoch 0 logged 65.55% training and 23.91% validation accuracy)."""
    test, train = best_percent(record), best_train_percent(record)
    return all(v is None or v <= 100 * CHANCE for v in (test, train))


def eval_lags(record: RunRecord) -> bool:
    """Whether the run's test accuracy stayed at chance while its training accuracy did not."""
    test = best_percent(record)
    return test is not None and test <= 100 * CHANCE and not learned_nothing(record)


def broke_down(record: RunRecord) -> bool:
    """Diverged (a non-finite loss or all-zero activations) or learned nothing."""
    return record.status == "diverged" or learned_nothing(record)


def history(record: RunRecord) -> list[dict[str, float]]:
    """LipschitzLR's per-epoch log (Kz, K, LR), empty for a fixed LR."""
    controller = record.extra.get("controller") or {}
    return list(controller.get("history") or [])


def first_kz(record: RunRecord) -> float | None:
    """Kz of the first epoch that computed one (AdaMo's epoch 0 uses x, not K)."""
    return next((h["kz"] for h in history(record) if "kz" in h), None)


def epoch_lr(record: RunRecord, epoch: int) -> float | None:
    """The LR of the epoch's first step (``None`` if the run did not reach it)."""
    return record.epochs[epoch].lr if len(record.epochs) > epoch else None


def epochs_run(record: RunRecord) -> float:
    """Epochs the run trained, counting a final partial one as its fraction."""
    return record.steps / max(record.steps_per_epoch, 1)


def whole_epochs(epochs: float) -> int:
    """``epochs`` rounded to the nearest whole epoch, at least 1."""
    return max(1, int(epochs + 0.5))


def paper_val_acc_within(key: str, epochs: float) -> float | None:
    """The authors' best validation accuracy (%) over their first `whole_epochs` epochs."""
    logged = PAPER_VAL_ACC.get(key)
    if not logged or epochs <= 0:
        return None
    return 100.0 * max(logged[: min(len(logged), whole_epochs(epochs))])


def _sizes(task: str) -> tuple[int, int]:
    """The task's training and test set sizes (mnist5k's without reading full MNIST)."""
    if task != "mnist5k":
        return 60000, 10000
    data = tensor_data("mnist5k")
    return data.train_size, int(data.y_test.shape[0]) if data.y_test is not None else 0


# -- the section ---------------------------------------------------------------------------------


def section(results: Results, options: Options) -> Section:
    task = str(results.plan.notes["task"])
    train_size, test_size = _sizes(task)
    lines = [*_setup(results, task, train_size, test_size), ""]
    lines += ["### What the authors' files say", ""]
    lines += markdown_table(
        ["point", "yrahul3910/adaptive-lr-dnn", "file"], [list(row) for row in AUTHORS_FILES]
    )
    lines += ["", "### MNIST", ""]
    lines += _table(results, MNIST_ARMS)
    judged = [_goal(results), _epoch_zero(results), _not_diverged(results), _accuracy(results)]
    for sentence, _ in judged:
        lines += ["", sentence]
    verdicts = [verdict for _, verdict in judged]
    for arm in MNIST_ARMS[1:]:
        sentence, verdict = _other(results, arm)
        lines += ["", f"**{arm.label}.** {sentence}"]
        verdicts.append(verdict)
    lines += ["", *_plots(results)]
    cifar_lines, cifar_verdict = _cifar(results, options)
    lines += ["", "### CIFAR-10", "", *cifar_lines]
    verdicts.append(cifar_verdict)
    return Section(TITLE, lines, verdicts, SOURCE.text("source.citation"))


def budget_text(results: Results) -> str:
    """The budget the SGD runs had, in words."""
    records = results.records("SGD")
    if not records:
        return "no finished run"
    epochs = epochs_run(records[0])
    steps = records[0].steps
    return f"{steps} steps of 256 ({epochs:.3g} epochs of {records[0].steps_per_epoch} steps)"


def _setup(results: Results, task: str, train_size: int, test_size: int) -> list[str]:
    full = task == "mnist"
    data = (
        "full MNIST, their setup exactly"
        if full
        else (
            f"the {train_size} training digits of `mnist5k` (the 5000 offline digits; "
            f"{test_size} held out for the test accuracy, one test digit = "
            f"{100 / max(test_size, 1):.1f} points), each epoch {EPOCH_STEPS} steps cycling "
            "them with fresh shuffles and augmentation (`epoch_steps=235`), so the LR changes "
            "as often as theirs; full MNIST in `--data-dir` makes it their setup exactly"
        )
    )
    cpu = (
        f"The CPU budget is {CPU_STEPS} steps: one epoch and {CPU_STEPS - EPOCH_STEPS} steps of "
        "the next, so every run sets its LR at epoch 0 and epoch 1. The network costs about "
        "26 GFLOP a step of 256 (0.37 s on one core here); SGD + the paper's bound runs "
        f"over every seed (the claim judged per seed), the other methods over "
        f"{CPU_OTHER_SEEDS} (single runs, as the paper reports), which keeps `lrlab "
        "reproduce all` within 15 minutes on 2 cores; `--seeds N` runs N of each. `--full` "
        f"runs the paper's {FULL_EPOCHS} epochs of every method and seed (a GPU budget)."
    )
    return [
        f"Task `{task}`, model `paper-cnn` (the authors' network as they built it: "
        "`lrlab.models.PaperCNN`), batch 256, pixels / 255, Keras' random affine augmentation "
        "(rotations to 15 degrees, zoom 0.1, shifts 0.1) on the training batches, Keras' "
        "clipped cross-entropy (`loss=keras_cross_entropy`), and LipschitzLR at the start of "
        "every epoch including epoch 0, from an eval-mode pass over the un-augmented training "
        f"set in consecutive batches of 256, as the authors' `lr_schedule` does. Data: {data}. "
        f"Budget: {budget_text(results)}." + ("" if results.plan.notes.get("full") else " " + cpu),
        "",
        "Differences that remain: PyTorch's momentum buffer starts at the first gradient "
        "(AdaMo's `b = g`, theirs `0.1 g`), Adam's eps is added after the bias correction, "
        "and PyTorch's batch norm tracks an `n / (n - 1)` variance (Keras `n / (n - 1 - eps)`).",
    ]


def _table(results: Results, arms: Sequence[Arm]) -> list[str]:
    header = [
        "method",
        "published best test acc (%)",
        "lrlab best test acc (%)",
        "lrlab best train acc (%)",
        "authors' best val acc over as many epochs (%)",
        "diverged / at chance",
        "LR epoch 0: lrlab",
        "paper",
        "LR epoch 1: lrlab",
        "paper",
    ]
    rows = []
    for arm in arms:
        records = results.records(arm.key)
        values = [best_percent(r) for r in records]
        logged = PAPER_LOGGED.get(arm.key)
        epochs = max((epochs_run(r) for r in records), default=0.0)
        paper = PUBLISHED_MNIST.get(arm.key)
        same_epochs = paper_val_acc_within(arm.key, epochs)
        rows.append(
            [
                arm.label,
                f"{paper.value:g}" if paper is not None else "-",
                spread(values),
                spread([best_train_percent(r) for r in records]),
                number(same_epochs) if same_epochs is not None else "-",
                f"{sum(r.status == 'diverged' for r in records)} / "
                f"{sum(learned_nothing(r) for r in records)} of {len(records)}",
                spread([epoch_lr(r, 0) for r in records], 3),
                number(logged[0], 4) if logged else "-",
                spread([epoch_lr(r, 1) for r in records], 3),
                number(logged[1], 4) if logged else "-",
            ]
        )
    failed = sum(len(results.failed(a.key)) for a in arms)
    notes = [
        "",
        "lrlab: median [min-max] over seeds; training accuracy is the running mean over an "
        "epoch's augmented batches, as Keras prints it. 'At chance': best test and training "
        "accuracy both <= 20%. The authors' validation accuracy is the best they logged over "
        "their first epochs, as "
        "many as lrlab's runs trained (to the nearest epoch), on 10000 test digits after "
        "training on 60000.",
    ]
    if failed:
        notes.append(f"{failed} runs failed (no record); see the store.")
    return [*markdown_table(header, rows), *notes]


def _goal(results: Results) -> tuple[str, str]:
    """The paper's claim: an LR computed from theory, far above the usual ones, trains the
    network. Holds when the epoch-0 LR is the paper's and every SGD run trains."""
    records = results.records("SGD")
    lr0 = finite_values([epoch_lr(r, 0) for r in records])
    trained = [not broke_down(r) for r in records]
    in_range = bool(lr0) and PAPER_LRS[0] <= statistics.median(lr0) <= PAPER_LRS[1]
    word: Overall = count_holding(trained)
    if lr0 and not in_range:
        word = "PARTLY" if any(trained) else "DISAGREES"
    accuracy = spread([best_percent(r) for r in records])
    text = (
        f"**Goal: the paper's LR, computed from theory, trains its CNN.** {word}: LR at epoch "
        f"0 {spread(lr0, 3)} over {len(records)} seeds ({'inside' if in_range else 'outside'} "
        f"the {PAPER_LRS[0]}-{PAPER_LRS[1]} the authors logged), {sum(trained)} of "
        f"{len(records)} runs trained (best test accuracy {accuracy}%)."
    )
    return text, (
        f"{NAME} MNIST goal (the paper's LR trains its CNN): {word}: LR at epoch 0 "
        f"{spread(lr0, 3)}, {sum(trained)}/{len(records)} trained at {budget_text(results)}"
    )


def _epoch_zero(results: Results) -> tuple[str, str]:
    records = results.records("SGD")
    lr0 = finite_values([epoch_lr(r, 0) for r in records])
    kz0 = finite_values([first_kz(r) for r in records])
    if not lr0:
        return "No SGD run finished.", f"{NAME} MNIST epoch-0 LR: NO DATA"
    median = statistics.median(lr0)
    word: Overall = "AGREES" if PAPER_LRS[0] <= median <= PAPER_LRS[1] else "DISAGREES"
    text = (
        f"**Epoch-0 LR.** {word}: {spread(lr0, 3)} over {len(lr0)} seeds (Kz "
        f"{spread(kz0, 4)}), against the authors' {PAPER_EPOCH0_LR} at epoch 0 (Kz "
        f"{PAPER_KZ0:.1f}) and "
        f"{PAPER_LRS[0]}-{PAPER_LRS[1]} over their 20 epochs. At random initialisation it "
        "depends only on the network and the data; the paper's worked example, Kz "
        f"{WORKED_EXAMPLE_KZ} at m = 128, is another network and is not this run."
    )
    return text, (
        f"{NAME} MNIST epoch-0 LR: {word}: {spread(lr0, 3)} over {len(lr0)} seeds (median "
        f"{median:.3g}); the authors logged {PAPER_EPOCH0_LR} (range {PAPER_LRS[0]}-"
        f"{PAPER_LRS[1]})"
    )


def _not_diverged(results: Results) -> tuple[str, str]:
    records = results.records("SGD")
    flags = [not broke_down(r) for r in records]
    word = count_holding(flags)
    reasons = _reasons([r for r in records if broke_down(r)])
    lagging = [r for r in records if eval_lags(r)]
    text = (
        f"**SGD + the paper's bound does not diverge.** {word}: {sum(flags)} of "
        f"{len(records)} seeds neither diverged nor stayed at chance over "
        f"{budget_text(results)}" + (f" ({reasons})." if reasons else ".")
    )
    if lagging:
        text += (
            f" In {len(lagging)} of them the test accuracy stayed near chance (best "
            f"{spread([best_percent(r) for r in lagging])}%) while the training accuracy "
            f"reached {spread([best_train_percent(r) for r in lagging])}%: in eval mode batch "
            "norm uses running statistics that lag a network moving this fast, as in the "
            "authors' own epoch 0 (65.55% training, 23.91% validation accuracy, then 89.95% "
            "validation at epoch 1)."
        )
    return text, (
        f"{NAME} MNIST SGD not diverged: {word}: {sum(flags)}/{len(records)} seeds"
        + (f" ({reasons})" if reasons else "")
    )


def _accuracy(results: Results) -> tuple[str, str]:
    """Best test accuracy beside the published 99.5: judged at the paper's budget only."""
    records = results.records("SGD")
    values = tuple(best_percent(r) for r in records)
    epochs = max((epochs_run(r) for r in records), default=0.0)
    paper = PUBLISHED_MNIST["SGD"]
    published = paper.value
    same = paper_val_acc_within("SGD", epochs)
    if epochs >= FULL_EPOCHS:
        comparison = PublishedValue.of("best test accuracy (%)", paper, values)
        word = overall([comparison])
        text = f"**Best test accuracy.** {word}: {comparison.sentence()}."
        return text, (
            f"{NAME} MNIST SGD best test accuracy: {word}: published {published:g}%; lrlab "
            f"{spread(values)}% ({comparison.near_text()}) over {FULL_EPOCHS} epochs"
        )
    text = (
        f"**Best test accuracy.** Not judged at this budget: lrlab {spread(values)}% after "
        f"{epochs:.3g} epochs, beside the published {published:g}% after {FULL_EPOCHS} "
        f"epochs on 60000 digits; the authors' own best validation accuracy over their first "
        f"{whole_epochs(epochs)} epoch(s) was {number(same)}%. `--full` runs their 20 epochs."
    )
    return text, (
        f"{NAME} MNIST SGD best test accuracy: NOT JUDGED at {epochs:.3g} epochs: lrlab "
        f"{spread(values)}% beside the published {published:g}% (20 epochs; the authors "
        f"logged {number(same)}% over as many epochs)"
    )


def _other(results: Results, arm: Arm) -> tuple[str, str]:
    """A paragraph and a verdict line for an arm other than SGD + the paper's bound."""
    records = results.records(arm.key)
    values = [best_percent(r) for r in records]
    lr0 = [epoch_lr(r, 0) for r in records]
    lr1 = [epoch_lr(r, 1) for r in records]
    broken = [r for r in records if broke_down(r)]
    facts = [
        f"Best test accuracy {spread(values)}% over {len(records)} runs; LR at epoch 0 "
        f"{spread(lr0, 3)}, at epoch 1 {spread(lr1, 3)}; {len(broken)} diverged or at chance"
        + (f" ({_reasons(broken)})" if broken else "")
        + "."
    ]
    logged = PAPER_LOGGED.get(arm.key)
    if logged:
        facts.append(f"The authors logged {logged[0]:.4g} at epoch 0 and {logged[1]:.4g} at 1.")
    if arm.key == "Momentum":
        kz1 = [h.get("kz") for r in records for h in history(r) if h.get("epoch") == 1.0]
        facts.append(
            "Their K1 starts at x itself (`K1 = 0.1`), so epoch 1's LR is 1 / (0.09 + 0.1 K), "
            "about ten times 1 / K; lrlab's former K1 = 1 / x would cap it near 0.11. Kz after "
            f"epoch 0 here: {spread(kz1, 4)}; behind their 1.43 it was {PAPER_ADAMO_KZ1:.0f} "
            "(from their K1 and LR), larger than any Kz their SGD run logged (at most "
            f"{max(10 * BATCH / (9 * lr) for lr in PAPER_SGD_LRS):.0f}), so their epoch-1 LR "
            "was the lower."
        )
    if arm.key == "Adam" and finite_values(lr0):
        facts.append(
            "Adam's steps are about the LR per weight whatever the gradient's size, so the "
            "variant's LR is meant to be small; the authors' run lost accuracy from epoch 11, "
            "where its LR jumped to 0.153."
        )
    if arm.key == "SGD-smooth":
        facts.append(
            "`bound=smooth` makes 1/L a guaranteed descent step for the head on the batch it "
            "was measured on (its fresh pass runs in training mode); it says nothing about "
            "the layers below."
        )
    if arm.key == "SGD-torch-loss":
        peak = [max(finite_values(r.step_loss), default=float("nan")) for r in records]
        blew_up = (
            bool(finite_values(peak)) and statistics.median(finite_values(peak)) > BLOWN_UP_LOSS
        )
        facts.append(
            f"The same SGD run with PyTorch's `cross_entropy` instead of Keras' clipped loss: "
            f"largest batch loss {spread(peak, 3)} within {TORCH_LOSS_STEPS} steps (ln 10 = "
            "2.3 at chance). Keras clips the softmax at 1e-7, so a sample the network gets "
            "confidently wrong sends no gradient, where PyTorch's loss keeps pushing on it: "
            + (
                "at the paper's LR that blows the network up, as it blew up the narrow CNN "
                "lrlab stood in for the authors' network before."
                if blew_up
                else "here that did not blow the network up."
            )
        )
    paper = PUBLISHED_MNIST.get(arm.key)
    label = f"{NAME} MNIST {arm.key}"
    numbers = (
        f"lrlab best test acc {spread(values)}%, LR epoch 0 {spread(lr0, 3)}, epoch 1 "
        f"{spread(lr1, 3)}, {len(broken)}/{len(records)} diverged or at chance"
    )
    if logged:
        numbers += f"; the authors logged {logged[0]:.3g} then {logged[1]:.3g}"
    if paper is not None:
        numbers = f"published {paper.value:g}%; " + numbers
    return " ".join(facts), f"{label}: {numbers}"


def _reasons(records: Sequence[RunRecord]) -> str:
    """Why runs broke down: their errors, or 'at chance'."""
    texts = sorted({r.error for r in records if r.error})
    at_chance = sum(r.status == "done" and learned_nothing(r) for r in records)
    parts = [t[:100] for t in texts]
    if at_chance:
        parts.append(f"{at_chance} at chance")
    return "; ".join(parts)


def _overlay(ax: Any, series: Mapping[str, Sequence[float]], colours: dict[str, str]) -> None:
    """The paper's logged values per epoch (dashed, crosses), each in the colour of lrlab's
    line for the same method."""
    for key, logged in series.items():
        ax.plot(
            range(1, len(logged) + 1),
            logged,
            linestyle="--",
            marker="x",
            linewidth=0.8,
            color=colours.get(key),
            label=f"paper: {key}",
        )


def _plots(results: Results) -> list[str]:
    keys = [m.key for m in MNIST_ARMS if m.key != "SGD-torch-loss"]
    summaries = results.summaries(keys)
    if not summaries:
        return []
    lines = ["### Plots", ""]
    ax = plot_per_epoch(summaries, "lr")
    shown = [s.label for s in summaries]
    # Each paper series in the colour of lrlab's line for the same method.
    colours = {a.key: f"C{shown.index(a.label)}" for a in MNIST_ARMS if a.label in shown}
    _overlay(ax, PAPER_LOGGED, colours)
    ax.axhspan(*PAPER_LRS, color="grey", alpha=0.15, label="the paper's SGD range")
    ax.set_yscale("log")
    ax.legend(fontsize="x-small")
    ax.set_title("seed 004 (the paper's Figure 2): LR per epoch on MNIST, lrlab median vs logged")
    lines += [save_plot(ax, results.out, "seed-004-lr.png"), ""]
    ax = plot_per_epoch(summaries, "metric")
    _overlay(ax, PAPER_VAL_ACC, colours)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize="x-small")
    ax.set_title("seed 004: test accuracy per epoch on MNIST, lrlab median vs the paper's")
    lines.append(save_plot(ax, results.out, "seed-004-accuracy.png"))
    return lines


def _cifar(results: Results, options: Options) -> tuple[list[str], str]:
    if not results.plan.notes["cifar"]:
        text = (
            f"Skipped: {results.plan.notes['found']}. To run it, put CIFAR-10's binary "
            "distribution in a folder (`lrlab download cifar10 --data-dir DIR`, or extract "
            "`cifar-10-binary.tar.gz` there) and run `lrlab reproduce seed-004 --data-dir DIR`: "
            f"{len(CIFAR_ARMS)} methods x {CIFAR_MAX_SEEDS} seeds of {CIFAR_EPOCHS} epochs with "
            "the small CNN, about 80 s an epoch per run on one core."
        )
        return [text], f"{NAME} CIFAR-10: skipped (no CIFAR-10 binary files; see the report)"
    first = next((r for a in CIFAR_ARMS for r in results.records(a.key)), None)
    epochs = len(first.epochs) if first else 0
    cifar_sgd, cifar_fixed = PUBLISHED_CIFAR["cifar:SGD"], PUBLISHED_CIFAR["cifar:SGD-fixed"]
    lines = [
        f"Budget chosen for 2 CPU cores: the small CNN (`model=cnn`), {epochs} epochs, "
        f"{min(len(options.seed_list), CIFAR_MAX_SEEDS)} seeds, flips and translations. "
        f"The paper ran ResNet-20 for 300 epochs on a GPU (SGD {cifar_sgd.value:g} vs "
        f"fixed-LR baseline {cifar_fixed.value:g}): at this budget only the direction of the "
        "difference, and whether the LR is usable, can be compared, not the accuracies.",
        "",
        *_cifar_table(results),
    ]
    for arm in CIFAR_ARMS:
        problems = errors(results, arm.key)
        if problems:
            lines += ["", f"{arm.label}: " + "; ".join(problems)]
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
        f"{cifar_sgd.value - cifar_fixed.value:.3g} points above.",
    ]
    word = "PARTLY" if better else "DISAGREES"
    return lines, (
        f"{NAME} CIFAR-10 ({epochs} epochs, small CNN): {word}: published SGD "
        f"{cifar_sgd.value:g} vs fixed {cifar_fixed.value:g} (ResNet-20, 300 epochs); lrlab "
        f"{spread(sgd)}% vs {spread(fixed)}%"
    )


def _cifar_table(results: Results) -> list[str]:
    header = ["method", "published best test acc (%)", "lrlab best test acc (%)", "diverged"]
    rows = []
    for arm in CIFAR_ARMS:
        records = results.records(arm.key)
        paper = PUBLISHED_CIFAR.get(arm.key)
        rows.append(
            [
                arm.label,
                f"{paper.value:g}" if paper is not None else "-",
                spread([best_percent(r) for r in records]),
                f"{sum(r.status == 'diverged' for r in records)}/{len(records)}",
            ]
        )
    return markdown_table(header, rows)


def _median(values: Sequence[float | None]) -> float | None:
    kept = finite_values(values)
    return statistics.median(kept) if kept else None


EXPERIMENT = Experiment(NAME, TITLE, plan, section)
