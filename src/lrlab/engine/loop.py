"""The training engine: one run of (task, optimizer, LR controller, seed, budget) -> `RunRecord`.

One loop, two batch sources. A task's tensors held in memory are batched here: index tensors
straight out of the training set (no per-sample ``Dataset.__getitem__``), a fresh permutation
per epoch from the run's seed, or seed 003's sampling with replacement. A task's
``DataLoader`` (or any re-iterable, sized collection of batches) is streamed as given, one pass
an epoch, each batch moved to the run's device. Everything else is shared: the LR controller is
four method calls, losses are read on the host every `host_sync_every` steps (every step on
the CPU, where it is free, so a non-finite loss stops the run before its update; in blocks on
a GPU, so it is not stalled every step), the record, divergence handling and metrics.

A run draws all its randomness from its seed: the model's initial weights, the batch order,
augmentation, dropout, a DataLoader's shuffling (torch's global RNG, seeded and restored
around the run, so the caller's RNG state is untouched).

A step is one update (`_Loop`). Its options (`RunConfig`): ``accumulation_steps`` micro-batches
per update, the consecutive slices of the update's batch, each loss scaled by its share of the
update's samples, so an update equals one on the whole batch up to float rounding;
``precision="bf16"``: forward and loss under bfloat16 autocast (`lrlab.engine.precision`);
``clip_norm``: ``torch.nn.utils.clip_grad_norm_`` over the model's parameters after the
backward passes, before the controller's ``before_update`` and ``optimizer.step()``, its
pre-clip norm read on the host with the losses and summarised per epoch in
``record.extra["grad_norm"]``; ``decay_params``: weight decay by parameter group
(`lrlab.engine.groups`); ``checkpoint_dir``: mid-run checkpoints (`lrlab.engine.checkpoint`)
holding the weights, optimizer and controller state, every RNG, the position in the data (the
epoch's order is drawn again from the run's generator as the epoch began; a stream's pass is
iterated again from the RNG state it began with, up to where it was) and the partial record,
so a resumed run ends bit for bit as an uninterrupted one. ``record.extra["checkpoint"]``
says how often one was written and where the run resumed (how it ran, not what it computed).
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import torch
from torch import Tensor, nn
from torch.nn.utils import clip_grad_norm_

from lrlab.controllers import (
    LRController,
    ScheduleController,
    TrainingContext,
    build_controller,
)
from lrlab.engine.bookkeeping import Bookkeeper, new_record
from lrlab.engine.checkpoint import Checkpoints, record_state, restore_record
from lrlab.engine.flat import flatten_parameters
from lrlab.engine.groups import decay_groups, group_dict
from lrlab.engine.planning import Plan, host_sync_every, plan, task_data
from lrlab.engine.precision import autocast
from lrlab.optimizers import make_optimizer, optimizer_entry, set_optimizer_mode
from lrlab.record import EpochStats, RunConfig, RunRecord
from lrlab.rng import RNGState, loader_generators, seeded
from lrlab.tasks import AnyData, MetricSum, StreamData, Task, TaskData, get_task
from lrlab.tasks.task import Batches, evaluate_batches, loss_function, to_device
from lrlab.validate import MAX_LR

#: One update's data: its inputs and targets, and its micro-batches when it has several.
Update: TypeAlias = tuple[Any, Tensor, list[tuple[Any, Tensor]] | None]


class Observer(Protocol):
    """Progress hooks (e.g. the CLI's progress bar). ``on_step`` runs for every step, once its
    loss has been read (on a GPU, in blocks): keep it cheap."""

    def on_start(self, config: RunConfig, total_steps: int, steps_per_epoch: int) -> None: ...

    def on_step(self, step: int, loss: float | None, lr: float) -> None: ...

    def on_epoch(self, stats: EpochStats) -> None: ...


def train_run(
    config: RunConfig, *, observer: Observer | None = None, task: Task | None = None
) -> RunRecord:
    """Train one run and return its record.

    ``task`` is the `Task` object when the caller has one that ``config.task`` cannot name
    (a task built in Python and never registered); otherwise it is resolved from
    ``config.task``. A non-finite loss ends the run as ``diverged`` at that step (recorded,
    not raised). A bad config raises ``ValueError`` before training starts; anything else
    that goes wrong during training propagates (a sweep records it as ``failed``).

    With ``config.checkpoint_dir`` the run writes checkpoints as it trains and starts from the
    latest one found there (`lrlab.engine.checkpoint`); it ends where an uninterrupted run
    ends, bit for bit, and deletes its checkpoints.
    """
    return train_snapshots(config, observer=observer, task=task)[0]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A run's whole state after its first ``step`` updates, as the bytes of a checkpoint
    (`lrlab.engine.checkpoint`: plain data, read back with ``weights_only=True``); ``key``
    is the run's config key. `lrlab.engine.branching` continues other runs from it."""

    step: int
    key: str
    data: bytes

    def state(self) -> dict[str, Any]:
        payload = torch.load(io.BytesIO(self.data), map_location="cpu", weights_only=True)
        return payload["state"]  # type: ignore[no-any-return]


def train_snapshots(
    config: RunConfig,
    *,
    observer: Observer | None = None,
    task: Task | None = None,
    snapshot_at: Collection[int] = (),
    start: Snapshot | None = None,
) -> tuple[RunRecord, list[Snapshot]]:
    """`train_run`, also taking a `Snapshot` of the run after each of the updates counted
    in ``snapshot_at`` that it reaches (in step order), and, with ``start``, continuing from
    another run's snapshot rather than from scratch. The caller vouches that the snapshot's
    run trained exactly as this one would have up to there (`lrlab.engine.branching`
    checks it); a closed-form schedule is moved to the snapshot's step."""
    task = task if task is not None else get_task(config.task)
    data = task_data(config, task)
    resolved = plan(config, data, task)
    augment = task.augmentations.get(config.model or task.default_model)
    if augment is not None and isinstance(data, TaskData):
        data = dataclasses.replace(data, augment=augment)  # the model's own recipe
    controller = (
        build_controller(config.schedule, steps_per_epoch=resolved.steps_per_epoch)
        if config.schedule
        else None
    )
    if controller is not None:
        controller.check_task(task)
        controller.check_accumulation(resolved.accumulation_steps, streams=task.streams)
    checkpoints = (
        Checkpoints(
            Path(config.checkpoint_dir),
            config.key(),
            config.checkpoint_every,
            config.checkpoint_seconds,
        )
        if config.checkpoint_dir is not None
        else None
    )
    resume = checkpoints.load() if checkpoints is not None else None
    branch = None
    if resume is None and start is not None:
        resume, branch = (start.state(), start.step), start.key
    if isinstance(data, TaskData):
        data = data.to(resolved.device)
    snapshots: list[Snapshot] = []
    with seeded(config.seed, resolved.device):
        record = _run(
            config,
            task,
            data,
            resolved,
            controller,
            observer,
            checkpoints,
            resume,
            _Snapshots(frozenset(snapshot_at), snapshots, branch),
        )
    if checkpoints is not None:
        checkpoints.clear()
    return record, snapshots


@dataclasses.dataclass(frozen=True)
class _Snapshots:
    """What a run snapshots (``at``, into ``taken``) and, when it continues another run's
    snapshot, that run's key (``branched_from``)."""

    at: frozenset[int] = frozenset()
    taken: list[Snapshot] = dataclasses.field(default_factory=list)
    branched_from: str | None = None


def _optimizer_params(
    config: RunConfig, model: nn.Module
) -> tuple[list[Tensor] | list[dict[str, Any]], list[Tensor]]:
    """What the optimizer is built over, and the flat leaves whose gradients the loop clears
    (none: clear the parameters' own).

    lrlab's own rules are elementwise: on one flat tensor per param group they compute the
    same numbers with fewer kernels (unless the run picks torch's implementation itself).
    With ``decay_params`` the parameters are split into a decayed group and one without
    weight decay (`lrlab.engine.groups`), a flat tensor each."""
    elementwise = optimizer_entry(config.optimizer).elementwise and not {
        "foreach",
        "fused",
    } & set(config.optimizer_args)
    parts: list[tuple[list[Tensor], bool]] = (
        [(list(model.parameters()), True)]
        if config.decay_params == "all"
        else decay_groups(model, config.decay_params)
    )
    flats = [flatten_parameters(params) for params, _ in parts] if elementwise else []
    # (A part that cannot be flat makes none flat: gradients are then cleared per tensor.)
    leaves = [flat for flat in flats if flat is not None] if None not in flats else []
    if config.decay_params == "all":
        return (leaves or parts[0][0]), leaves
    groups = [
        group_dict([leaves[i]] if leaves else params, decays)
        for i, (params, decays) in enumerate(parts)
    ]
    return groups, leaves


def _run(
    config: RunConfig,
    task: Task,
    data: AnyData,
    resolved: Plan,
    controller: LRController | None,
    observer: Observer | None,
    checkpoints: Checkpoints | None = None,
    resume: tuple[dict[str, Any], int] | None = None,
    snapshots: _Snapshots | None = None,
) -> RunRecord:
    model = task.build_model(config.model)
    model.to(resolved.device).train()
    lr = config.lr if config.lr is not None else (controller.initial_lr if controller else None)
    params, flats = _optimizer_params(config, model)
    optimizer = make_optimizer(config.optimizer, params, lr=lr, **config.optimizer_args)
    set_optimizer_mode(optimizer, training=True)  # schedule-free: train at y, evaluate at x
    record = new_record(config, task, resolved.steps_per_epoch, resolved.device, data)
    context = TrainingContext(
        model,
        optimizer,
        data,
        resolved.loss if isinstance(resolved.loss, str) else None,  # type: ignore[arg-type]
        resolved.batch_size * resolved.accumulation_steps,  # an update's batch
        resolved.steps_per_epoch,
        resolved.total_steps,
        resolved.device,
        higher_is_better=bool(task.higher_is_better),
    )
    if controller is not None:
        controller.start(context)
    if observer is not None:
        observer.on_start(config, resolved.total_steps, resolved.steps_per_epoch)
    try:
        loop = _Loop(
            config, resolved, context, controller, record, observer, flats, checkpoints, snapshots
        )
        return loop.run(resume[0] if resume is not None else None)
    finally:
        if controller is not None:
            controller.close()


class _Loop:
    """The epochs of one run, writing into its `RunRecord`.

    A step is one update of the weights: ``accumulation_steps`` micro-batches of
    ``batch_size`` (consecutive slices of the update's batch), each forward, loss (scaled by
    its share of the update's samples) and backward, then gradient clipping, the controller's
    ``before_update``, ``optimizer.step()``. Budgets, epochs and schedules count updates; the
    recorded loss of a step is the mean loss over its update's samples."""

    def __init__(
        self,
        config: RunConfig,
        resolved: Plan,
        context: TrainingContext,
        controller: LRController | None,
        record: RunRecord,
        observer: Observer | None,
        flats: list[Tensor] | None = None,
        checkpoints: Checkpoints | None = None,
        snapshots: _Snapshots | None = None,
    ) -> None:
        self.config, self.plan, self.context = config, resolved, context
        # The parameters are views of the flat leaves (`flatten_parameters`): clear their
        # gradients in place, one kernel each, and keep them (the parameters' gradients are
        # views of them).
        self.flat_grads = [flat.grad for flat in flats or () if flat.grad is not None]
        self.controller, self.record, self.observer = controller, record, observer
        self.book = Bookkeeper(record)
        self.loss_fn = loss_function(resolved.loss)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.sync_every = host_sync_every(resolved.device)
        self.train_time = 0.0
        self.step = 0  # the update in progress, for errors raised inside it
        self.reported = 0  # steps whose loss the observer has seen
        self._stream: Iterator[tuple[Any, Tensor]] | None = None
        self.pending: list[Tensor] = []  # losses not read on the host yet
        self.bf16 = config.precision == "bf16"
        self.accumulation = resolved.accumulation_steps
        self.clip_norm = config.clip_norm
        self.clip_params = list(context.model.parameters()) if config.clip_norm else []
        self.norms: list[Tensor] = []  # pre-clip gradient norms not read on the host yet
        self.epoch_norms: list[float] = []  # the epoch's pre-clip norms, read
        self.epoch_begin = 0
        self.checkpoints = checkpoints
        self.snapshots = snapshots if snapshots is not None else _Snapshots()
        # Whether the loop keeps what a checkpoint or snapshot needs to find its place in
        # the data again (the RNG states each epoch and pass began with).
        self._tracking = checkpoints is not None or bool(self.snapshots.at)
        self.loader_generators = (
            loader_generators(context.data.train) if isinstance(context.data, StreamData) else []
        )
        self._consumed = 0  # batches taken from the stream's current pass
        self._pass_rng: RNGState | None = None  # the RNGs as the current pass began
        self._resume_pass: tuple[RNGState | None, int] | None = None
        self._epoch_generator: Tensor | None = None  # the run's generator as the epoch began
        self._last_save = 0.0
        self._start = self._tick = 0.0  # when the run (and the epoch in progress) began
        self._saving = 0.0  # seconds spent writing checkpoints during the current epoch

    def run(self, resume: dict[str, Any] | None = None) -> RunRecord:
        plan, record = self.plan, self.record
        start = time.perf_counter()
        step, epoch, begin = 0, 0, 0
        running: MetricSum | None = None  # the epoch in progress (a resumed one)
        if resume is not None:
            epoch, begin, step, running, wall = self._restore(resume)
            start -= wall
        self._start = start
        self._last_save = time.perf_counter()
        while running is not None or (step < plan.total_steps and record.status == "done"):
            resumed = running is not None
            if running is None:
                begin = step
                running = MetricSum(plan.task.metric, plan.loss)  # type: ignore[arg-type]
            end = begin + min(plan.steps_per_epoch, plan.total_steps - begin)
            tick = self._tick = time.perf_counter()
            self.step, self.epoch_begin, self._saving = step, begin, 0.0
            try:
                if self.controller is not None and not resumed:
                    self.controller.on_epoch_start(epoch, step)
                step = self._epoch(epoch, begin, step, end, running)
            except ArithmeticError as error:
                # A controller met non-finite or all-zero activations mid-run: the run broke
                # down there (a bad config raises before the loop and is not caught here).
                step = self.step
                read = len(record.step_loss) + len(self.pending)
                if not (self.pending and self._flush(self.pending, read)):
                    self.book.diverge(step, math.nan, self._lr(), error)
                step = self._diverged_step()
            self.train_time += time.perf_counter() - tick - self._saving
            self._end_epoch(epoch, begin, step, running, start)
            self._close_norms()
            epoch += 1
            running = None
        wall_time = time.perf_counter() - start
        return self.book.finish(step, self.train_time, wall_time, self.controller)

    def _updates(self, begin: int, step: int, end: int) -> Iterator[Update]:
        """The updates ``step .. end - 1`` of the epoch ``[begin, end)``, on the run's device,
        augmented, each as ``(inputs, targets, micro-batches)`` (``None`` for a single one):
        index tensors into the tensors in memory (a fresh permutation per pass over the
        training set, cut into update batches of ``batch_size * accumulation_steps``, each
        pass ending in its partial batch; or seed 003's sampling with replacement), or the
        loader's batches, ``accumulation_steps`` to an update within a pass."""
        data, device = self.context.data, self.plan.device
        if isinstance(data, StreamData):
            for group in itertools.islice(self._stream_updates(), end - step):
                batches = [(to_device(x, device), to_device(y, device)) for x, y in group]
                inputs, targets = batches[-1]
                yield inputs, targets, (batches if len(batches) > 1 else None)
            return
        n, size = data.train_size, self.plan.batch_size
        update, steps = size * self.accumulation, end - begin
        resumed = None
        if step > begin:  # resuming mid-epoch: the epoch's order as drawn when it began
            resumed = self.generator.get_state()
            self.generator.set_state(self._epoch_generator)  # type: ignore[arg-type]
        if self._tracking:
            self._epoch_generator = self.generator.get_state()
        if self.plan.sampling == "replacement":
            draws = torch.randint(n, (steps, update), generator=self.generator)
            indices = list(draws.to(device).unbind(0))
        else:  # fresh permutations, as many passes as the epoch's steps need
            indices = []
            while len(indices) < steps:
                order = torch.randperm(n, generator=self.generator).to(device)
                indices += torch.split(order, update)
            indices = indices[:steps]
        if resumed is not None:
            self.generator.set_state(resumed)
        for index in indices[step - begin :]:
            inputs, targets = data.x_train[index], data.y_train[index]
            if data.transform is not None:
                inputs = data.transform(inputs)
            if data.augment is not None:
                inputs = data.augment(inputs, self.generator)
            if len(index) > size:
                micro = zip(inputs.split(size), targets.split(size), strict=True)  # type: ignore[no-untyped-call]
                yield inputs, targets, list(micro)
            else:
                yield inputs, targets, None

    def _stream_updates(self) -> Iterator[list[tuple[Any, Tensor]]]:
        """The loader's batches, ``accumulation_steps`` to an update (fewer for a pass's
        last), a new pass whenever one ends (so a budget in steps that ends mid-pass resumes
        there in the next epoch)."""
        train: Batches = self.context.data.train  # type: ignore[union-attr]
        if self._resume_pass is not None:
            self._replay(train)
        while True:
            if self._stream is None:
                if self._tracking:
                    self._pass_rng = RNGState.capture(self.loader_generators)
                self._stream = iter(train)
                self._consumed = 0
            group: list[tuple[Any, Tensor]] = []
            while len(group) < self.accumulation:
                batch = next(self._stream, None)
                if batch is None:
                    self._stream = None
                    break
                self._consumed += 1
                group.append(batch)
            if group:
                yield group
            elif self._consumed == 0:
                raise ValueError("the training stream yielded no batch in a pass")

    def _replay(self, train: Batches) -> None:
        """Put a resumed run's stream where the checkpoint left it: a new pass drawn from
        the RNG state that pass began with, its first batches taken again, then the RNGs set
        back to the checkpoint's."""
        pass_rng, consumed = self._resume_pass  # type: ignore[misc]
        self._resume_pass = None
        if pass_rng is None:
            return
        now = RNGState.capture(self.loader_generators)
        pass_rng.restore()
        self._pass_rng = pass_rng
        self._stream = iter(train)
        for _ in range(consumed):
            next(self._stream)
        self._consumed = consumed
        now.restore()

    def _epoch(self, epoch: int, begin: int, step: int, end: int, running: MetricSum) -> int:
        """Train the updates ``step .. end - 1`` of the epoch ``[begin, end)``; return the
        step count reached (the step of divergence when the run diverged)."""
        optimizer, model = self.context.optimizer, self.context.model
        controller, record = self.controller, self.record
        group = optimizer.param_groups[0]
        pending = self.pending
        for inputs, targets, micro in self._updates(begin, step, end):
            self.step = step
            if micro is None:
                if self.bf16:
                    with torch.autocast(self.plan.device.type, dtype=torch.bfloat16):
                        outputs = model(inputs)
                        loss = self.loss_fn(outputs, targets)
                else:
                    outputs = model(inputs)
                    loss = self.loss_fn(outputs, targets)
                # A model may return a view of its parameters (seed 002's scalar does): the
                # running metric must see this batch's outputs, not what the update makes
                # of them.
                seen = outputs.detach().clone() if outputs._is_view() else outputs
                pending.append(loss.detach())
                # On the CPU every loss is read here, before its update: a non-finite one
                # stops the run with the weights it had. On a GPU, in blocks (the updates
                # between are dropped from the record).
                if len(pending) == self.sync_every and self._flush(pending, step + 1):
                    return self._diverged_step()
                self._zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                seen_batches = [(seen, targets)]
            else:
                self._zero_grad()
                total, seen_batches = self._accumulate(micro)
                pending.append(total)
                if len(pending) == self.sync_every and self._flush(pending, step + 1):
                    return self._diverged_step()
            if self.clip_norm is not None:
                self.norms.append(clip_grad_norm_(self.clip_params, self.clip_norm))
            if controller is not None:
                controller.before_update(step, inputs, targets)
            # D-adaptation's family (Prodigy, D-Adapt Adam) steps by d * lr: record that.
            lr = group["lr"] * group["d"] if "d" in group else group["lr"]
            if not 0 <= lr <= MAX_LR:  # torch cannot take it (nor a NaN): say where, not what
                raise ValueError(
                    f"run: the LR at step {step} is {float(lr)!r}, outside [0, {MAX_LR:g}]"
                )
            optimizer.step()
            if controller is not None:
                controller.after_update(step)
            record.step_lr.append(float(lr))
            for seen, batch_targets in seen_batches:
                running.add(seen, batch_targets)
            self._report()
            step += 1
            if step in self.snapshots.at and self._snapshot(epoch, begin, step, running):
                return self._diverged_step()
            if self.checkpoints is not None and self._checkpoint(epoch, begin, step, running):
                return self._diverged_step()
        if pending and self._flush(pending, step):
            return self._diverged_step()
        self._report()
        return step

    def _zero_grad(self) -> None:
        """Clear the gradients: the flat leaves' in place (the parameters' are views of
        them), else every parameter's."""
        if self.flat_grads:
            for grad in self.flat_grads:
                grad.zero_()
        else:
            self.context.optimizer.zero_grad(set_to_none=True)

    def _accumulate(
        self, micro: list[tuple[Any, Tensor]]
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Forward and backward over an update's micro-batches, each loss scaled by its share
        of the update's samples (``1 / accumulation_steps`` for equal ones), so the
        gradients sum to those of the whole batch's mean loss; return that mean loss and
        each micro-batch's outputs for the running metric."""
        model, total_size = self.context.model, sum(int(t.shape[0]) for _, t in micro)
        total: Tensor | None = None
        seen_batches: list[tuple[Tensor, Tensor]] = []
        for inputs, targets in micro:
            with autocast(self.config.precision, self.plan.device):
                outputs = model(inputs)
                loss = self.loss_fn(outputs, targets)
            scaled = loss * (int(targets.shape[0]) / total_size)
            total = scaled.detach() if total is None else total + scaled.detach()
            scaled.backward()  # type: ignore[no-untyped-call]
            seen_batches.append(
                (outputs.detach().clone() if outputs._is_view() else outputs, targets)
            )
        assert total is not None  # (an update has at least one micro-batch)
        return total, seen_batches

    def _diverged_step(self) -> int:
        diverged = self.record.diverged_at
        return self.step if diverged is None else diverged

    def _flush(self, pending: list[Tensor], end: int) -> bool:
        """Record the losses of steps ``end - len(pending) .. end - 1`` (and read the norms
        waiting with them); at the first non-finite loss, mark the run diverged there and
        drop what came after."""
        count = len(pending)
        tensors = pending + self.norms
        values = torch.stack(tensors).tolist() if len(tensors) > 1 else [tensors[0].item()]
        pending.clear()
        if self.norms:
            self.epoch_norms.extend(values[count:])
            self.norms.clear()
            values = values[:count]
        first = end - len(values)
        step = self.book.add_losses(first, values)
        if step is None:
            return False
        lrs = self.record.step_lr
        self.book.diverge(step, values[step - first], lrs[step] if step < len(lrs) else self._lr())
        del self.epoch_norms[step - self.epoch_begin :]
        self._report()
        return True

    def _close_norms(self) -> None:
        """The epoch's pre-clip gradient norms, summarised in ``record.extra["grad_norm"]``:
        per epoch their mean and largest, and how many updates were clipped (norm above
        ``clip_norm``)."""
        if self.clip_norm is None:
            return
        if self.norms:
            self.epoch_norms.extend(torch.stack(self.norms).tolist())
            self.norms.clear()
        norms, self.epoch_norms = self.epoch_norms, []
        summary = self.record.extra.setdefault("grad_norm", {"mean": [], "max": [], "clipped": []})
        summary["mean"].append(sum(norms) / len(norms) if norms else None)
        summary["max"].append(max(norms) if norms else None)
        summary["clipped"].append(sum(1 for v in norms if v > self.clip_norm))

    def _lr(self) -> float:
        """The LR the optimizer holds now (of the update in progress)."""
        return float(self.context.optimizer.param_groups[0]["lr"])

    def _report(self) -> None:
        """Tell the observer about every step whose loss and LR are both recorded."""
        if self.observer is None:
            return
        loss, lrs = self.record.step_loss, self.record.step_lr
        ready = min(len(loss), len(lrs))
        for step in range(self.reported, ready):
            self.observer.on_step(step, loss[step], lrs[step])
        self.reported = max(self.reported, ready)

    def _end_epoch(
        self, epoch: int, begin: int, step: int, running: MetricSum, start: float
    ) -> None:
        data = self.context.data
        (val_loss, val_metric), (test_loss, test_metric) = self._evaluate(
            data.validation_batches(), data.test_batches()
        )
        # (The LR of the epoch's first update, or, with none recorded, the one it would have:
        # a controller may set it during that update.)
        stats = self.book.close_epoch(
            epoch,
            begin,
            step,
            lr=self._lr(),
            train_metric=running.value(),
            test_loss=test_loss,
            test_metric=test_metric,
            val_loss=val_loss,
            val_metric=val_metric,
            train_time=self.train_time,
            wall_time=time.perf_counter() - start,
        )
        if self.controller is not None:
            self.controller.on_epoch_end(epoch, step, stats)
        if self.observer is not None:
            self.observer.on_epoch(stats)

    def _evaluate(self, *held_out: Batches | None) -> list[tuple[float | None, float | None]]:
        """The mean loss and metric on each set of held-out batches (``None``s without one),
        in eval mode at the evaluation weights, under its own RNG state: a DataLoader draws a
        seed per pass even unshuffled, and evaluating must not change the training's random
        stream."""
        if all(batches is None for batches in held_out):
            return [(None, None) for _ in held_out]
        data = self.context.data
        state = RNGState.capture()
        set_optimizer_mode(self.context.optimizer, training=False)
        try:
            return [
                (None, None)
                if batches is None
                else evaluate_batches(
                    self.context.model,
                    batches,
                    loss=self.plan.loss,
                    metric=self.plan.task.metric,  # type: ignore[arg-type]
                    device=self.plan.device if isinstance(data, StreamData) else None,
                )
                for batches in held_out
            ]
        finally:
            set_optimizer_mode(self.context.optimizer, training=True)
            state.restore()

    # -- checkpoints -----------------------------------------------------------------------

    def _checkpoint(self, epoch: int, begin: int, step: int, running: MetricSum) -> bool:
        """Write a checkpoint after update ``step - 1`` when one is due; return whether the
        run diverged (a GPU's pending losses are read first, and may say so)."""
        checkpoints = self.checkpoints
        now = time.perf_counter()
        if checkpoints is None or not checkpoints.due(step, now - self._last_save):
            return False
        if self._settle(step):
            return True
        info = self.record.extra.setdefault(
            "checkpoint", {"writes": 0, "seconds": 0.0, "resumed_at": []}
        )
        info["writes"] += 1
        checkpoints.save(self._state(epoch, begin, step, running, now), step)
        self._last_save = time.perf_counter()
        info["seconds"] += self._last_save - now
        self._saving += self._last_save - now
        return False

    def _settle(self, step: int) -> bool:
        """Read the losses and norms still on the device, before the state is written;
        return whether a loss says the run diverged."""
        if self.pending and self._flush(self.pending, step):
            return True
        if self.norms:
            self.epoch_norms.extend(torch.stack(self.norms).tolist())
            self.norms.clear()
        return False

    def _snapshot(self, epoch: int, begin: int, step: int, running: MetricSum) -> bool:
        """Take a `Snapshot` after update ``step - 1`` (its time left out of the training
        time, as a checkpoint's); return whether the run diverged."""
        now = time.perf_counter()
        if self._settle(step):
            return True
        buffer = io.BytesIO()
        torch.save({"state": self._state(epoch, begin, step, running, now)}, buffer)
        self.snapshots.taken.append(Snapshot(step, self.config.key(), buffer.getvalue()))
        self._saving += time.perf_counter() - now
        return False

    def _state(
        self, epoch: int, begin: int, step: int, running: MetricSum, now: float
    ) -> dict[str, Any]:
        """Everything the run needs to go on from after update ``step - 1``, as plain data."""
        context, stream = self.context, self._stream
        return {
            "model": context.model.state_dict(),
            "optimizer": context.optimizer.state_dict(),
            "controller": self.controller.state_dict() if self.controller is not None else {},
            "rng": RNGState.capture([self.generator, *self.loader_generators]).to_plain(),
            "loop": {
                "epoch": epoch,
                "begin": begin,
                "step": step,
                "epoch_generator": self._epoch_generator,
                "pass_rng": (
                    self._pass_rng.to_plain()
                    if stream is not None and self._pass_rng is not None
                    else None
                ),
                "consumed": self._consumed if stream is not None else 0,
                "train_time": self.train_time + (now - self._tick - self._saving),
                "wall_time": now - self._start,
                "norms": list(self.epoch_norms),
            },
            "running": running.state(),
            "record": record_state(self.record),
        }

    def _restore(self, state: dict[str, Any]) -> tuple[int, int, int, MetricSum | None, float]:
        """Put the run back where a checkpoint's ``state`` left it: weights, optimizer and
        controller state, record, RNGs, data position; tell the observer what happened
        before. Returns the epoch, its first step, the step reached, the epoch's running
        metric (``None`` when the checkpoint closed it) and the wall time so far."""
        context, loop = self.context, state["loop"]
        device = self.plan.device
        context.model.load_state_dict(state["model"])
        context.optimizer.load_state_dict(state["optimizer"])
        restore_record(self.record, state["record"])
        source = self.snapshots.branched_from
        if source is None:
            if self.controller is not None:
                self.controller.load_state_dict(state["controller"])
            info = self.record.extra.setdefault(
                "checkpoint", {"writes": 0, "seconds": 0.0, "resumed_at": []}
            )
            info["resumed_at"].append(int(loop["step"]))
        else:  # another run's state: this run's own schedule, at that step
            if isinstance(self.controller, ScheduleController):
                self.controller.skip_to(int(loop["step"]))
            self.record.extra.pop("checkpoint", None)
            self.record.extra["branch"] = {"from": source, "at": int(loop["step"])}
        RNGState.from_plain(state["rng"], [self.generator, *self.loader_generators]).restore()
        self._epoch_generator = loop["epoch_generator"]
        pass_rng = loop["pass_rng"]
        self._resume_pass = (
            RNGState.from_plain(pass_rng, self.loader_generators) if pass_rng else None,
            int(loop["consumed"]),
        )
        self.train_time = float(loop["train_time"])
        self.epoch_norms = [float(v) for v in loop["norms"]]
        running = MetricSum(self.plan.task.metric, self.plan.loss)  # type: ignore[arg-type]
        running.load(state["running"], device)
        if self.observer is not None:  # what it would have seen so far, in order
            epochs = iter(self.record.epochs)
            upcoming = next(epochs, None)
            for step, (loss, lr) in enumerate(
                zip(self.record.step_loss, self.record.step_lr, strict=True)
            ):
                self.observer.on_step(step, loss, lr)
                while upcoming is not None and upcoming.step == step + 1:
                    self.observer.on_epoch(upcoming)
                    upcoming = next(epochs, None)
        self.reported = len(self.record.step_loss)
        return (
            int(loop["epoch"]),
            int(loop["begin"]),
            int(loop["step"]),
            running,
            float(loop["wall_time"]),
        )
