"""The layer contract (pyproject.toml, checked by ``lint-imports`` in ``./scripts/test.sh``)
covers every module of lrlab: a new top-level module or package must be placed in a layer, or
it would import anything unchecked."""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path

import lrlab

ROOT = Path(__file__).resolve().parents[1]


def _layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    assert contract["containers"] == ["lrlab"]
    return [set(re.findall(r"[\w.]+", layer)) for layer in contract["layers"]]


def test_every_top_level_module_has_a_layer() -> None:
    placed = set().union(*_layers())
    modules = {m.name for m in pkgutil.iter_modules(lrlab.__path__)} - {"__main__"}
    assert modules - placed == set(), "place these in a layer of [tool.importlinter]"


def test_the_layers_run_from_the_cli_down_to_the_validators() -> None:
    layers = _layers()
    order = {name: i for i, layer in enumerate(layers) for name in layer}
    chain = ["cli", "api", "report", "sweep", "store", "execution", "vectorize", "engine"]
    chain += ["controllers", "tasks", "schedules", "validate", "errors"]
    assert [order[name] for name in chain] == sorted(order[name] for name in chain)
