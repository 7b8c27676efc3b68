"""What LipschitzLR costs: step time with it against without it.

mnist5k, seed 003's MLP, batch 128, SGD, one thread. Two measurements:

1. Paired, in a hand-written PyTorch loop (LipschitzLR's use in a user's own loop): one model,
   LipschitzLR attached and detached step by step (ABBA), each step timed, the medians
   compared, plus the epoch-end update per step. Alternating single steps keeps machine drift
   out of the difference; comparing whole runs or blocks could not resolve 1% here (two
   identical sides read 1.02 apart).
2. End to end in lrlab's engine: whole runs with each frequency against a constant-LR run,
   alternated; the median of per-round ratios with their interquartile range (separate runs
   follow different LR trajectories, so this one is noisier).

The fresh pass (the paper's way) is also given in forward passes over the training set per
epoch, against a plain eval-mode forward pass over the same data.

    .venv/bin/python benchmarks/lipschitz_overhead.py [--rounds 15] [--epochs 12]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lrlab.engine import train_run
from lrlab.record import RunConfig
from lrlab.tasks import get_task, load_task_data

CASES = {
    "per batch (hook, this batch)": ("lipschitz(bound=smooth, every=batch)", 1.03),
    "per epoch (hook, previous epoch)": ("lipschitz(bound=smooth, source=train)", 1.02),
    "per epoch (fresh pass, the paper)": ("lipschitz(bound=smooth, source=eval)", None),
    "per epoch (fresh pass, paper bound)": (
        "lipschitz(bound=paper, source=eval, max_lr=0.3)",
        None,
    ),
}


def step_time(schedule: str | None, epochs: int, seed: int) -> float:
    config = RunConfig(
        task="mnist5k",
        optimizer="sgd",
        lr=0.1 if schedule is None else None,
        schedule=schedule,
        epochs=epochs,
        batch_size=128,
        seed=seed,
    )
    record = train_run(config)
    if record.status != "done":
        raise RuntimeError(f"{schedule}: {record.status}")
    return record.train_time / record.steps


def paired(spec: dict[str, str], steps: int) -> float:
    """Step time with LipschitzLR (``spec``: its keyword arguments) over step time without, in
    a plain loop on one model: attached and detached alternate step by step (ABBA, so neither
    side profits from going first), each step is timed on its own, and the medians compared;
    the epoch-end update (``step()``, timed too) is added per step it serves. Alternating
    steps, rather than whole runs, keeps machine drift out of the difference."""
    import copy

    from lrlab.lipschitz import LipschitzLR
    from lrlab.lipschitz.controller import TensorBatches

    data = load_task_data("mnist5k", None, None)
    torch.manual_seed(0)
    model = get_task("mnist5k").build_model()
    start = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = data.x_train, data.y_train
    batches = [(x[i : i + 128], y[i : i + 128]) for i in range(0, len(x), 128)]
    # max_lr keeps the LR safe for the weights the steps keep returning to: this measures cost.
    lip = LipschitzLR(
        optimizer, model, loss="cross_entropy", data=TensorBatches(x, y, 128), max_lr=0.1, **spec
    )
    times: dict[bool, list[float]] = {True: [], False: []}
    updates: list[float] = []
    attached, seen = True, 0
    for i in range(steps):
        if i % 320 == 0:  # keep the weights near their start: comparable work throughout
            model.load_state_dict(start)
        want = (i // 2) % 2 == 0 if i % 4 < 2 else i % 2 == 1  # A B B A ...
        if want != attached:
            lip._attach() if want else lip.remove()
            attached = want
        inputs, targets = batches[i % len(batches)]
        tick = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if attached and lip.every == "batch":
            lip.step()
        times[attached].append(time.perf_counter() - tick)
        seen += attached
        if lip.every == "epoch" and attached and seen % len(batches) == 0:
            tick = time.perf_counter()
            lip.step()
            updates.append(time.perf_counter() - tick)
    lip.remove()
    plain = statistics.median(times[False])
    extra = statistics.median(times[True]) - plain
    if updates:
        extra += statistics.median(updates) / len(batches)
    return (plain + extra) / plain


PAIRED = {
    "per batch (hook, this batch)": ({"every": "batch"}, 1.03),
    "per epoch (hook, previous epoch)": ({"source": "train"}, 1.02),
    "per epoch (fresh pass, the paper)": ({"source": "eval"}, None),
}


def forward_pass_time(repeats: int = 20) -> float:
    """Seconds for one eval-mode forward pass over mnist5k's training set in batches of 128."""
    data = load_task_data("mnist5k", None, None)
    model = get_task("mnist5k").build_model().eval()
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, data.train_size, 128):
                model(data.x_train[i : i + 128])
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps_per_epoch = -(-4000 // 128)
    print(
        f"torch {torch.__version__}, 1 thread, mnist5k MLP b128 SGD, {args.epochs} epochs x "
        f"{steps_per_epoch} steps, {args.rounds} rounds (median of per-round ratios)"
    )
    step_time(None, 1, 0)  # warm up
    forward = forward_pass_time()
    print("paired, in a hand-written loop (with / without LipschitzLR, same weights and batches):")
    for label, (spec, goal) in PAIRED.items():
        verdict = f"<= {goal}" if goal else "report"
        print(f"  {label:36s} {paired(spec, 400 * args.rounds):6.3f}  {verdict}")
    print("end to end, in lrlab's engine (whole runs, against a constant-LR run):")
    print(f"{'LipschitzLR':38s} {'ratio':>6s} {'ratio IQR':>13s}  goal     extra per epoch")
    for label, (spec, goal) in CASES.items():
        ratios, extras = [], []
        for round_ in range(args.rounds):
            pair = [(None, step_time), (spec, step_time)]
            if round_ % 2:
                pair.reverse()
            times = {s: f(s, args.epochs, round_) for s, f in pair}
            ratios.append(times[spec] / times[None])
            extras.append((times[spec] - times[None]) * steps_per_epoch)
        ratio = statistics.median(ratios)
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        extra = statistics.median(extras)
        verdict = f"<= {goal}" if goal else "report"
        print(
            f"{label:38s} {ratio:6.3f} [{q1:.3f}-{q3:.3f}]  {verdict:7s}  {extra * 1e3:6.2f} ms = "
            f"{extra / forward:4.2f} forward passes over the training set"
        )
    print(f"(one eval forward pass over the 4000 training images: {forward * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
