"""Open registries: the names a spec, ``--optimizers`` or a sweep may use, extensible by users.

lrlab keeps three: schedules (`lrlab.schedules.register_schedule`), optimizers
(`lrlab.optimizers.register_optimizer`) and LR controllers
(`lrlab.controllers.register_controller`). Each is a `Registry`: lrlab's own entries, the
entries user code registers at run time, and, on the first lookup of a name it does not have,
the entry points installed packages declare (``[project.entry-points."lrlab.schedules"]``,
``"lrlab.optimizers"``, ``"lrlab.controllers"``; each entry point names an object whose
import registers it, or the object itself, registered under the entry point's name).

Sweeps run in other processes (a local pool, Ray). A worker imports lrlab and so has lrlab's
entries and the installed entry points, but not what a user's script registered: every
registration made outside lrlab remembers where it was made (`Registry.sources`), and
`plugin_sources` lists them so an executor can import them in each worker first
(`import_plugins`). No torch import here.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import keyword
import site
import sys
import sysconfig
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from lrlab.errors import describe

T = TypeVar("T")

_ALL: list[Registry[object]] = []


class Registry(Mapping[str, T]):
    """Named entries of one kind (``kind`` names it in errors: "schedule", "optimizer").

    A read-only mapping from name to entry (``name in registry``, iteration, ``registry[name]``
    raising ``KeyError``), plus `register` and `lookup` (a ``ValueError`` with suggestions).
    """

    def __init__(
        self, kind: str, group: str, coerce: Callable[[str, Any], T] | None = None
    ) -> None:
        """``coerce(name, value)`` turns what an entry point names into an entry (a class
        into the registry's entry type), checking it; default: taken as it is."""
        self.kind, self.group, self._coerce = kind, group, coerce
        self._entries: dict[str, T] = {}
        self._sources: dict[str, str] = {}
        self._entry_points_loaded = False
        _ALL.append(self)  # type: ignore[arg-type]

    def register(
        self, name: str, entry: T, *, replace: bool = False, source: str | None = None
    ) -> T:
        """Add ``entry`` as ``name``. A name already taken is an error unless ``replace`` or
        the same module registers it again (a module imported twice, e.g. in a worker).
        ``source``: where the registering code lives (`caller_source`; default: the caller
        of this method)."""
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"register: name must be a non-empty string, got name={name!r}")
        source = caller_source(1) if source is None else source
        if name in self._entries and not replace and self._sources.get(name) != source:
            raise ValueError(
                f"register: {self.kind} {name!r} is already registered "
                f"(from {self._sources.get(name) or 'lrlab'}); pass replace=True to replace it"
            )
        self._entries[name] = entry
        self._sources[name] = source
        return entry

    def lookup(self, name: str) -> T:
        """The entry called ``name``; an unknown name is a ``ValueError`` listing the known."""
        entry = self.find(name)
        if entry is None:
            close = difflib.get_close_matches(str(name), list(self._entries), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown {self.kind} {name!r}{hint}; known: {', '.join(self._entries)}"
            )
        return entry

    def find(self, name: str) -> T | None:
        """The entry called ``name``, or ``None`` (installed entry points are loaded on the
        first miss)."""
        entry = self._entries.get(name)
        if entry is None and not self._entry_points_loaded:
            self.load_entry_points()
            entry = self._entries.get(name)
        return entry

    def __getitem__(self, name: str) -> T:
        entry = self.find(name)
        if entry is None:
            raise KeyError(name)
        return entry

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __iter__(self) -> Iterator[str]:
        """Every registered name (installed entry points included), in registration order."""
        self.load_entry_points()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self.load_entry_points()
        return len(self._entries)

    def source(self, name: str) -> str:
        """Where ``name`` was registered: a module name, a file path, or ``""`` for lrlab."""
        return self._sources.get(name, "")

    def load_entry_points(self) -> None:
        """Register the entries installed packages declare in this registry's group."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for point in entry_points(group=self.group):
            if point.name in self._entries:
                continue
            try:
                value = point.load()
            except Exception as error:  # a broken plugin must not break lrlab
                raise ValueError(
                    f"{self.group} entry point {point.name!r} ({point.value}) failed to "
                    f"load: {type(error).__name__}: {error}"
                ) from None
            if point.name not in self._entries:  # importing it did not register itself
                self._entries[point.name] = (
                    self._coerce(point.name, value) if self._coerce else value
                )
                self._sources[point.name] = ""

    def plugin_sources(self) -> list[str]:
        """The modules or files outside lrlab that registered entries here."""
        return [s for s in dict.fromkeys(self._sources.values()) if s]


def caller_source(depth: int = 1) -> str:
    """The module (or, for a script run as ``__main__``, the file) of the code ``depth``
    calls above the function calling this one (1: its caller); ``""`` for lrlab itself and
    for an interactive session, which a worker cannot import."""
    frame = sys._getframe(depth + 1)
    module = frame.f_globals.get("__name__", "")
    if module == "lrlab" or module.startswith("lrlab."):
        return ""
    if module in ("__main__", "__mp_main__") or module in _FILES:
        path = frame.f_globals.get("__file__")
        return str(Path(path).resolve()) if path else ""
    return str(module)


def plugin_sources() -> list[str]:
    """Every module or file outside lrlab that registered something, in all registries."""
    return list(dict.fromkeys(s for r in _ALL for s in r.plugin_sources()))


def import_plugins(sources: list[str] | tuple[str, ...]) -> None:
    """Import what `plugin_sources` listed (in a worker, before it runs anything), so user
    registrations exist there too. A file is imported under a private module name, so code
    under ``if __name__ == "__main__":`` does not run again (as with multiprocessing's spawn).
    """
    main = sys.modules.get("__mp_main__") or sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    for source in sources:
        if source.endswith(".py"):
            if main_file and Path(main_file).resolve() == Path(source):
                continue  # multiprocessing already ran this script's top level here
            import_file(source)
        else:
            importlib.import_module(source)


#: Every file `import_file` imported in this process: its module name -> the file.
_FILES: dict[str, Path] = {}


def import_file(path: str | Path, *, what: str = "plugin") -> object:
    """Import a Python file by path (once per process) and return the module; a file that
    does not exist, fails to import or exits while importing (``sys.exit``) is a one-line
    ``ValueError`` naming it.

    The file is imported as Python would import it from a script beside it: its folder goes
    first on ``sys.path`` (its siblings import as they do when it runs as a script), and the
    module is named after the file (``my_tasks.py`` -> ``my_tasks``) when that name is free
    (`module_name`). Classes and functions defined in it then pickle by a name every child
    process can import: a ``DataLoader``'s workers, started by ``spawn`` or ``forkserver``,
    receive the parent's ``sys.path`` with the process object (``multiprocessing.spawn.
    get_preparation_data``) and import the module from there, as they would a user's own
    module; under ``fork`` they inherit it. A name that is taken (an installed or standard
    module, or another file of that name imported before) falls back to a private name,
    ``lrlab_plugin_<hash of the path>``, which only this process and its forks know.
    """
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ValueError(f"{what} file {str(path)!r} does not exist")
    for known, source in _FILES.items():
        if source == file and known in sys.modules:
            return sys.modules[known]
    name = module_name(file)
    existing = sys.modules.get(name)
    if existing is not None:  # the user's program imported it already, by that name
        _FILES[name] = file
        return existing
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ValueError(f"{what} file {str(path)!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    _put_folder_on_path(file.parent)
    sys.modules[name] = module
    _FILES[name] = file  # (what it registers while it runs names the file: `caller_source`)
    try:
        spec.loader.exec_module(module)
    except BaseException as error:
        del sys.modules[name], _FILES[name]
        if isinstance(error, KeyboardInterrupt):
            raise
        if isinstance(error, SystemExit):  # its script part ran: not an exit of lrlab's own
            raise ValueError(
                f"{what} file {str(path)!r} exits on import (sys.exit({error.code!r})); keep "
                "what runs it as a script under if __name__ == '__main__':"
            ) from None
        raise ValueError(f"{what} file {str(path)!r} raised on import: {describe(error)}") from None
    return module


def module_name(file: Path) -> str:
    """The name `import_file` gives ``file`` (an absolute path): its stem, when a child
    process with this process's ``sys.path`` (the file's folder on it, `_put_folder_on_path`)
    imports exactly this file by that name and the name is no other module's (none of that
    name imported, built in, in the standard library or installed); else
    ``lrlab_plugin_<hash of the path>``.

    >>> module_name(Path("/nonexistent/my-tasks.py"))[:13]  # not an identifier
    'lrlab_plugin_'
    >>> module_name(Path("/nonexistent/json.py"))[:13]  # the standard library's
    'lrlab_plugin_'
    """
    stem = file.stem
    private = "lrlab_plugin_" + hashlib.sha1(str(file).encode()).hexdigest()[:12]
    if not stem.isidentifier() or keyword.iskeyword(stem) or stem.startswith("lrlab"):
        return private
    loaded = sys.modules.get(stem)
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
        return stem if origin and Path(origin).resolve() == file else private
    if stem in sys.builtin_module_names or importlib.machinery.FrozenImporter.find_spec(stem):
        return private
    found = importlib.machinery.PathFinder.find_spec(stem, _path_with(file.parent))
    if found is None or found.origin != str(file):
        return private
    other = importlib.machinery.PathFinder.find_spec(stem, installed_locations())
    return private if other is not None else stem


def installed_locations() -> list[str]:
    """The folders of the standard library and of installed packages (site-packages)."""
    paths = sysconfig.get_paths()
    places = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    places += [*site.getsitepackages(), site.getusersitepackages()]
    return [place for place in dict.fromkeys(places) if place]


def _entry_folder(entry: str) -> Path | None:
    """The folder a ``sys.path`` entry names (``""``: the current one)."""
    try:
        return Path(entry or ".").resolve()
    except (OSError, RuntimeError):
        return None


def _path_with(folder: Path) -> list[str]:
    """``sys.path`` as `_put_folder_on_path` leaves it for ``folder``."""
    if any(_entry_folder(entry) == folder for entry in sys.path):
        return list(sys.path)
    if _shadows(folder):
        return [*sys.path, str(folder)]
    return [str(folder), *sys.path]


def _shadows(folder: Path) -> bool:
    """Whether a file or package in ``folder`` has the name of a module `import_file` named
    after a file elsewhere (a child process importing that name would find this folder's)."""
    return any(
        source.parent != folder
        and not name.startswith("lrlab_plugin_")
        and importlib.machinery.PathFinder.find_spec(name, [str(folder)]) is not None
        for name, source in _FILES.items()
    )


def _put_folder_on_path(folder: Path) -> None:
    """``folder`` on ``sys.path``: first, as a script's own folder is, unless it would shadow
    a module `import_file` named after a file elsewhere (`_shadows`): then last."""
    if any(_entry_folder(entry) == folder for entry in sys.path):
        return
    if _shadows(folder):
        sys.path.append(str(folder))
    else:
        sys.path.insert(0, str(folder))
