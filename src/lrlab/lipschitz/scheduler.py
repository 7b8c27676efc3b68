"""`LipschitzLR`: the learning rate computed from the final layer's input activations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from lrlab.lipschitz import stats
from lrlab.lipschitz.head import find_head
from lrlab.lipschitz.options import Bound, Every, LipschitzOptions, Source
from lrlab.lipschitz.rule import A4, COLUMNS, OUT2, M, Rule
from lrlab.validate import (
    ArgumentTypeError,
    check_instance,
    check_state,
)

_NO_BATCHES = (
    "LipschitzLR: no batches were seen since the last update; K needs at least one (did the "
    "model run in train mode with grad enabled?)"
)


class LipschitzLR:
    """A learning rate from theory: ``scale / K``, with K computed from the input activations
    of the model's final ``nn.Linear`` (Yedida & Saha 2019, "LipschitzLR").

    ``bound="paper"`` reproduces the paper's constant exactly as its authors' code computes it
    (see `lrlab.lipschitz.bounds`, which also says where it is not a true bound);
    ``bound="smooth"`` uses the final layer's smoothness constant, a provable descent step.

    When K is computed (``every``/``source``):

    - ``every="epoch", source="eval"`` (the paper): at construction and at every ``step()``,
      a forward pass over ``data`` in eval mode, in the order given (pass consecutive,
      unshuffled batches to match the paper); K is the largest over those batches.
    - ``every="epoch", source="train"``: at every ``step()``, from the activations a forward
      hook captured during the epoch's training batches: no extra pass at all. Epoch 0 takes
      its LR from its first training batch (set in the hook, before that batch's update).
    - ``every="batch"``: in the forward hook of every training batch (model in train mode,
      grad enabled), from that batch, so the ``optimizer.step()`` that follows uses it.

    ``step()`` is called once per epoch (``every="epoch"``, after the epoch's last
    ``optimizer.step()``, as with PyTorch's per-epoch schedulers) or once per batch
    (``every="batch"``, after ``optimizer.step()``).

    Variants: ``"sgd"``, LR = scale / K; ``"adamo"``, the paper's momentum variant: epoch 0 at
    ``initial_lr`` (x), then ``K1 <- beta K1 + (1 - beta) K`` and LR = scale / K1 (pair it with
    the ``ema-momentum`` optimizer, ``v = beta v + (1 - beta) g``). ``k1_start`` is K1 during
    epoch 0: ``"paper"`` (default) sets ``K1 = x``, the number itself, as the authors' code
    does (``MNIST/MNIST Momentum.ipynb`` cell 12, ``if epoch == 0: K1 = 0.1; return 0.1``, and
    every ``CIFAR*/Momentum/*`` script with its own x; the paper, section 9.1: "sets K to 0.1
    and uses this value as the learning rate"), so epoch 1's LR is ``1 / (beta x + (1 - beta)
    K)``, near ``10 / K`` for a small x (they logged 1.43 at epoch 1 on MNIST);
    ``"inverse"`` sets ``K1 = 1 / x``, which keeps LR = 1 / K1 continuous at epoch 0 but caps
    epoch 1's LR below ``1 / (beta / x)``, 0.11 for x = 0.1. ``"adam"`` and ``"rmsprop"``, the
    paper's variants with an EMA of a second-moment bound, for softmax cross-entropy and
    ``bound="paper"`` only and behind ``experimental=True`` (they diverged on ResNets in the
    paper); their EMAs start at 0, as the authors' ``MNIST_Adam.ipynb`` does.

    What ``bound="smooth"`` guarantees: for a batch whose head input is ``A``, ``L(A)`` bounds
    the curvature of the mean loss in the head's weight and bias, so one step of
    ``scale / L(A)`` with ``scale <= 1`` along that batch's gradient does not raise that
    batch's loss as a function of the head alone (the layers below held fixed). That holds
    exactly for ``every="batch"``, where A is the training batch itself (dropout masks and
    batch-norm statistics included). Per epoch, L is the largest over the batches seen, so the
    guarantee holds for those batches at the weights they were seen with; later batches get
    a step computed from the same kind of activations, not a guarantee. The fresh pass
    (``source="eval"``) therefore runs the model in *training* mode for ``bound="smooth"``
    (dropout active, batch norm on batch statistics, its running statistics and the global
    RNG restored afterwards), because that is what the head sees while it trains: an
    eval-mode pass leaves out dropout's ``1 / (1 - p)`` scaling and a lagging batch norm, and
    a training batch's curvature measured 3.7 times such an L with dropout 0.75 before the
    head. ``bound="paper"`` passes in eval mode, as the authors' ``K.function`` did. Nothing
    is guaranteed for the layers below the head.

    The options are one `lrlab.lipschitz.LipschitzOptions` (``options=``), or its fields by
    keyword (``loss="cross_entropy", bound="paper"``), shared with the engine's
    ``lipschitz(...)`` spec and the Keras callback. ``l2`` is the L2 coefficient lambda of a
    ``(lambda / 2) ||w||^2`` term over every weight; ``None`` takes the optimizer's
    ``weight_decay`` (the largest of its param groups'), over the weights of the groups that
    decay (weight decay by parameter group leaves biases and norms out of the term, and out
    of the largest weight the paper's bound adds). Every
    param group gets the LR times its initial ratio to the first group. With
    ``torch.distributed`` initialised, the statistics are summed over the ranks
    (``process_group``), so every rank sets the LR one process would on the union of the
    ranks' batches.

    Guards: non-finite activations raise ``FloatingPointError``; a K ``<= 0`` or an LR above
    ``max_lr`` is clamped to ``max_lr`` when it is set and is a ``ValueError`` otherwise; a
    model without a ``nn.Linear`` head or empty ``data`` is a ``ValueError``.

    Example::

        lr = LipschitzLR(optimizer, model, loss="cross_entropy", data=eval_loader)
        for epoch in range(epochs):
            for x, y in train_loader:
                loss_fn(model(x), y).backward()
                optimizer.step()
                optimizer.zero_grad()
            lr.step()
    """

    def __init__(
        self,
        optimizer: Optimizer,
        model: nn.Module,
        *,
        data: Iterable[tuple[Tensor, Tensor]] | None = None,
        head: str | nn.Linear | None = None,
        options: LipschitzOptions | None = None,
        process_group: object | None = None,
        **changes: Any,
    ) -> None:
        """``changes``: `LipschitzOptions` fields by name (``loss=..., bound=...``), applied
        to ``options`` (default: the defaults); the loss must be known here. ``head``: the
        watched module or its name (default ``options.head``, else the final ``nn.Linear``)."""
        _check_objects(optimizer, model, data)
        options = LipschitzOptions.of(options, **changes)
        if options.loss is None:
            raise ValueError(
                "LipschitzLR: loss must be one of cross_entropy, bce, mse, got loss=None"
            )
        if options.source == "eval" and data is None:
            raise ValueError(
                "LipschitzLR: source=eval needs data, an iterable of "
                "(inputs, targets) batches to pass over each epoch"
            )
        self.optimizer, self.model, self.data, self.options = optimizer, model, data, options
        self.process_group = process_group
        # Ranks sharing the LR (torch.distributed must be initialised before this is built).
        self._world = stats.world(process_group)
        self.head_name, self.head = find_head(model, head if head is not None else options.head)
        self.l2 = options.l2 if options.l2 is not None else _optimizer_weight_decay(optimizer)
        # The weights the L2 term covers: every parameter for a given l2, else those of the
        # param groups that decay (biases and norms left out by `decay_params` are not).
        self._penalised = (
            list(model.parameters()) if options.l2 is not None else _decayed(optimizer, model)
        )
        self.rule = Rule.of(options, self.l2)
        loss, bound, variant = options.loss, options.bound, options.variant
        needs = stats.Needs(
            fourth=variant in ("adam", "rmsprop"),
            outputs=bound == "paper" and loss == "mse",
            gram=options.norm == "spectral",
        )
        self._training_stats = stats.StatsBuffer(needs)
        self._pass_stats = stats.StatsBuffer(needs)
        self._in_pass = False
        first = float(optimizer.param_groups[0]["lr"]) or 1.0
        self._ratios = [float(g["lr"]) / first if first else 1.0 for g in optimizer.param_groups]
        self.epoch = 0
        self.steps = 0
        self.history: list[dict[str, float]] = []
        self._attach()
        self._start()

    @property
    def every(self) -> Every:
        return self.options.every

    @property
    def source(self) -> Source:
        return self.options.source

    @property
    def bound(self) -> Bound:
        return self.options.bound

    # -- the scheduler protocol ----------------------------------------------------------------

    def step(self) -> None:
        """Advance one epoch (``every="epoch"``: compute the next epoch's LR) or one batch."""
        if self.every == "batch":
            self.steps += 1
            return
        self.epoch += 1
        buffer = self._pass() if self.source == "eval" else self._training_stats
        self._set_from(buffer)
        self._training_stats.clear()

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Plain data: counters, the EMAs, the current LRs, the per-update history and, for a
        checkpoint taken mid-epoch with ``source="train"``, the epoch's statistics so far."""
        return {
            "epoch": self.epoch,
            "steps": self.steps,
            "k1": self.rule.k1,
            "k2": self.rule.k2,
            "lrs": self.get_last_lr(),
            "history": [dict(h) for h in self.history],
            "training_stats": self._training_stats.state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state("LipschitzLR", state, tuple(self.state_dict()))
        self.epoch, self.steps = int(state["epoch"]), int(state["steps"])
        self.rule.k1, self.rule.k2 = float(state["k1"]), float(state["k2"])
        self.history = [dict(h) for h in state["history"]]
        for group, lr in zip(self.optimizer.param_groups, state["lrs"], strict=True):
            group["lr"] = float(lr)
        self._training_stats.load(state["training_stats"], self._device())

    def remove(self) -> None:
        """Detach from the head (the model no longer reports to this scheduler)."""
        if self.head.__dict__.get("forward") is self._wrapper:
            if self._previous_forward is None:
                del self.head.forward
            else:
                self.head.forward = self._previous_forward  # type: ignore[method-assign]

    def _attach(self) -> None:
        """Wrap the head's ``forward`` to see its input activations.

        A wrapper rather than ``register_forward_hook``: with any hook registered, PyTorch
        takes its slow call path, which measured about 1% of a step of seed 003's MLP on its
        own. The wrapper runs only where the head does (DDP and ``nn.Sequential`` included).
        """
        self._previous_forward = self.head.__dict__.get("forward")
        forward = self.head.forward

        def wrapper(input: Tensor, *args: Any, **kwargs: Any) -> Any:
            output = forward(input, *args, **kwargs)
            self._on_forward(input, output)
            return output

        self._wrapper = wrapper
        self.head.forward = wrapper  # type: ignore[method-assign]

    # -- internals -----------------------------------------------------------------------------

    def _start(self) -> None:
        initial = self.rule.start()
        if initial is not None:
            if self.every == "epoch":
                self._apply(initial, {"epoch": 0.0, "K1": self.rule.k1, "lr": initial})
        elif self.source == "eval":
            self._set_from(self._pass())

    def _device(self) -> torch.device:
        return self.head.weight.device

    def _on_forward(self, activations: Tensor, output: Tensor) -> None:
        if self._in_pass:
            self._pass_stats.add(activations, output)
            return
        if not (self.head.training and torch.is_grad_enabled()):
            return  # an evaluation forward, not a training batch
        if self.every == "batch" or not self.history:
            # This batch's own LR: every batch, or epoch 0's first batch with source=train.
            self._set_from_batch(activations, output)
        if self.every == "epoch":
            self._training_stats.add(activations, output)

    def _pass(self) -> stats.StatsBuffer:
        """A forward pass over ``data`` collecting each batch's statistics: in eval mode for
        ``bound="paper"`` (the authors' inference-mode ``K.function``), in training mode for
        ``bound="smooth"`` (what the head sees while it trains), with the buffers training
        mode updates (batch norm's running statistics) and the RNG dropout draws from put
        back afterwards, so the pass changes nothing the training run sees."""
        if self.data is None:
            raise ValueError("LipschitzLR: a pass over the training data needs data")
        self._pass_stats.clear()
        was_training = self.model.training
        training = self.bound == "smooth"
        self.model.train(training)
        buffers = [b.clone() for b in self.model.buffers()] if training else []
        device = self._device()
        self._in_pass = True
        try:
            with (
                torch.no_grad(),
                torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
            ):
                for inputs, targets in self.data:
                    self.model(inputs)
                    if self._pass_stats.needs.outputs:
                        self._pass_stats.add_targets(targets)
        finally:
            self._in_pass = False
            with torch.no_grad():
                for buffer, saved in zip(self.model.buffers(), buffers, strict=False):
                    buffer.copy_(saved)
            self.model.train(was_training)
        if len(self._pass_stats) == 0 and self._world == 1:
            raise ValueError("LipschitzLR: data yielded no batches; K needs at least one")
        return self._pass_stats

    def _set_from(self, buffer: stats.StatsBuffer) -> None:
        """Compute K from the batches in ``buffer`` (summed over ranks) and set the LR."""
        if self._world == 1 and not buffer.needs.gram:
            if len(buffer) == 0:
                raise ValueError(_NO_BATCHES)
            lr, record = self._rate(buffer.columns(), None)
            self._apply(lr, record)
            return
        device = self._device()
        count = stats.aligned_count(len(buffer), device, self.process_group)
        rows = buffer.rows(device)
        if count > rows.shape[0]:  # this rank ran out of batches: join with empty ones
            rows = torch.cat([rows, rows.new_zeros(count - rows.shape[0], COLUMNS)])
        rows = stats.union(rows, self.process_group)
        grams = buffer.grams(device)
        if grams is not None:
            if count > grams.shape[0]:
                pad = grams.new_zeros(count - grams.shape[0], *grams.shape[1:])
                grams = torch.cat([grams, pad])
            grams = stats.union(grams, self.process_group)
        keep = rows[:, M] > 0
        rows = rows[keep]
        if grams is not None:
            grams = grams[keep]
        if rows.shape[0] == 0:
            raise ValueError(_NO_BATCHES)
        squares = stats.spectral_sq_norms(grams).tolist() if grams is not None else None
        lr, record = self._rate(rows.T.tolist(), squares)
        self._apply(lr, record)

    def _set_from_batch(self, activations: Tensor, output: Tensor) -> None:
        """The LR from one training batch, with as few kernels and syncs as possible (this
        runs in the forward hook of every batch with ``every="batch"``)."""
        a = stats.flat_rows(activations)
        flat = a.reshape(-1)
        needs = self._training_stats.needs
        parts = [torch.dot(flat, flat)]
        if needs.fourth:
            fourth = flat.square()
            parts.append(torch.dot(fourth, fourth))
        if needs.outputs:
            out = stats.detached(output).reshape(-1)
            parts.append(torch.dot(out, out))
        grams = stats.gram(a)[None] if needs.gram else None
        m = float(a.shape[0])
        if self._world > 1:
            vector = torch.stack([p.double() for p in parts])
            vector = torch.cat([vector, vector.new_tensor([m])])
            values = stats.union(vector, self.process_group).tolist()
            m = values.pop()
            if grams is not None:
                grams = stats.union(grams, self.process_group)
        else:
            values = [float(p) for p in parts]
        columns: list[list[float]] = [[m], [values[0]], [0.0], [0.0], [0.0]]
        position = 1
        if needs.fourth:
            columns[A4] = [values[position]]
            position += 1
        if needs.outputs:
            columns[OUT2] = [values[position]]
        squares = stats.spectral_sq_norms(grams).tolist() if grams is not None else None
        lr, record = self._rate(columns, squares)
        self._apply(lr, record)

    def _max_weight(self) -> float:
        """The largest Frobenius norm of a weight tensor the L2 term covers."""
        if self.l2 == 0 or not self._penalised:
            return 0.0
        params = [p.detach() for p in self._penalised]
        return float(torch.stack(torch._foreach_norm(params)).max())

    def _rate(
        self, columns: list[list[float]], spectral: list[float] | None
    ) -> tuple[float, dict[str, float]]:
        """K (or L) and the LR from per-batch statistics (see `lrlab.lipschitz.rule`)."""
        record = {"epoch": float(self.epoch), "step": float(self.steps)}
        lr = self.rule.rate(
            columns,
            spectral,
            classes=self.head.out_features,
            max_weight=self._max_weight(),
            record=record,
        )
        return lr, record

    def _apply(self, lr: float, record: dict[str, float]) -> None:
        for group, ratio in zip(self.optimizer.param_groups, self._ratios, strict=True):
            group["lr"] = lr * ratio
        if self.every == "epoch":
            if self.history and self.history[-1]["epoch"] == record["epoch"]:
                self.history[-1] = record  # epoch 0's first-batch LR, replaced by the epoch's
            else:
                self.history.append(record)


def _check_objects(optimizer: object, model: object, data: object) -> None:
    """The objects LipschitzLR works on, checked before it touches them."""
    check_instance("LipschitzLR", "optimizer", optimizer, Optimizer, "a torch Optimizer")
    check_instance("LipschitzLR", "model", model, nn.Module, "a torch nn.Module")
    if data is not None and (isinstance(data, str | bytes) or not isinstance(data, Iterable)):
        raise ArgumentTypeError(
            f"LipschitzLR: data must be an iterable of (inputs, targets) batches, got data={data!r}"
        )


def _optimizer_weight_decay(optimizer: Optimizer) -> float:
    """The L2 coefficient the optimizer adds to the gradient: the largest ``weight_decay`` of
    its param groups (with weight decay by parameter group, the decayed group's; AdamW's
    decoupled decay is not part of the loss, so it does not count)."""
    if isinstance(optimizer, torch.optim.AdamW):
        return 0.0
    return max(float(g.get("weight_decay", 0.0) or 0.0) for g in optimizer.param_groups)


def _decayed(optimizer: Optimizer, model: nn.Module) -> list[Tensor]:
    """The model's parameters that the optimizer's param groups with a ``weight_decay``
    above 0 hold: themselves, or as views of a flat tensor a group holds in their place
    (`lrlab.engine.flat`), found by where their memory lies."""
    spans = [
        (t.data_ptr(), t.data_ptr() + t.numel() * t.element_size())
        for group in optimizer.param_groups
        if float(group.get("weight_decay", 0.0) or 0.0) > 0
        for t in group["params"]
    ]
    return [
        p
        for p in model.parameters()
        if p.numel() and any(low <= p.data_ptr() < high for low, high in spans)
    ]
