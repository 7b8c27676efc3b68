"""Issue 22: a task file's ``DataLoader`` with worker processes, over a ``Dataset`` class defined
in that file, works whatever start method its workers use, in this process, in a local pool
(``compare --workers N``) and on Ray: `lrlab.registry.import_file` names a task file after
itself, so the workers import it as they would a user's own module. A worker that dies fails
its run (stored with the error, ``compare`` exits 1); nothing hangs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import lrlab
from lrlab.registry import import_file, module_name
from lrlab.store import Store
from tests.user_task_sources import WORKER_TASKS

ROOT = Path(__file__).resolve().parents[1]


def _task_file(folder: Path, source: str = WORKER_TASKS) -> Path:
    """The task file under a name no other test of this process uses (a module's name is
    its file's, once per process)."""
    path = folder / f"blobs_{uuid.uuid4().hex[:8]}.py"
    path.write_text(source)
    return path


def _lrlab(*argv: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lrlab", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- the name a task file is imported under ------------------------------------------------------


def test_a_task_file_is_imported_under_its_own_name(tmp_path: Path) -> None:
    path = _task_file(tmp_path)
    module = import_file(path)
    assert module.__name__ == path.stem  # type: ignore[attr-defined]
    assert sys.modules[path.stem] is module
    assert sys.path[0] == str(tmp_path)  # its folder first, as a script's
    assert import_file(str(path)) is module  # once per process


def test_a_taken_name_falls_back_to_a_private_one(tmp_path: Path) -> None:
    for name in ("json", "os", "pytest", "lrlab_tasks", "class"):  # stdlib, installed, keyword
        (tmp_path / f"{name}.py").write_text("X = 1\n")
        assert module_name(tmp_path / f"{name}.py").startswith("lrlab_plugin_"), name
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    stem = f"twin_{uuid.uuid4().hex[:8]}"
    (first / f"{stem}.py").write_text("WHO = 'a'\n")
    (second / f"{stem}.py").write_text("WHO = 'b'\n")
    a, b = import_file(first / f"{stem}.py"), import_file(second / f"{stem}.py")
    assert (a.__name__, a.WHO, b.WHO) == (stem, "a", "b")  # type: ignore[attr-defined]
    assert b.__name__.startswith("lrlab_plugin_")  # type: ignore[attr-defined]
    # b's folder went last, so a child process importing the name still finds a's file.
    assert sys.path.index(str(first)) < sys.path.index(str(second))


def test_the_users_own_import_of_the_file_is_reused(tmp_path: Path) -> None:
    path = _task_file(tmp_path, "COUNT = []\nCOUNT.append(1)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        mine = __import__(path.stem)
        assert import_file(path) is mine  # one module: isinstance works across both
    finally:
        sys.path.remove(str(tmp_path))


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_dataloader_with_workers_trains_in_this_process(method: str, tmp_path: Path) -> None:
    path = _task_file(tmp_path)
    record = lrlab.train(f"{path}:{method}", optimizer="sgd", lr=0.1)
    assert record.status == "done"
    assert len(record.step_loss) == 4  # 64 samples in batches of 16, one epoch


# -- through the command line: a pool, Ray -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("method", ["default", "spawn", "forkserver"])
def test_compare_runs_dataloader_workers_in_a_pool(
    method: str, workers: str, tmp_path: Path
) -> None:
    path = _task_file(tmp_path)
    db = tmp_path / "runs.sqlite"
    result = _lrlab(
        "compare", f"{path.name}:{method}", "--optimizers", "sgd", "--holdout-seeds", "2",
        "--workers", workers, "--db", str(db), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ModuleNotFoundError" not in result.stderr
    with Store(db) as store:
        assert store.count() == {"done": 2}


@pytest.mark.slow
def test_compare_on_ray_runs_dataloader_workers(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    path = _task_file(tmp_path)
    db = tmp_path / "runs.sqlite"
    result = _lrlab(
        "compare", f"{path.name}:spawn", "--optimizers", "sgd", "--holdout-seeds", "2",
        "--workers", "2", "--executor", "ray", "--db", str(db), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with Store(db) as store:
        assert store.count() == {"done": 2}


DYING = (
    WORKER_TASKS
    + """

class Dying(Blobs):
    def __getitem__(self, i):
        if torch.utils.data.get_worker_info() is not None:
            os._exit(3)  # a worker killed mid-epoch (out of memory, a segfault)
        return super().__getitem__(i)


def dying():
    return lrlab.Task(name="dying", model=lambda: nn.Linear(4, 2),
                      train=DataLoader(Dying(64, 0), batch_size=16, num_workers=2), epochs=1)
"""
)


@pytest.mark.slow
def test_a_dataloader_worker_that_dies_fails_its_run_and_compare_says_so(tmp_path: Path) -> None:
    path = _task_file(tmp_path, DYING)
    db = tmp_path / "runs.sqlite"
    result = _lrlab(
        "compare", f"{path.name}:dying", "--optimizers", "sgd", "--holdout-seeds", "2",
        "--workers", "2", "--db", str(db), cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lrlab: 2 of 2 runs failed ("), last
    assert "RuntimeError: DataLoader worker (pid(s) " in last
    with Store(db) as store:
        assert store.count() == {"failed": 2}
        assert all("DataLoader worker" in (run.error or "") for run in store.runs())
