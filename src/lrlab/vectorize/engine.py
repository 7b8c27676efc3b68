"""`train_group`: the runs of a group trained together, one `RunRecord` each, equal to what
`lrlab.engine.train_run` gives for each run alone.

Each member keeps everything that makes its run: the initial weights of its seed (its model
is built exactly as the engine builds it, then its parameters become a row of the stacked
model), its own data order (its own ``torch.Generator`` seeded with its seed, a fresh
permutation per epoch or seed 003's sampling with replacement), its LR (constant, a schedule
evaluated at each step as `lrlab.ScheduleLR` does, or LipschitzLR's), its optimizer state
(a row of the stacked rule's) and its record. The engine's loop is followed step for step:
the loss of each batch is read before the update, a non-finite loss ends the member's run as
``diverged`` at that step (its row leaves the stacked tensors before the update, so its
parameters and optimizer state stop there; the others go on), an ``ArithmeticError`` from
LipschitzLR does the same with the error recorded, and every epoch ends with the running
training metric and an evaluation on the held-out set.

LipschitzLR runs as it does alone: each member has its own `LipschitzController`, started on
the member's own model and optimizer (a "shadow", built as the engine builds them); the
shadow's final layer is called on the member's slice of the stacked activations, so the
controller sees exactly the statistics it would see alone, and its LR is read from the
shadow optimizer. The shadow's weights are refreshed from the stacked row before anything
that reads them (the pass over the data of ``source=eval``, an L2 term's largest weight).

The numbers are a run alone's, bit for bit, except the last bit of a recorded loss on the
batched-MLP path (see `lrlab.vectorize.model`): same LRs, same divergence steps, same epoch
metrics.

Timing: a member's ``train_time`` and ``wall_time`` are its share of the group's time: every
stretch of training (or evaluation) is divided equally among the members in it. Records say
``extra["vectorized"] = {"members": N, "path": "mlp" | "loop" | "vmap"}``; nothing a report
computes reads it. Time to target is therefore per-member amortised time, lower than a run
alone would take (and lower for members of larger groups: compare times only between runs
trained the same way).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lrlab.controllers import LRController, ScheduleController, TrainingContext, build_controller
from lrlab.engine import Bookkeeper, Plan, new_record
from lrlab.optimizers import make_optimizer
from lrlab.record import RunConfig, RunRecord
from lrlab.schedules import Schedule
from lrlab.tasks import Task, TaskData, get_task, load_tensor_data
from lrlab.tasks.task import LossKind, MetricKind
from lrlab.vectorize.losses import member_metrics
from lrlab.vectorize.model import (
    Layout,
    StackedFunctional,
    StackedMLP,
    StackedModel,
    mlp_layers,
)
from lrlab.vectorize.optim import param_group, rule_for_group
from lrlab.vectorize.plan import Member, member_of

ModelPath = Literal["auto", "mlp", "vmap", "loop"]


def train_group(configs: Sequence[RunConfig], *, path: ModelPath = "auto") -> list[RunRecord]:
    """Train ``configs`` together; one record per config, in order.

    The configs must form a group (`lrlab.vectorize.plan_groups` makes them): otherwise a
    one-line ``ValueError`` says which config cannot join and why, before any training.
    ``path`` picks how the stacked model runs (see `lrlab.vectorize.model`): ``"auto"`` takes
    the batched MLP for a plain MLP and the members' own modules (``"loop"``) for any other
    model, both bit for bit a run alone's; ``"mlp"``, ``"loop"`` and ``"vmap"``
    (``torch.func``, which rounds differently) force one, for tests and benchmarks.
    """
    if path not in ("auto", "mlp", "vmap", "loop"):
        raise ValueError(f"path must be auto, mlp, vmap or loop, got path={path!r}")
    configs = list(configs)
    if not configs:
        return []
    members: list[Member] = []
    for index, config in enumerate(configs):
        member = member_of(config)
        if isinstance(member, str):
            raise ValueError(f"train_group: configs[{index}] cannot be vectorised: {member}")
        if members and member.key != members[0].key:
            differs = [
                name
                for name, a, b in zip(_KEY_FIELDS, member.key, members[0].key, strict=True)
                if a != b
            ]
            raise ValueError(
                f"train_group: configs[{index}] differs from configs[0] in {', '.join(differs)}; "
                "plan_groups puts such runs in different groups"
            )
        members.append(member)
    return _Group(members, path).run()


_KEY_FIELDS = (
    "task",
    "model",
    "split",
    "validation",
    "data_dir",
    "device",
    "batch_size",
    "steps_per_epoch",
    "total_steps",
    "sampling",
    "loss",
    "optimizer options",
    "controller kind",
    "LipschitzLR head",
)


@dataclass
class _Shadow:
    """A LipschitzLR member's own model and optimizer, as the engine builds them, which its
    controller watches and sets the LR of."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    head: nn.Module
    watches_batches: bool  # statistics from training batches are used
    reads_weights: bool  # an L2 term: the rate reads the largest weight every time

    def sync(self, stacked: StackedModel, row: int) -> None:
        """Copy the member's stacked row into its model (nothing to do when the stacked model
        runs the members' own modules: their parameters are views of the rows)."""
        if stacked.runs_member_modules:
            return
        with torch.no_grad():
            torch._foreach_copy_(list(self.model.parameters()), stacked.member_parameters(row))


@dataclass
class _Member:
    """One run of the group: its record, data order, LR source and time share."""

    config: RunConfig
    book: Bookkeeper
    generator: torch.Generator
    controller: LRController | None
    lr: float  # the optimizer's LR as built (the schedule's base)
    schedule: Schedule | None = None
    shadow: _Shadow | None = None
    epoch_lrs: list[float] = field(default_factory=list)
    train_time: float = 0.0
    wall_time: float = 0.0
    last_step: int = 0

    @property
    def record(self) -> RunRecord:
        return self.book.record

    def current_lr(self) -> float:
        if self.shadow is not None:
            return float(self.shadow.optimizer.param_groups[0]["lr"])
        return self.epoch_lrs[-1] if self.epoch_lrs else self.lr


class _Clock:
    """Shares elapsed time equally among the members that spent it."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def charge(self, members: Sequence[_Member], *, training: bool) -> None:
        now = time.perf_counter()
        if members:
            share = (now - self.last) / len(members)
            for member in members:
                member.wall_time += share
                if training:
                    member.train_time += share
        self.last = now


class _Running:
    """An epoch's outputs and targets, one ``(N, B, ...)`` pair per step, rows = members."""

    def __init__(self) -> None:
        self.outputs: list[Tensor] = []
        self.targets: list[Tensor] = []

    def add(self, outputs: Tensor, targets: Tensor) -> None:
        self.outputs.append(outputs)
        self.targets.append(targets)

    def metrics(self, metric: MetricKind, loss: LossKind, rows: Tensor) -> list[float | None]:
        """The running training metric of the members at ``rows`` (``None`` without steps)."""
        if not self.outputs:
            return [None] * rows.numel()
        outputs, targets = torch.cat(self.outputs, dim=1), torch.cat(self.targets, dim=1)
        return member_metrics(
            metric, loss, outputs.index_select(0, rows), targets.index_select(0, rows)
        )

    def select(self, keep: Tensor) -> None:
        if self.outputs:
            outputs, targets = torch.cat(self.outputs, dim=1), torch.cat(self.targets, dim=1)
            self.outputs = [outputs.index_select(0, keep)]
            self.targets = [targets.index_select(0, keep)]


class _Group:
    """The loop of `lrlab.engine`'s ``_Loop``, over stacked members."""

    def __init__(self, members: Sequence[Member], path: ModelPath) -> None:
        first = members[0]
        self.plan: Plan = first.plan
        self.task: Task = get_task(first.config.task)
        config = first.config
        self.data: TaskData = load_tensor_data(
            config.task, config.split, config.data_dir, config.validation
        ).to(self.plan.device)
        self.loss: LossKind = self.plan.loss  # type: ignore[assignment]  # member_of checked
        self.metric: MetricKind = self.task.metric  # type: ignore[assignment]
        self.lipschitz = first.kind == "lipschitz"
        models, groups = [], []
        self.members: list[_Member] = []
        for member in members:
            run, model, group = self._build(member.config)
            self.members.append(run)
            models.append(model)
            groups.append(group)
        layout = Layout.of(models[0])
        params = layout.stack(models)
        self.path = first.path if path == "auto" else path
        if self.path == "mlp":
            layers = mlp_layers(models[0])
            if layers is None:
                raise ValueError("train_group: path='mlp' needs a plain MLP")
            self.model: StackedModel = StackedMLP(
                layout, params, flatten=layers[0], watch_head=self.lipschitz
            )
        else:
            self.model = StackedFunctional(layout, params, models, first.head, self.path)
        cls, _ = param_group(first.config.optimizer, None, {})
        rule = rule_for_group(cls, groups[0])
        if isinstance(rule, str):  # member_of() has checked this already
            raise ValueError(f"train_group: {rule}")
        self.rule = rule(groups, params)
        self.active = list(self.members)
        self.size = len(self.members)
        self._rows: list[list[float]] = []  # the epoch's losses not yet in the records
        self._flushed = 0  # steps of the epoch already in the records
        self.clock = _Clock()

    def _build(self, config: RunConfig) -> tuple[_Member, nn.Module, dict[str, Any]]:
        """The member's model and controller, built as `lrlab.engine.train_run` builds them, its
        optimizer's param group, and its empty record. A torch optimizer is built only for
        LipschitzLR, which sets the LR of one (see `param_group`)."""
        plan, task, device = self.plan, self.task, self.plan.device
        controller = (
            build_controller(config.schedule, steps_per_epoch=plan.steps_per_epoch)
            if config.schedule
            else None
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = task.build_model(config.model)
        model.to(device).train()
        lr = config.lr if config.lr is not None else (controller.initial_lr if controller else None)
        _, group = param_group(config.optimizer, lr, config.optimizer_args)
        record = new_record(config, task, plan.steps_per_epoch, plan.device, self.data)
        member = _Member(
            config,
            Bookkeeper(record),
            torch.Generator().manual_seed(config.seed),
            controller,
            float(group["lr"]),
        )
        if isinstance(controller, ScheduleController):
            member.schedule = controller.schedule
        elif controller is not None:
            optimizer = make_optimizer(
                config.optimizer, model.parameters(), lr=lr, **config.optimizer_args
            )
            context = TrainingContext(
                model,
                optimizer,
                self.data,
                self.loss,
                plan.batch_size,
                plan.steps_per_epoch,
                plan.total_steps,
                device,
            )
            controller.start(context)
            scheduler = controller.scheduler  # type: ignore[attr-defined]
            member.shadow = _Shadow(
                model,
                optimizer,
                scheduler.head,
                watches_batches=scheduler.every == "batch" or scheduler.source == "train",
                reads_weights=scheduler.l2 != 0,
            )
        return member, model, group

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> list[RunRecord]:
        plan = self.plan
        step, epoch = 0, 0
        try:
            while step < plan.total_steps and self.active:
                steps = min(plan.steps_per_epoch, plan.total_steps - step)
                self._epoch(epoch, step, steps)
                step += steps
                epoch += 1
        finally:
            for member in self.members:
                if member.controller is not None:
                    member.controller.close()
        for member in self.members:
            steps = member.last_step if member.book.diverged else step
            record = member.book.finish(
                steps, member.train_time, member.wall_time, member.controller
            )
            record.extra["vectorized"] = {"members": self.size, "path": self.path}
        return [m.record for m in self.members]

    def _epoch(self, epoch: int, begin: int, steps: int) -> None:
        failures: dict[int, ArithmeticError] = {}
        for row, member in enumerate(self.active):
            member.epoch_lrs = []
            if member.shadow is not None and member.controller is not None:
                member.shadow.sync(self.model, row)
                try:
                    member.controller.on_epoch_start(epoch, begin)
                except ArithmeticError as error:
                    failures[row] = error
        running = _Running()
        self._rows = []
        self._flushed = 0
        if failures:
            self._deaths(epoch, begin, begin, None, failures, running)
            failures = {}
        if not self.active:
            return
        batches = self._draw(steps)
        table = None if self.lipschitz else self._lr_table(begin, steps)
        for local in range(steps):
            step = begin + local
            inputs, targets = self._batch(batches, local)
            result = self.model.train_step(inputs, targets, self.loss)
            failures.update(result.errors)
            if table is None:
                lr = self._lipschitz_lrs(result.head_inputs, failures)
            else:
                lr = table[:, local]
            values = result.losses.tolist()
            outputs = result.outputs
            if failures or not math.isfinite(sum(values)):
                keep = self._deaths(epoch, begin, step, values, failures, running)
                failures = {}
                if keep is not None:
                    if not self.active:
                        return
                    batches = batches.index_select(0, keep)
                    table = table.index_select(0, keep) if table is not None else None
                    lr, outputs = lr.index_select(0, keep), outputs.index_select(0, keep)
                    targets = targets.index_select(0, keep)
            else:
                self._rows.append(values)
            self.rule.step(self.model.params, self.model.grads, lr)
            for member in self.active:
                if member.shadow is not None and member.controller is not None:
                    member.controller.after_update(step)
            running.add(outputs, targets)
        end = begin + steps
        self._flush(end - begin)
        self._end_epoch(epoch, begin, end, list(range(len(self.active))), running)

    def _draw(self, steps: int) -> Tensor:
        """Every member's batch indices for the epoch, from its own generator, as the engine
        draws them: ``(N, train_size)`` permutations, or ``(N, steps, batch)`` draws."""
        n, size = self.data.train_size, self.plan.batch_size
        if self.plan.sampling == "replacement":
            draws = [torch.randint(n, (steps, size), generator=m.generator) for m in self.active]
        else:
            draws = [torch.randperm(n, generator=m.generator) for m in self.active]
        return torch.stack(draws).to(self.plan.device)

    def _batch(self, batches: Tensor, local: int) -> tuple[Tensor, Tensor]:
        size = self.plan.batch_size
        if self.plan.sampling == "replacement":
            index = batches[:, local]
        else:
            index = batches[:, local * size : (local + 1) * size]
        members, count = index.shape
        flat = index.reshape(-1)
        data = self.data
        inputs = data.x_train.index_select(0, flat)
        if data.transform is not None:
            inputs = data.transform(inputs)
        targets = data.y_train.index_select(0, flat)
        return (
            inputs.view(members, count, *inputs.shape[1:]),
            targets.view(members, count, *targets.shape[1:]),
        )

    def _lr_table(self, begin: int, steps: int) -> Tensor:
        """The epoch's LRs, float64 ``(N, steps)``: constant, or ``schedule(t) * (base /
        reference)`` as `lrlab.ScheduleLR` computes it, each schedule evaluated once."""
        values: dict[str, list[float]] = {}
        for member in self.active:
            schedule = member.schedule
            if schedule is None:
                member.epoch_lrs = [member.lr] * steps
                continue
            spec = schedule.spec()
            if spec not in values:
                values[spec] = [schedule(t) for t in range(begin, begin + steps)]
            ratio = member.lr / schedule.reference_lr
            member.epoch_lrs = [v * ratio for v in values[spec]]
        return torch.tensor(
            [m.epoch_lrs for m in self.active], dtype=torch.float64, device=self.plan.device
        )

    def _lipschitz_lrs(
        self, head_inputs: tuple[Tensor, ...], failures: dict[int, ArithmeticError]
    ) -> Tensor:
        """Show each member's controller its slice of the watched activations (its final
        layer, called on them, reports them as in a run alone; the members' own modules
        have done so already when they ran) and read its LR."""
        model = self.model
        for row, member in enumerate(self.active):
            shadow = member.shadow
            if shadow is None:
                continue
            if shadow.watches_batches and not model.runs_member_modules:
                if shadow.reads_weights:
                    shadow.sync(model, row)
                try:
                    with torch.enable_grad():
                        for activations in head_inputs:
                            shadow.head(activations[row])
                except ArithmeticError as error:
                    failures[row] = error
            member.epoch_lrs.append(member.current_lr())
        return torch.tensor(
            [m.epoch_lrs[-1] for m in self.active], dtype=torch.float64, device=self.plan.device
        )

    def _flush(self, upto: int) -> None:
        """Append the buffered steps ``[_flushed, upto)`` of the epoch to the records."""
        if upto <= self._flushed:
            return
        columns = list(zip(*self._rows, strict=True))
        for row, member in enumerate(self.active):
            member.book.add_losses(len(member.record.step_loss), columns[row])
            member.book.add_lrs(member.epoch_lrs[self._flushed : upto])
        self._rows = []
        self._flushed = upto

    def _deaths(
        self,
        epoch: int,
        begin: int,
        step: int,
        values: list[float] | None,
        failures: dict[int, ArithmeticError],
        running: _Running,
    ) -> Tensor | None:
        """Members whose loss at ``step`` is not finite (``values``; ``None`` at the start of
        an epoch, before any batch) or whose controller failed end their runs there as
        ``diverged``: recorded as the engine records them, their epoch closed, their rows
        dropped. Returns the rows kept, or ``None`` when nobody died (a finite sum that
        overflowed)."""
        dead = set(failures)
        if values is not None:
            dead |= {row for row, value in enumerate(values) if not math.isfinite(value)}
        if not dead:
            if values is not None:
                self._rows.append(values)
            return None
        local = step - begin
        self._flush(local)
        for row, member in enumerate(self.active):
            if row in dead:
                loss = math.nan if values is None or row in failures else values[row]
                lr = member.current_lr() if values is None else member.epoch_lrs[local]
                member.book.diverge(step, loss, lr, failures.get(row))
                member.last_step = step
            elif values is not None:  # the step is recorded for those who live on, too
                member.book.add_losses(step, [values[row]])
                member.book.add_lrs([member.epoch_lrs[local]])
        if values is not None:
            self._flushed = local + 1
        rows = sorted(dead)
        self._end_epoch(epoch, begin, step, rows, running)
        keep = [row for row in range(len(self.active)) if row not in dead]
        index = torch.tensor(keep, dtype=torch.long, device=self.plan.device)
        self.active = [self.active[row] for row in keep]
        if self.active:
            self.model.select(index)
            self.rule.select(index)
            running.select(index)
        return index

    def _end_epoch(
        self, epoch: int, begin: int, end: int, rows: list[int], running: _Running
    ) -> None:
        """Close the epoch of the active members at ``rows`` (their runs at step ``end``): the
        running training metric, an evaluation on the held-out sets (validation, test), the
        epoch's statistics.
        The time since the last charge was training, shared by every active member; the
        evaluation's is shared by the members evaluated."""
        self.clock.charge(self.active, training=True)
        data = self.data
        members = [self.active[row] for row in rows]
        index = torch.tensor(rows, dtype=torch.long, device=self.plan.device)
        train_metrics = running.metrics(self.metric, self.loss, index)
        val_losses, val_metrics = self._evaluate(data.x_val, data.y_val, index)
        test_losses, test_metrics = self._evaluate(data.x_test, data.y_test, index)
        self.clock.charge(members, training=False)
        for position, member in enumerate(members):
            member.book.close_epoch(
                epoch,
                begin,
                end,
                lr=member.current_lr(),
                train_metric=train_metrics[position],
                test_loss=test_losses[position],
                test_metric=test_metrics[position],
                val_loss=val_losses[position],
                val_metric=val_metrics[position],
                train_time=member.train_time,
                wall_time=member.wall_time,
            )

    def _evaluate(
        self, x: Tensor | None, y: Tensor | None, index: Tensor
    ) -> tuple[list[float | None], list[float | None]]:
        """The loss and metric of the members at ``index`` on held-out ``(x, y)``, as the
        engine measures them alone (``None`` for each without the split)."""
        if x is None or y is None:
            return [None] * index.numel(), [None] * index.numel()
        predicted = self.model.predict(x, rows=index, transform=self.data.transform)
        truth = y.unsqueeze(0).expand(index.numel(), *y.shape)
        losses = member_metrics("loss", self.loss, predicted, truth)
        metrics = member_metrics(self.metric, self.loss, predicted, truth)
        return [math.nan if v is None else v for v in losses], metrics
