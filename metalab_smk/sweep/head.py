"""The head process of a submitted sweep: ``python -m metalab_smk.sweep.head DIR``.

``metalab submit`` (sweep/detached.py) starts it in the background or as a SLURM job; it
drives Snakemake for the compiled experiment until the sweep ends (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.executors import executor_from_dict
from metalab_smk.sweep.runner import start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metalab_smk.sweep.head")
    parser.add_argument("directory")
    args = parser.parse_args(argv)

    layout = ExperimentDir.at(args.directory)
    executor = executor_from_dict(read_json(layout.executor_file))
    # Snakemake ends with this process: a scancel or time limit of the head job ends the
    # sweep instead of leaving an orphan that the next head would collide with.
    handle = start(layout, executor, progress=True, verbose=True, tie_to_parent=True)
    handle.wait()
    status = handle.status
    print(status.as_text(), flush=True)
    return 0 if status.is_complete else 1


if __name__ == "__main__":
    sys.exit(main())
