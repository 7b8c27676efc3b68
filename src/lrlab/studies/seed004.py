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
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from lrlab.record import RunRecord
from lrlab.studies.runner import (
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
from lrlab.studies.verdict import (
    Comparison,
    Overall,
    count_holding,
    finite,
    number,
    overall,
    spread,
)

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
NEAR_PP = 0.5  # neighbourhood of a published accuracy, in percentage points
CHANCE = 0.2  # best test accuracy at or below this: the run learned nothing (chance is 0.1)
BLOWN_UP_LOSS = 10.0  # a batch loss above this (ln 10 = 2.3 at chance): blown up

# What the authors' notebooks printed ("Epoch e LR = ..." and Keras' val_acc per epoch).
PAPER_SGD_LRS = (
    2.624125012913604, 2.220594486667227, 2.952203755569404, 2.5047592163804095,
    2.3865759088157374, 2.1039852179917324, 2.412712925070517, 2.0370396475030654,
    2.450439201649971, 2.246134538178822, 2.1860489654852238, 2.3457747418024146,
    2.3524260741360683, 2.185557642731673, 1.9331086199829655, 2.2392026795344755,
    2.291687164483773, 2.3967361379770815, 2.400916392100361, 2.3377143001139378,
)  # fmt: skip
PAPER_ADAMO_LRS = (
    0.1, 1.4273421500884764, 0.8057073446965183, 0.5788263811504591, 0.4617928198323472,
    0.39069691366422427, 0.34314984623561584, 0.30927543951265224, 0.28404005179206826,
    0.2646083597488736, 0.24926119290576607, 0.23689535069492398, 0.2267702886375761,
    0.21837032723102903, 0.2113252612975103, 0.20536239772744203, 0.20027640477247438,
    0.1959097054474397, 0.19213934970992935, 0.1888679978193955,
)  # fmt: skip
PAPER_ADAM_LRS = (
    0.038438875730174175, 0.03448828604149986, 0.02818871746676286, 0.024552308941702652,
    0.0225800545631816, 0.02147562296173576, 0.020659104193007982, 0.020207388106403865,
    0.019873067019897876, 0.019853252135068902, 0.01989963481933697, 0.05033415806473391,
    0.1527312426425958, 0.06592778323230486, 0.054101797603314676, 0.05418952707809302,
    0.04866581115943134, 0.045174628788607216, 0.04305787984193954, 0.04190205211207334,
)  # fmt: skip
PAPER_VAL_ACC = {
    "SGD": (
        0.2391, 0.8995, 0.9673, 0.9777, 0.9895, 0.9925, 0.9904, 0.9926, 0.9883, 0.9940,
        0.9926, 0.9923, 0.9921, 0.9946, 0.9855, 0.9806, 0.9937, 0.9932, 0.9950, 0.9934,
    ),
    "Momentum": (
        0.9810, 0.9812, 0.9893, 0.9935, 0.9938, 0.9942, 0.9936, 0.9951, 0.9948, 0.9951,
        0.9945, 0.9949, 0.9948, 0.9939, 0.9957, 0.9946, 0.9947, 0.9948, 0.9947, 0.9951,
    ),
    "Adam": (
        0.9759, 0.9806, 0.9861, 0.9890, 0.9908, 0.9872, 0.9910, 0.9907, 0.9943, 0.9914,
        0.9933, 0.9592, 0.6964, 0.8358, 0.8637, 0.8503, 0.8666, 0.8716, 0.8757, 0.8795,
    ),
}  # fmt: skip
PAPER_LRS = (round(min(PAPER_SGD_LRS), 2), round(max(PAPER_SGD_LRS), 2))  # (1.93, 2.95)
PAPER_EPOCH0_LR = round(PAPER_SGD_LRS[0], 3)  # 2.624
PAPER_KZ0 = 10 * BATCH / (9 * PAPER_SGD_LRS[0])  # 108.4: Kz behind the epoch-0 LR
WORKED_EXAMPLE_KZ = 206.695  # the paper's worked example (m = 128), not the MNIST run
# AdaMo's epoch 1: LR = 1 / (0.9 * 0.1 + 0.1 * K), K = 9 Kz / 2560, logged 1.4273: Kz 1736.8.
PAPER_ADAMO_KZ1 = (1 / PAPER_ADAMO_LRS[1] - 0.9 * 0.1) / 0.1 * 10 * BATCH / 9
PAPER_LOGGED = {"SGD": PAPER_SGD_LRS, "Momentum": PAPER_ADAMO_LRS, "Adam": PAPER_ADAM_LRS}
PUBLISHED_MNIST = {"SGD": 99.5, "Momentum": 99.57, "Adam": 99.43}

MNIST_METHODS = (
    Method("SGD", "SGD + LipschitzLR (paper's bound)", "sgd", "lipschitz(bound=paper)", cost=100),
    Method(
        "Momentum",
        "AdaMo: EMA momentum + LipschitzLR (paper's, x = 0.1, K1 = x at epoch 0)",
        "ema-momentum",
        "lipschitz(bound=paper, variant=adamo, initial_lr=0.1)",
        cost=100,
    ),
    Method(
        "Adam",
        "Adam + LipschitzLR (paper's Adam variant, experimental)",
        "adam",
        "lipschitz(bound=paper, variant=adam, experimental=true)",
        optimizer_args={"eps": 1e-7},
        cost=100,
    ),
    Method(
        "SGD-smooth",
        "SGD + LipschitzLR (bound=smooth, lrlab's sound variant)",
        "sgd",
        "lipschitz(bound=smooth)",
        cost=100,
    ),
    Method("SGD-fixed", "SGD, fixed LR 0.01 (baseline)", "sgd", lr=0.01, cost=95),
    Method(
        "SGD-torch-loss",
        "SGD + LipschitzLR (paper's bound) under PyTorch's unclipped cross-entropy",
        "sgd",
        "lipschitz(bound=paper)",
        cost=20,
    ),
)
CIFAR_BATCH, CIFAR_EPOCHS, CIFAR_MAX_SEEDS = 128, 2, 2
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

# What the authors' files say on the points lrlab follows (the report's first table).
AUTHORS_FILES = (
    (
        "layers",
        "Conv32, Conv32 (valid), MaxPool, Dropout 0.2, Conv64, Conv64 (same), MaxPool, "
        "Dropout 0.25, Conv128, Dropout 0.25, Flatten, Dense128 ReLU, BatchNorm, Dropout "
        "0.25, Dense10 softmax; 730K parameters",
        "MNIST.ipynb cell 8, model.png, paper Table 2 and 9.1",
    ),
    (
        "initialisers",
        "convolutions he_normal, Dense layers Keras' default glorot_uniform, zero biases; "
        "Keras 2.2.4 (its saved models' keras_version), whose he_normal is a truncated "
        "normal with scale sqrt(2 / fan_in) / 0.8796",
        "MNIST.ipynb cell 8; CIFAR10/*/epoch-*.h5",
    ),
    (
        "batch norm",
        "BatchNormalization() at Keras' defaults: epsilon 1e-3, momentum 0.99",
        "MNIST.ipynb cell 8",
    ),
    (
        "data and batches",
        "x_train / 255, batch 256, fit_generator(steps_per_epoch=60000 / 256): 235 steps an "
        "epoch, 20 epochs",
        "MNIST.ipynb cells 2, 6, 15",
    ),
    (
        "augmentation",
        "ImageDataGenerator(rotation_range=15, zoom_range=0.1, width_shift_range=0.1, "
        "height_shift_range=0.1), no flips",
        "MNIST.ipynb cell 14; paper 9.1",
    ),
    (
        "loss",
        "keras.losses.categorical_crossentropy on a softmax output (probabilities clipped to "
        "[1e-7, 1 - 1e-7])",
        "MNIST.ipynb cell 13",
    ),
    (
        "Kz",
        "K.function([model.layers[0].input], [model.layers[-2].output]): the head's input, "
        "inference mode, over un-augmented x_train in consecutive batches of 256; the "
        "largest norm; K = 9 Kz / (10 * 256), LR = 1 / K, no L2 term",
        "MNIST.ipynb cells 9 and 11",
    ),
    (
        "when",
        "LearningRateScheduler(lr_schedule): the start of every epoch, epoch 0 included",
        "MNIST.ipynb cells 12 and 15",
    ),
    (
        "logged LRs",
        "SGD 1.93-2.95 (2.624 at epoch 0: Kz 108.4); Adam variant 0.0198-0.153",
        "MNIST.ipynb, MNIST_Adam.ipynb outputs",
    ),
    (
        "AdaMo's start",
        "if epoch == 0: K1 = 0.1; return 0.1 (K1 = x, not 1 / x), then K1 = 0.9 K1 + 0.1 K, "
        "LR = 1 / K1: 1.43 at epoch 1, falling to 0.19",
        "MNIST Momentum.ipynb cells 11-12; paper 9.1",
    ),
)


def plan(options: Options) -> Plan:
    """The MNIST methods (on full MNIST when its files are in the data directory, else on
    the 4000 offline digits in epochs of 235 steps), and CIFAR-10 when its files are."""
    from lrlab.studies.seed003 import mnist_available

    result = Plan()
    full_mnist, found_mnist = mnist_available(options.data_dir)
    run: dict[str, Any] = {"model": "paper-cnn", "batch_size": BATCH, **budget(options)}
    if options.full:
        run["device"] = "auto"  # the paper's budget is a GPU's: CUDA when there is one
    if full_mnist:
        run.update(task="mnist", data_dir=options.data_dir)
    else:
        run.update(task="mnist5k", epoch_steps=EPOCH_STEPS)
    for method in MNIST_METHODS:
        if method.key == "SGD-torch-loss":
            steps = min(TORCH_LOSS_STEPS, options.steps or TORCH_LOSS_STEPS)
            short = {k: v for k, v in run.items() if k not in ("steps", "epochs")}
            result.add(method, seeds_for(method, options), **short, steps=steps)
        else:
            result.add(method, seeds_for(method, options), **run, loss=LOSS)
    present, found = cifar_available(options.data_dir)
    if present:
        seeds = options.seed_list[:CIFAR_MAX_SEEDS]
        for method in CIFAR_METHODS:
            result.add(
                method,
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


def seeds_for(method: Method, options: Options) -> tuple[int, ...]:
    """Every seed for SGD + the paper's bound (the claim judged per seed), with ``--full`` or
    an explicit ``--seeds``; else the first `CPU_OTHER_SEEDS`."""
    if method.key == "SGD" or options.full or options.seeds is not None:
        return options.seed_list
    return options.seed_list[:CPU_OTHER_SEEDS]


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


# -- what a run tells ---------------------------------------------------------------------------


def best_percent(record: RunRecord) -> float | None:
    """Best test accuracy over the epochs, in percent (the paper's number)."""
    best = record.best_metric
    return None if best is None else 100.0 * best


def best_train_percent(record: RunRecord) -> float | None:
    """Best running training accuracy over the epochs, in percent (what Keras prints)."""
    values = finite([e.train_metric for e in record.epochs])
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
    from lrlab.tasks import load_tensor_data

    data = load_tensor_data("mnist5k", None, None)
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
    lines += _table(results, MNIST_METHODS)
    judged = [_goal(results), _epoch_zero(results), _not_diverged(results), _accuracy(results)]
    for sentence, _ in judged:
        lines += ["", sentence]
    verdicts = [verdict for _, verdict in judged]
    for method in MNIST_METHODS[1:]:
        sentence, verdict = _other(results, method)
        lines += ["", f"**{method.label}.** {sentence}"]
        verdicts.append(verdict)
    lines += ["", *_plots(results)]
    cifar_lines, cifar_verdict = _cifar(results, options)
    lines += ["", "### CIFAR-10", "", *cifar_lines]
    verdicts.append(cifar_verdict)
    return Section(TITLE, lines, verdicts)


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


def _table(results: Results, methods: Sequence[Method]) -> list[str]:
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
    for method in methods:
        records = results.records(method.key)
        values = [best_percent(r) for r in records]
        logged = PAPER_LOGGED.get(method.key)
        epochs = max((epochs_run(r) for r in records), default=0.0)
        published = PUBLISHED_MNIST.get(method.key)
        same_epochs = paper_val_acc_within(method.key, epochs)
        rows.append(
            [
                method.label,
                f"{published:g}" if published is not None else "-",
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
    failed = sum(len(results.failed(m.key)) for m in methods)
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
    lr0 = finite([epoch_lr(r, 0) for r in records])
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
    lr0 = finite([epoch_lr(r, 0) for r in records])
    kz0 = finite([first_kz(r) for r in records])
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
    published = PUBLISHED_MNIST["SGD"]
    same = paper_val_acc_within("SGD", epochs)
    if epochs >= FULL_EPOCHS:
        comparison = Comparison("best test accuracy (%)", published, values, NEAR_PP)
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


def _other(results: Results, method: Method) -> tuple[str, str]:
    """A paragraph and a verdict line for a method other than SGD + the paper's bound."""
    records = results.records(method.key)
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
    logged = PAPER_LOGGED.get(method.key)
    if logged:
        facts.append(f"The authors logged {logged[0]:.4g} at epoch 0 and {logged[1]:.4g} at 1.")
    if method.key == "Momentum":
        kz1 = [h.get("kz") for r in records for h in history(r) if h.get("epoch") == 1.0]
        facts.append(
            "Their K1 starts at x itself (`K1 = 0.1`), so epoch 1's LR is 1 / (0.09 + 0.1 K), "
            "about ten times 1 / K; lrlab's former K1 = 1 / x would cap it near 0.11. Kz after "
            f"epoch 0 here: {spread(kz1, 4)}; behind their 1.43 it was {PAPER_ADAMO_KZ1:.0f} "
            "(from their K1 and LR), larger than any Kz their SGD run logged (at most "
            f"{max(10 * BATCH / (9 * lr) for lr in PAPER_SGD_LRS):.0f}), so their epoch-1 LR "
            "was the lower."
        )
    if method.key == "Adam" and finite(lr0):
        facts.append(
            "Adam's steps are about the LR per weight whatever the gradient's size, so the "
            "variant's LR is meant to be small; the authors' run lost accuracy from epoch 11, "
            "where its LR jumped to 0.153."
        )
    if method.key == "SGD-smooth":
        facts.append(
            "`bound=smooth` makes 1/L a guaranteed descent step for the head on the batch it "
            "was measured on (its fresh pass runs in training mode); it says nothing about "
            "the layers below."
        )
    if method.key == "SGD-torch-loss":
        peak = [max(finite(r.step_loss), default=float("nan")) for r in records]
        blew_up = bool(finite(peak)) and statistics.median(finite(peak)) > BLOWN_UP_LOSS
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
    published = PUBLISHED_MNIST.get(method.key)
    label = f"{NAME} MNIST {method.key}"
    numbers = (
        f"lrlab best test acc {spread(values)}%, LR epoch 0 {spread(lr0, 3)}, epoch 1 "
        f"{spread(lr1, 3)}, {len(broken)}/{len(records)} diverged or at chance"
    )
    if logged:
        numbers += f"; the authors logged {logged[0]:.3g} then {logged[1]:.3g}"
    if published is not None:
        numbers = f"published {published:g}%; " + numbers
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
    from lrlab.report import plot_per_epoch

    keys = [m.key for m in MNIST_METHODS if m.key != "SGD-torch-loss"]
    summaries = results.summaries(keys)
    if not summaries:
        return []
    lines = ["### Plots", ""]
    ax = plot_per_epoch(summaries, "lr")
    shown = [s.label for s in summaries]
    # Each paper series in the colour of lrlab's line for the same method.
    colours = {m.key: f"C{shown.index(m.label)}" for m in MNIST_METHODS if m.label in shown}
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
        *_cifar_table(results),
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


def _cifar_table(results: Results) -> list[str]:
    header = ["method", "published best test acc (%)", "lrlab best test acc (%)", "diverged"]
    rows = []
    for method in CIFAR_METHODS:
        records = results.records(method.key)
        published = PUBLISHED_CIFAR.get(method.key)
        rows.append(
            [
                method.label,
                f"{published:g}" if published is not None else "-",
                spread([best_percent(r) for r in records]),
                f"{sum(r.status == 'diverged' for r in records)}/{len(records)}",
            ]
        )
    return markdown_table(header, rows)


def _median(values: Sequence[float | None]) -> float | None:
    kept = finite(values)
    return statistics.median(kept) if kept else None


EXPERIMENT = Experiment(NAME, TITLE, plan, section)
