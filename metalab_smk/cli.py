"""The ``metalab`` command line (argument parsing only; work happens in the library).

A mistake of the user (a bad path, an experiment file that does not import, a busy
directory) is a ``MetalabError``: one line on stderr and exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from metalab_smk import __version__
from metalab_smk.cli_completion import add_completion_command
from metalab_smk.cli_stores import add_store_commands
from metalab_smk.errors import MetalabError, SweepInterrupted
from metalab_smk.store.config import DEFAULT_STORE

if TYPE_CHECKING:
    from metalab_smk.slurm.executors import ProfileExecutor
    from metalab_smk.store.layout import ExperimentDir
    from metalab_smk.sweep.executors import LocalExecutor


def _load(path: str, experiment: str | None):
    from metalab_smk.compile.loader import load_experiment_file
    from metalab_smk.store.locate import shown

    if os.path.isdir(path):
        raise MetalabError(
            f"{shown(path)} is a directory; this command expects the experiment's Python "
            "file (e.g. exp.py); for an experiment directory use `metalab status` or "
            "`metalab results`."
        )
    if os.path.exists(path) and not path.endswith(".py"):
        raise MetalabError(f"{shown(path)} is not a Python file; pass the experiment's .py file.")
    return load_experiment_file(path).select(experiment, path)


def _locate(args: argparse.Namespace):
    from metalab_smk.store.locate import locate_experiment

    return locate_experiment(args.directory, getattr(args, "experiment", None))


def _cmd_compile(args: argparse.Namespace) -> int:
    from metalab_smk.compile.compiler import compile_experiment, snakemake_command
    from metalab_smk.store.locate import shown

    experiment = _load(args.file, args.experiment)
    layout = compile_experiment(experiment, args.store)
    n_runs = layout.count_runs()
    print(f"compiled {experiment.experiment_id!r}: {n_runs} runs in {shown(layout.root)}")
    print("run it, packing short runs into few jobs:")
    commands = [f"metalab run {args.file}", f"metalab submit {args.file} --profile DIR"]
    pad = max(map(len, commands))
    print(f"  {commands[0].ljust(pad)}  # here, on all cores")
    print(f"  {commands[1].ljust(pad)}  # detached, e.g. on SLURM")
    # measured (docs/benchmarks.md): 200 runs of 20 ms, and on the local SLURM cluster
    print("or with plain Snakemake, which packs them alike (200 short runs: 4-5 s either way;")
    print("`snakemake --profile slurm`: one SLURM job array, 1.0-1.3x the time of metalab's):")
    print(f"  {snakemake_command(layout)}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from metalab_smk.compile.dryrun import dry_run

    experiment = _load(args.file, args.experiment)
    plan = dry_run(experiment, args.store)
    if args.json:
        from metalab_smk.cli_json import dumps, plan_json

        print(dumps(plan_json(plan)))
        return 0
    print(plan.as_text())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from metalab_smk.results.results import Results
    from metalab_smk.sweep.runner import run

    experiment = _load(args.file, args.experiment)
    handle = run(
        experiment,
        store=args.store,
        resume=not args.no_resume,
        executor=_executor(args),
    )
    try:
        handle.wait()
    except SweepInterrupted:
        return 130
    status = handle.status
    if status.failed:
        print("failures by error:")
        print("\n".join(status.failure_lines()))
    if not handle.error or status.done:
        print()
        print(Results(handle.layout).report())
    if handle.error:
        print(f"metalab run: error: {handle.error}", file=sys.stderr)
        return 1
    return 0


def _local_executor(args: argparse.Namespace) -> LocalExecutor:
    """The LocalExecutor of ``--cores``, ``--chunk-size``, ``--gpus``, ``--runs-per-gpu``."""
    from metalab_smk.sweep.executors import LocalExecutor

    return LocalExecutor(
        cores=args.cores,
        chunk_size=args.chunk_size,
        gpus=args.gpus,  # device indices as CUDA_VISIBLE_DEVICES lists them, or auto
        runs_per_gpu=args.runs_per_gpu,
    )


def _executor(args: argparse.Namespace) -> LocalExecutor | ProfileExecutor:
    """The profile's executor with ``--profile`` (``--engine``), else the local one."""
    from metalab_smk.slurm.executors import ProfileExecutor

    if args.profile:
        return ProfileExecutor(args.profile, chunk_size=args.chunk_size, engine=args.engine)
    return _local_executor(args)


def _profile_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--profile",
        default=None,
        help="Snakemake profile directory or name (`metalab profile slurm DIR` writes one)",
    )
    sub.add_argument(
        "--engine",
        choices=("array", "snakemake"),
        default="array",
        help="with a SLURM profile: one job array per resource class running the batch "
        "worker (default), or Snakemake's SLURM executor (one job per batch)",
    )


def _gpu_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--gpus",
        default=None,
        metavar="DEVICES",
        help="GPUs for runs that ask for them: device indices (0,1) or auto (default: "
        "CUDA_VISIBLE_DEVICES, else nvidia-smi)",
    )
    sub.add_argument(
        "--runs-per-gpu", type=int, default=1, metavar="K", help="runs sharing one GPU (1)"
    )


def _cmd_submit(args: argparse.Namespace) -> int:
    from metalab_smk.compile.compiler import compile_experiment
    from metalab_smk.store.locate import shown
    from metalab_smk.sweep.detached import submit
    from metalab_smk.sweep.locks import RunnerLock, running_sweep

    experiment = _load(args.file, args.experiment)
    executor = _executor(args)
    locks: list[RunnerLock] = []  # nothing is written while another sweep runs here
    try:
        layout = compile_experiment(
            experiment,
            args.store,
            before_writing=lambda at: locks.append(RunnerLock(at, busy=running_sweep)),
        )
    finally:
        for lock in locks:
            lock.release()
    head = submit(layout, executor, head_time=args.head_time, local=args.local)
    if head is None:
        print(
            f"all {layout.count_runs()} runs are done; nothing to submit "
            f"(results: {shown(layout.root)})"
        )
        return 0
    if "array_job_id" in head:
        what = (
            f"SLURM array job {head['array_job_id']} ({head['tasks']} tasks), then the "
            f"summary job {head['job_id']}"
        )
    elif head["kind"] == "slurm":
        what = f"the Snakemake head runs as SLURM job {head['job_id']}"
    else:
        what = f"the Snakemake head runs in the background (pid {head['pid']})"
    print(f"submitted {experiment.experiment_id!r} ({layout.count_runs()} runs): {what}")
    print(f"its log: {shown(head['log'])}")
    print(f"follow it with:  metalab status {shown(layout.root)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    """Counts and failures, read from the files: nothing is written into the store."""
    from metalab_smk.store.checkpoints import checkpoint_usage
    from metalab_smk.store.locate import shown
    from metalab_smk.sweep.status import sweep_status

    layout = _locate(args)
    status = sweep_status(layout, verify=args.verify, check_records=True)
    head = _head_report(layout)
    if args.json:
        from metalab_smk.cli_json import dumps, status_json

        print(dumps(status_json(status, head)))
        return 0
    print(status.as_text(every_run=args.all))
    runs, size = checkpoint_usage(layout)
    if runs:
        where = shown(layout.checkpoints_dir)
        print(f"checkpoints: {runs} run(s) keep {size / 1e6:.1f} MB in {where}")
    if head:
        state = f"{head['state']}: {head['error']}" if head["error"] else head["state"]
        print(f"submitted head process: {state} (log: {shown(head['log'])})")
    return 0


def _head_report(layout: ExperimentDir) -> dict[str, Any] | None:
    """The submitted head's ``state`` (running, finished, stopped, failed, ended or died),
    its ``error`` (failed, ended, died) and ``log``; None when the sweep was not
    submitted. A damaged head.json is one line naming it."""
    from metalab_smk.sweep.detached import head_outcome, read_head

    head = read_head(layout)
    outcome = head_outcome(layout) if head else None
    if outcome is None:
        return None
    state, _, error = outcome.partition(": ")
    return {"state": state, "error": error or None, "log": head["log"]}


def _cmd_stop(args: argparse.Namespace) -> int:
    from metalab_smk.sweep.status import sweep_status
    from metalab_smk.sweep.stop import stop_sweep

    layout = _locate(args)
    report = stop_sweep(layout)
    for note in report.notes:
        print(f"metalab stop: {note}")
    status = sweep_status(layout, with_errors=False)
    what = f"stopped {'; '.join(report.stopped)}" if report.stopped else "nothing was running"
    print(
        f"metalab stop: {what}; {status.done} of {status.total} runs are done and kept. "
        f"Resume with `metalab run` or `metalab submit` (or `snakemake` in {args.directory})."
    )
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from metalab_smk.results.summary import main as reduce_main

    return reduce_main([str(_locate(args).root)])


def _cmd_results(args: argparse.Namespace) -> int:
    from metalab_smk.results.results import Results

    results = Results(_locate(args))
    if args.json:
        from metalab_smk.cli_json import dumps, results_json

        print(dumps(results_json(results)))
        return 0
    frame = results.to_dataframe()
    target = args.csv or args.parquet
    if target:
        try:
            if args.csv:
                frame.to_csv(target, index=False)
            else:
                frame.to_parquet(target, index=False)
        except OSError as exc:
            raise MetalabError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"wrote {len(frame)} rows to {target}")
    elif args.runs:
        import pandas as pd

        with pd.option_context("display.max_rows", args.max_rows, "display.width", 200):
            print(frame)
    else:
        print(results.report(max_rows=args.max_rows))
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    from metalab_smk.ui.app import serve

    serve(args.path or None, host=args.host, port=args.port, db=args.db)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from metalab_smk.ui.report import write_report

    written = write_report(args.path, args.output, experiment_id=args.experiment)
    print(f"wrote {written}")
    return 0


def _add_ui_commands(commands) -> None:
    sub = commands.add_parser("ui", help="serve the web dashboard over a store or experiment")
    sub.add_argument(
        "path",
        nargs="*",
        default=None,
        help="store roots, experiment dirs, or directories with stores below (default ./runs)",
    )
    sub.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sub.add_argument("--db", default=None, help="PostgreSQL index URL (instead of the files)")
    sub.set_defaults(func=_cmd_ui)
    sub = commands.add_parser("report", help="write a self-contained HTML report")
    sub.add_argument("path", help="store root or experiment dir")
    sub.add_argument("-o", "--output", default="report.html", help="HTML file to write")
    sub.add_argument("--experiment", default=None, help="only this name:version")
    sub.set_defaults(func=_cmd_report)


def _cmd_profile(args: argparse.Namespace) -> int:
    from metalab_smk.slurm.profile import write_profile
    from metalab_smk.store.locate import shown

    options = {
        key: value
        for key in ("partition", "account", "time", "memory", "jobs")
        if (value := getattr(args, key)) is not None
    }
    config = write_profile(args.name, args.directory, overwrite=args.force, **options)
    if args.directory:
        print(f"wrote {shown(config)}; then")
        print(f"  metalab submit exp.py --profile {shown(config.parent)}")
    else:
        print(f"wrote {config}; Snakemake finds it by name:")
        print(f"  metalab submit exp.py --profile {args.name}   # or, in an experiment directory:")
        print(f"  snakemake --profile {args.name}")
    return 0


def _experiment_file(sub: argparse.ArgumentParser) -> None:
    sub.usage = "%(prog)s FILE [options] [-- ARGS...]"
    sub.add_argument(
        "file",
        help="the experiment's Python file; ARGS after -- are its sys.argv[1:] (also in jobs)",
    )
    sub.add_argument(
        "--store",
        default=None,
        help=f"directory holding one folder per experiment (default {DEFAULT_STORE})",
    )
    sub.add_argument(
        "--experiment",
        default=None,
        help="NAME or NAME:VERSION when the file defines several experiments",
    )


def _experiment_dir(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "directory",
        help=f"experiment directory ({DEFAULT_STORE}/NAME+VERSION), or a store holding one",
    )
    sub.add_argument(
        "--experiment", default=None, help="NAME or NAME:VERSION when DIRECTORY is a store"
    )


def _json_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--json", action="store_true", help="print one JSON object (fields: docs/cli-json.md)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metalab",
        description="Define a sweep once; run it with Snakemake. Typical use: "
        "`metalab run exp.py`, then `metalab status` / `metalab results` on the "
        f"experiment directory it prints ({DEFAULT_STORE}/NAME+VERSION).",
    )
    parser.add_argument("--version", action="version", version=f"metalab-smk {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command")

    sub = commands.add_parser(
        "run", help="compile and run the missing runs here (packed: few jobs for many runs)"
    )
    _experiment_file(sub)
    sub.add_argument("--cores", type=int, default=None, help="parallel jobs (default: all)")
    sub.add_argument(
        "--chunk-size", type=int, default=None, help="runs per Snakemake job (default: auto)"
    )
    _gpu_options(sub)
    _profile_options(sub)
    sub.add_argument("--no-resume", action="store_true", help="delete the records; run all again")
    sub.set_defaults(func=_cmd_run)

    sub = commands.add_parser(
        "plan", help="dry run: new / done / failed runs, and why runs are reused or rerun"
    )
    _experiment_file(sub)
    _json_option(sub)
    sub.set_defaults(func=_cmd_plan)

    sub = commands.add_parser("submit", help="compile and start a detached sweep; exit")
    _experiment_file(sub)
    _profile_options(sub)
    sub.add_argument("--chunk-size", type=int, default=None, help="runs per job (default: auto)")
    sub.add_argument("--cores", type=int, default=None, help="local parallel jobs")
    _gpu_options(sub)
    sub.add_argument(
        "--local",
        action="store_true",
        help="run the head in the background here, not as a SLURM job",
    )
    sub.add_argument(
        "--head-time", default="1-00:00:00", help="SLURM time limit of the head job (default 1 day)"
    )
    sub.set_defaults(func=_cmd_submit)

    sub = commands.add_parser(
        "compile", help="write the experiment directory and Snakefile (for plain snakemake)"
    )
    _experiment_file(sub)
    sub.set_defaults(func=_cmd_compile)

    sub = commands.add_parser("status", help="done / failed / pending runs; failures by error")
    _experiment_dir(sub)
    sub.add_argument(
        "--all", action="store_true", help="list every failed run instead of grouping by error"
    )
    sub.add_argument(
        "--verify",
        action="store_true",
        help="read and validate every record (bad ones are named; `metalab collect` or "
        "the next `metalab run` quarantines them)",
    )
    _json_option(sub)
    sub.set_defaults(func=_cmd_status)

    sub = commands.add_parser("stop", help="stop a running sweep and its jobs (resumable)")
    _experiment_dir(sub)
    sub.set_defaults(func=_cmd_stop)

    sub = commands.add_parser("results", help="print the results per param case, or export them")
    _experiment_dir(sub)
    sub.add_argument("--csv", default=None, help="write every run as a row to this CSV file")
    sub.add_argument("--parquet", default=None, help="write every run as a row to this file")
    sub.add_argument("--runs", action="store_true", help="print one row per run")
    sub.add_argument("--max-rows", type=int, default=60, help="rows to print at most (default 60)")
    _json_option(sub)
    sub.set_defaults(func=_cmd_results)

    sub = commands.add_parser("collect", help="rewrite summary/*.parquet from the records")
    _experiment_dir(sub)
    sub.set_defaults(func=_cmd_collect)

    sub = commands.add_parser("profile", help="write or install a Snakemake profile")
    sub.add_argument("name", choices=["slurm"], help="which profile")
    sub.add_argument(
        "directory",
        nargs="?",
        default=None,
        help="directory to write config.yaml into (default: your Snakemake config folder, "
        "where `snakemake --profile slurm` finds it by name)",
    )
    sub.add_argument("--partition", default=None, help="SLURM partition")
    sub.add_argument("--account", default=None, help="SLURM account")
    sub.add_argument("--time", default=None, help="time limit per job (minutes or H:M:S)")
    sub.add_argument("--memory", default=None, help="memory per job (e.g. 4G)")
    sub.add_argument("--jobs", type=int, default=None, help="SLURM jobs at once")
    sub.add_argument("--force", action="store_true", help="overwrite an existing config.yaml")
    sub.set_defaults(func=_cmd_profile)
    _add_ui_commands(commands)
    add_store_commands(commands)
    add_completion_command(commands, parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``metalab ARGS``; with ``FILE ... -- SCRIPT_ARGS``, the experiment file sees
    ``sys.argv == [FILE, *SCRIPT_ARGS]`` as under ``python FILE SCRIPT_ARGS`` (and so do
    its jobs: the compile records ``sys.argv``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    parser = build_parser()
    args = parser.parse_args(argv[:cut])
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if cut < len(argv) and not hasattr(args, "file"):
        parser.error(f"`metalab {args.command}` takes no arguments after --")
    saved = sys.argv
    if hasattr(args, "file"):
        sys.argv = [args.file, *argv[cut + 1 :]]
    try:
        return args.func(args)
    except SweepInterrupted:
        return 130
    except MetalabError as exc:
        print(f"metalab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `metalab status DIR | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"metalab {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        from metalab_smk.store.locate import os_error_line

        print(f"metalab {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved


if __name__ == "__main__":
    sys.exit(main())
