"""``lrlab download NAME``: fetch a dataset's files, checked against their official MD5s."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DATASETS = ("mnist", "fashion-mnist", "cifar10")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "download",
        help="download mnist, fashion-mnist or cifar10 into the data directory",
        description="Download a dataset's official files, verify their MD5s, and (CIFAR-10) "
        "extract the archive safely. Nothing is left half-written if a transfer fails.",
    )
    parser.add_argument("name", choices=DATASETS)
    parser.add_argument(
        "--data-dir", metavar="DIR", help="default $LRLAB_DATA or ~/.cache/lrlab/data"
    )
    parser.add_argument("--base-url", metavar="URL", help="a mirror to fetch the files from")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lrlab.data import download, resolve_data_dir
    from lrlab.validate import check_output_path

    data_dir = check_output_path("", "data_dir", resolve_data_dir(args.data_dir), directory=True)
    with tqdm(unit="B", unit_scale=True, file=sys.stderr, desc=args.name) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total or None
            bar.n = done
            bar.refresh()

        target = download(args.name, data_dir, base_url=args.base_url, progress=progress)
    print(f"{args.name}: ready in {target}")
    return 0
