"""What a Snakemake job executes: ``python -m metalab_smk.job.worker run <run_id>`` or
``... batch <name>`` (the run indices listed in ``.metalab/batches/<name>.txt``).

Runs whose success record already exists are skipped, so a batch that is started again
never recomputes a finished run. Exit status 1 when any run failed.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from metalab_smk.compile.reader import CompiledExperiment
from metalab_smk.core.plan import Plan
from metalab_smk.errors import MetalabError
from metalab_smk.job.capture import RunCancelled, Runtime
from metalab_smk.job.execute import execute_run
from metalab_smk.store.jsonio import atomic_write_text
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import Status

USAGE = "usage: python -m metalab_smk.job.worker (run RUN_ID | batch NAME | task STAMP)"


class _Cancellation:
    """SIGTERM (cancel, SLURM time limit) stops the current run with a cancelled record."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        runtime = self.runtime
        if runtime is not None and runtime.in_operation:
            runtime.in_operation = False  # raise once; later signals must not interrupt
            runtime.cancel()  # writing the cancelled record
            raise RunCancelled(
                "terminated by SIGTERM (the run was cancelled or hit its time limit)"
            )

    def attach(self, runtime: Runtime) -> None:
        self.runtime = runtime


def _indices(compiled: CompiledExperiment, plan: Plan, command: str, key: str) -> list[int]:
    if command == "run":
        index = compiled.index_of(key)
        if plan.run(index).run_id != key:
            raise MetalabError(
                f"run {key} (index {index}) no longer matches the experiment snapshot: its "
                "context files or code changed since compiling; run `metalab compile` again."
            )
        return [index]
    return [int(line) for line in compiled.layout.batch_listing(key).read_text().split()]


def _task_batch(stamp: str) -> str:
    """The batch of this SLURM array task: ``<stamp>-<SLURM_ARRAY_TASK_ID, 6 digits>``."""
    task = os.environ.get("SLURM_ARRAY_TASK_ID", "")
    if not task.isdigit():
        raise MetalabError("`worker task` runs only inside a SLURM array task")
    return f"{stamp}-{int(task):06d}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("run", "batch", "task"):
        print(USAGE, file=sys.stderr)
        return 2
    command, key = args
    layout = ExperimentDir.at(os.getcwd())
    try:
        if command == "task":
            command, key = "batch", _task_batch(key)
        compiled = CompiledExperiment.read(layout)
        experiment = compiled.load_experiment()
        plan = Plan(experiment)
        indices = _indices(compiled, plan, command, key)
    except MetalabError as exc:
        print(f"metalab worker: {exc}", file=sys.stderr)
        return 2
    cancellation = _Cancellation()
    failures = 0
    for index in indices:
        if cancellation.requested:
            failures += 1
            break
        run = plan.run(index)
        if layout.record(run.run_id).is_file():
            continue
        record = execute_run(
            layout, plan, experiment, run, compiled.description, cancellation.attach
        )
        cancellation.runtime = None
        if record.status is not Status.SUCCESS:
            failures += 1
            print(
                f"metalab: run {run.run_id} {record.status}: {record.error['type']}: "
                f"{record.error['message']} (log: {layout.log(run.run_id)})",
                file=sys.stderr,
            )
    if command == "batch":
        if not failures:
            atomic_write_text(layout.batch_done(key), f"{len(indices)}\n")
        atomic_write_text(layout.batch_end(key), f"{failures}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
