"""Everything a range test disturbs, saved before it and put back exactly after it.

The known range tests restore less: torch-lr-finder's ``LRFinder.reset`` (``torch_lr_finder/
lr_finder.py``) reloads the model's and the optimizer's ``state_dict`` and leaves the RNGs, the
gradients and the train/eval mode as the test left them; fastai's ``LRFinder.after_fit``
(``fastai/callback/schedule.py``) and Lightning's ``_lr_find`` reload a checkpoint, again
without the RNG states. Training after those tests differs from training without them (other
Dropout masks, another shuffle), which is what `Snapshot` rules out.

A `Snapshot` holds, in memory on the tensors' own devices (nothing goes through a file, so no
checkpoint is ever unpickled):

- every parameter and buffer of the model (BatchNorm's running statistics and batch counter
  included, non-persistent buffers too) and any other parameter the optimizer trains, copied
  back in place so the optimizer's references stay valid; each parameter's ``.grad`` (or its
  absence);
- each submodule's own ``training`` flag (a model in train mode with a frozen BatchNorm in eval
  mode comes back that way);
- the optimizer's per-parameter state and every param-group entry but ``params`` (``lr``,
  ``initial_lr`` set by an LR scheduler, Schedule-Free's ``train_mode``, ``k``, ``lr_max`` and
  ``weight_sum``, D-adaptation's ``d``...), deep copies, so the state is the same tensors'
  values in the same dtypes (``Optimizer.load_state_dict`` would cast them to the parameters'
  dtype); and the ``_opt_called`` flag PyTorch's LR schedulers set on it;
- the global RNGs: torch's CPU generator, every CUDA device's when CUDA is initialised,
  numpy's legacy global ``RandomState`` and Python's ``random``; plus any ``torch.Generator``
  handed in (a DataLoader's own).

An LR scheduler attached to the optimizer (``lrlab.ScheduleLR`` or any ``LRScheduler``) is not
stepped by a range test, so its own state does not change; what it keeps in the optimizer
(``initial_lr``, ``_opt_called``) is restored with the optimizer.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from lrlab.rng import RNGState

_MISSING = object()


# Attributes PyTorch's LR schedulers keep on the optimizer itself.
_OPTIMIZER_ATTRIBUTES = ("_opt_called",)


def _copy_into(current: Any, saved: Any) -> Any:
    """The value to put back: ``current`` refilled in place when it is a tensor of the same
    kind (so whoever holds a reference to it sees the restored value), else a fresh copy."""
    if (
        isinstance(current, Tensor)
        and isinstance(saved, Tensor)
        and current.shape == saved.shape
        and current.dtype == saved.dtype
        and current.device == saved.device
    ):
        with torch.no_grad():
            current.copy_(saved)
        return current
    return copy.deepcopy(saved)


class Snapshot:
    """The state of a model, its optimizer and the RNGs at one moment; `restore` puts it back
    (as many times as needed: each restore copies from the snapshot, which stays intact)."""

    def __init__(
        self, model: nn.Module, optimizer: Optimizer, generators: Iterable[torch.Generator] = ()
    ) -> None:
        self.model, self.optimizer = model, optimizer
        # The model's parameters, then any the optimizer trains that the model does not own
        # (a learnable temperature in the loss, say).
        params = list(model.parameters())
        known = {id(p) for p in params}
        for group in optimizer.param_groups:
            for param in group["params"]:
                if id(param) not in known:
                    known.add(id(param))
                    params.append(param)
        self._params = params
        self._tensors = [*params, *model.buffers()]
        with torch.no_grad():
            self._values = [t.detach().clone() for t in self._tensors]
        self._grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
        self._modes = [(module, module.training) for module in model.modules()]
        self._state = {p: copy.deepcopy(s) for p, s in optimizer.state.items()}
        self._groups = [
            {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            for group in optimizer.param_groups
        ]
        self._attributes = {
            name: optimizer.__dict__.get(name, _MISSING) for name in _OPTIMIZER_ATTRIBUTES
        }
        self._rng = RNGState.capture(generators)

    def restore(self) -> None:
        """Put everything back exactly as it was when the snapshot was taken."""
        with torch.no_grad():
            for tensor, value in zip(self._tensors, self._values, strict=True):
                tensor.copy_(value)
        for param, grad in zip(self._params, self._grads, strict=True):
            param.grad = None if grad is None else _copy_into(param.grad, grad)
        for module, training in self._modes:
            module.training = training
        self._restore_optimizer()
        self._rng.restore()

    def _restore_optimizer(self) -> None:
        state = self.optimizer.state
        current = dict(state)
        state.clear()
        for param, saved in self._state.items():
            now = current.get(param, {})
            state[param] = {key: _copy_into(now.get(key), value) for key, value in saved.items()}
        for group, saved in zip(self.optimizer.param_groups, self._groups, strict=True):
            for key in [k for k in group if k != "params" and k not in saved]:
                del group[key]
            for key, value in saved.items():
                group[key] = _copy_into(group.get(key), value)
        for name, value in self._attributes.items():
            if value is _MISSING:
                self.optimizer.__dict__.pop(name, None)
            else:
                self.optimizer.__dict__[name] = value
