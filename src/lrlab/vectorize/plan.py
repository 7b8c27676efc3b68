"""Which runs of a sweep can train together as one vectorised model, and in groups of what size.

Runs share a group when they have the same task, model, data split, device, batch size,
sampling, budget and epoch length (an ``epoch_steps`` epoch must fit in one pass over the
data), an optimizer of the same family with the same options switched on, and the same kind
of LR controller (a schedule, or LipschitzLR watching the same layer). They may differ in
seed, LR, schedule, and the numeric values of the optimizer's hyperparameters (momentum 0.9
beside 0.5, betas, eps...). A run that cannot join any group is returned with the reason,
one line, and trains one by one: so do runs with the engine's training options (gradient
clipping, accumulation, bfloat16 autocast, weight decay by parameter group, checkpoints;
`_alone`).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from lrlab.callspec import SpecError
from lrlab.controllers import LRController, ScheduleController, build_controller
from lrlab.engine import Plan, plan
from lrlab.errors import first_line
from lrlab.lipschitz.controller import LipschitzController
from lrlab.lipschitz.head import find_head
from lrlab.optimizers import make_optimizer, optimizer_entry
from lrlab.record import RunConfig
from lrlab.tasks import TaskData, get_task, load_task_data, load_tensor_data
from lrlab.vectorize.model import (
    PREDICT_CHUNK,
    Layout,
    StackedFunctional,
    mlp_layers,
    unsupported_module,
)
from lrlab.vectorize.optim import StackedRule, param_group, rule_for_group

#: Share of the free memory (RAM, or GPU memory on CUDA) one process's groups may take.
MEMORY_FRACTION = 0.5

Kind = Literal["schedule", "lipschitz"]
# How a group's model runs (`lrlab.vectorize.model`): the batched MLP, or the members' own
# modules one after another; both bit for bit a run alone's. (``"vmap"``, torch.func, is
# there for whoever asks for it: its batching rules round differently.)
Path = Literal["mlp", "loop"]


@dataclass(frozen=True)
class Member:
    """A config that can be vectorised: its resolved plan, the key of its group, its
    controller kind, the model path and the bytes one member of its group needs."""

    config: RunConfig
    plan: Plan
    key: tuple[object, ...]
    kind: Kind
    path: Path
    head: str | None
    member_bytes: int


@dataclass(frozen=True)
class _ModelFacts:
    parameters: int
    element_size: int
    activations: int  # numbers each sample produces across the model's layers
    inputs: int  # numbers in one sample's model input
    outputs: int  # numbers in one sample's output
    mlp: bool
    last_linear: str | None


def member_of(config: RunConfig) -> Member | str:
    """``config`` as a member of a vectorised group, or why it must train alone (one line)."""
    try:
        return _inspect(config)
    except (ValueError, SpecError) as error:
        return f"invalid config: {first_line(error)}"


def _inspect(config: RunConfig) -> Member | str:
    entry = optimizer_entry(config.optimizer)
    if entry.imported_when_built:
        return f"optimizer {config.optimizer!r} is a peer (its own package) without a stacked rule"
    task = get_task(config.task)
    data = load_task_data(config.task, config.split, config.data_dir, config.validation)
    if not isinstance(data, TaskData):
        return "the task's data is a DataLoader (its batches are not indexed per member)"
    if not isinstance(task.loss, str) or not isinstance(task.metric, str):
        return "the task's loss or metric is a function of its own (no per-member form)"
    if data.augment is not None or task.augmentations.get(config.model or task.default_model):
        return "the task augments batches with each run's own random draws"
    resolved = plan(config, data, task)
    reason = _alone(config)
    if reason is not None:
        return reason
    if (
        (config.epoch_steps is not None or task.epoch_steps is not None)
        and resolved.sampling == "shuffle"
        and resolved.steps_per_epoch > math.ceil(data.train_size / resolved.batch_size)
    ):
        # The engine then takes a second shuffled pass within the epoch; a group draws one.
        return "an epoch of epoch_steps longer than one pass over the data has no vectorised form"
    controller = (
        build_controller(config.schedule, steps_per_epoch=resolved.steps_per_epoch)
        if config.schedule
        else None
    )
    kind, head = _controller_kind(controller)
    if kind is None:
        return f"controller {type(controller).__name__} has no vectorised form"
    lr = config.lr if config.lr is not None else (controller.initial_lr if controller else None)
    cls, group = param_group(config.optimizer, lr, config.optimizer_args)
    if config.optimizer_args:  # torch checks the values (the registry's defaults are valid)
        make_optimizer(
            config.optimizer, [torch.zeros(1, requires_grad=True)], lr=lr, **config.optimizer_args
        )
    rule = rule_for_group(cls, group)
    if isinstance(rule, str):
        return rule
    model_name = config.model or task.default_model
    split = config.split or task.splits[0]
    facts = _model_facts(config.task, model_name, config.split, config.data_dir)
    if isinstance(facts, str):
        return facts
    head_name = _head_name(config.task, model_name, head) if kind == "lipschitz" else None
    path: Path = "mlp"
    if not (facts.mlp and head_name in (None, facts.last_linear)):
        reason = _probe(config.task, model_name, config.split, config.data_dir)
        if reason is not None:
            return reason
        path = "loop"
    key = (
        config.task,
        model_name,
        split,
        config.validation,
        config.data_dir,
        str(resolved.device),
        resolved.batch_size,
        resolved.steps_per_epoch,
        resolved.total_steps,
        resolved.sampling,
        resolved.loss,
        rule.signature(group),
        kind,
        head_name,
    )
    size = _member_bytes(facts, rule, group, resolved, kind, data.train_size)
    return Member(config, resolved, key, kind, path, head_name, size)


def _alone(config: RunConfig) -> str | None:
    """Why the engine's training options keep ``config`` out of a group (``None``: they
    do not). Each would need a stacked form bit for bit a run alone's, which the stacked
    rules and models do not have: a global norm summed per member in the single run's order,
    micro-batches, autocast kernels, two param groups per member, a checkpoint per member."""
    if config.clip_norm is not None:
        return f"clip_norm={config.clip_norm!r}: gradient clipping trains runs one by one"
    if config.accumulation_steps != 1:
        return (
            f"accumulation_steps={config.accumulation_steps!r}: gradient accumulation trains "
            "runs one by one"
        )
    if config.precision != "fp32":
        return f"precision={config.precision!r}: autocast trains runs one by one"
    if config.decay_params != "all":
        return (
            f"decay_params={config.decay_params!r}: the stacked update rules hold one param "
            "group per member"
        )
    if config.checkpoint_dir is not None:
        return "checkpoint_dir: mid-run checkpoints are written by runs trained one by one"
    return None


def _controller_kind(controller: LRController | None) -> tuple[Kind | None, str | None]:
    """``("schedule", None)`` for none or a schedule, ``("lipschitz", head option)`` for
    LipschitzLR, ``(None, None)`` for a controller this path cannot drive."""
    if controller is None or type(controller) is ScheduleController:
        return "schedule", None

    if type(controller) is LipschitzController:
        head = controller.options.head
        return "lipschitz", (head if isinstance(head, str) else None)
    return None, None


def _build(task: str, model: str) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return get_task(task).build_model(model)


@functools.lru_cache(maxsize=64)
def _model_facts(
    task: str, model: str, split: str | None, data_dir: str | None
) -> _ModelFacts | str:
    built = _build(task, model)
    reason = unsupported_module(built)
    if reason is not None:
        return reason
    data = load_tensor_data(task, split, data_dir)
    sample = data.x_train[:2]
    if data.transform is not None:
        sample = data.transform(sample)
    counts: list[int] = []

    def count(module: nn.Module, args: object, output: object) -> None:
        if isinstance(output, Tensor):
            counts.append(output.numel() // 2)

    hooks = [m.register_forward_hook(count) for m in built.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            output = built(sample)
    finally:
        for hook in hooks:
            hook.remove()
    layers = mlp_layers(built)
    names = {id(module): name for name, module in built.named_modules()}
    parameters = list(built.parameters())
    return _ModelFacts(
        parameters=sum(p.numel() for p in parameters),
        element_size=parameters[0].element_size(),
        activations=sum(counts),
        inputs=sample[0].numel(),
        outputs=output[0].numel(),
        mlp=layers is not None,
        last_linear=names[id(layers[1][-1])] if layers is not None else None,
    )


@functools.lru_cache(maxsize=64)
def _head_name(task: str, model: str, head: str | None) -> str:
    """The name of the layer LipschitzLR watches (a ``ValueError`` when there is none)."""

    return find_head(_build(task, model), head)[0]


@functools.lru_cache(maxsize=64)
def _probe(task: str, model: str, split: str | None, data_dir: str | None) -> str | None:
    """Why two members of the model cannot run one training step stacked (one line), or
    ``None`` when they can."""
    models = []
    for seed in (0, 1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            models.append(get_task(task).build_model(model))
    data = load_tensor_data(task, split, data_dir)
    inputs, targets = data.x_train[:1], data.y_train[:1]
    if data.transform is not None:
        inputs = data.transform(inputs)
    layout = Layout.of(models[0])
    try:
        stacked = StackedFunctional(layout, layout.stack(models), models, None, "loop")
        stacked.train_step(
            torch.stack([inputs, inputs]),
            torch.stack([targets, targets]),
            get_task(task).loss,  # type: ignore[arg-type]  # a known kind: member_of checked
        )
    except Exception as error:  # any failure means: not this way
        return f"the model cannot be stacked ({type(error).__name__}: {error})"
    return None


def _member_bytes(
    facts: _ModelFacts,
    rule: type[StackedRule],
    group: dict[str, object],
    resolved: Plan,
    kind: Kind,
    train_size: int,
) -> int:
    """Bytes one member adds to a group: parameters, gradients, optimizer state, update
    temporaries (and LipschitzLR's copy of the model), the batch's activations forward and
    backward, an evaluation chunk, an epoch's outputs kept for the running metric, and its
    epoch's batch order."""
    size = facts.element_size
    copies = 2 + rule.state_tensors(group) + 2 + (1 if kind == "lipschitz" else 0)
    batch = resolved.batch_size
    activations = 3 * batch * (facts.activations + facts.inputs)
    evaluation = PREDICT_CHUNK * (facts.activations + facts.inputs)
    epoch_outputs = resolved.steps_per_epoch * batch * (facts.outputs + 2)
    return size * (copies * facts.parameters + activations + evaluation + epoch_outputs) + (
        8 * train_size
    )


def available_memory(device: torch.device) -> int:
    """Free memory in bytes: the GPU's on CUDA, else RAM (``MemAvailable`` from
    ``/proc/meminfo``, else psutil, else the free physical pages)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def plan_groups(
    configs: Sequence[RunConfig], *, memory_budget: int | None = None, workers: int = 1
) -> tuple[list[list[RunConfig]], list[tuple[RunConfig, str]]]:
    """Split ``configs`` into groups that can train together and runs that must train alone.

    Returns ``(groups, alone)``: each group a list of configs in their given order (a group
    of one is fine), each of ``alone`` a ``(config, reason)`` pair. A group is split into
    near-equal parts so that each part's stacked parameters, optimizer state and activations
    fit ``memory_budget`` bytes (default: `MEMORY_FRACTION` of the free memory of the runs'
    device, divided among ``workers``); then the largest group is halved until the number of
    groups is a multiple of ``workers`` (while it has members to spare), so that workers
    taking the largest groups first finish together.

    >>> from lrlab.record import RunConfig
    >>> runs = [RunConfig("iris", "sgd", lr=lr, seed=s, epochs=1) for lr in (0.1, 0.2)
    ...         for s in (0, 1)]
    >>> groups, alone = plan_groups([*runs, RunConfig("iris", "prodigy")])
    >>> [len(g) for g in groups], [reason for _, reason in alone]
    ([4], ["optimizer 'prodigy' is a peer (its own package) without a stacked rule"])
    """
    if memory_budget is not None and (
        not isinstance(memory_budget, int) or isinstance(memory_budget, bool) or memory_budget < 1
    ):
        raise ValueError(
            f"memory_budget must be a number of bytes >= 1, got memory_budget={memory_budget!r}"
        )
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got workers={workers!r}")
    buckets: dict[tuple[object, ...], list[Member]] = {}
    alone: list[tuple[RunConfig, str]] = []
    for config in configs:
        member = member_of(config)
        if isinstance(member, str):
            alone.append((config, member))
        else:
            buckets.setdefault(member.key, []).append(member)
    groups: list[list[Member]] = []
    budgets: dict[str, int] = {}
    for members in buckets.values():
        device = members[0].plan.device
        budget = memory_budget
        if budget is None:
            if str(device) not in budgets:
                budgets[str(device)] = int(available_memory(device) * MEMORY_FRACTION) // workers
            budget = budgets[str(device)]
        capacity = max(1, budget // max(m.member_bytes for m in members))
        groups.extend(_split(members, math.ceil(len(members) / capacity)))
    while len(groups) % workers:
        largest = max(groups, key=len, default=[])
        if len(largest) < 2:
            break
        index = groups.index(largest)
        groups[index : index + 1] = _split(largest, 2)
    return [[m.config for m in group] for group in groups], alone


def _split(members: list[Member], parts: int) -> list[list[Member]]:
    """``members`` in ``parts`` consecutive chunks whose sizes differ by at most one."""
    size, extra = divmod(len(members), parts)
    chunks, start = [], 0
    for part in range(parts):
        stop = start + size + (1 if part < extra else 0)
        chunks.append(members[start:stop])
        start = stop
    return chunks
