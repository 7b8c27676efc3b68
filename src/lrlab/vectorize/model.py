"""N members' models as one: every member's parameters are a row of one ``(N, P)`` tensor, its
gradients a row of ``grads``, which the stacked update rule (`lrlab.vectorize.optim`) applies.
A row holds the parameters in ``named_parameters()`` order, each at an aligned offset.

The rule of this module: a member's numbers are a run alone's, bit for bit. PyTorch gives no
such promise across kernels (a batched matrix product sums in another order than one
member's; an elementwise kernel rounds an element differently in its vectorised body and its
scalar tail), and where training is chaotic a last-bit difference grows into another run. So:

- `StackedMLP`, for a plain MLP (``nn.Sequential`` of ``Linear, ReLU, ..., Linear``, optionally
  after an ``nn.Flatten()``): the backward pass written out, no autograd graph; each product
  batched over the members (``baddbmm``, ``bmm``) where a check shows it rounds as the
  one-member call does, else member by member. On the seeds' Iris and digits MLPs a step of
  35 members costs a few single runs' steps (``benchmarks/sweep_throughput.py``).
- `StackedFunctional`, for any module without batch-dependent state: ``"loop"`` runs the
  members' own modules, their parameters views of the rows (the kernels of a run alone);
  ``"vmap"`` is ``torch.func``'s ``functional_call`` under ``vmap`` (other kernels, other
  rounding: only on request).
"""

from __future__ import annotations

import copy
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

from lrlab.engine.flat import aligned_offsets
from lrlab.tasks.task import LossKind, loss_function
from lrlab.vectorize.losses import losses_and_gradient, member_losses

# Rows of shared inputs per chunk when predicting (the engine's evaluate uses the same).
PREDICT_CHUNK = 1024
# Results a batched product must reproduce bit for bit before it replaces the member-by-member
# one (see StackedMLP._form).
PROBE_ELEMENTS = 4096


@dataclass(frozen=True)
class Layout:
    """Where each parameter lives in a member's row: names, shapes and offsets, each block
    starting at a multiple of `lrlab.engine.flat.ALIGNMENT` bytes as a tensor of its own does
    (BLAS kernels round differently for misaligned operands), the row padded likewise (the
    padding stays zero: its gradient is zero)."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    offsets: tuple[int, ...]
    size: int

    @classmethod
    def of(cls, model: nn.Module) -> Layout:
        named = list(model.named_parameters())
        offsets, size = aligned_offsets(
            [p.numel() for _, p in named], named[0][1].element_size() if named else 4
        )
        return cls(
            tuple(n for n, _ in named), tuple(p.shape for _, p in named), tuple(offsets), size
        )

    def views(self, flat: Tensor) -> list[Tensor]:
        """Each parameter of every member, as an ``(N, *shape)`` view of ``flat`` ``(N, P)``."""
        members = flat.shape[0]
        return [
            flat[:, offset : offset + shape.numel()].view(members, *shape)
            for shape, offset in zip(self.shapes, self.offsets, strict=True)
        ]

    def stack(self, models: Sequence[nn.Module]) -> Tensor:
        """The members' parameters as rows, ``(N, size)``, zero between the blocks."""
        first = next(models[0].parameters())
        flat = torch.zeros(len(models), self.size, dtype=first.dtype, device=first.device)
        views = self.views(flat)
        with torch.no_grad():
            for row, model in enumerate(models):
                for view, parameter in zip(views, model.parameters(), strict=True):
                    view[row].copy_(parameter)
        return flat


def unsupported_module(model: nn.Module) -> str | None:
    """Why ``model`` cannot be vectorised (one line), or ``None``: batch statistics, random
    masks, buffers (state that a forward pass updates), frozen or mixed-dtype parameters."""
    for name, module in model.named_modules():
        label = f"{type(module).__name__} {name!r}" if name else type(module).__name__
        if isinstance(module, nn.modules.batchnorm._NormBase):
            return f"{label} normalises by batch statistics in train mode"
        if isinstance(module, nn.modules.dropout._DropoutNd | nn.AlphaDropout):
            return f"{label} draws random masks from the global RNG"
        if isinstance(module, nn.RNNBase):
            return f"{label} is a recurrent layer"
    buffers = [name for name, _ in model.named_buffers()]
    if buffers:
        return f"the model has buffers ({', '.join(buffers[:3])}), state a forward pass may change"
    parameters = list(model.parameters())
    if not parameters:
        return "the model has no parameters"
    if any(not p.requires_grad for p in parameters):
        return "the model has frozen parameters"
    if len({(p.dtype, p.device) for p in parameters}) > 1:
        return "the model's parameters differ in dtype or device"
    if any(p.is_complex() for p in parameters):
        return "the model has complex parameters"
    return None


def mlp_layers(model: nn.Module) -> tuple[bool, list[nn.Linear]] | None:
    """``(flatten first?, the Linear layers)`` when ``model`` is a plain MLP: ``nn.Sequential``
    (nested ones unpacked) of an optional ``nn.Flatten()``, then ``Linear`` layers with biases
    and ``nn.ReLU`` between them; ``None`` for anything else."""

    def leaves(module: nn.Module) -> list[nn.Module]:
        if type(module) is nn.Sequential:
            return [leaf for child in module for leaf in leaves(child)]
        return [module]

    if type(model) is not nn.Sequential:
        return None
    modules = leaves(model)
    flatten = False
    first = modules[0] if modules else None
    if isinstance(first, nn.Flatten) and type(first) is nn.Flatten:
        if (first.start_dim, first.end_dim) != (1, -1):
            return None
        flatten, modules = True, modules[1:]
    linears = modules[0::2]
    relus = modules[1::2]
    if len(modules) % 2 != 1:
        return None
    if any(type(m) is not nn.Linear or m.bias is None for m in linears):
        return None
    if any(type(m) is not nn.ReLU for m in relus):
        return None
    return flatten, [m for m in linears if isinstance(m, nn.Linear)]


@dataclass(frozen=True)
class StepResult:
    """One training step of every member: losses ``(N,)``, outputs ``(N, B, ...)`` (detached),
    when asked for, the input activations of the watched layer (one tensor per call of it,
    ``(N, B, d)``), and the members whose forward pass raised an ``ArithmeticError``."""

    losses: Tensor
    outputs: Tensor
    head_inputs: tuple[Tensor, ...]
    errors: dict[int, ArithmeticError] = field(default_factory=dict)


class StackedModel(ABC):
    """Members' parameters ``params`` ``(N, P)`` and gradients ``grads`` (same layout)."""

    def __init__(self, layout: Layout, params: Tensor) -> None:
        self.layout = layout
        self.params = params
        self.grads = torch.zeros_like(params)
        self._rebuild()

    @property
    def members(self) -> int:
        return int(self.params.shape[0])

    @property
    def runs_member_modules(self) -> bool:
        """Whether the members' own modules run (their parameters are views of ``params``),
        so anything watching those modules sees the training forward passes itself."""
        return False

    @abstractmethod
    def _rebuild(self) -> None:
        """Refresh whatever views ``params``/``grads`` (at the start and after `select`)."""

    @abstractmethod
    def train_step(self, inputs: Tensor, targets: Tensor, loss: LossKind) -> StepResult:
        """Forward and backward over one batch per member (``inputs`` ``(N, B, ...)``):
        the losses, outputs, watched activations, and the gradients in ``grads``."""

    @abstractmethod
    def _predict(self, rows: Tensor, inputs: Tensor) -> Tensor:
        """Outputs of the members at ``rows`` on shared ``inputs`` ``(n, ...)``."""

    def predict(
        self,
        inputs: Tensor,
        *,
        rows: Tensor | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Outputs ``(N, n, ...)`` of every member (or of ``rows``) on the same ``inputs``, in
        chunks of `PREDICT_CHUNK` rows, ``transform`` applied to each chunk first."""
        if rows is None:
            rows = torch.arange(self.members, device=self.params.device)
        chunks = []
        with torch.no_grad():
            for start in range(0, inputs.shape[0], PREDICT_CHUNK):
                chunk = inputs[start : start + PREDICT_CHUNK]
                if transform is not None:
                    chunk = transform(chunk)
                chunks.append(self._predict(rows, chunk))
        return torch.cat(chunks, dim=1)

    def select(self, keep: Tensor) -> None:
        """Keep only the members (rows) ``keep``, in that order, gradients included."""
        self.params = self.params.index_select(0, keep)
        self.grads = self.grads.index_select(0, keep)
        self._rebuild()

    def member_parameters(self, row: int) -> list[Tensor]:
        """Member ``row``'s parameters, shaped as in its model (views)."""
        return [view[row] for view in self.layout.views(self.params)]


class StackedMLP(StackedModel):
    """Plain MLPs: the backward pass written out, each matrix product batched over the
    members where that rounds exactly as PyTorch's one-member call does.

    A run alone computes ``addmm(b, x, W.t())`` forward and ``mm(dz.t(), x)``,
    ``mm(dz, W)``, ``dz.sum(0)`` backward. Their batched forms (``baddbmm``, ``bmm``) take
    other kernels for some shapes (on the CPU, tiny products go to a naive loop, others to
    batched BLAS) and round differently; a different last bit in one member can grow into a
    different run where training is chaotic, or a divergence one step later. So each product
    is checked once per shape (`_agrees`: batched against member by member, bit for bit, on
    random inputs laid out as the real ones) and runs batched only where the two agree;
    elsewhere it runs member by member, into the batched result.
    """

    def __init__(
        self, layout: Layout, params: Tensor, *, flatten: bool, watch_head: bool = False
    ) -> None:
        self.flatten, self.watch_head = flatten, watch_head
        self._forms: dict[tuple[object, ...], str] = {}
        super().__init__(layout, params)

    def _rebuild(self) -> None:
        views, grads = self.layout.views(self.params), self.layout.views(self.grads)
        self.weights, self.biases = views[0::2], views[1::2]
        self.weight_grads, self.bias_grads = grads[0::2], grads[1::2]
        # Per-member views, for the products that run member by member.
        self._transposed = [[w.t() for w in weight.unbind(0)] for weight in self.weights]
        self._rows = [weight.unbind(0) for weight in self.weights]
        self._bias_rows = [bias.unbind(0) for bias in self.biases]
        # The weights as (N, 1, in, out), for the "pairs" form's products.
        self._spread = [weight.transpose(1, 2).unsqueeze(1) for weight in self.weights]

    # -- the products, batched where exact ------------------------------------------------

    def _form(self, op: str, layer: int, rows: int) -> str:
        """How to run ``op`` at ``layer`` for batches of ``rows`` samples: ``"batched"``, or
        for a narrow forward layer ``"pairs"``, when it equals the member-by-member form bit
        for bit, else ``"looped"``. Checked once per shape, on random parameters laid out as
        the real ones and random inputs, drawn again until at least `PROBE_ELEMENTS` results
        have been compared (two summation orders agree on a few numbers by chance)."""
        key = (op, layer, rows, self.members)
        form = self._forms.get(key)
        if form is not None:
            return form
        if key not in self._forms:
            generator = torch.Generator(device=self.params.device).manual_seed(len(self._forms))

            def random(*shape: int) -> Tensor:
                return torch.randn(
                    *shape, generator=generator, device=self.params.device, dtype=self.params.dtype
                )

            probe = StackedMLP(self.layout, random(*self.params.shape), flatten=self.flatten)
            members, outputs, inputs = self.weights[layer].shape
            candidates = ["batched", "pairs"] if op == "forward" and inputs <= 8 else ["batched"]
            compared = 0
            while candidates and compared < PROBE_ELEMENTS:
                x, delta = random(members, rows, inputs), random(members, rows, outputs)
                expected = probe._looped(op, layer, x, delta)
                candidates = [
                    form
                    for form in candidates
                    if torch.equal(probe._run(form, op, layer, x, delta), expected)
                ]
                compared += expected.numel()
            self._forms[key] = candidates[0] if candidates else "looped"
        return self._forms[key]

    def _run(self, form: str, op: str, layer: int, x: Tensor, delta: Tensor) -> Tensor:
        if form == "batched":
            return self._batched(op, layer, x, delta)
        if form == "pairs":
            return self._pairs(layer, x)
        return self._looped(op, layer, x, delta)

    def _pairs(self, layer: int, x: Tensor) -> Tensor:
        """A narrow layer's forward as elementwise products: for outputs in whole blocks of
        four, summed in two interleaved chains (even and odd inputs) then added; for the
        outputs left over, summed in order; then the bias. That is the order of the CPU BLAS
        kernel for a handful of inputs here, and it is used only where `_form` finds it equal
        to ``addmm`` bit for bit (another BLAS falls back to member by member)."""
        products = x.unsqueeze(3) * self._spread[layer]  # (N, B, inputs, outputs)
        members, rows, inputs, outputs = products.shape
        if inputs in (2, 4):  # [p0, p2] and [p1, p3] summed (one addition each), then added
            out = products.view(members, rows, inputs // 2, 2, outputs).sum(2).sum(2)
        else:
            even, odd = products[:, :, 0], products[:, :, 1]
            for k in range(2, inputs):
                if k % 2:
                    odd = odd + products[:, :, k]
                else:
                    even = even + products[:, :, k]
            out = even + odd
        whole = outputs - outputs % 4
        if whole < outputs:  # the last outputs: the products summed in order
            out[..., whole:] = products[..., whole:].sum(2)
        return out + self.biases[layer].unsqueeze(1)

    def _batched(self, op: str, layer: int, x: Tensor, delta: Tensor) -> Tensor:
        weight = self.weights[layer]
        if op == "forward":
            return torch.baddbmm(self.biases[layer].unsqueeze(1), x, weight.transpose(1, 2))
        if op == "weight_grad":
            return torch.bmm(delta.transpose(1, 2), x)
        if op == "bias_grad":
            return delta.sum(1)
        return torch.bmm(delta, weight)  # input_grad

    def _looped(
        self, op: str, layer: int, x: Tensor, delta: Tensor, out: Tensor | None = None
    ) -> Tensor:
        """``op`` member by member, as autograd computes it for one member: F.linear's
        ``addmm(b, x, W.t())``, then ``mm(dz.t(), x)``, ``dz.sum(0)`` and ``mm(dz, W)``."""
        weight = self.weights[layer]
        if op == "forward":
            out = x.new_empty(x.shape[0], x.shape[1], weight.shape[1])
            for xm, wt, bm, om in zip(
                x.unbind(0),
                self._transposed[layer],
                self._bias_rows[layer],
                out.unbind(0),
                strict=True,
            ):
                torch.addmm(bm, xm, wt, out=om)
            return out
        if op == "weight_grad":
            out = x.new_empty(weight.shape) if out is None else out
            for xm, dm, om in zip(x.unbind(0), delta.unbind(0), out.unbind(0), strict=True):
                torch.mm(dm.t(), xm, out=om)
            return out
        if op == "bias_grad":
            return torch.stack([dm.sum(0) for dm in delta.unbind(0)])
        out = x.new_empty(x.shape)  # input_grad
        for dm, wm, om in zip(delta.unbind(0), self._rows[layer], out.unbind(0), strict=True):
            torch.mm(dm, wm, out=om)
        return out

    def _product(self, op: str, layer: int, x: Tensor, delta: Tensor) -> Tensor:
        return self._run(self._form(op, layer, x.shape[1]), op, layer, x, delta)

    def _forward(self, x: Tensor) -> list[Tensor]:
        """The input and every layer's output (after ReLU), for ``x`` ``(N, B, d)``."""
        outputs = [x]
        last = len(self.weights) - 1
        for layer in range(last + 1):
            z = self._product("forward", layer, x, x)
            x = z.relu_() if layer < last else z
            outputs.append(x)
        return outputs

    def train_step(self, inputs: Tensor, targets: Tensor, loss: LossKind) -> StepResult:
        members, batch = inputs.shape[:2]
        x = inputs.reshape(members, batch, -1) if self.flatten else inputs
        activations = self._forward(x)
        outputs = activations[-1]
        losses, delta = losses_and_gradient(loss, outputs, targets)
        for layer in range(len(self.weights) - 1, -1, -1):
            below = activations[layer]
            if self._form("weight_grad", layer, batch) == "batched":
                self.weight_grads[layer].copy_(self._batched("weight_grad", layer, below, delta))
            else:
                self._looped("weight_grad", layer, below, delta, out=self.weight_grads[layer])
            self.bias_grads[layer].copy_(self._product("bias_grad", layer, below, delta))
            if layer:
                delta = self._product("input_grad", layer, below, delta)
                delta = torch.ops.aten.threshold_backward(delta, below, 0)
        head = (activations[-2],) if self.watch_head else ()
        return StepResult(losses, outputs, head)

    def _predict(self, rows: Tensor, inputs: Tensor) -> Tensor:
        """Member by member with ``addmm``, exactly as each model alone evaluates (once per
        epoch, so the loop costs little)."""
        x = inputs.reshape(inputs.shape[0], -1) if self.flatten else inputs
        last = len(self.weights) - 1
        results = []
        for member in rows.tolist():
            h = x
            for layer in range(last + 1):
                h = torch.addmm(self._bias_rows[layer][member], h, self._transposed[layer][member])
                if layer < last:
                    h = h.relu_()
            results.append(h)
        return torch.stack(results)


class StackedFunctional(StackedModel):
    """Any module without batch-dependent state, in one of two modes.

    ``"vmap"``: one copy of the module on the ``meta`` device, ``functional_call`` under
    ``torch.func.vmap`` over the members, autograd on the stacked parameters. ``"loop"``: the
    members' own modules, their parameters and gradients re-pointed to their rows of
    ``params``/``grads``, run one after another, one backward pass for all; every kernel is
    the one a run alone calls, so the numbers are bit for bit a run alone's, and the group
    still saves the optimizer's per-tensor work, the per-step host reads and the engine's
    bookkeeping. ``"vmap"``'s batching rules take other kernels (grouped convolutions,
    batched matrix products) and round differently; on seed 004's kind of CNN (mnist5k's
    ``cnn``) it was also slower than the loop, so `lrlab.vectorize.plan` never picks it.

    ``head`` names the submodule whose inputs to report (LipschitzLR's final layer): in
    ``"vmap"`` mode its ``forward`` on the ``meta`` copy is wrapped to record them; in
    ``"loop"`` mode the members' own modules run, and whatever watches them (LipschitzLR's
    wrapper) sees them directly. An ``ArithmeticError`` raised by a member's forward pass
    (LipschitzLR meeting non-finite activations) is reported in `StepResult.errors`.
    """

    def __init__(
        self,
        layout: Layout,
        params: Tensor,
        models: Sequence[nn.Module],
        head: str | None,
        mode: Literal["vmap", "loop"],
    ) -> None:
        self.mode = mode
        self.head = head
        self.modules = list(models) if mode == "loop" else []
        self.base = copy.deepcopy(models[0]).to("meta")
        self._captured: list[Tensor] = []
        self._watching = False
        if head is not None and mode == "vmap":
            module = self.base.get_submodule(head)
            forward = module.forward

            def capture(input: Tensor, *args: Any, **kwargs: Any) -> Any:
                if self._watching:
                    self._captured.append(input)
                return forward(input, *args, **kwargs)

            module.forward = capture
        super().__init__(layout, params)

    @property
    def runs_member_modules(self) -> bool:
        return self.mode == "loop"

    def _rebuild(self) -> None:
        views, grads = self.layout.views(self.params), self.layout.views(self.grads)
        if self.mode == "loop":
            for row, module in enumerate(self.modules):
                for parameter, view, grad in zip(module.parameters(), views, grads, strict=True):
                    parameter.data = view[row]
                    parameter.grad = grad[row]
            return
        self.leaves = [view.detach().requires_grad_() for view in views]
        self._grad_views = grads

    def select(self, keep: Tensor) -> None:
        if self.mode == "loop":
            self.modules = [self.modules[row] for row in keep.tolist()]
        super().select(keep)

    def _call(self, values: tuple[Tensor, ...], x: Tensor, watch: bool) -> tuple[Tensor, ...]:
        self._captured.clear()
        self._watching = watch
        try:
            output = functional_call(
                self.base, dict(zip(self.layout.names, values, strict=True)), (x,)
            )
        finally:
            self._watching = False
        return (output, *self._captured)

    def train_step(self, inputs: Tensor, targets: Tensor, loss: LossKind) -> StepResult:
        self.grads.zero_()
        if self.mode == "loop":
            return self._loop_step(inputs, targets, loss)
        for leaf in self.leaves:
            leaf.grad = None
        with torch.enable_grad():
            call = functools.partial(self._call, watch=self.head is not None)
            output, *head = torch.func.vmap(call)(tuple(self.leaves), inputs)
            losses = member_losses(loss, output, targets)
            losses.sum().backward()  # type: ignore[no-untyped-call]
        for view, leaf in zip(self._grad_views, self.leaves, strict=True):
            if leaf.grad is not None:
                view.copy_(leaf.grad)
        return StepResult(losses.detach(), output.detach(), tuple(h.detach() for h in head))

    def _loop_step(self, inputs: Tensor, targets: Tensor, loss: LossKind) -> StepResult:
        function = loss_function(loss)
        outputs: list[Tensor | None] = []
        losses: list[Tensor] = []
        errors: dict[int, ArithmeticError] = {}
        with torch.enable_grad():
            for row, module in enumerate(self.modules):
                try:
                    output = module(inputs[row])
                except ArithmeticError as error:
                    errors[row] = error
                    outputs.append(None)
                    continue
                outputs.append(output)
                losses.append(function(output, targets[row]))
            if losses:
                torch.stack(losses).sum().backward()  # type: ignore[no-untyped-call]
        done = [o for o in outputs if o is not None]
        # A failed member's outputs and loss: NaN, of the outputs' dtype (not the inputs',
        # which may be integers: a language model's token indices).
        shape = done[0].shape if done else (inputs.shape[1], 1)
        blank = self.params.new_full(shape, math.nan)
        values = iter(losses)
        return StepResult(
            torch.stack(
                [blank.view(-1)[0] if o is None else next(values).detach() for o in outputs]
            ),
            torch.stack([blank if o is None else o.detach() for o in outputs]),
            (),
            errors,
        )

    def _predict(self, rows: Tensor, inputs: Tensor) -> Tensor:
        if self.mode == "loop":
            return torch.stack([_evaluated(self.modules[row], inputs) for row in rows.tolist()])
        call = functools.partial(self._call, watch=False)
        values = tuple(self.layout.views(self.params.index_select(0, rows)))
        output: Tensor = torch.func.vmap(call, in_dims=(0, None))(values, inputs)[0]
        return output


def _evaluated(module: nn.Module, inputs: Tensor) -> Tensor:
    was_training = module.training
    module.eval()
    try:
        result: Tensor = module(inputs)
    finally:
        module.train(was_training)
    return result
