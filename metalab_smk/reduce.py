"""Stable entry point ``python -m metalab_smk.reduce`` named by the shipped rules.

Generated Snakefiles of every version run this path; the summary step lives in
``metalab_smk.results.summary`` (see docs/architecture.md)."""

import sys

from metalab_smk.results.summary import main

if __name__ == "__main__":
    code = main()
    from metalab_smk.results.index.upkeep import upkeep_after_reduce

    upkeep_after_reduce(sys.argv[1:])  # the PostgreSQL index, when one is configured
    sys.exit(code)
