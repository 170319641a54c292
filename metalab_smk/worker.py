"""Stable entry point ``python -m metalab_smk.worker`` named by the shipped rules.

Generated Snakefiles of every version run this path; the worker lives in
``metalab_smk.job.worker`` (see docs/architecture.md)."""

import sys

from metalab_smk.job.worker import main

if __name__ == "__main__":
    sys.exit(main())
