"""Studies are a layer on the public API: each study module imports from lrlab only the root
package's public names, `lrlab.report`'s public functions and the shared study code (runner,
verdict, published data), and its data files reach an installed package.

The import check reads every import in the module's source, those inside functions and
``TYPE_CHECKING`` blocks included, and every attribute read off ``lrlab``; an
import-linter contract in pyproject.toml states the same for the whole layer.
"""

from __future__ import annotations

import ast
import fnmatch
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import lrlab
import lrlab.report
from lrlab.studies import published

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src"
STUDIES = SOURCE / "lrlab" / "studies"
STUDY_MODULES = (
    "seed000",
    "seed000_keras",
    "seed002",
    "seed003",
    "seed004",
    "lr_finder",
    "tune",
    "wsd",
)
SHARED = {"lrlab.studies.runner", "lrlab.studies.verdict", "lrlab.studies.published"}


def _violations(path: Path) -> list[str]:
    """Every import or ``lrlab.X`` read in ``path`` that leaves the allowed set."""
    tree = ast.parse(path.read_text(), str(path))
    public = {"lrlab": set(lrlab.__all__), "lrlab.report": set(lrlab.report.__all__)}
    shared_names = {module.rpartition(".")[2] for module in SHARED}
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                if name.startswith("lrlab") and name not in {"lrlab", *SHARED}:
                    found.append(f"{where}: import {name}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if node.level:
                found.append(f"{where}: relative import from {module!r}")
            elif module in public:
                found += [f"{where}: {module}.{n} is not public" for n in names - public[module]]
            elif module == "lrlab.studies":
                found += [f"{where}: lrlab.studies.{n}" for n in names - shared_names]
            elif module.startswith("lrlab") and module not in SHARED:
                found.append(f"{where}: from {module} import {', '.join(sorted(names))}")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "lrlab"
            and node.attr not in public["lrlab"]
        ):
            found.append(f"{where}: lrlab.{node.attr} is not public")
    return sorted(found, key=lambda text: int(text.split(":")[1]))


@pytest.mark.parametrize("name", STUDY_MODULES)
def test_study_imports_only_the_public_api_and_shared_study_code(name: str) -> None:
    assert _violations(STUDIES / f"{name}.py") == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The check itself: deep imports anywhere in a module, and private names, are found."""
    module = tmp_path / "study.py"
    module.write_text(
        "import lrlab\nfrom lrlab import train, _LAZY\nfrom lrlab.report import summarize\n"
        "from lrlab.studies import runner, seed003\n"
        "def plan():\n    from lrlab.store import Store\n    import lrlab.engine\n"
        "    return lrlab.find_on_task, lrlab.engine\n"
    )
    assert _violations(module) == [
        "study.py:2: lrlab._LAZY is not public",
        "study.py:4: lrlab.studies.seed003",
        "study.py:6: from lrlab.store import Store",
        "study.py:7: import lrlab.engine",
        "study.py:8: lrlab.engine is not public",
    ]


def test_every_study_module_is_checked() -> None:
    """A new study module must join `STUDY_MODULES` (or be shared code)."""
    modules = {p.stem for p in STUDIES.glob("*.py")} - {"__init__", "experiments"}
    assert modules - {m.rpartition(".")[2] for m in SHARED} == set(STUDY_MODULES)


# -- the data files ------------------------------------------------------------------------------


def _package_data() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(config["tool"]["setuptools"]["package-data"])


def test_every_data_file_is_declared_package_data() -> None:
    patterns = _package_data().get("lrlab.studies", [])
    files = [p.relative_to(STUDIES).as_posix() for p in (STUDIES / "data").iterdir()]
    assert files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
    assert published.names() == sorted(Path(f).stem for f in files)


def _installed_copy(target: Path) -> Path:
    """What a wheel of lrlab holds, as setuptools builds it from pyproject.toml: each
    package's modules (every folder with an ``__init__.py`` under src/) and the package data
    its patterns declare, nothing else."""
    data = _package_data()
    for init in (SOURCE / "lrlab").rglob("__init__.py"):
        package = init.parent
        dotted = package.relative_to(SOURCE).as_posix().replace("/", ".")
        files = list(package.glob("*.py"))
        files += [p for pattern in data.get(dotted, []) for p in package.glob(pattern)]
        for path in files:
            destination = target / path.relative_to(SOURCE)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    return target


def test_reproduce_runs_from_an_installed_copy(tmp_path: Path) -> None:
    """``lrlab reproduce seed-002`` from a copy laid out as the installed package, run from
    another folder: every study's data file (all four load when the experiments import)
    travels as package data and is found through importlib.resources."""
    site = _installed_copy(tmp_path / "site")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "lrlab", "reproduce", "seed-002", "--out", "out"],
        cwd=elsewhere,
        env={
            "PYTHONPATH": str(site),
            "HOME": str(tmp_path),
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 40
    assert "seed-002: AGREES: 15/15" in result.stderr
    assert (elsewhere / "out" / "report.md").is_file()


def test_data_errors_name_the_file_and_path() -> None:
    source = published.Source("demo", {"a": {"value": "x", "unit": "u", "wording": "w"}})
    with pytest.raises(ValueError, match=r"^studies data demo.toml: a.value must be a finite"):
        source.quantity("a")
    with pytest.raises(ValueError, match=r"^studies data demo.toml: no 'a.b' \(a lacks 'b'\)$"):
        source.get("a.b")
    with pytest.raises(ValueError, match=r"^no studies data file 'nope'; there are: seed-000, "):
        published.load("nope")


def test_every_published_quantity_loads() -> None:
    """Each data file's quantities (tables with a value) are well formed."""
    for name in published.names():
        source = published.load(name)
        stack = [("", source.data)]
        while stack:
            prefix, table = stack.pop()
            if "value" in table:
                quantity = source.quantity(prefix)
                assert quantity.unit
                assert quantity.wording
                continue
            stack += [
                (f"{prefix}.{key}".lstrip("."), value)
                for key, value in table.items()
                if isinstance(value, dict)
            ]
