"""CIFAR-10 from its *binary* distribution, never from the pickled "python version".

The binary version (``cifar-10-binary.tar.gz``, extracted to ``cifar-10-batches-bin/``) is a
sequence of fixed-size records: 1 label byte, then 3072 pixel bytes, the 32x32 red plane,
then green, then blue, each row-major. Fixed records make every size checkable before a
byte is trusted. The python version is a set of pickles, and unpickling a file can run
arbitrary code, so it is refused with a message pointing at the binary version instead.

Checksums: the dataset's authors publish only the MD5 of the tarball (verified by
``lrlab.data.remote`` when it fetches it), not of the six ``.bin`` files inside, so the
loader checks the structure and, with ``verify=True``, the exact official sizes.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from lrlab.data.idx import ImageDataset, check_label_range
from lrlab.errors import DataError, DataNotFoundError, describe

__all__ = [
    "CIFAR10_DIR",
    "CIFAR10_FILES",
    "CIFAR10_RECORDS_PER_FILE",
    "CIFAR_RECORD_BYTES",
    "load_cifar10",
    "read_cifar_batch",
]

#: Bytes per record: one label byte and a 3x32x32 image.
CIFAR_RECORD_BYTES: Final = 1 + 3 * 32 * 32
#: The directory the binary tarball extracts to.
CIFAR10_DIR: Final = "cifar-10-batches-bin"
#: Training batches, then the test batch.
CIFAR10_FILES: Final = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")
#: Records in each official file (so each is 30,730,000 bytes).
CIFAR10_RECORDS_PER_FILE: Final = 10000

_PYTHON_DIR: Final = "cifar-10-batches-py"
_CLASSES: Final = 10
_PICKLE_PROTOCOLS: Final = range(2, 6)


def read_cifar_batch(path: Path) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Read one CIFAR-10 binary batch: images ``uint8 (N, 3, 32, 32)``, labels ``int64 (N,)``.

    Raises ``DataNotFoundError`` if the file is missing and ``DataError`` (one line, naming
    the file) if its size is not a positive multiple of the 3073-byte record, a label is not
    in ``0..9``, or it is a pickle from the python version (which is never unpickled).
    """
    path = Path(path)
    if path.is_dir():
        if _is_python_version(path):
            raise DataError(_python_version_message(path, path.parent))
        raise DataError(f"{path}: is a directory, expected a CIFAR-10 binary batch file")
    records = _read_records(path)
    labels = records[:, 0]
    check_label_range(labels, path, _CLASSES)
    images = np.ascontiguousarray(records[:, 1:]).reshape(-1, 3, 32, 32)
    return images, labels.astype(np.int64)


def _read_records(path: Path) -> npt.NDArray[np.uint8]:
    """The file as an ``(N, 3073)`` byte matrix; the pickle and size checks come first."""
    try:
        with path.open("rb") as stream:
            head = stream.read(2)
            if len(head) == 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS:
                raise DataError(_python_version_message(path, path.parent))
            _check_record_multiple(path, os.fstat(stream.fileno()).st_size)
            stream.seek(0)
            data = np.frombuffer(stream.read(), dtype=np.uint8)
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({describe(exc)})") from exc
    _check_record_multiple(path, data.size)  # the file may have changed since the stat
    return data.reshape(-1, CIFAR_RECORD_BYTES)


def _check_record_multiple(path: Path, size: int) -> None:
    if size == 0 or size % CIFAR_RECORD_BYTES:
        raise DataError(
            f"{path}: size {size} bytes is not a positive multiple of the "
            f"{CIFAR_RECORD_BYTES}-byte CIFAR-10 record (1 label byte + 3072 pixel bytes)"
        )


def load_cifar10(data_dir: Path, *, verify: bool = True) -> ImageDataset:
    """Load CIFAR-10 from ``data_dir / "cifar-10-batches-bin"``, or ``data_dir`` itself.

    Needs ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin`` in one of the
    two directories (the first that has all six wins). Every file gets ``read_cifar_batch``'s
    checks; ``verify=True`` (the default) also requires each to hold exactly 10000 records
    (30,730,000 bytes), checked before anything is read. The files' contents are not
    checksummed: only the tarball's MD5 is published, and it is verified at download.

    Raises ``DataNotFoundError`` saying where it looked and how to get the data (also when
    only the pickled python version is there), ``DataError`` for a bad file.
    """
    data_dir = Path(data_dir)
    directory = _find_cifar_dir(data_dir)
    paths = [directory / name for name in CIFAR10_FILES]
    if verify:
        for path in paths:
            _check_official_size(path)
    batches = [read_cifar_batch(path) for path in paths]
    train, (test_images, test_labels) = batches[:-1], batches[-1]
    return ImageDataset(
        train_images=np.concatenate([images for images, _ in train]),
        train_labels=np.concatenate([labels for _, labels in train]),
        test_images=test_images,
        test_labels=test_labels,
        classes=_CLASSES,
    )


def _check_official_size(path: Path) -> None:
    expected = CIFAR10_RECORDS_PER_FILE * CIFAR_RECORD_BYTES
    size = path.stat().st_size
    if size != expected:
        raise DataError(
            f"{path}: {size} bytes where the official file has {expected} "
            f"({CIFAR10_RECORDS_PER_FILE} records; load with verify=False for a subset)"
        )


def _find_cifar_dir(data_dir: Path) -> Path:
    """The first of ``data_dir / cifar-10-batches-bin`` and ``data_dir`` with all six files."""
    candidates = (data_dir / CIFAR10_DIR, data_dir)
    present = [[name for name in CIFAR10_FILES if (d / name).is_file()] for d in candidates]
    for directory, names in zip(candidates, present, strict=True):
        if len(names) == len(CIFAR10_FILES):
            return directory
    for directory in (data_dir / _PYTHON_DIR, data_dir):
        if _is_python_version(directory):
            raise DataNotFoundError(_python_version_message(directory, data_dir))
    hint = (
        "extract cifar-10-binary.tar.gz there or run "
        f"`lrlab download cifar10 --data-dir {shlex.quote(str(data_dir))}`"
    )
    best = max(range(len(candidates)), key=lambda i: len(present[i]))  # first wins a tie
    missing = [name for name in CIFAR10_FILES if name not in present[best]]
    if not present[best]:
        raise DataNotFoundError(
            f"cifar10: no {missing[0]} in {candidates[0]} or {candidates[1]}; {hint}"
        )
    raise DataNotFoundError(
        f"cifar10: {candidates[best]} lacks {', '.join(missing)} (looked in {candidates[0]} "
        f"and {candidates[1]}; all six files must be in one of them); {hint}"
    )


def _is_python_version(directory: Path) -> bool:
    """Whether ``directory`` holds the pickled python version of CIFAR-10."""
    return directory.is_dir() and (
        directory.name == _PYTHON_DIR
        or (directory / "data_batch_1").is_file()
        or (directory / "batches.meta").is_file()
    )


def _python_version_message(found: Path, data_dir: Path) -> str:
    return (
        f"{found}: this is the CIFAR-10 python version (pickles); lrlab reads only the binary "
        "version (cifar-10-binary.tar.gz -> cifar-10-batches-bin) because unpickling a file "
        "can run arbitrary code; run "
        f"`lrlab download cifar10 --data-dir {shlex.quote(str(data_dir))}`"
    )
