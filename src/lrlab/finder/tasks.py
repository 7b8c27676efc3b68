"""The range test on an lrlab task: the model, optimizer and batches a run of that task starts
with (`lrlab.engine.train_run`'s), so a suggestion can be used straight away in ``lrlab run``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from lrlab.engine import check_task, plan, task_data
from lrlab.engine.groups import decay_groups, group_dict
from lrlab.finder.core import RangeTest, find
from lrlab.optimizers import make_optimizer, set_optimizer_mode
from lrlab.record import RunConfig
from lrlab.tasks import Task, TaskData, get_task, task_id
from lrlab.tasks.task import loss_function


class _WholeBatches(Dataset[tuple[Tensor, Tensor]]):
    """A task's training tensors indexed a batch at a time (no per-sample ``__getitem__``)."""

    def __init__(self, data: TaskData) -> None:
        self.data = data

    def __len__(self) -> int:
        return self.data.train_size

    def __getitem__(self, index: list[int]) -> tuple[Tensor, Tensor]:
        data = self.data
        rows = torch.as_tensor(index, dtype=torch.long)
        inputs, targets = data.x_train[rows], data.y_train[rows]
        if data.transform is not None:
            inputs = data.transform(inputs)
        if data.augment is not None:
            inputs = data.augment(inputs, torch.default_generator)
        return inputs, targets


def task_batches(data: TaskData, batch_size: int) -> DataLoader[tuple[Tensor, Tensor]]:
    """A task's training set as a shuffling DataLoader of ``batch_size`` batches (the last one
    smaller, as in the engine's epochs), its ``transform`` and ``augment`` applied. The order
    and the augmentation are drawn from torch's global generator, which `lrlab.find` seeds
    with its ``seed`` (and restores afterwards).

    >>> loader = task_batches(TaskData(torch.arange(5.0)[:, None], torch.arange(5), None,
    ...                                None, 2), batch_size=2)
    >>> [len(x) for x, _ in loader]
    [2, 2, 1]
    """
    dataset = _WholeBatches(data)
    sampler = BatchSampler(RandomSampler(dataset), batch_size, drop_last=False)
    return DataLoader(dataset, sampler=sampler, batch_size=None)


def find_on_task(
    task: str | Task,
    optimizer: str = "sgd",
    *,
    optimizer_args: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    model: str | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    lipschitz: bool = True,
    epochs: int | None = None,
    run_steps: int | None = None,
    decay_params: str = "all",
    **options: Any,
) -> RangeTest:
    """`lrlab.find` on ``task`` (a name, a ``file.py:function`` reference or a `Task`; a
    task whose data is a DataLoader is tested on its batches), from the weights
    ``lrlab run TASK --seed SEED`` starts with (the model built under
    ``torch.manual_seed(seed)``, the optimizer at its registry defaults), on the task's
    training batches shuffled with ``seed``, with the task's loss; LipschitzLR's values too
    unless ``lipschitz=False``. ``options`` go to `lrlab.find` (``start``, ``end``,
    ``steps``, ``repeats``... of the test). ``epochs`` or ``run_steps`` is the budget of the
    run the LR is meant for (``lrlab run``'s ``--epochs``/``--steps``; default the task's),
    recorded in ``extra`` to size a one-cycle schedule. The training options are the run's:
    ``decay_params`` splits the optimizer's weight decay by parameter group as the engine
    does (`lrlab.engine.groups`); ``clip_norm``, ``precision`` and ``accumulation_steps``
    (in ``options``) go to `lrlab.find` and are checked as a run checks them.

    The result's ``extra`` holds the task, optimizer, batch size, steps per epoch and the
    run's total steps.
    """

    resolved_task = get_task(task)
    config = RunConfig(
        task=task_id(task),
        optimizer=optimizer,
        optimizer_args=dict(optimizer_args or {}),
        batch_size=batch_size,
        seed=seed,
        model=model,
        split=split,
        device=device,
        data_dir=data_dir,
        epochs=epochs,
        steps=run_steps,
        decay_params=decay_params,
        **{
            key: options[key]
            for key in ("clip_norm", "precision", "accumulation_steps")
            if key in options
        },
    )
    data = task_data(config, resolved_task)
    resolved = plan(config, data, resolved_task)
    check_task(config, resolved_task, data, resolved)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = resolved.task.build_model(model)
    network.to(resolved.device).train()
    params = (
        network.parameters()
        if decay_params == "all"
        else [group_dict(part, decays) for part, decays in decay_groups(network, decay_params)]
    )
    built = make_optimizer(optimizer, params, **config.optimizer_args)
    set_optimizer_mode(built, training=True)
    result = find(
        network,
        built,
        task_batches(data, resolved.batch_size) if isinstance(data, TaskData) else data.train,
        loss_function(resolved.task.loss),
        seed=seed,
        lipschitz=resolved.task.loss_kind if lipschitz else None,  # type: ignore[arg-type]
        **options,
    )
    extra = {
        "task": config.task,
        "optimizer": optimizer,
        "model": model or resolved.task.default_model,
        "batch_size": resolved.batch_size,
        "steps_per_epoch": resolved.steps_per_epoch,
        "total_steps": resolved.total_steps,
    }
    if decay_params != "all":
        extra["decay_params"] = decay_params
    return dataclasses.replace(result, extra=extra)
