"""Open registries: users add schedules, optimizers and LR controllers from their own code or
from installed packages (entry points), and the names work in specs, in ``--optimizers``, and
in the workers of a process pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lrlab.controllers import CONTROLLERS, register_controller
from lrlab.optimizers import OPTIMIZERS, register_optimizer
from lrlab.registry import Registry
from lrlab.schedules import SCHEDULES, Constant, register_schedule
from tests.plugin_sources import PLUGIN

ROOT = Path(__file__).resolve().parents[1]


DRIVER = """
import json
import sys

import plugin  # registers halving, heavy-sgd and freeze at its top level

import lrlab

if __name__ == "__main__":
    result = lrlab.compare(
        "iris",
        optimizers=["heavy-sgd"],
        schedules=[None, "halving(lr=0.1, every=50)", "freeze()"],
        seeds=2,
        lr_grid=[0.01, 0.1],
        epochs=2,
        db=sys.argv[1],
        workers=2,
    )
    print(json.dumps({
        "ran": result.ran,
        "statuses": sorted({r.status for r in result.runs}),
        "errors": sorted({r.error for r in result.runs if r.error}),
        "groups": {s.base_label: s.group for s in result.summaries},
        "labels": {s.base_label: [s.label, s.lr] for s in result.summaries},
        "lrs": sorted({r.record.step_lr[0] for r in result.runs if r.record}),
    }))
"""


def test_user_registrations_reach_the_workers_of_a_process_pool(tmp_path: Path) -> None:
    (tmp_path / "plugin.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "driver.py", str(tmp_path / "runs.sqlite")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # heavy-sgd and heavy-sgd + halving tuned over 2 LRs x 2 seeds; then all three methods
    # (freeze computes its own LR) on the 5 fresh seeds.
    assert summary["ran"] == 2 * 2 * 2 + 3 * 5
    assert summary["statuses"] == ["done"], summary["errors"]
    assert summary["groups"] == {
        "heavy-sgd": "tuned",
        "heavy-sgd + halving(lr=0.1, every=50)": "tuned",
        "heavy-sgd + freeze()": "no tuning",
    }
    # the user's schedule, known here, is labelled at the LR the grid chose
    label, lr = summary["labels"]["heavy-sgd + halving(lr=0.1, every=50)"]
    assert label == f"heavy-sgd + halving(lr={lr!r}, every=50)"
    assert summary["lrs"] == [0.01, 0.02, 0.1]


ENTRY_POINT_MODULE = """
from dataclasses import dataclass

from lrlab.schedules import Schedule


@dataclass(frozen=True)
class Thirds(Schedule):
    lr: float
    name = "thirds"

    @property
    def reference_lr(self) -> float:
        return self.lr

    def value(self, t: float) -> float:
        return self.lr / 3 ** t
"""


def test_installed_packages_add_names_through_entry_points(tmp_path: Path) -> None:
    """A package declaring ``[project.entry-points."lrlab.schedules"] thirds = ...`` makes
    ``thirds(...)`` a schedule without any import by the user."""
    site = tmp_path / "site"
    info = site / "lrlab_thirds-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "lrlab_thirds.py").write_text(textwrap.dedent(ENTRY_POINT_MODULE))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lrlab-thirds\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[lrlab.schedules]\nthirds = lrlab_thirds:Thirds\n\n"
        "[lrlab.optimizers]\nplain = torch.optim:SGD\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(site)])}
    result = subprocess.run(
        [sys.executable, "-m", "lrlab", "schedule", "thirds(lr=0.9)", "--steps", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "0.9" in result.stdout
    assert "0.3" in result.stdout
    assert "0.1" in result.stdout
    code = (
        "from lrlab.optimizers import make_optimizer; import torch\n"
        "o = make_optimizer('plain', [torch.zeros(1, requires_grad=True)], lr=0.5)\n"
        "print(type(o).__name__, o.defaults['lr'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SGD", "0.5"]


def test_registration_errors_are_one_line() -> None:
    with pytest.raises(ValueError, match="schedule 'constant' is already registered"):
        register_schedule(Constant)  # from another module than lrlab's own registration
    with pytest.raises(TypeError, match="must be a Schedule subclass"):
        register_schedule(int)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="optimizer 'adam' is already registered"):
        register_optimizer("adam", torch.optim.Adam)
    with pytest.raises(ValueError, match="takes no argument 'momentum'"):
        register_optimizer("adam-x", torch.optim.Adam, defaults={"momentum": 0.9})
    with pytest.raises(TypeError, match=r"must be a torch\.optim\.Optimizer subclass"):
        register_optimizer("nope", dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'cosine' is a schedule's name"):
        register_controller("cosine", lambda: None)  # type: ignore[arg-type,return-value]
    assert "adam-x" not in OPTIMIZERS
    assert "nope" not in OPTIMIZERS
    assert "lipschitz" in CONTROLLERS
    assert "plateau" in CONTROLLERS
    assert "cosine" in SCHEDULES


def test_a_registry_is_a_mapping_with_suggestions() -> None:
    registry: Registry[int] = Registry("widget", "lrlab.test-widgets")
    registry.register("alpha", 1)
    registry.register("beta", 2)
    assert list(registry) == ["alpha", "beta"]
    assert len(registry) == 2
    assert registry["beta"] == 2
    assert "gamma" not in registry
    with pytest.raises(KeyError):
        registry["gamma"]
    with pytest.raises(ValueError, match=r"unknown widget 'alpah' \(did you mean 'alpha'\?\)"):
        registry.lookup("alpah")
    registry.register("alpha", 3)  # the same module registering again (a re-import)
    assert registry["alpha"] == 3
    assert registry.plugin_sources() == [__name__]


def test_adding_a_schedule_takes_one_module() -> None:
    """Every built-in schedule is registered by the decorator in its own module: the spec
    parser, `lrlab.schedules.SCHEDULES` and the CLI know nothing else."""
    source = Path(sys.modules["lrlab.schedules.parse"].__file__ or "").read_text()
    for name, cls in SCHEDULES.items():
        assert cls.__name__ not in source, name
        module_source = Path(sys.modules[cls.__module__].__file__ or "").read_text()
        assert f"@register_schedule\n@dataclass(frozen=True)\nclass {cls.__name__}(" in (
            module_source
        )
