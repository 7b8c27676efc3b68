"""Fetch the datasets' published files, verified before they take their final name.

Each file is streamed to a temporary file in its final directory, its MD5 compared with the
published digest, and only then renamed into place (``os.replace``, atomic on one file
system), so an interrupted or corrupt download never leaves a plausible-looking file behind.
Files already present with the right digest are not fetched again. Archives are extracted
only after every member has been checked to land inside the target directory.

Only ``urllib`` is used, so downloading needs no extra dependency. MD5 is what the
publishers give; it catches corruption and wrong files, not a deliberate collision.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Final

from lrlab._version import __version__
from lrlab.data.cifar import CIFAR10_DIR, CIFAR10_FILES
from lrlab.data.idx import IDX_FILES, IDX_MD5, file_md5
from lrlab.errors import DataError, describe, first_line

__all__ = [
    "CIFAR10_TARBALL",
    "CIFAR10_TARBALL_MD5",
    "KNOWN",
    "Progress",
    "RemoteFile",
    "download",
    "fetch",
    "safe_extract",
]

#: ``progress(bytes_done, bytes_total)``, called as a file streams in; the total is 0 when
#: the server does not say (no ``Content-Length``).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RemoteFile:
    """A published file: its name on disk, its MD5, and the URLs to try, in order."""

    name: str
    md5: str
    urls: tuple[str, ...]


#: The binary distribution's tarball and its MD5, as listed on the dataset's page
#: (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR10_TARBALL: Final = "cifar-10-binary.tar.gz"
CIFAR10_TARBALL_MD5: Final = "c32a1d4ab5d03f1284b67883e8d87530"

# Mirrors, most reliable first; the MD5 check makes a plain-http mirror safe to use.
_MNIST_MIRRORS: Final = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS: Final = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
_CIFAR10_MIRRORS: Final = ("https://www.cs.toronto.edu/~kriz/",)


def _idx_remote(name: str, mirrors: Sequence[str]) -> list[RemoteFile]:
    files = [f"{stem}.gz" for stem in IDX_FILES]
    return [RemoteFile(f, IDX_MD5[name][f], tuple(m + f for m in mirrors)) for f in files]


#: What ``download`` fetches, by dataset name.
KNOWN: dict[str, list[RemoteFile]] = {
    "mnist": _idx_remote("mnist", _MNIST_MIRRORS),
    "fashion-mnist": _idx_remote("fashion-mnist", _FASHION_MIRRORS),
    "cifar10": [
        RemoteFile(
            CIFAR10_TARBALL,
            CIFAR10_TARBALL_MD5,
            tuple(m + CIFAR10_TARBALL for m in _CIFAR10_MIRRORS),
        )
    ],
}

_SCHEMES: Final = ("http", "https", "file")
_TIMEOUT_S: Final = 60.0
_CHUNK: Final = 1 << 20


def download(
    name: str,
    data_dir: Path,
    *,
    base_url: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download dataset ``name`` under ``data_dir``; return the directory its loader reads.

    MNIST and Fashion-MNIST go to ``data_dir / name`` (the four ``.gz`` files, which the
    loader reads directly). CIFAR-10's tarball goes to ``data_dir`` and is extracted there,
    giving ``data_dir / "cifar-10-batches-bin"``; if that already holds the six batch files
    nothing is fetched. ``base_url`` replaces the host and path of every URL (a local
    mirror, ``file://`` included; the tests' local server); the file name is appended.

    Raises ``ValueError`` for an unknown name or a base URL that is not http(s) or file, and
    ``DataError`` (one line, with the URLs tried and why each failed) if a file cannot be
    fetched or does not match its MD5; then nothing is left under the file's final name.
    """
    files = KNOWN.get(name)
    if files is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(KNOWN))}")
    if base_url is not None:
        _check_base_url(base_url)
    data_dir = Path(data_dir)
    if name == "cifar10":
        return _download_cifar10(files, data_dir, base_url, progress)
    target = data_dir / name
    for remote in files:
        fetch(remote, target, base_url=base_url, progress=progress)
    return target


def _download_cifar10(
    files: Sequence[RemoteFile], data_dir: Path, base_url: str | None, progress: Progress | None
) -> Path:
    batches = data_dir / CIFAR10_DIR
    if all((batches / name).is_file() for name in CIFAR10_FILES):
        return batches
    for remote in files:
        archive = fetch(remote, data_dir, base_url=base_url, progress=progress)
        safe_extract(archive, data_dir)
    missing = [name for name in CIFAR10_FILES if not (batches / name).is_file()]
    if missing:
        raise DataError(f"{data_dir}: the archive did not provide {CIFAR10_DIR}/{missing[0]}")
    return batches


def fetch(
    remote: RemoteFile,
    directory: Path,
    *,
    base_url: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Make ``directory / remote.name`` hold the published file; return its path.

    Skips the download if the file is already there with the right MD5; otherwise tries
    each URL (or only ``base_url`` + name) until one delivers the right bytes. Raises
    ``DataError`` listing every URL tried and why it failed.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / remote.name
    if final.is_file() and file_md5(final) == remote.md5:
        return final
    urls = (_join(base_url, remote.name),) if base_url is not None else remote.urls
    failures = []
    for url in urls:
        try:
            _fetch_verified(url, final, remote.md5, progress)
        except _FetchFailed as failure:
            failures.append(str(failure))
        else:
            return final
    raise DataError(f"could not download {final}: {'; '.join(failures)}")


class _FetchFailed(Exception):
    """One URL failed; ``fetch`` tries the next and reports them all."""


def _fetch_verified(url: str, final: Path, md5: str, progress: Progress | None) -> None:
    """Stream ``url`` to a temporary file beside ``final``; rename it only if the MD5 matches."""
    fd, temp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _stream(url, out, progress)
        if actual != md5:
            raise _FetchFailed(f"{url}: md5 {actual} does not match the expected {md5}")
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)  # gone already after a successful os.replace


def _stream(url: str, out: BinaryIO, progress: Progress | None) -> str:
    """Copy ``url`` into ``out`` in chunks; return the MD5 of what was received."""
    request = urllib.request.Request(url, headers={"User-Agent": f"lrlab/{__version__}"})
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            if progress is not None:
                progress(done, total)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise _FetchFailed(f"{url}: HTTP {exc.code} {first_line(exc.reason)}") from exc
    except urllib.error.URLError as exc:
        raise _FetchFailed(f"{url}: {first_line(exc.reason)}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _FetchFailed(f"{url}: {describe(exc)}") from exc
    return digest.hexdigest()


def _check_base_url(base_url: str) -> None:
    if urllib.parse.urlsplit(base_url).scheme not in _SCHEMES:
        raise ValueError(
            f"base URL {base_url!r}: only {', '.join(s + '://' for s in _SCHEMES)} are supported"
        )


def _join(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(name)}"


def safe_extract(archive: Path, target: Path) -> list[Path]:
    """Extract a ``.tar`` / ``.tar.gz`` into ``target``; return the regular files written.

    Every member is checked before anything is written: absolute names, ``..`` components,
    names that resolve outside ``target`` (through a symlink already inside it, say), links
    of either kind, and device files or FIFOs are refused with a ``DataError`` naming the
    archive and the member. Python's own ``filter="data"`` is applied as a second guard
    where available; the explicit check comes first so that the error is lrlab's, in one
    line, and nothing is half-extracted.
    """
    archive, target = Path(archive), Path(target)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, archive, target)
            target.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4 lacks extraction filters
                tar.extractall(target, members=members)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive}: cannot extract ({describe(exc)})") from exc
    return [target / member.name for member in members if member.isfile()]


def _check_member(member: tarfile.TarInfo, archive: Path, target: Path) -> None:
    name = member.name
    if _escapes(name, target):
        raise DataError(f"{archive}: member {name!r} would be extracted outside {target}")
    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        raise DataError(
            f"{archive}: member {name!r} is a {kind} link (to {member.linkname!r}); "
            "archives with links are refused"
        )
    if not (member.isfile() or member.isdir()):
        raise DataError(
            f"{archive}: member {name!r} is a device file or FIFO; "
            "only regular files and directories are extracted"
        )


def _escapes(name: str, target: Path) -> bool:
    """Whether extracting ``name`` under ``target`` could write outside ``target``."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith("\\"):
        return True
    root = os.path.realpath(target)
    destination = os.path.realpath(os.path.join(root, name))
    return os.path.commonpath([root, destination]) != root
