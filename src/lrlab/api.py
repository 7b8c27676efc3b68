"""The public API: `train` one run, `compare` a grid, `tune` an LR, on lrlab's tasks or yours.

`train` returns the run's `RunRecord`; `tune` (`lrlab.tuning`) the LR a tuned grid would
choose, at a fifth of its cost, as a `TuneResult`; `compare` runs optimizers x schedules x
seeds (x an LR grid), stores every run in a SQLite file (a run already there is not redone,
so a killed comparison resumes), and returns a `Comparison`: the ranking, per-method
summaries, the runs, ``to_pandas()`` and the report's plots. The ``lrlab run``, ``lrlab
compare`` and ``lrlab tune`` commands are thin layers over these.

``task`` is an `lrlab.Task`, a built-in task's name, or a reference
``path/to/file.py:function`` / ``package.module:function`` whose function returns a Task. A
Task object without a reference runs in this process only (what ``compare`` does with it by
default); a reference runs anywhere, since each worker builds the task again from it.

A schedule whose spec leaves its horizon out (``cosine(lr=0.1)``) runs its course over the
whole run: the run's config records the spec with it filled in
(`lrlab.controllers.run_spec`), so a run's key says what ran. A spec's ``lr=`` is the run's
LR: `train` refuses a different ``lr`` beside it (`compare`'s ``lr_grid`` scales a spec's
shape to each of its LRs instead, and stores each run's LR beside its spec).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.controllers import ScheduleController, build_controller, run_spec
from lrlab.engine import check_task, plan, task_data, train_run
from lrlab.engine.branching import Branched, train_branches
from lrlab.execution import in_process_only, make_executor
from lrlab.record import HOLDOUT_SEEDS_FROM, RunConfig, RunRecord
from lrlab.report import (
    choose_lrs,
    plot_loss_curves,
    plot_per_epoch,
    profiles,
    run_rows,
    summarize,
    summary_rows,
    terminal_table,
    write_report,
)
from lrlab.schedules import Schedule
from lrlab.store import Store
from lrlab.sweep import Progress, Sweep, run_missing
from lrlab.tasks import get_task, task_id
from lrlab.tuning import TuneResult, tune
from lrlab.validate import (
    MAX_SEEDS,
    ArgumentTypeError,
    check_bool,
    check_choice,
    check_input_dir,
    check_int,
    check_number,
    check_output_path,
)

if TYPE_CHECKING:
    import pandas
    from matplotlib.axes import Axes

    from lrlab.engine import Observer, Plan
    from lrlab.execution import Executor
    from lrlab.report import Profiles, ReportFiles, Summary
    from lrlab.store import StoredRun
    from lrlab.tasks import Task

__all__ = ["Comparison", "TuneResult", "compare", "train", "tune"]

ScheduleLike = str | Schedule | None


def _spec(schedule: ScheduleLike, name: str = "schedule") -> str | None:
    """A schedule argument as a spec string (``None``, ``"none"`` and ``"constant"``: a
    constant LR)."""
    if schedule is None:
        return None
    if isinstance(schedule, Schedule):
        return schedule.spec()
    if isinstance(schedule, str):
        text = schedule.strip()
        if not text:
            raise ValueError(f"{name} must be a spec, none or constant, got {name}={schedule!r}")
        return None if text.lower() in ("none", "constant") else text
    raise ArgumentTypeError(
        f"{name} must be a spec string, an lrlab Schedule or None, got {name}={schedule!r}"
    )


def _task(task: str | Task) -> tuple[str, Task]:

    resolved = get_task(task)
    return task_id(task if isinstance(task, str) else resolved), resolved


def train(
    task: str | Task,
    *,
    optimizer: str = "sgd",
    lr: float | None = None,
    schedule: ScheduleLike = None,
    seed: int = 0,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    model: str | None = None,
    optimizer_args: dict[str, Any] | None = None,
    split: str | None = None,
    sampling: str | None = None,
    device: str = "cpu",
    data_dir: str | Path | None = None,
    observer: Observer | None = None,
    clip_norm: float | None = None,
    weight_decay: float | None = None,
    decay_params: str = "all",
    accumulation_steps: int = 1,
    precision: str = "fp32",
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    checkpoint_seconds: float | None = None,
) -> RunRecord:
    """Train one run and return its record (per-step loss and LR, per-epoch metrics, wall
    time, outcome). ``lr`` is the base LR (``None``: the schedule's, else the optimizer's
    default); ``schedule`` a spec string (``"cosine(lr=0.1, steps=1000)"``,
    ``"lipschitz(bound=smooth)"``) or a `Schedule`. A bad argument is a one-line
    ``ValueError`` before anything trains; a non-finite loss ends the run as ``diverged``.

    Training options (see `lrlab.engine.loop`): ``clip_norm`` clips the gradients' global
    norm (``torch.nn.utils.clip_grad_norm_``) before each update; ``weight_decay`` is the
    optimizer's (the same as ``optimizer_args={"weight_decay": ...}``), applied to the
    parameters ``decay_params`` names: ``"all"``, ``"matrices"`` (nanoGPT, timm) or
    ``"no-bias-norm-embed"`` (no decay on biases, norm layers, embeddings;
    `lrlab.engine.groups`); ``accumulation_steps`` micro-batches of ``batch_size`` per
    update; ``precision="bf16"`` runs forward and loss under bfloat16 autocast;
    ``checkpoint_dir`` writes mid-run checkpoints there (every ``checkpoint_every`` updates
    or ``checkpoint_seconds`` seconds, default every 60 s) and resumes from the latest one
    found there, ending bit for bit as an uninterrupted run (`lrlab.engine.checkpoint`).

    >>> record = train("quadratic", lr=0.2, schedule="exponential(lr=0.2, rate=0.99)")
    >>> record.status, round(record.step_loss[1], 4)
    ('done', 12.96)
    """

    name, resolved = _task(task)
    if observer is not None and not all(
        callable(getattr(observer, hook, None)) for hook in ("on_start", "on_step", "on_epoch")
    ):
        raise ArgumentTypeError(
            "observer must have on_start, on_step and on_epoch methods (lrlab.engine.Observer), "
            f"got observer={observer!r}"
        )
    config = _resolved_schedule(
        RunConfig(
            task=name,
            optimizer=optimizer,
            lr=lr,
            schedule=_spec(schedule),
            epochs=epochs,
            steps=steps,
            batch_size=batch_size,
            seed=seed,
            model=model,
            split=split,
            sampling=sampling,
            device=device,
            data_dir=_data_dir(data_dir),
            clip_norm=clip_norm,
            decay_params=decay_params,
            accumulation_steps=accumulation_steps,
            precision=precision,
            checkpoint_dir=_checkpoint_dir(checkpoint_dir),
            checkpoint_every=checkpoint_every,
            checkpoint_seconds=checkpoint_seconds,
            optimizer_args=_with_weight_decay(_arguments(optimizer_args), weight_decay),
        ),
        resolved,
    )
    data = task_data(config, resolved)
    check_task(config, resolved, data, plan(config, data, resolved))
    return train_run(config, observer=observer, task=resolved)


def _resolved_schedule(config: RunConfig, task: Task) -> RunConfig:
    """``config`` with its schedule's spec as the run records it (`_run_specs`), after
    refusing an ``lr`` that contradicts the spec's own (`_one_lr`)."""
    if config.schedule is None:
        return config
    resolved_plan = plan(config, task_data(config, task), task)
    spec = _run_specs([config.schedule], resolved_plan)[0] or config.schedule
    _one_lr(config.lr, spec, resolved_plan)
    return dataclasses.replace(config, schedule=spec)


def branch(
    task: str | Task,
    *,
    branches: Sequence[tuple[int, ScheduleLike]],
    optimizer: str = "sgd",
    lr: float | None = None,
    schedule: ScheduleLike = None,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    model: str | None = None,
    optimizer_args: dict[str, Any] | None = None,
    device: str = "cpu",
    data_dir: str | Path | None = None,
    clip_norm: float | None = None,
    weight_decay: float | None = None,
    decay_params: str = "all",
    accumulation_steps: int = 1,
    precision: str = "fp32",
) -> Branched:
    """Train one run (``schedule``, ``steps``; the *source*) and each of ``branches``, given
    as ``(steps, schedule)`` pairs, continued from the source's state where its LRs part from
    the source's: a warmup-stable-decay run and its cooldowns at shorter budgets, or several
    cooldown shapes from one stable phase, for the price of one stable phase
    (`lrlab.engine.branching`). The other arguments are `train`'s, shared by every run. Each
    branch's record equals, bit for bit, the record of the same run trained from scratch
    (``Branched.at`` says where each continued from; 0: it trained from scratch).

    >>> result = branch(
    ...     "quadratic", lr=0.1, steps=40, schedule="wsd(lr=0.1, warmup=5, decay=0.2)",
    ...     branches=[(20, "wsd(lr=0.1, warmup=5, decay=0.2)")],
    ... )
    >>> result.at, len(result.branches[0].step_loss)
    ([17], 20)
    """
    name, resolved = _task(task)
    if isinstance(branches, str | bytes) or not isinstance(branches, Sequence):
        raise ArgumentTypeError(
            f"branches must be a list of (steps, schedule) pairs, got branches={branches!r}"
        )
    source = _resolved_schedule(
        RunConfig(
            task=name,
            optimizer=optimizer,
            lr=lr,
            schedule=_spec(schedule),
            optimizer_args=_with_weight_decay(_arguments(optimizer_args), weight_decay),
            steps=steps,
            batch_size=batch_size,
            seed=seed,
            model=model,
            device=device,
            data_dir=_data_dir(data_dir),
            clip_norm=clip_norm,
            decay_params=decay_params,
            accumulation_steps=accumulation_steps,
            precision=precision,
        ),
        resolved,
    )
    configs = []
    for index, pair in enumerate(branches):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ArgumentTypeError(
                f"branches[{index}] must be a (steps, schedule) pair, got {pair!r}"
            )
        configs.append(
            _resolved_schedule(
                dataclasses.replace(
                    source, steps=pair[0], schedule=_spec(pair[1], f"branches[{index}]")
                ),
                resolved,
            )
        )
    data = task_data(source, resolved)
    check_task(source, resolved, data, plan(source, data, resolved))
    return train_branches(source, configs, task=resolved)


def _run_specs(specs: Sequence[str | None], resolved: Plan) -> list[str | None]:
    """Each spec as its runs record it (`lrlab.controllers.run_spec`: a horizon left out is
    the run's length)."""
    return [
        None
        if spec is None
        else run_spec(
            spec, steps_per_epoch=resolved.steps_per_epoch, total_steps=resolved.total_steps
        )
        for spec in specs
    ]


def _one_lr(lr: float | None, spec: str, resolved: Plan) -> None:
    """Refuse ``lr`` beside a spec whose own ``lr=`` differs: the run would train at ``lr``
    under a label that says otherwise."""
    if lr is None:
        return
    own = build_controller(spec, steps_per_epoch=resolved.steps_per_epoch).initial_lr
    if own is not None and not math.isclose(float(lr), own, rel_tol=1e-12):
        raise ValueError(
            f"lr must be left out or be the schedule's own lr={own:g} (a spec's lr= is the "
            f"run's LR: {spec}), got lr={lr!r}"
        )


def _with_weight_decay(optimizer_args: dict[str, Any], weight_decay: object) -> dict[str, Any]:
    """``optimizer_args`` with ``weight_decay`` in it (given once: as the argument or inside
    ``optimizer_args``, not both)."""
    if weight_decay is None:
        return optimizer_args
    if "weight_decay" in optimizer_args:
        raise ValueError(
            f"give weight_decay once, as weight_decay= or in optimizer_args, got "
            f"weight_decay={weight_decay!r} and optimizer_args weight_decay="
            f"{optimizer_args['weight_decay']!r}"
        )
    check_number("", "weight_decay", weight_decay, nonnegative=True)
    return {**optimizer_args, "weight_decay": weight_decay}


def _checkpoint_dir(checkpoint_dir: object) -> str | None:
    """``checkpoint_dir`` as a run config stores it (a string), checked: a folder lrlab may
    create or write."""
    if checkpoint_dir is None:
        return None
    return str(check_output_path("", "checkpoint_dir", checkpoint_dir, directory=True))


def _arguments(optimizer_args: object) -> dict[str, Any]:
    if optimizer_args is None:
        return {}
    if not isinstance(optimizer_args, Mapping):
        raise ArgumentTypeError(
            f"optimizer_args must be a dict of argument names to values, "
            f"got optimizer_args={optimizer_args!r}"
        )
    return dict(optimizer_args)


def _data_dir(data_dir: object) -> str | None:
    """``data_dir`` as a run config stores it (a string), checked: a folder when it exists."""

    return None if data_dir is None else str(check_input_dir("", "data_dir", data_dir))


@dataclass(frozen=True)
class Comparison:
    """What `compare` found: ``summaries`` ranked per task (best first), every stored run of
    the grid, the store it lives in and how many runs ran now (the rest came from the
    store); `failed` lists the runs an error ended (``len(comparison.failed)``: how many)."""

    summaries: list[Summary]
    runs: list[StoredRun]
    db: Path
    ran: int
    optimistic: bool = False

    @property
    def failed(self) -> list[StoredRun]:
        """The runs of the comparison that failed (an error ended them: their ``error`` says
        which); diverged runs are results, not failures. ``compare`` again retries them."""
        return [run for run in self.runs if run.status == "failed"]

    @property
    def ranking(self) -> list[str]:
        """Method labels, best first (one task: the grid's)."""
        return [summary.label for summary in self.summaries]

    def summary(self, label: str) -> Summary:
        """The summary of the method labelled ``label`` (as ranked, its schedule at the chosen
        LR, or as written)."""
        for summary in self.summaries:
            if label in (summary.label, summary.base_label):
                return summary
        raise ValueError(f"no method labelled {label!r}; methods: {', '.join(self.ranking)}")

    def table(self, width: int | None = None) -> str:
        """The ranking as terminal text (what ``lrlab compare`` prints)."""

        return terminal_table(self.summaries, width=width)

    def profile(self, baseline: str | None = None, tau_max: float = 4.0) -> Profiles:
        """Performance profiles of the methods over the comparison's tasks (by steps and by
        seconds to target), AlgoPerf's integrated scores and the geometric-mean speedups over
        ``baseline``: `lrlab.report.profiles.profiles`."""

        return profiles(self.summaries, baseline=baseline, tau_max=tau_max)

    def to_pandas(self, what: str = "summary") -> pandas.DataFrame:
        """A ``pandas.DataFrame``: one row per method (``what="summary"``, the columns of
        ``summary.csv``) or per run (``"runs"``). Needs pandas (``pip install
        'lrlab[pandas]'``)."""

        check_choice("to_pandas", "what", what, ("summary", "runs"))
        try:
            import pandas
        except ImportError:
            raise ValueError("to_pandas needs pandas: pip install 'lrlab[pandas]'") from None
        rows = summary_rows(self.summaries) if what == "summary" else run_rows(self.runs)
        return pandas.DataFrame(rows)

    def plot(self, kind: str = "loss", ax: Axes | None = None) -> Axes:
        """The report's plots: ``"loss"`` (smoothed training loss, median over seeds, seed
        003's figure), ``"lr"`` (LR per epoch) or ``"metric"`` (test metric per epoch), on
        ``ax`` or a new figure (never shown)."""

        check_choice("plot", "kind", kind, ("loss", "lr", "metric"))
        if kind == "loss":
            return plot_loss_curves(self.summaries, ax=ax)  # type: ignore[no-any-return]
        return plot_per_epoch(self.summaries, kind, ax=ax)  # type: ignore[no-any-return]

    def write_report(self, out: str | Path | None = None) -> ReportFiles:
        """Write report.md, summary.csv, runs.csv and the plots (default folder: the store's
        name with ``-report``, beside it)."""

        folder = Path(out) if out is not None else self.db.with_name(self.db.stem + "-report")
        return write_report(self.runs, folder, source=str(self.db), optimistic=self.optimistic)[1]


def compare(
    task: str | Task,
    *,
    optimizers: Sequence[str] = (),
    schedules: Sequence[ScheduleLike] = (None,),
    methods: Iterable[tuple[str, ScheduleLike]] = (),
    seeds: int | Sequence[int] = 5,
    lr_grid: Sequence[float] | None = None,
    holdout_seeds: int = 5,
    optimistic: bool = False,
    db: str | Path = "lrlab.sqlite",
    workers: int | None = None,
    threads: int = 1,
    executor: str = "local",
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    progress: Progress | None = None,
    vectorize: bool = True,
    **run: Any,
) -> Comparison:
    """Run optimizers x schedules on ``task`` (plus ``methods``, extra (optimizer, schedule)
    pairs), tuning every method that takes an LR over ``lr_grid`` with the same budget,
    storing each run in ``db``; return the `Comparison`.

    The protocol (`lrlab.report.summarize`): each tuned method runs its grid on the tuning
    ``seeds`` and its LR is chosen on the task's validation split (its training metric
    without one), never the test split; then every method runs at its chosen LR (the
    untuned at their own) on ``holdout_seeds`` fresh seeds (1000, 1001, ...), and the
    ranking and every number come from those runs on the test split. That costs the grid
    plus one run per method per fresh seed. ``optimistic=True`` instead runs every method
    on ``seeds`` and chooses and scores on the same runs and the test split (lrlab's protocol
    before validation splits: an optimistic estimate).

    Runs that differ only in seed, LR and schedule values train together as one vectorised
    model (``vectorize=False``: one by one); each run's record is what it gives alone.
    ``seeds`` is a count (seeds ``0..seeds-1``) or the seeds themselves. ``run`` holds
    what every run shares: ``epochs``, ``steps``, ``batch_size``, ``model``, ``split``,
    ``sampling``, ``device``, ``data_dir``, ``optimizer_args`` and the training options of
    `train` (``clip_norm``, ``weight_decay``, ``decay_params``, ``accumulation_steps``,
    ``precision``, ``checkpoint_dir``, ``checkpoint_every``, ``checkpoint_seconds``). With
    checkpoints (``checkpoint_dir``, or an interval alone: then the folder is
    ``<db stem>-checkpoints`` beside the store), each run writes its own there, and a run
    killed mid-way resumes from its latest when the comparison runs again; such runs train
    one by one, not vectorised. ``workers`` runs in
    parallel (default: the CPU count, or 1 for a `Task` object without a reference, which
    only this process can build; 1 runs here), ``executor="ray"`` on a Ray cluster
    (``address``, ``runtime_env``: see `lrlab.execution.RayExecutor`). Runs already finished
    in ``db`` are not redone; failed ones are retried. Every argument is checked before
    anything runs, and a task of the user's on one batch (`lrlab.engine.check_task`: a
    mistake is a one-line `lrlab.errors.TaskError`). A run that fails later (an error in the
    middle of training) is stored as failed with its error and does not stop the others:
    `Comparison.failed` lists them.
    """
    name, resolved = _task(task)
    seed_list = _seeds(seeds)
    check_bool("", "vectorize", vectorize)
    check_bool("", "optimistic", optimistic)
    fresh = () if optimistic else _fresh_seeds(holdout_seeds)
    store_path = check_output_path("", "db", db)
    optimizers = _sequence("optimizers", optimizers, "a list of optimizer names")
    schedules = _sequence("schedules", schedules, "a list of schedule specs")
    pairs = _sequence("methods", methods, "a list of (optimizer, schedule) pairs")
    for i, pair in enumerate(pairs):
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ArgumentTypeError(
                f"methods[{i}] must be an (optimizer, schedule) pair, got methods[{i}]={pair!r}"
            )
    if lr_grid is not None:
        lr_grid = _sequence("lr_grid", lr_grid, "a list of LRs")
    known = {"epochs", "steps", "batch_size", "model", "split", "sampling", "device"}
    known |= {"data_dir", "optimizer_args", "clip_norm", "weight_decay", "decay_params"}
    known |= {"accumulation_steps", "precision", "checkpoint_dir", "checkpoint_every"}
    known |= {"checkpoint_seconds"}
    for key in run:
        if key not in known:
            raise ArgumentTypeError(
                f"compare() got an unexpected argument {key!r}; run options are "
                f"{', '.join(sorted(known))}"
            )
    run_options = {k: v for k, v in run.items() if v is not None}
    if "data_dir" in run_options:
        run_options["data_dir"] = _data_dir(run_options["data_dir"])
    weight_decay = run_options.pop("weight_decay", None)
    if weight_decay is not None:
        run_options["optimizer_args"] = _with_weight_decay(
            _arguments(run_options.get("optimizer_args")), weight_decay
        )
    if "checkpoint_dir" not in run_options and (
        "checkpoint_every" in run_options or "checkpoint_seconds" in run_options
    ):
        run_options["checkpoint_dir"] = store_path.with_name(store_path.stem + "-checkpoints")
    if "checkpoint_dir" in run_options:
        run_options["checkpoint_dir"] = _checkpoint_dir(run_options["checkpoint_dir"])
    specs = [_spec(s, "schedules") for s in schedules]
    extra = [(o, _spec(s, "methods")) for o, s in pairs]
    # The run options, the data, the first optimizer: checked now, and the runs' length known.
    probe = RunConfig(
        task=name,
        optimizer=(list(optimizers) or [o for o, _ in extra] or ["sgd"])[0],
        **run_options,
    )
    data = task_data(probe, resolved)
    resolved_plan = plan(probe, data, resolved)
    extra_specs = _run_specs([s for _, s in extra], resolved_plan)
    sweep = Sweep(
        task=name,
        optimizers=tuple(optimizers),
        schedules=tuple(_run_specs(specs, resolved_plan)),
        seeds=seed_list,
        lr_grid=tuple(lr_grid) if lr_grid is not None else None,
        run=run_options,
        extra=tuple((o, spec) for (o, _), spec in zip(extra, extra_specs, strict=True)),
        fresh_seeds=fresh,
    )
    configs = sweep.configs() if optimistic else sweep.tuning_configs()
    _check_controllers(sweep.configs(), resolved_plan)
    count = workers if workers is not None else _default_workers(executor, resolved)

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

    executor_for(len(configs) or 1)  # its options are checked now, before anything runs
    check_task(probe, resolved, data, resolved_plan)  # one batch, here, before any worker
    with Store(store_path) as store:
        ran = 0  # (no tuning runs when nothing is tuned: the fresh seeds are all there is)
        if configs:
            ran = run_missing(
                store, configs, executor_for, progress, vectorize=vectorize, workers=count
            )
        runs = store.runs(keys=[c.key() for c in configs]) if configs else []
        if not optimistic:  # the chosen settings, on fresh seeds
            scored = sweep.fresh_configs(choose_lrs(runs))
            ran += run_missing(
                store, scored, executor_for, progress, vectorize=vectorize, workers=count
            )
            runs += store.runs(keys=[c.key() for c in scored])

    return Comparison(summarize(runs, optimistic=optimistic), runs, store_path, ran, optimistic)


def _default_workers(executor: str, task: Task) -> int:
    """The CPU count; 1 for a local comparison of a `Task` object no other process can build
    (no reference, not registered): it runs in this process."""
    return 1 if executor == "local" and in_process_only(task) else (os.cpu_count() or 1)


def _sequence(name: str, value: object, what: str) -> list[Any]:
    """``value`` as a list, refused (``TypeError``) when it is a string or not a sequence."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ArgumentTypeError(f"{name} must be {what}, got {name}={value!r}")
    return list(value)


def _check_controllers(configs: Sequence[RunConfig], resolved: Plan) -> None:
    """What each run's LR controller would refuse at its start, refused now for all of them:
    a task it cannot drive (LipschitzLR without a Linear head), a schedule whose LR overflows
    within the runs' horizon at the largest base LR the grid gives it."""

    lrs: dict[str, list[float | None]] = {}
    for config in configs:
        if config.schedule is not None:
            lrs.setdefault(config.schedule, []).append(config.lr)
    for spec, given in lrs.items():
        controller = build_controller(spec, steps_per_epoch=resolved.steps_per_epoch)
        controller.check_task(resolved.task)
        for lr in {controller.initial_lr if lr is None else lr for lr in given} - {None}:
            controller.check_lr(lr)  # type: ignore[arg-type]  # None removed
        if isinstance(controller, ScheduleController):
            base = max(controller.initial_lr if lr is None else lr for lr in given)
            controller.check_horizon(resolved.total_steps, base)


def _fresh_seeds(count: object) -> tuple[int, ...]:
    """``count`` fresh seeds from `HOLDOUT_SEEDS_FROM` up."""
    number = check_int("", "holdout_seeds", count, minimum=1, maximum=HOLDOUT_SEEDS_FROM)
    return tuple(range(HOLDOUT_SEEDS_FROM, HOLDOUT_SEEDS_FROM + number))


def _seeds(seeds: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        check_int("", "seeds", seeds, minimum=1, maximum=MAX_SEEDS)
        return tuple(range(seeds))
    if isinstance(seeds, str) or not isinstance(seeds, Sequence):
        raise ArgumentTypeError(f"seeds must be a count or a list of seeds, got seeds={seeds!r}")
    values = tuple(check_int("", f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds))
    if not values:
        raise ValueError("seeds must hold at least one seed, got seeds=[]")
    return tuple(dict.fromkeys(values))
