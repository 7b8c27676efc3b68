"""Mid-run checkpoints: the files a run writes while it trains and resumes from when it is run
again after being killed (`RunConfig.checkpoint_dir`).

A run's checkpoints live in ``checkpoint_dir`` as ``run-<digest>.pt`` (the latest) and
``run-<digest>.prev.pt`` (the one before), ``<digest>`` naming the run's config key
(`RunConfig.key`), so the runs of a sweep share a folder. A checkpoint is written every
``checkpoint_every`` updates, or every ``checkpoint_seconds`` seconds
(`DEFAULT_SECONDS` when neither is given), after an update: written whole to a temporary file
in the same folder, flushed to disk, then renamed over the latest after the latest has been
renamed to the previous one; a kill at any moment leaves the latest or the previous checkpoint
whole. When the run ends (done or diverged) its checkpoints are deleted: the record holds the
result. A run that fails keeps them, so running it again resumes.

What a checkpoint holds is plain data (tensors, numbers, strings, lists, dicts), read back with
``torch.load(..., weights_only=True)`` only: never an unpickled object. A header names the run
(its config key), the format and the lrlab version that wrote it. Loading:

- a checkpoint of another run (another key), or written by a newer lrlab or format, is
  refused: a one-line ``ValueError`` naming the file, before any training;
- a checkpoint that cannot be read (truncated, not a checkpoint, holding pickled objects) is
  skipped with a one-line warning, and the previous one is tried; with none left the run
  starts from scratch, saying so.

The state inside is the engine loop's (`lrlab.engine.loop`): model, optimizer, LR controller,
RNGs, data position, the partial record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from lrlab._version import __version__
from lrlab.errors import first_line
from lrlab.record import RunRecord

#: The layout of the state inside a checkpoint; a newer one is refused.
FORMAT = 1
#: Seconds between checkpoints when a run gives a folder but no interval.
DEFAULT_SECONDS = 60.0


def _version(text: str) -> tuple[int, ...]:
    """``"0.10.2"`` -> ``(0, 10, 2)``: the release numbers of a version (a suffix such as
    ``.dev1`` or ``rc1`` ignored).

    >>> _version("1.2.3rc1") > _version("1.2"), _version("0.9") < _version("0.10")
    (True, True)
    """
    release = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(part) for part in release.group(0).split(".")) if release else ()


def run_digest(key: str) -> str:
    """The file-name part that names a run: the first 20 hex digits of its key's SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:20]


class CheckpointWarning(UserWarning):
    """A checkpoint could not be used (it is corrupt); the run goes on from an older one or
    from scratch."""


@dataclass
class Checkpoints:
    """The checkpoints of the run whose config key is ``key``, in ``directory``."""

    directory: Path
    key: str
    every: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.every is None and self.seconds is None:
            self.seconds = DEFAULT_SECONDS
        name = f"run-{run_digest(self.key)}"
        self.latest = self.directory / f"{name}.pt"
        self.previous = self.directory / f"{name}.prev.pt"

    def due(self, updates: int, elapsed: float) -> bool:
        """Whether a checkpoint is due after ``updates`` updates, ``elapsed`` seconds after
        the last one (or the start)."""
        if self.every is not None and updates % self.every == 0:
            return True
        return self.seconds is not None and elapsed >= self.seconds

    def save(self, state: dict[str, Any], step: int) -> None:
        """Write ``state`` (plain data) with its header, atomically, keeping the one before."""
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "header": {"format": FORMAT, "lrlab": __version__, "key": self.key, "step": step},
            "state": state,
        }
        temporary = self.directory / f".{self.latest.name}.{os.getpid()}.tmp"
        try:
            with open(temporary, "wb") as file:
                torch.save(payload, file)
                file.flush()
                os.fsync(file.fileno())
            if self.latest.exists():
                os.replace(self.latest, self.previous)
            os.replace(temporary, self.latest)
        finally:
            temporary.unlink(missing_ok=True)
        _sync_directory(self.directory)

    def load(self) -> tuple[dict[str, Any], int] | None:
        """The state and step of the latest usable checkpoint, or ``None`` (start from
        scratch). Refuses another run's or a newer lrlab's checkpoint (``ValueError``);
        warns about a corrupt one (`CheckpointWarning`) and tries the previous."""
        candidates = [path for path in (self.latest, self.previous) if path.exists()]
        for index, path in enumerate(candidates):
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
                header, state = _parts(payload)
            except Exception as error:  # any unreadable file is corrupt: say so, go on
                fallback = (
                    f"resuming from the previous one, {candidates[index + 1]}"
                    if index + 1 < len(candidates)
                    else "starting the run from scratch"
                )
                warnings.warn(
                    f"checkpoint {path} is corrupt ({first_line(error)}); {fallback}",
                    CheckpointWarning,
                    stacklevel=2,
                )
                continue
            self._check(path, header)
            return state, int(header["step"])
        return None

    def _check(self, path: Path, header: dict[str, Any]) -> None:
        if header["key"] != self.key:
            raise ValueError(
                f"checkpoint {path} is another run's (its config key is {header['key']}); "
                "give this run another checkpoint_dir or delete the file"
            )
        if _version(str(header["lrlab"])) > _version(__version__) or header["format"] > FORMAT:
            raise ValueError(
                f"checkpoint {path} was written by lrlab {header['lrlab']} (format "
                f"{header['format']}), newer than this lrlab {__version__} (format {FORMAT}); "
                "upgrade lrlab or delete the file"
            )

    def clear(self) -> None:
        """Delete the run's checkpoints (its record now holds the result)."""
        for path in (self.latest, self.previous):
            path.unlink(missing_ok=True)


def record_state(record: RunRecord) -> dict[str, Any]:
    """A run's partial record as plain data, exactly: the traces as float64 tensors (one
    write however long), the rest as JSON with its non-finite numbers kept."""
    data: dict[str, Any] = {
        f.name: getattr(record, f.name)
        for f in fields(record)
        if f.name not in ("config", "epochs", "step_loss", "step_lr")
    }
    data.update(
        config=record.config.to_dict(),
        epochs=[asdict(epoch) for epoch in record.epochs],
        step_loss=[],
        step_lr=[],
    )
    return {
        "json": json.dumps(data),
        "step_loss": torch.tensor(record.step_loss, dtype=torch.float64),
        "step_lr": torch.tensor(record.step_lr, dtype=torch.float64),
    }


def restore_record(record: RunRecord, state: dict[str, Any]) -> None:
    """Put what `record_state` wrote back into ``record`` (its config kept)."""
    saved = RunRecord.from_dict(json.loads(state["json"]))
    saved.step_loss = state["step_loss"].tolist()
    saved.step_lr = state["step_lr"].tolist()
    for item in fields(RunRecord):
        if item.name != "config":
            setattr(record, item.name, getattr(saved, item.name))


def _parts(payload: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """A loaded file's header and state, or a ``ValueError`` saying what is missing."""
    if not isinstance(payload, dict) or not isinstance(payload.get("state"), dict):
        raise ValueError("not an lrlab checkpoint")
    header = payload.get("header")
    if not isinstance(header, dict) or not all(
        isinstance(header.get(name), kind)
        for name, kind in (("format", int), ("lrlab", str), ("key", str), ("step", int))
    ):
        raise ValueError("its header is missing or incomplete")
    return header, payload["state"]


def _sync_directory(directory: Path) -> None:
    """Flush the folder's entries (the renames) to disk, where the system allows it."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
