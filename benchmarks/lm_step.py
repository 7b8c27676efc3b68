"""The ``lm`` task's training step through lrlab's engine against a plain nanoGPT-style loop,
and tokens per second of both, in float32 and bfloat16.

The plain loop is nanoGPT's ``train.py`` inner loop (karpathy/nanoGPT): a batch of windows,
forward, cross-entropy over every position (logits flattened), ``backward``,
``clip_grad_norm_(1.0)``, AdamW over two param groups (weight decay on the matrices only, as
``configure_optimizers`` builds them), the LR set by hand each step from a warmup-cosine
formula, ``zero_grad(set_to_none=True)``; with ``--precision bf16`` forward and loss under
``torch.autocast(dtype=torch.bfloat16)`` as nanoGPT's ``ctx``. lrlab runs the same model
(same initial weights), batch size, context, optimizer, clipping, decay groups and schedule
through `lrlab.engine.train_run` (``clip_norm=1.0``, ``decay_params="matrices"``,
``schedule="cosine(..., warmup=...)"``), which also records every step's loss and LR, the
clipped norms and a running metric. Evaluation is not timed (the engine's ``train_time``
leaves it out; the plain loop has none).

Timed alternately in one process, several rounds, the median of the per-round ratios
reported (goal for the engine against the plain loop: <= 1.02):

    .venv/bin/python benchmarks/lm_step.py                    # fp32 and bf16, 7 rounds
    .venv/bin/python benchmarks/lm_step.py --rounds 11 --steps 200 --precision fp32
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from engine_overhead import alternate
from torch import nn

from lrlab.engine import train_run
from lrlab.record import RunConfig
from lrlab.tasks import get_task, load_tensor_data

LR, WARMUP, WEIGHT_DECAY, CLIP, BETAS = 2e-3, 20, 0.1, 1.0, (0.9, 0.95)


def nanogpt_lr(step: int, steps: int) -> float:
    """nanoGPT's ``get_lr`` with ``min_lr = 0``: linear warmup, then cosine to 0 (the same
    values as lrlab's ``cosine(lr, steps, warmup)``, up to rounding)."""
    if step < WARMUP:
        return LR * step / WARMUP
    ratio = (step - WARMUP) / (steps - WARMUP)
    return LR * 0.5 * (1.0 + math.cos(math.pi * ratio))


def plain_loop(steps: int, seed: int, precision: str) -> float:
    """Seconds per step of the nanoGPT-style loop."""
    task = get_task("lm")
    data = load_tensor_data("lm", None, None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = task.build_model()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=LR, betas=BETAS)
    x, y = data.x_train, data.y_train
    transform = data.transform
    generator = torch.Generator().manual_seed(seed)
    size = task.batch_size or 32
    autocast = precision == "bf16"
    step = 0
    start = time.perf_counter()
    while step < steps:
        for index in torch.randperm(x.shape[0], generator=generator).split(size):
            if step == steps:
                break
            lr = nanogpt_lr(step, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            inputs = transform(x[index]) if transform is not None else x[index]
            targets = y[index]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = model(inputs)
                loss = nn.functional.cross_entropy(
                    logits.view(-1, logits.size(-1)), targets.reshape(-1).long()
                )
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
    return (time.perf_counter() - start) / steps


def engine(steps: int, seed: int, precision: str) -> float:
    """Seconds per training step of `lrlab.engine.train_run` (its ``train_time``)."""
    config = RunConfig(
        task="lm",
        optimizer="adamw",
        lr=LR,
        schedule=f"cosine(lr={LR}, steps={steps}, warmup={WARMUP})",
        optimizer_args={"weight_decay": WEIGHT_DECAY, "betas": list(BETAS)},
        steps=steps,
        seed=seed,
        clip_norm=CLIP,
        decay_params="matrices",
        precision=precision,
    )
    record = train_run(config)
    return record.train_time / record.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=("fp32", "bf16", "both"), default="both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task("lm")
    tokens = (task.batch_size or 32) * 64
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds of "
        f"{args.steps} steps, {tokens} tokens a step; median of per-round ratios "
        "(engine / nanoGPT-style loop), goal <= 1.02"
    )
    print(
        f"{'precision':9s} {'plain ms/step':>13s} {'engine ms/step':>14s} {'ratio':>6s} "
        f"{'ratio IQR':>13s} {'plain tok/s':>11s} {'engine tok/s':>12s}"
    )
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)
    for precision in precisions:
        timing = alternate(
            lambda seed, p=precision: plain_loop(args.steps, seed, p),  # type: ignore[misc]
            lambda seed, p=precision: engine(args.steps, seed, p),  # type: ignore[misc]
            args.rounds,
        )
        q1, q3 = timing.quartiles()
        print(
            f"{precision:9s} {timing.baseline * 1e3:13.2f} {timing.candidate * 1e3:14.2f} "
            f"{timing.ratio:6.3f} [{q1:.3f}-{q3:.3f}] {tokens / timing.baseline:11.0f} "
            f"{tokens / timing.candidate:12.0f}"
        )


if __name__ == "__main__":
    main()
