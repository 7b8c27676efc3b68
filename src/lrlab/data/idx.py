"""MNIST and Fashion-MNIST from their IDX files, refusing bad files with a one-line reason.

The IDX format (LeCun's MNIST page): two zero bytes, a type-code byte, a byte with the number
of dimensions, one big-endian uint32 size per dimension, then the data in row-major order.
MNIST and Fashion-MNIST use only type 0x08 (unsigned byte), so that is the only type read.

Every size is checked against the header before any data is trusted: a truncated download
or a file with bytes appended must fail loudly here, not train a model on shifted pixels.
Files may be gzip-compressed (as published) or raw; compression is recognised by the gzip
magic bytes, never by the file name, because renamed files are common.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import shlex
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from lrlab.errors import DataError, DataNotFoundError, describe

__all__ = [
    "IDX_COUNTS",
    "IDX_FILES",
    "IDX_MD5",
    "IdxName",
    "ImageDataset",
    "file_md5",
    "load_idx_dataset",
    "read_idx",
]

IdxName = Literal["mnist", "fashion-mnist"]

#: The four files of an IDX dataset, without the ``.gz`` suffix.
IDX_FILES: Final = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: MD5 of the published ``.gz`` files, as torchvision's ``torchvision/datasets/mnist.py``
#: (``MNIST.resources``, ``FashionMNIST.resources``) lists them. Publishers give MD5 only; it
#: guards against corrupt or substituted downloads, not against a deliberate collision.
IDX_MD5: Final[Mapping[str, Mapping[str, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

#: Example counts of the official splits (both datasets), keyed by file prefix.
IDX_COUNTS: Final[Mapping[str, int]] = {"train": 60000, "t10k": 10000}


class _Reader(Protocol):
    """What the parser needs of a file or a gzip stream."""

    def read(self, size: int = -1, /) -> bytes: ...


_GZIP_MAGIC: Final = b"\x1f\x8b"
_UBYTE: Final = 0x08
_TYPE_NAMES: Final[Mapping[int, str]] = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
_MAX_DATA_BYTES: Final = 1 << 32  # 90x full MNIST; larger headers are corrupt, not data.
_CHUNK: Final = 1 << 20
_CLASSES: Final = 10
_SIDE: Final = 28


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A train/test image classification split as plain numpy arrays (no torch).

    Images stay ``uint8`` as stored, so normalisation is the task's decision, not the
    loader's: ``(N, 28, 28)`` for the IDX datasets, ``(N, 3, 32, 32)`` (channels first) for
    CIFAR-10. Labels are ``int64`` class indices in ``0 .. classes - 1``. ``eq=False``
    because element-wise array comparison has no single truth value.
    """

    train_images: npt.NDArray[np.uint8]
    train_labels: npt.NDArray[np.int64]
    test_images: npt.NDArray[np.uint8]
    test_labels: npt.NDArray[np.int64]
    classes: int


def file_md5(path: Path) -> str:
    """Hex MD5 of a file, read in chunks so that large archives need no memory."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_idx(path: Path) -> npt.NDArray[np.uint8]:
    """Read one IDX file (gzip or raw) of unsigned bytes into an array of its header's shape.

    Raises ``DataNotFoundError`` if the file does not exist and ``DataError`` (one line,
    naming the file) if the gzip stream is corrupt, the magic is not ``00 00``, the type code
    is not 0x08, the number of dimensions is not 1 to 4, or the data is shorter or longer
    than the dimensions say (the sizes compared are of the decompressed data).
    """
    path = Path(path)
    compressed = False
    try:
        with path.open("rb") as raw:
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if compressed:
                with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                    return _parse(unzipped, path, compressed)
            return _parse(raw, path, compressed)
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as exc:
        what = "corrupt gzip data" if compressed else "cannot read the file"
        raise DataError(f"{path}: {what} ({describe(exc)})") from exc


def _parse(stream: _Reader, path: Path, compressed: bool) -> npt.NDArray[np.uint8]:
    """Header, then exactly ``prod(dims)`` bytes of data, then nothing."""
    dims = _read_header(stream, path, compressed)
    header_size = 4 + 4 * len(dims)
    expected = math.prod(dims)
    if expected > _MAX_DATA_BYTES:
        raise DataError(f"{path}: IDX dims {dims} claim {expected} bytes of data; refusing")
    payload, actual = _read_payload(stream, expected)
    if actual != expected:
        problem = "truncated" if actual < expected else f"{actual - expected} trailing bytes"
        kind = "decompressed size" if compressed else "size"
        raise DataError(
            f"{path}: {kind} is {header_size + actual} bytes but dims {dims} need exactly "
            f"{header_size + expected} ({problem})"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def _read_header(stream: _Reader, path: Path, compressed: bool) -> tuple[int, ...]:
    """Validate magic, type code and ndim; return the dimensions."""
    head = stream.read(4)
    if len(head) < 4:
        kind = "decompressed data is" if compressed else "file is"
        raise DataError(f"{path}: {kind} {len(head)} bytes, too short for the 4-byte IDX header")
    if head[:2] != b"\x00\x00":
        magic = head[:2].hex(" ")
        raise DataError(f"{path}: not an IDX file (magic bytes {magic}, expected 00 00)")
    code, ndim = head[2], head[3]
    if code != _UBYTE:
        name = _TYPE_NAMES.get(code)
        kind = f"type code 0x{code:02x} ({name})" if name else f"unknown type code 0x{code:02x}"
        raise DataError(f"{path}: IDX {kind} is not supported; only 0x08 (unsigned byte) is")
    if not 1 <= ndim <= 4:
        raise DataError(f"{path}: IDX header says {ndim} dimensions; expected 1 to 4")
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(
            f"{path}: truncated IDX header: {ndim} dimensions need {4 * ndim} bytes of sizes, "
            f"found {len(sizes)}"
        )
    return struct.unpack(f">{ndim}I", sizes)


def _read_payload(stream: _Reader, expected: int) -> tuple[bytearray, int]:
    """Read up to ``expected`` bytes; return them and the true total length of the rest.

    Reading in chunks (and only counting what follows) keeps memory bounded by the size the
    header claims, even for a gzip stream that decompresses to far more.
    """
    payload = bytearray()
    while len(payload) < expected and (chunk := stream.read(min(_CHUNK, expected - len(payload)))):
        payload += chunk
    actual = len(payload)
    if actual == expected:
        while chunk := stream.read(_CHUNK):
            actual += len(chunk)
    return payload, actual


def load_idx_dataset(
    name: IdxName,
    data_dir: Path,
    *,
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> ImageDataset:
    """Load MNIST or Fashion-MNIST from the four IDX files in ``data_dir / name`` or ``data_dir``.

    The first of the two directories that holds all four files is used (never a mix, since
    both datasets use the same file names); in each, ``<file>.gz`` is preferred to ``<file>``.
    Always checked: each file's structure (see ``read_idx``), images ``(N, 28, 28)`` with
    ``N > 0``, labels 1-D, as many labels as images, labels in ``0..9``.

    With ``verify=True`` (the default) also: the MD5 of every file whose name is in
    ``checksums`` (default: the official digests of the published ``.gz`` files) and the
    official counts, 60000 training and 10000 test examples. Raw (decompressed) files cannot
    be checked against the digests of the ``.gz`` files, so for them only the structure and
    counts are checked. ``verify=False`` runs the structural checks only, for subsets and
    generated files.

    Raises ``DataNotFoundError`` naming both directories and the ``lrlab download`` command,
    ``DataError`` naming the file for anything corrupt or mismatched, and ``ValueError`` for an
    unknown ``name``.
    """
    if name not in IDX_MD5:
        raise ValueError(f"unknown IDX dataset {name!r}; known: {', '.join(sorted(IDX_MD5))}")
    data_dir = Path(data_dir)
    files = _find_idx_files(name, data_dir)
    if verify:
        table = IDX_MD5[name] if checksums is None else checksums
        for path in files.values():
            _check_md5(path, table)
    train_images, train_labels = _load_split(files, "train", verify)
    test_images, test_labels = _load_split(files, "t10k", verify)
    return ImageDataset(train_images, train_labels, test_images, test_labels, classes=_CLASSES)


def _find_idx_files(name: str, data_dir: Path) -> dict[str, Path]:
    """Map each of the four file stems to its path, all from one directory."""
    dirs = (data_dir / name, data_dir)
    found = [_present(directory) for directory in dirs]
    for files in found:
        if len(files) == len(IDX_FILES):
            return files
    hint = (
        "copy the IDX files there or run "
        f"`lrlab download {name} --data-dir {shlex.quote(str(data_dir))}`"
    )
    best = max(range(len(dirs)), key=lambda i: len(found[i]))  # first wins a tie
    missing = [f"{stem}[.gz]" for stem in IDX_FILES if stem not in found[best]]
    if not found[best]:
        raise DataNotFoundError(f"{name}: no {missing[0]} in {dirs[0]} or {dirs[1]}; {hint}")
    raise DataNotFoundError(
        f"{name}: {dirs[best]} lacks {', '.join(missing)} (looked in {dirs[0]} and {dirs[1]}; "
        f"all four files must be in one of them); {hint}"
    )


def _present(directory: Path) -> dict[str, Path]:
    """The IDX files present in ``directory``, preferring the checksummable ``.gz``."""
    files: dict[str, Path] = {}
    for stem in IDX_FILES:
        for candidate in (directory / f"{stem}.gz", directory / stem):
            if candidate.is_file():
                files[stem] = candidate
                break
    return files


def _check_md5(path: Path, table: Mapping[str, str]) -> None:
    expected = table.get(path.name)
    if expected is None:
        return
    actual = file_md5(path)
    if actual != expected.lower():
        raise DataError(
            f"{path}: md5 {actual} does not match the official {expected}; the file is corrupt "
            "or not the published one (delete it and download it again)"
        )


def _load_split(
    files: Mapping[str, Path], split: str, verify: bool
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    images_path = files[f"{split}-images-idx3-ubyte"]
    labels_path = files[f"{split}-labels-idx1-ubyte"]
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    _check_images(images, images_path)
    _check_labels(labels, labels_path)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    expected = IDX_COUNTS[split]
    if verify and len(images) != expected:
        raise DataError(
            f"{images_path}: {len(images)} images where the official file has {expected} "
            "(load with verify=False for a subset)"
        )
    return images, labels.astype(np.int64)


def _check_images(images: npt.NDArray[np.uint8], path: Path) -> None:
    if images.ndim != 3 or images.shape[1:] != (_SIDE, _SIDE):
        raise DataError(f"{path}: images of shape {images.shape}, expected (N, 28, 28)")
    if len(images) == 0:
        raise DataError(f"{path}: holds no images")


def _check_labels(labels: npt.NDArray[np.uint8], path: Path) -> None:
    if labels.ndim != 1:
        raise DataError(f"{path}: labels of shape {labels.shape}, expected 1-D (N,)")
    check_label_range(labels, path, _CLASSES)


def check_label_range(labels: npt.NDArray[np.uint8], path: Path, classes: int) -> None:
    """Raise ``DataError`` naming the first label outside ``0 .. classes - 1``."""
    bad = np.flatnonzero(labels >= classes)
    if bad.size:
        index = int(bad[0])
        raise DataError(
            f"{path}: label {int(labels[index])} at index {index} is outside 0..{classes - 1}"
        )
