"""LipschitzLR under DistributedDataParallel: two real processes, gloo on the CPU. Every rank
must set the same LR, equal to what one process computes on the union of the ranks' batches."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from lrlab import LipschitzLR

GLOBAL_BATCH, RANKS, EPOCHS = 16, 2, 2
MODES: dict[str, dict[str, Any]] = {
    "pass-smooth": {},
    "pass-smooth-spectral": {"norm": "spectral"},
    "pass-paper-l2": {"bound": "paper"},
    "pass-paper-mse": {"bound": "paper", "loss": "mse", "max_lr": 5.0},
    "training-smooth": {"source": "train"},
    "batch-smooth-spectral": {"every": "batch", "norm": "spectral"},
    # The paper's per-batch LR runs away on this toy problem: max_lr keeps it training.
    "batch-paper-adamo": {
        "every": "batch",
        "bound": "paper",
        "variant": "adamo",
        "k1_start": "inverse",
        "max_lr": 0.5,
    },
    "pass-adam-experimental": {
        "bound": "paper",
        "variant": "adam",
        "experimental": True,
        "max_lr": 0.5,
    },
}


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))


def _data(loss: str) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(64, 6, generator=generator)
    if loss == "mse":  # small targets: the paper's K_a - ||y|| stays positive
        return x, 0.01 * torch.randn(64, 3, generator=generator)
    return x, torch.randint(0, 3, (64,), generator=generator)


def _shard(x: Tensor, rank: int, world: int) -> list[int]:
    """The rows rank ``rank`` sees: its slice of every global batch."""
    part = GLOBAL_BATCH // world
    return [t + rank * part + i for t in range(0, len(x), GLOBAL_BATCH) for i in range(part)]


def _loss_fn(loss: str) -> Any:
    return nn.functional.mse_loss if loss == "mse" else nn.functional.cross_entropy


def run_mode(rank: int, world: int, mode: str, out: str) -> None:
    """Train EPOCHS epochs under ``mode``; write the LR of every update to ``out``. With
    ``world > 1`` the caller has initialised the process group."""
    torch.set_num_threads(1)
    options = dict(MODES[mode])
    loss = options.pop("loss", "cross_entropy")
    x, y = _data(loss)
    rows = _shard(x, rank, world)
    xs, ys = x[rows], y[rows]
    size = GLOBAL_BATCH // world
    batches = [(xs[i : i + size], ys[i : i + size]) for i in range(0, len(xs), size)]
    model: nn.Module = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, weight_decay=1e-3)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    lip = LipschitzLR(optimizer, model, loss=loss, data=batches, **options)
    lrs: list[float] = []
    for _ in range(EPOCHS):
        for inputs, targets in batches:
            value = _loss_fn(loss)(model(inputs), targets)
            optimizer.zero_grad()
            value.backward()
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if lip.every == "batch":
                lip.step()
        if lip.every == "epoch":
            lip.step()
    lrs.append(optimizer.param_groups[0]["lr"])
    Path(out).write_text(json.dumps({"lrs": lrs, "history": lip.history}))


def _uneven(rank: int, out: str) -> None:
    """A pass where rank 0 holds three batches and rank 1 two."""
    x, y = _data("cross_entropy")
    batches = [(x[b * 16 + rank * 8 : b * 16 + rank * 8 + 8], y[:8]) for b in range(3 - rank)]
    model = _model()
    lip = LipschitzLR(
        torch.optim.SGD(model.parameters(), lr=0.1), model, loss="cross_entropy", data=batches
    )
    Path(out).write_text(json.dumps(lip.get_last_lr()))


def _log_stderr(directory: str, rank: int) -> None:
    """Send this rank's stderr (gloo's and torch's C++ messages too) to a file in the test's
    directory, where a failure can be read after the fact."""
    handle = os.open(f"{directory}/rank{rank}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(handle, 2)
    os.close(handle)


def _leave() -> None:
    """End a rank once its results are on disk, skipping C++ static destructors: torch 2.13's
    store/gloo teardown aborts now and then at interpreter exit ("terminate called without an
    active exception", SIGABRT; about one run in ten here), after everything under test is
    done and written."""
    sys.stderr.flush()
    os._exit(0)


def _free_address() -> str:
    """A TCP rendezvous on a port the OS just handed out."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def _spawn(target: Any, args: tuple[Any, ...]) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.start_processes(
        target, args=(*args, _free_address()), nprocs=RANKS, join=True, start_method="spawn"
    )


def _rank_entry(rank: int, directory: str, address: str) -> None:
    """One rank: every mode in turn, then the uneven pass, in one process group."""
    _log_stderr(directory, rank)
    dist.init_process_group("gloo", init_method=address, rank=rank, world_size=RANKS)
    for mode in MODES:
        run_mode(rank, RANKS, mode, f"{directory}/{mode}-rank{rank}.json")
    _uneven(rank, f"{directory}/uneven-rank{rank}.json")
    dist.barrier()  # no rank tears the group down while another still uses it
    dist.destroy_process_group()
    _leave()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run every mode in two gloo ranks (one spawn) and in one process; return the folder."""
    directory = tmp_path_factory.mktemp("ddp")
    _spawn(_rank_entry, (str(directory),))
    for mode in MODES:
        run_mode(0, 1, mode, str(directory / f"{mode}-single.json"))
    return directory


def _read(directory: Path, name: str) -> Any:
    return json.loads((directory / f"{name}.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
def test_ranks_agree_with_one_process_on_the_union(ddp_results: Path, mode: str) -> None:
    rank0, rank1 = (_read(ddp_results, f"{mode}-rank{r}") for r in range(RANKS))
    single = _read(ddp_results, f"{mode}-single")
    assert rank0["lrs"] == rank1["lrs"]  # identical on every rank, bit for bit
    assert rank0["lrs"] == pytest.approx(single["lrs"], rel=1e-5)
    assert len(set(single["lrs"])) > 1  # the LR did change, so the comparison means something


@pytest.mark.slow
def test_uneven_pass_shards(ddp_results: Path) -> None:
    got = [_read(ddp_results, f"uneven-rank{r}") for r in range(RANKS)]
    assert got[0] == got[1]
    x, _ = _data("cross_entropy")
    model = _model()
    with torch.no_grad():
        squares = [
            float(model[:-1](x[b * 16 : b * 16 + (16 if b < 2 else 8)]).double().square().sum())
            for b in range(3)
        ]
    sizes = [16, 16, 8]
    expected = 1 / max((s + m) / (2 * m) for s, m in zip(squares, sizes, strict=True))
    assert got[0][0] == pytest.approx(expected, rel=1e-5)
