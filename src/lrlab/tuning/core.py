"""`tune`: the LR a tuned grid would choose, at a fraction of its cost.

The method, and why
-------------------

1. **Bracket with the range test** (Smith 2017, "Cyclical Learning Rates for Training Neural
   Networks", section 3.3; `lrlab.find_on_task`): about 100 steps locate ``m``, the LR at
   the smoothed training loss's minimum. The search starts on the 3-decade bracket around it
   that held the tuned grid's best LR in docs/lr-finder.md's cells (`lrlab.tuning.plan`).
   The range test alone is not the answer: docs/lr-finder.md measured its best rule at a
   median 1.33x the tuned steps and up to 10x, so here it only says where to look.
2. **Race the bracket's LRs by successive halving** (Jamieson & Talwalkar 2016, "Non-
   stochastic Best Arm Identification and Hyperparameter Optimization"; Li et al. 2017,
   "Hyperband", JMLR 18): rung ``k`` runs its LRs for ``T / eta ** (K - 1 - k)`` steps
   (``T/9``, ``T/3``, ``T`` by default) and the next rung keeps a third of them. All the
   LRs of a rung differ only in their LR, so `lrlab.sweep.run_missing` trains them as one
   vectorised group (`lrlab.vectorize.plan_groups`): on a small model ten LRs cost little
   more than one run. Each trial is an ordinary run, stored in the run store under its own
   key.
3. **Rank on the validation split, never the test split**: each trial's score is its
   validation time-to-target as a fraction of the rung's budget, or how far it fell short
   (`lrlab.tuning.choice.objective`), the grid's own criterion as one number.
4. **Short-horizon bias** (Wu, Ren, Liao & Grosse 2018, "Understanding Short-Horizon Bias in
   Stochastic Meta-Optimization", ICLR): ranking LRs by a run's metric a ninth of the way
   through favours the wrong ones, worst under a decaying schedule (a one-cycle run at 1/9
   of its budget has not yet reached its peak, let alone annealed). So a rung never reads a
   run mid-way: **each rung is a complete run of its own, shorter budget, its schedule
   compressed to that budget** (`lrlab.tuning.template`: warmup, peak and decay all fit in
   ``T/9``), and is ranked at its end. What bias is left is the drift of the best LR with
   the horizon (lower for longer runs, if anything); the survivors are not the rung's top
   third but LRs spread over the ones within noise of its best, or the window of
   consecutive LRs around its choice, the spare one below (`lrlab.tuning.plan.survivors`).
5. **Divergence masking**: a trial whose loss turns non-finite leaves its vectorised group
   at that step (recorded ``diverged``, its score ``inf``); the others go on. A diverged LR
   bounds the search, and no choice crosses it.
6. **A choice robust to noise**: not the single best trial but the centre of the LRs whose
   smoothed score is within one noise deviation of the best, noise measured from seeds or
   from neighbouring LRs (`lrlab.tuning.choice.choose`).
7. **Widen at an edge**: when the first rung's best is its lowest or highest LR, a decade
   more is added on that side and the rung continues, as long as the budget allows; so does
   the last rung, one LR at a time. What is left at an edge is reported (`TuneResult.edge`).

Cost: with the defaults (10 LRs, then 4, then 3; ``eta = 3``), ``10 T/9 + 4 T/3 + 3 T``
``= 5.4 T`` steps plus the range test's 100, under the default ``budget`` of 7 full runs,
a fifth of the 7-LR x 5-seed grid's 35 runs; the rest of the budget pays for widening.

Why not Optuna or Ray Tune's ASHA
---------------------------------

Optuna's ``SuccessiveHalvingPruner`` / ``HyperbandPruner`` and Ray Tune's
``ASHAScheduler`` (Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning",
MLSys) decide per trial, asynchronously, each trial a process reporting intermediate values
and stopped mid-run. That is the wrong shape here twice over. The trials of a rung are rows
of one stacked model in one process, trained in lockstep, which neither library can launch,
step or stop one row of; and a rung must not be read mid-run at all (item 4), which is all
their pruners do. What is left of successive halving once rungs are whole runs is a few
lines (`lrlab.tuning.plan`); the storing, resuming, process pool and Ray execution are
`lrlab.sweep.run_missing`'s, as for `lrlab.compare`.

Resuming: the plan is a pure function of the task's length, the range test (seeded, so the
same on a rerun, and snapped to a global grid: `lrlab.tuning.plan.grid_lr`) and the stored
results, so a killed `tune` recomputes it, finds every finished trial in the store and runs
only the rest.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.engine import plan, task_data
from lrlab.execution import make_executor
from lrlab.finder import RangeTest, find_on_task
from lrlab.optimizers import optimizer_entry
from lrlab.record import HOLDOUT_SEEDS_FROM, RunConfig, RunRecord
from lrlab.store import Store
from lrlab.sweep import Progress, run_missing
from lrlab.tasks import Task, get_task, task_id
from lrlab.tuning.choice import choose_runs, objective
from lrlab.tuning.plan import (
    HIGHEST,
    LOWEST,
    PER_DECADE,
    bracket,
    grid_index,
    grid_lr,
    plan_cost,
    rung_counts,
    rung_steps,
    survivors,
)
from lrlab.tuning.result import Rung, Trial, TuneResult
from lrlab.tuning.template import LRTemplate, parse_template
from lrlab.validate import (
    MAX_SEEDS,
    MAX_WORKERS,
    ArgumentTypeError,
    check_bool,
    check_input_dir,
    check_int,
    check_number,
    check_output_path,
)

if TYPE_CHECKING:
    from lrlab.execution import Executor

#: Full runs' worth of steps `tune` may spend by default: a fifth of the 35-run grid.
DEFAULT_BUDGET = 7.0
#: Steps of the range test that brackets the search (`lrlab.find`'s default).
RANGE_TEST_STEPS = 100
#: The run options `tune` passes to every trial, as `lrlab.compare` takes them.
RUN_OPTIONS = (
    "epochs",
    "steps",
    "batch_size",
    "model",
    "split",
    "sampling",
    "device",
    "data_dir",
    "optimizer_args",
)


def minimum_lr(result: RangeTest) -> float | None:
    """The LR at the smoothed loss's minimum, over the part of each curve the rules read,
    log-median over repeats; ``None`` when no curve has two points there."""
    found = []
    for curve in result.curves:
        begin, end = curve.window
        if end - begin >= 2:
            part = curve.smoothed[begin:end]
            found.append(curve.lrs[begin + part.index(min(part))])
    if not found:
        return None
    return 10 ** statistics.median(math.log10(lr) for lr in found)


@dataclass
class _Search:
    """What one `tune` call needs while it runs its rungs."""

    name: str
    optimizer: str
    template: LRTemplate
    total: int
    steps_per_epoch: int
    seed_list: tuple[int, ...]
    run_options: dict[str, Any]
    store: Store
    executor: Callable[[int], Executor]
    progress: Progress | None
    vectorize: bool
    workers: int
    limit: int
    planned: int = 0
    ran: int = 0
    keys: set[str] = field(default_factory=set)

    def config(self, lr: float, steps: int, seed: int) -> RunConfig:
        options = {k: v for k, v in self.run_options.items() if k not in ("epochs", "steps")}
        constant = self.template.constant
        return RunConfig(
            task=self.name,
            optimizer=self.optimizer,
            lr=lr if constant else None,
            schedule=self.template.spec_at(lr, steps, self.total),
            steps=steps,
            seed=seed,
            **options,
        )

    def cost(self, indices: Sequence[int], steps: int) -> int:
        return len(indices) * steps * len(self.seed_list)

    def rung(self, index: int, steps: int, indices: Sequence[int], widened: Sequence[str]) -> Rung:
        """Run (or read from the store) the trials of ``indices`` at ``steps``, and choose."""
        planned = [
            (grid_lr(i), seed, self.config(grid_lr(i), steps, seed))
            for i in sorted(indices)
            for seed in self.seed_list
        ]
        configs = [config for _, _, config in planned]
        ran = run_missing(
            self.store,
            configs,
            self.executor,
            self.progress,
            vectorize=self.vectorize,
            workers=self.workers,
        )
        self.ran += ran
        self.keys.update(c.key() for c in configs)
        runs = {run.config.key(): run for run in self.store.runs(keys=[c.key() for c in configs])}
        trials = []
        records: dict[float, list[RunRecord | None]] = {}
        for lr, seed, config in planned:
            run = runs.get(config.key())
            record = run.record if run is not None else None
            records.setdefault(lr, []).append(record)
            trials.append(
                Trial(
                    lr=lr,
                    seed=seed,
                    steps=steps,
                    status=run.status if run is not None else "failed",
                    objective=objective(record, steps),
                    val_metric=record.final_val_metric if record is not None else None,
                    trained=record.steps if record is not None else 0,
                    seconds=record.wall_time if record is not None else 0.0,
                    key=config.key(),
                    error=run.error if run is not None else "not in the store",
                )
            )
        failed = [t for t in trials if t.status == "failed"]
        if len(failed) == len(trials):
            raise ValueError(
                f"tune: every trial of rung {index + 1} failed; the first: {failed[0].error}"
            )
        choice = choose_runs(records, steps, self.steps_per_epoch)
        return Rung(index, steps, tuple(trials), choice, tuple(widened))


def tune(
    task: str | Task,
    optimizer: str = "sgd",
    *,
    schedule: str | None = None,
    budget: float = DEFAULT_BUDGET,
    seed: int = 0,
    seeds: int = 1,
    eta: int = 3,
    rungs: int = 3,
    db: str | Path = "lrlab-tune.sqlite",
    workers: int = 1,
    threads: int = 1,
    executor: str = "local",
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    progress: Progress | None = None,
    vectorize: bool = True,
    lipschitz: bool = True,
    range_test: Mapping[str, Any] | None = None,
    **run: Any,
) -> TuneResult:
    """Tune ``optimizer``'s LR on ``task``: a constant LR, or the peak LR of ``schedule``
    written with its LR left out or ``?`` (``"one_cycle"``, ``"cosine(lr=?, warmup=50)"``,
    ``"wsd(decay=0.2)"``, ``"cyclic(step_size=200)"``; `lrlab.tuning.template`). Returns a
    `TuneResult`: the LR, the schedule filled in ready to paste, and the evidence.

    The method (the module's docstring says why): a range test brackets the search, then
    ``rungs`` rungs of successive halving race the bracket's LRs (3 a decade) as vectorised
    groups, each rung complete runs of ``T / eta ** (rungs - 1 - k)`` steps, its schedule
    compressed to that budget, scored on the task's validation split only, the next rung
    keeping ``1 / eta`` of them around a noise-robust choice; the last rung runs the full
    budget ``T`` and its robust choice is the answer.

    ``budget``: the training steps ``tune`` may spend, in full runs of the task (default 7, a
    fifth of a 7-LR x 5-seed grid); the range test's steps count. The plan needs about 5.5
    (a ``ValueError`` names the least); what is left widens the search when the best is at an
    edge. ``seed`` (below `lrlab.record.HOLDOUT_SEEDS_FROM`, so fresh seeds stay unseen) is
    the seed of the range test and of every trial; ``seeds`` trials per LR (seeds ``seed``,
    ``seed + 1``, ...) measure the noise from seeds instead of neighbouring LRs, at that many
    times the cost.

    Every trial is a run stored in ``db`` (a run already there is not run again: a killed
    ``tune`` resumes where it stopped); ``workers``, ``threads``, ``executor``, ``address``,
    ``runtime_env``, ``progress`` and ``vectorize`` are `lrlab.compare`'s. ``workers``
    defaults to 1: each rung is one vectorised group, which trains at once in this process,
    while a pool starts its workers again at every rung. ``lipschitz``: also report
    LipschitzLR's values at the initial weights. ``range_test``: options for the range test
    (`lrlab.find`'s ``start``, ``end``, ``steps``, ``smoothing``, ``diverge``, ``repeats``...).
    ``run``: what every trial shares (``epochs`` or ``steps`` set the full budget ``T``;
    ``batch_size``, ``model``, ``split``, ``sampling``, ``device``, ``data_dir``,
    ``optimizer_args``).

    Every argument is checked before anything trains (one-line ``ValueError``): an optimizer
    without an LR to tune (the LR-free peers), a schedule without a free LR, a budget below
    the plan's, a task without a validation split or whose training stream has no length.
    """
    began = time.perf_counter()
    name = task_id(task)
    resolved = get_task(task)
    entry = optimizer_entry(optimizer)
    if entry.lr_free:
        raise ValueError(
            f"optimizer must take an LR to tune; {optimizer} is learning-rate free (it "
            f"estimates its own step size: {entry.tuning or 'nothing to tune'}), got "
            f"optimizer={optimizer!r}"
        )
    template = parse_template(schedule)
    budget = check_number("", "budget", budget, positive=True)
    check_int("", "seed", seed, minimum=0, maximum=HOLDOUT_SEEDS_FROM - 1)
    check_int("", "seeds", seeds, minimum=1, maximum=MAX_SEEDS)
    if seed + seeds > HOLDOUT_SEEDS_FROM:
        raise ValueError(
            f"seeds must stay below the fresh seeds ({HOLDOUT_SEEDS_FROM}) from seed {seed}, "
            f"got seeds={seeds!r}"
        )
    check_int("", "eta", eta, minimum=2, maximum=10)
    check_int("", "rungs", rungs, minimum=1, maximum=6)
    check_bool("", "vectorize", vectorize)
    check_bool("", "lipschitz", lipschitz)
    check_int("", "workers", workers, minimum=1, maximum=MAX_WORKERS)
    store_path = check_output_path("", "db", db)
    for key in run:
        if key not in RUN_OPTIONS:
            raise ArgumentTypeError(
                f"tune() got an unexpected argument {key!r}; run options are "
                f"{', '.join(sorted(RUN_OPTIONS))}"
            )
    run_options = {k: v for k, v in run.items() if v is not None}
    if "data_dir" in run_options:
        run_options["data_dir"] = str(check_input_dir("", "data_dir", run_options["data_dir"]))
    options = dict(range_test or {})
    if not isinstance(range_test, Mapping | None):
        raise ArgumentTypeError(
            f"range_test must be a dict of lrlab.find options, got range_test={range_test!r}"
        )
    for key in ("seed", "lipschitz", "epochs", "run_steps"):
        if key in options:
            raise ValueError(
                f"range_test must not set {key} (tune sets it), got {key}={options[key]!r}"
            )

    probe = RunConfig(task=name, optimizer=optimizer, seed=seed, **run_options)
    data = _validation_data(probe, resolved)
    resolved_plan = plan(probe, data, resolved)
    total, per_epoch = resolved_plan.total_steps, resolved_plan.steps_per_epoch
    steps = rung_steps(total, eta, rungs)
    for budget_steps in steps:
        try:
            template.schedule_at(1e-3, budget_steps, total)
        except ValueError as error:
            raise ValueError(
                f"rungs: a rung of {budget_steps} of the run's {total} steps cannot hold "
                f"{template.text} ({error}); use fewer rungs or a longer run, got rungs={rungs!r}"
            ) from None
    first = bracket(1.0, template.constant)
    counts = rung_counts(len(first), eta, rungs)
    accumulation = int(options.get("accumulation_steps", 1))
    test_steps = (
        int(options.get("steps", RANGE_TEST_STEPS)) * accumulation * int(options.get("repeats", 1))
    )
    need = plan_cost(counts, steps, seeds) + test_steps
    limit = int(budget * total)
    if need > limit:
        raise ValueError(
            f"budget must be at least {math.ceil(need / total * 100) / 100:g} runs of {total} "
            f"steps (the range test and {' + '.join(str(c) for c in counts)} LRs at "
            f"{', '.join(f'{s}' for s in steps)} steps), got budget={budget!r}"
        )
    count = workers

    def executor_for(runs: int) -> Executor:
        return make_executor(
            executor,
            workers=count,
            threads=threads,
            address=address,
            runs=runs,
            task=resolved,
            runtime_env=runtime_env,
        )

    executor_for(2)  # its options are checked now, before anything runs

    tested = find_on_task(
        task,
        optimizer,
        optimizer_args=run_options.get("optimizer_args"),
        batch_size=run_options.get("batch_size"),
        model=run_options.get("model"),
        split=run_options.get("split"),
        data_dir=run_options.get("data_dir"),
        device=run_options.get("device", "cpu"),
        seed=seed,
        lipschitz=lipschitz,
        run_steps=total,
        **options,
    )
    test_cost = sum(len(c.losses) for c in tested.curves) * tested.accumulation_steps
    warnings = []
    if tested.doubts:
        signs = "; ".join(f"{d.kind}: {d.detail}" for d in tested.doubts)
        warnings.append(f"the range test is in doubt ({signs}); its bracket may be off")
    anchor = minimum_lr(tested)
    if anchor is None:
        anchor = float(entry.defaults.get("lr", 0.01)) * 10.0
        warnings.append(
            f"the range test found no minimum; the search starts around the optimizer's "
            f"default LR {anchor / 10:g}"
        )
    first = bracket(anchor, template.constant)

    with Store(store_path) as store:
        search = _Search(
            name=name,
            optimizer=optimizer,
            template=template,
            total=total,
            steps_per_epoch=per_epoch,
            seed_list=tuple(range(seed, seed + seeds)),
            run_options=run_options,
            store=store,
            executor=executor_for,
            progress=progress,
            vectorize=vectorize,
            workers=count,
            limit=limit,
            planned=test_cost,
        )
        done = _race(search, first, steps, counts, warnings)

    final = done[-1]
    choice = final.choice
    if choice is None:  # (_race ends on a rung with a choice, or raises)
        raise ValueError(f"tune: no trial of the last rung gave a value on {name}")
    lr = float(f"{choice.lr:.3g}")
    searched = sorted({t.lr for t in done[0].trials})
    trials = [t for rung in done for t in rung.trials]
    record_seconds = sum(t.seconds for t in trials)
    edge = choice.at_edge
    if edge is not None:
        side, end_lr = ("lowest", final.lrs[0]) if edge == "low" else ("highest", final.lrs[-1])
        warnings.append(
            f"the best full-budget LR lies at or beyond the {side} LR run at full budget "
            f"({_text(end_lr)}) and the budget allows no wider search: raise budget"
        )
    return TuneResult(
        task=name,
        optimizer=optimizer,
        schedule=template.text,
        lr=lr,
        spec=template.paste(lr, total),
        flat=(choice.low, choice.high),
        searched=(searched[0], searched[-1]),
        bracket=(grid_lr(first[0]), grid_lr(first[-1])),
        edge=edge,
        rungs=tuple(done),
        range_test=tested,
        metric=resolved.metric_name,
        target=resolved.target,
        higher_is_better=bool(resolved.higher_is_better),
        total_steps=total,
        steps_per_epoch=per_epoch,
        cost_steps=test_cost + sum(t.trained for t in trials),
        range_test_steps=test_cost,
        seconds=time.perf_counter() - began,
        compute_seconds=record_seconds + tested.seconds + tested.lipschitz_seconds,
        ran=search.ran,
        stored=len(search.keys) - search.ran,
        db=store_path,
        seed=seed,
        seeds=seeds,
        budget=budget,
        range_minimum=minimum_lr(tested),
        warnings=tuple(warnings),
        run_options={k: v for k, v in run_options.items()},
    )


def _race(
    search: _Search,
    first: list[int],
    steps: Sequence[int],
    counts: Sequence[int],
    warnings: list[str],
) -> list[Rung]:
    """The rungs: the first over ``first`` (widened by a decade on the side where its best
    sits, while the budget allows), then ``counts[k]`` grid LRs over the LRs within noise
    of each rung's best (`lrlab.tuning.plan.survivors`) at ``steps[k]``; the last widened
    one LR at a time on the side where its best sits, while the budget allows. A rung where
    every trial diverged moves down."""
    seeds = len(search.seed_list)
    rest = [
        sum(c * s for c, s in zip(counts[k + 1 :], steps[k + 1 :], strict=True)) * seeds
        for k in range(len(steps))
    ]
    rung, stuck = _widening(search, 0, steps[0], list(first), PER_DECADE, rest[0], True)
    if stuck is not None:
        lowest = min(rung.lrs)
        if rung.choice is None:
            raise ValueError(
                f"tune: every trial diverged down to lr {lowest:.3g} and the budget allows no "
                "lower; lower the range test's start (range_test={'start': ...}) or raise budget"
            )
        warnings.append(
            f"the first rung's best LR is the {'lowest' if stuck == 'low' else 'highest'} "
            f"searched ({_text(lowest if stuck == 'low' else max(rung.lrs))}) and the budget "
            "allows no wider search"
        )
    done = [rung]
    searched = sorted(round(grid_index(lr)) for lr in rung.lrs)
    for k in range(1, len(steps)):
        previous = done[-1].choice
        if previous is None:  # (every rung ends with a choice: a fallback at worst)
            raise ValueError(f"tune: rung {k} gave no choice")
        low, high = grid_index(previous.low), grid_index(previous.high)
        indices = survivors(searched, low, high, counts[k])
        rung, _ = _widening(search, k, steps[k], indices, 1, rest[k], k == len(steps) - 1)
        if rung.choice is None:
            rung = Rung(rung.index, rung.steps, rung.trials, previous, rung.widened)
            warnings.append(
                f"every trial of rung {k + 1} ({steps[k]} steps) diverged; the answer is the "
                "previous rung's choice"
            )
        done.append(rung)
    return done


def _widening(
    search: _Search,
    index: int,
    steps: int,
    indices: list[int],
    count: int,
    reserve: int,
    at_edges: bool,
) -> tuple[Rung, str | None]:
    """Run rung ``index`` over ``indices`` at ``steps``; while its best sits at an edge (when
    ``at_edges``; else only when every trial diverged) and the budget holds the ``count``
    grid LRs beyond it plus ``reserve`` steps for the rungs after, add them and go on.
    Returns the rung and the side it was left at an edge on (``None``: it was not)."""
    search.planned += search.cost(indices, steps)
    widened: list[str] = []
    while True:
        rung = search.rung(index, steps, indices, widened)
        side = _edge(rung)
        if side is None or (not at_edges and rung.choice is not None):
            return rung, None
        more = _beyond(indices, side, count)
        extra = search.cost(more, steps)
        if not more or search.planned + extra + reserve > search.limit:
            return rung, side
        indices = sorted(indices + more)
        search.planned += extra
        widened.append(side)


def _edge(rung: Rung) -> str | None:
    """The side to widen a rung on: where its best sits at an edge, ``"low"`` when every
    trial diverged, else ``None``."""
    if rung.choice is None:
        return "low"
    return rung.choice.at_edge


def _beyond(indices: Sequence[int], side: str, count: int) -> list[int]:
    """``count`` grid indices beyond ``indices`` on ``side``, within the grid's bounds."""
    if side == "low":
        return [i for i in range(indices[0] - count, indices[0]) if i >= LOWEST]
    return [i for i in range(indices[-1] + 1, indices[-1] + 1 + count) if i <= HIGHEST]


def _text(lr: float) -> str:
    return f"{lr:.3g}"


def _validation_data(config: RunConfig, task: Task) -> Any:
    """The task's data for ``config``, refused (one line saying how to give one) when it has
    no validation split. (A training stream without a ``len()`` and without ``epoch_steps``,
    whose runs would have no length, is refused by `lrlab.Task` itself.)"""
    data = task_data(config, task)
    if data.validation_batches() is None:
        raise ValueError(
            f"task must have a validation split to tune on (never the test split); give "
            f"lrlab.Task(validation=0.1) (a tenth of its training tensors) or held-out data "
            f"(validation=(x, y) or a DataLoader), got task={task.name!r} without one"
        )
    return data
