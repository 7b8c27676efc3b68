"""What lrlab ships to Ray workers and how a worker finds its copy
(`lrlab.execution.cluster.UserCode`), on real files laid out as Ray unpacks ``py_modules`` (a
folder shipped whole arrives as ``<unpacked>/<folder name>/...`` with ``<unpacked>`` on
``sys.path``; the cluster test checks that layout on a real cluster). No Ray needed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from lrlab.execution.cluster import UserCode


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's project: a task file with a sibling module and a plugin in a subfolder, a
    plugin file in another folder, and a package on the path that is not installed."""
    write(tmp_path / "proj" / "task.py", "def make(): ...\n")
    write(tmp_path / "proj" / "helper.py", "VALUE = 'helper'\n")
    write(tmp_path / "proj" / "plugins" / "extra.py", "VALUE = 'extra'\n")
    write(tmp_path / "other" / "opt.py", "VALUE = 'opt'\n")
    write(tmp_path / "libs" / "mylib" / "__init__.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path / "proj"), str(tmp_path / "libs"), *sys.path])
    return tmp_path


def test_what_is_shipped(project: Path) -> None:
    plugins = [
        str(project / "proj" / "plugins" / "extra.py"),
        str(project / "other" / "opt.py"),
        "helper",  # a module in the task's folder: found there
        "mylib",  # a package on the path, not installed: shipped as it is
        "json",  # the standard library, "numpy" site-packages: on every node already
        "numpy",
    ]
    code = UserCode.of(["proj/task.py:make", "iris", "proj/task.py:make"], plugins)
    # The task's folder holds the plugins' subfolder: two folders, each shipped once.
    assert code.folders == (str(project / "proj"), str(project / "other"))
    assert code.modules == (str(project / "libs" / "mylib"),)
    assert code.tasks == (("proj/task.py:make", f"{project / 'proj' / 'task.py'}:make"),)
    assert [file for file, _ in code.files] == [
        str(project / "proj" / "task.py"),
        str(project / "proj" / "plugins" / "extra.py"),
        str(project / "other" / "opt.py"),
    ]
    user = {"py_modules": ["s3://bucket/pkg.zip"], "pip": ["einops"]}
    assert code.runtime_env(user) == {
        "py_modules": ["s3://bucket/pkg.zip", *code.folders, *code.modules],
        "pip": ["einops"],
    }
    assert user["py_modules"] == ["s3://bucket/pkg.zip"]  # the caller's dict is left alone
    with pytest.raises(ValueError, match=r"runtime_env\['py_modules'\] must be a list, got"):
        code.runtime_env({"py_modules": "s3://bucket/pkg.zip"})
    assert UserCode.of(["iris"], ["json"]).runtime_env() == {}  # nothing to ship


def test_two_folders_of_one_name_are_refused(tmp_path: Path) -> None:
    first = write(tmp_path / "a" / "exp" / "task.py")
    second = write(tmp_path / "b" / "exp" / "plugin.py")
    with pytest.raises(ValueError, match=r"two folders named 'exp' \(.*a/exp and .*b/exp\)"):
        UserCode.of([f"{first}:make"], [str(second)])


def test_a_worker_uses_its_copy(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = [str(project / "proj" / "plugins" / "extra.py"), "helper"]
    code = UserCode.of(["proj/task.py:make"], plugins)
    # On the worker: Ray's copy, and before it on the path a folder of the same name whose
    # task file differs (the driver's own folder, edited since): the copy is the one used.
    unpacked = project / "worker" / "_ray_pkg_0"
    shutil.copytree(project / "proj", unpacked / "proj")
    write(project / "stale" / "proj" / "task.py", "def make(): return 'stale'\n")
    monkeypatch.setattr(sys, "path", [str(project / "stale"), str(unpacked), *sys.path[2:]])
    modules = set(sys.modules)
    try:
        local = code.install()
        copy = unpacked / "proj"
        assert local(str(project / "proj" / "plugins" / "extra.py")) == str(
            copy / "plugins" / "extra.py"
        )
        assert local("/elsewhere/file.py") == "/elsewhere/file.py"
        assert code.local_task("proj/task.py:make", local) == f"{copy / 'task.py'}:make"
        assert code.local_task("iris", local) is None
        # The task's and the plugin's folders (their copies) are on the path, as on the driver,
        # and the plugins were imported from the copies.
        assert sys.path[:2] == [str(copy / "plugins"), str(copy)]
        imported = {sys.modules[name].__file__ for name in set(sys.modules) - modules}
        assert imported == {str(copy / "plugins" / "extra.py"), str(copy / "helper.py")}
        code.install()  # again, for the worker's next run: nothing added twice
        assert sys.path.count(str(copy)) == 1
    finally:
        for name in set(sys.modules) - modules:
            del sys.modules[name]
