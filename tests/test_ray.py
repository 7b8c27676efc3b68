"""The Ray executor on a local Ray instance: same runs, same store, as the local pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrlab.cli import main
from lrlab.execution import Outcome, RayExecutor
from lrlab.record import RunConfig
from lrlab.store import Store

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


KILLER = """
import os

import torch

import lrlab


def exit_now():
    with open({log!r}, "a") as log:
        log.write("started\\n")
    os._exit(3)  # the worker process dies, as when killed or out of memory


def make():
    x = torch.zeros(8, 2)
    return lrlab.Task(name="killer", model=exit_now, train=(x, x[:, 0].long()), epochs=1)
"""


def test_ray_runs_groups_and_reports_failures(tmp_path: Path) -> None:
    configs = [RunConfig(task="iris", optimizer="sgd", lr=0.05, steps=30, seed=s) for s in (0, 1)]
    failing = RunConfig(
        task="regression", optimizer="sgd", schedule="lipschitz(bound=paper)", epochs=1
    )
    log = tmp_path / "killer.log"
    (tmp_path / "killer.py").write_text(KILLER.format(log=str(log)))
    dying = RunConfig(task=f"{tmp_path / 'killer.py'}:make", optimizer="sgd")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # the caller's session
    try:
        outcomes: list[Outcome] = []
        executor = RayExecutor(max_retries=1)
        executor.run_groups([[*configs, failing], [dying]], outcomes.append)
        # A group trained together: one call of the runner with the whole group, in order.
        grouped: list[Outcome] = []
        together = RayExecutor(
            group_runner=lambda runs: [
                (None, f"{len(runs)} together, seed {r['seed']}") for r in runs
            ]
        )
        together.run_groups([configs], grouped.append)
        assert ray.is_initialized()  # lrlab used the caller's session and left it running
    finally:
        ray.shutdown()
    assert len(outcomes) == 4
    by_key = {o.config.key(): o for o in outcomes}
    for config in configs:
        record = by_key[config.key()].record
        assert record is not None
        assert record.steps == 30
    assert by_key[failing.key()].record is None  # a run that raises: its error, not retried
    assert "K_a - ||y|| turning negative" in (by_key[failing.key()].error or "")
    # A run whose process dies each time: retried once (max_retries=1), then failed.
    assert log.read_text() == "started\n" * 2
    assert by_key[dying.key()].record is None
    assert (by_key[dying.key()].error or "").startswith(
        "ray: WorkerCrashedError (retried 1 times): "
    ), by_key[dying.key()].error
    assert [(o.config, o.error) for o in grouped] == [
        (configs[0], "2 together, seed 0"),
        (configs[1], "2 together, seed 1"),
    ]


def test_compare_with_ray_fills_the_same_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.sqlite"
    argv = [
        "compare",
        "iris",
        "--optimizers",
        "sgd,momentum",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--db",
        str(db),
        "--workers",
        "2",
        "--holdout-seeds",  # nothing is tuned: the runs are the fresh seeds'
        "2",
    ]
    assert main([*argv, "--executor", "ray"]) == 0
    assert not ray.is_initialized()  # the local instance it started is shut down again
    with Store(db) as store:
        assert store.count() == {"done": 4}
        ray_records = {r.config.key(): r.record for r in store.runs()}
    # The same grid with the local executor finds everything done: the same keys.
    assert main(argv) == 0
    assert "4 already in" in capsys.readouterr().err
    # And the numbers are the runs' own: what training in this process gives (the runs of a
    # vectorised group equal their runs alone, but for a loss's last bit).
    from lrlab.engine import train_run

    config = next(iter(store_runs(db))).config
    local = train_run(config)
    record = ray_records[config.key()]
    assert record is not None
    assert record.extra["vectorized"]["members"] == 2  # sgd's and momentum's groups, on Ray
    assert record.step_lr == local.step_lr
    assert record.step_loss == pytest.approx(local.step_loss, rel=1e-6)


def store_runs(db: Path) -> list:  # type: ignore[type-arg]
    with Store(db) as store:
        return store.runs()
