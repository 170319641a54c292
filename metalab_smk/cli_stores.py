"""``metalab export``, ``metalab import`` and ``metalab index`` (registered by cli.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metalab_smk.errors import MetalabError


def _cmd_export(args: argparse.Namespace) -> int:
    from metalab_smk.store.archive import export_store

    n_experiments, n_files = export_store(
        args.path, args.archive, artifacts=not args.no_artifacts, experiment=args.experiment
    )
    size = Path(args.archive).stat().st_size
    print(
        f"wrote {args.archive}: {n_experiments} experiments, {n_files} files, {size / 1e6:.1f} MB"
    )
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from metalab_smk.store.archive import import_archive, import_store_dir
    from metalab_smk.store.upstream import find_upstream
    from metalab_smk.store.upstream_import import import_upstream

    source = Path(args.source)
    if not source.exists():
        raise MetalabError(f"{source} does not exist; pass an archive, a store or upstream store")
    if source.is_file():
        report = import_archive(source, args.dest, max_member=args.max_member_size)
    elif find_upstream(source):
        report = import_upstream(source, args.dest)
    else:
        report = import_store_dir(source, args.dest)
    for line in report.refused:
        print(f"metalab import: {line}", file=sys.stderr)
    print(f"{args.dest}: {report.as_text()}")
    return 1 if report.conflicts or report.refused else 0


def _size(text: str) -> int:
    """``--max-member-size``: ``4G``, ``500M`` or MB, in bytes."""
    from metalab_smk.slurm.config import memory_mb

    try:
        return memory_mb(text) * 2**20
    except MetalabError:
        raise argparse.ArgumentTypeError(f"{text!r}: use e.g. 4G or 500M") from None


def _cmd_index(args: argparse.Namespace) -> int:
    from metalab_smk.results.index.upkeep import index_store

    for line in index_store(args.path, args.db, rebuild=args.rebuild).lines():
        print(line)
    return 0


def _one_line(command: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """File-system errors as one MetalabError line (the CLI prints it, exit 2)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except OSError as exc:
            from metalab_smk.store.locate import os_error_line

            raise MetalabError(os_error_line(exc)) from None

    return run


def add_store_commands(commands: Any) -> None:
    """Register the store commands on the ``metalab`` subparsers."""
    sub = commands.add_parser("export", help="write a store or experiment to one archive")
    sub.add_argument("path", help="experiment directory or store root")
    sub.add_argument("archive", help="archive to write (.tar.gz, or .tar.zst with zstandard)")
    sub.add_argument("--no-artifacts", action="store_true", help="leave artifact files out")
    sub.add_argument("--experiment", default=None, help="only this name:version")
    sub.set_defaults(func=_one_line(_cmd_export))

    sub = commands.add_parser(
        "import", help="merge an archive, a store or an upstream metalab store into a store"
    )
    sub.add_argument("source", help="archive, store directory or upstream metalab store")
    sub.add_argument("dest", help="store root to merge into")
    sub.add_argument(
        "--max-member-size",
        type=_size,
        default="4G",
        help="refuse archive members larger than this (default 4G)",
    )
    sub.set_defaults(func=_one_line(_cmd_import))

    sub = commands.add_parser("index", help="update the PostgreSQL index from the files")
    sub.add_argument("path", help="experiment directory or store root")
    url = os.environ.get("METALAB_INDEX_URL")
    sub.add_argument(
        "--db",
        required=url is None,
        default=url,
        help="postgresql://user@host:port/database (default: $METALAB_INDEX_URL)",
    )
    sub.add_argument("--rebuild", action="store_true", help="drop and rebuild from the files")
    sub.set_defaults(func=_one_line(_cmd_index))
