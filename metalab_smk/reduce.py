"""Stable entry point ``python -m metalab_smk.reduce`` named by the shipped rules.

Generated Snakefiles of every version run this path; the end of a sweep lives in
``metalab_smk.results.ending`` (see docs/architecture.md)."""

import sys

from metalab_smk.results.ending import summary_rule

if __name__ == "__main__":
    sys.exit(summary_rule())
