"""The ``metalab`` command line (argument parsing only; work happens in the library)."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence

from metalab_smk import __version__
from metalab_smk.errors import MetalabError, SweepInterrupted


def _load(path: str, experiment: str | None):
    from metalab_smk.compile.loader import load_experiment_file

    return load_experiment_file(path).select(experiment, path)


def _cmd_compile(args: argparse.Namespace) -> int:
    from metalab_smk.compile.compiler import compile_experiment, snakemake_command

    experiment = _load(args.file, args.experiment)
    layout = compile_experiment(experiment, args.store)
    n_runs = len(layout.read_run_ids())
    print(f"compiled {experiment.experiment_id!r}: {n_runs} runs in {layout.root}")
    print("run it with:")
    print(f"  {snakemake_command(layout)}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from metalab_smk.sweep.runner import LocalExecutor, run

    experiment = _load(args.file, args.experiment)
    handle = run(
        experiment,
        store=args.store,
        resume=not args.no_resume,
        executor=LocalExecutor(cores=args.cores, chunk_size=args.chunk_size),
    )
    try:
        handle.wait()
    except SweepInterrupted:
        return 130
    if handle.error:
        status = handle.status
        if status.failed_runs:
            print(status.as_text())
        print(f"metalab run: error: {handle.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    import os

    from metalab_smk.compile.compiler import compile_experiment
    from metalab_smk.sweep.detached import submit
    from metalab_smk.sweep.executors import LocalExecutor, ProfileExecutor
    from metalab_smk.sweep.locks import RunnerLock

    experiment = _load(args.file, args.experiment)
    executor = (
        ProfileExecutor(args.profile, chunk_size=args.chunk_size)
        if args.profile
        else LocalExecutor(cores=args.cores, chunk_size=args.chunk_size)
    )
    locks: list[RunnerLock] = []  # nothing is written while another sweep runs here
    try:
        layout = compile_experiment(
            experiment, args.store, before_writing=lambda at: locks.append(RunnerLock(at))
        )
    finally:
        for lock in locks:
            lock.release()
    head = submit(layout, executor, head_time=args.head_time, local=args.local)
    where = (
        f"as SLURM job {head['job_id']}"
        if head["kind"] == "slurm"
        else f"in the background (pid {head['pid']})"
    )
    print(
        f"submitted {experiment.experiment_id!r} ({len(layout.read_run_ids())} runs): the "
        f"Snakemake head runs {where}; its log: {head['log']}"
    )
    print(f"follow it with:  metalab status {os.path.relpath(layout.root)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from metalab_smk.compile.reader import CompiledExperiment
    from metalab_smk.store.jsonio import read_json
    from metalab_smk.store.layout import ExperimentDir
    from metalab_smk.sweep.detached import dead_head_error, head_alive, head_state
    from metalab_smk.sweep.status import sweep_status

    layout = ExperimentDir.at(args.directory)
    CompiledExperiment.read(layout)
    print(sweep_status(layout).as_text())
    if layout.head_file.is_file():
        head = read_json(layout.head_file)
        reported = head_state(layout)
        if reported.get("state") in ("finished", "stopped"):
            state = reported["state"]
        elif reported.get("state") == "failed":
            state = f"failed: {reported.get('error')}"
        elif head_alive(layout):
            state = "running"
        else:
            state = f"died: {dead_head_error(layout, head)}"
        print(f"submitted head process: {state} (log: {head['log']})")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from metalab_smk.compile.reader import CompiledExperiment
    from metalab_smk.store.layout import ExperimentDir
    from metalab_smk.sweep.status import sweep_status
    from metalab_smk.sweep.stop import stop_sweep

    layout = ExperimentDir.at(args.directory)
    CompiledExperiment.read(layout)
    stopped = stop_sweep(layout)
    status = sweep_status(layout, with_errors=False)
    what = f"stopped {'; '.join(stopped)}" if stopped else "nothing was running"
    print(
        f"metalab stop: {what}; {status.done} of {status.total} runs are done and kept. "
        f"Resume with `metalab run` or `metalab submit` (or `snakemake` in {args.directory})."
    )
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from metalab_smk.results.summary import main as reduce_main

    return reduce_main([args.directory])


def _cmd_results(args: argparse.Namespace) -> int:
    from metalab_smk.results.results import load_results

    results = load_results(args.directory, experiment_id=args.experiment)
    frame = results.to_dataframe()
    if args.csv:
        frame.to_csv(args.csv, index=False)
        print(f"wrote {len(frame)} rows to {args.csv}")
    elif args.parquet:
        frame.to_parquet(args.parquet, index=False)
        print(f"wrote {len(frame)} rows to {args.parquet}")
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", args.max_rows, "display.width", 200):
            print(frame)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metalab", description="Define a sweep once; run it with Snakemake."
    )
    parser.add_argument("--version", action="version", version=f"metalab-smk {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command")

    def experiment_file(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("file", help="the experiment's Python file")
        sub.add_argument("--store", default=None, help="collection root (default ./runs)")
        sub.add_argument(
            "--experiment", default=None, help="name or name:version when the file defines several"
        )

    sub = commands.add_parser("compile", help="write the experiment directory and Snakefile")
    experiment_file(sub)
    sub.set_defaults(func=_cmd_compile)

    sub = commands.add_parser("run", help="compile and run the missing runs locally")
    experiment_file(sub)
    sub.add_argument("--cores", type=int, default=None, help="parallel jobs (default: all)")
    sub.add_argument("--chunk-size", type=int, default=None, help="runs per Snakemake job")
    sub.add_argument("--no-resume", action="store_true", help="re-run every run")
    sub.set_defaults(func=_cmd_run)

    sub = commands.add_parser("submit", help="compile and start a detached sweep; exit")
    experiment_file(sub)
    sub.add_argument(
        "--profile",
        default=None,
        help="Snakemake profile directory (e.g. a copy of profiles/slurm)",
    )
    sub.add_argument("--chunk-size", type=int, default=None, help="runs per job")
    sub.add_argument("--cores", type=int, default=None, help="local parallel jobs")
    sub.add_argument(
        "--local",
        action="store_true",
        help="run the head in the background here, not as a SLURM job",
    )
    sub.add_argument(
        "--head-time", default="1-00:00:00", help="SLURM time limit of the head job (default 1 day)"
    )
    sub.set_defaults(func=_cmd_submit)

    sub = commands.add_parser("status", help="done / failed / missing runs, with errors")
    sub.add_argument("directory", help="experiment directory")
    sub.set_defaults(func=_cmd_status)

    sub = commands.add_parser("stop", help="stop a running sweep and its jobs (resumable)")
    sub.add_argument("directory", help="experiment directory")
    sub.set_defaults(func=_cmd_stop)

    sub = commands.add_parser("collect", help="write summary/*.parquet from the records")
    sub.add_argument("directory", help="experiment directory")
    sub.set_defaults(func=_cmd_collect)

    for name in ("results", "show"):
        sub = commands.add_parser(name, help="print or export the results table")
        sub.add_argument("directory", help="experiment directory or collection root")
        sub.add_argument("--experiment", default=None, help="name:version under a root")
        sub.add_argument("--csv", default=None, help="write the table to this CSV file")
        sub.add_argument("--parquet", default=None, help="write the table to this file")
        sub.add_argument("--max-rows", type=int, default=60)
        sub.set_defaults(func=_cmd_results)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except SweepInterrupted:
        return 130
    except KeyboardInterrupt:
        print(f"metalab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (MetalabError, RuntimeError, FileNotFoundError) as exc:
        print(f"metalab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        where = f" (writing {exc.filename})" if exc.filename else ""
        print(f"metalab {args.command}: error: no space left on device{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
