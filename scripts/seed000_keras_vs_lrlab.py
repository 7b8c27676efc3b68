"""Seed 000 over many seeds in Keras 3 itself and in lrlab: are the outcomes drawn from the same
distribution?

Keras draws its own initial weights and shuffles (``keras.utils.set_random_seed(seed)``);
lrlab runs its engine (``lrlab reproduce seed-000``'s configs) with PyTorch's cross-entropy and
with Keras' clipped one. Each run ends dead (final loss >= 0.99 ln 3), on the two-class plateau
(accuracy 2/3 +- 0.05) or trained; the script prints the counts, the final losses' medians and
the tests that compare them (Fisher's exact test on each outcome's count, Mann-Whitney U on the
final losses), and writes every run's numbers to ``--json``.

    KERAS_BACKEND=torch OMP_NUM_THREADS=1 python scripts/seed000_keras_vs_lrlab.py \\
        --experiment B-code --seeds 40 --workers 2 --json out/seed000-keras.json

About 12 s per Keras run and 4 s per lrlab run of 200 epochs on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SPECS = {
    "A": "inverse_time(lr=0.1, decay=0.005)",
    "B-code": "per_epoch(seed000(lr=0.01, drop=0.05, every=10))",
}
SIDES = ("keras", "lrlab", "lrlab-keras-loss")


def one(side: str, experiment: str, seed: int, epochs: int) -> dict[str, object]:
    """One run: its final (running) loss and accuracy, what Keras prints at the end."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import torch

    torch.set_num_threads(1)
    if side == "keras":
        from lrlab.studies import seed000_keras

        run = seed000_keras.run(experiment, epochs, seed=seed)
        loss, accuracy = run.epoch_loss[-1], run.epoch_accuracy[-1]
    else:
        from lrlab.engine import train_run
        from lrlab.record import RunConfig

        config = RunConfig(
            task="iris",
            split="all",
            optimizer="keras-momentum",
            schedule=SPECS[experiment],
            batch_size=5,
            epochs=epochs,
            seed=seed,
            loss="keras_cross_entropy" if side == "lrlab-keras-loss" else None,
        )
        record = train_run(config)
        last = record.epochs[-1]
        loss, accuracy = float(last.train_loss or "nan"), float(last.train_metric or "nan")
    return {"side": side, "seed": seed, "loss": loss, "accuracy": accuracy}


def outcome(run: dict[str, object]) -> str:
    from lrlab.studies.seed000 import classify

    return classify(float(run["loss"]), float(run["accuracy"]))  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", choices=sorted(SPECS), default="B-code")
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    jobs = [(side, args.experiment, s, args.epochs) for s in range(args.seeds) for side in SIDES]
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(one, *zip(*jobs, strict=True)))
    from scipy import stats

    from lrlab.studies.verdict import fisher_exact

    by_side = {side: [r for r in runs if r["side"] == side] for side in SIDES}
    kinds = ("trained", "plateau", "dead")
    counts = {
        side: {k: sum(outcome(r) == k for r in rs) for k in kinds} for side, rs in by_side.items()
    }
    print(f"seed 000 {args.experiment}, {args.epochs} epochs, seeds 0..{args.seeds - 1}\n")
    print("| side | trained | 2/3 plateau | dead | median final loss | trained runs' losses |")
    print("|---|---|---|---|---|---|")
    for side, rs in by_side.items():
        losses = sorted(float(r["loss"]) for r in rs)  # type: ignore[arg-type]
        trained = sorted(float(r["loss"]) for r in rs if outcome(r) == "trained")  # type: ignore[arg-type]
        span = f"{trained[0]:.3f}-{trained[-1]:.3f}" if trained else "-"
        c = counts[side]
        print(
            f"| {side} | {c['trained']} | {c['plateau']} | {c['dead']} | "
            f"{statistics.median(losses):.4f} | {span} |"
        )
    print()
    keras_losses = [float(r["loss"]) for r in by_side["keras"]]  # type: ignore[arg-type]
    for side in SIDES[1:]:
        for kind in kinds:
            p = fisher_exact(counts["keras"][kind], args.seeds, counts[side][kind], args.seeds)
            print(f"keras vs {side}, {kind}: Fisher exact p = {p:.3f}")
        losses = [float(r["loss"]) for r in by_side[side]]  # type: ignore[arg-type]
        p = stats.mannwhitneyu(keras_losses, losses).pvalue
        print(f"keras vs {side}, final loss: Mann-Whitney U p = {p:.3f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "runs": runs})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
