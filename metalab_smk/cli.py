"""The ``metalab`` command line (argument parsing only; work happens in the library)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from metalab_smk import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metalab", description="Define a sweep once; run it with Snakemake."
    )
    parser.add_argument("--version", action="version", version=f"metalab-smk {__version__}")
    parser.add_subparsers(dest="command", metavar="command")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
