"""A 100,000-run sweep end to end: compile, run, no-op resume, reduce, to_dataframe,
adding 10 runs, Snakemake's own dry run, and Snakefile parse time (1,000 vs 100,000).

Each step runs in a fresh process; peak memory is the step's maximum resident set
(including its child processes). Targets (issue "Scale and speed") are printed beside
each number.

    python benchmarks/scale.py [--runs 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

EXPERIMENT = textwrap.dedent(
    """
    import metalab

    @metalab.operation(code_version="1")
    def trivial(params, seeds, capture):
        capture.metric("y", params["i"] + seeds.rng().random())

    exp = metalab.Experiment(
        name="scale", version="1", context={}, operation=trivial,
        params=metalab.grid(i=list(range(__N__))),
        seeds=metalab.seeds(1, 1),
    )
    """
)

STEP = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, ".")
    start = time.perf_counter()
    __BODY__
    elapsed = time.perf_counter() - start
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(json.dumps({"seconds": elapsed, "peak_mb": peak, "info": info}))
    """
)

BODIES = {
    "compile": "import metalab\nfrom metalab_smk.compile.compiler import compile_experiment\n"
    "from exp import exp\nlayout = compile_experiment(exp, 'store')\n"
    "info = len(layout.read_run_ids())",
    "run": "import metalab\nfrom exp import exp\n"
    "r = metalab.run(exp, store='store', verbose=False).result()\n"
    "info = len(r.successful)",
    "resume": "import metalab\nfrom exp import exp\n"
    "r = metalab.run(exp, store='store', verbose=False).result()\ninfo = len(r)",
    "reduce": "from metalab_smk.results.summary import collect\n"
    "runs, steps = collect('store/scale+1', incremental=False)\ninfo = len(runs)",
    "dataframe": "import metalab\n"
    "df = metalab.load_results('store/scale+1').to_dataframe()\ninfo = len(df)",
}


def _step(directory: Path, name: str) -> dict:
    body = BODIES[name].replace("\n", "\n    ")
    script = STEP.replace("__BODY__", body)
    script = "\n".join(
        line[4:] if line.startswith("    ") else line for line in script.splitlines()
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=directory, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _timed_command(command: list[str], cwd: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command} failed:\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": elapsed, "peak_mb": max(peak, before) / 1024, "info": ""}


def _write_experiment(directory: Path, n_runs: int) -> None:
    (directory / "exp.py").write_text(EXPERIMENT.replace("__N__", str(n_runs)))


def _parse_seconds(directory: Path, n_runs: int) -> float:
    """Time Snakemake takes to parse the workflow (what every SLURM job does first)."""
    _write_experiment(directory, n_runs)
    _step(directory, "compile")
    exp_dir = directory / "store" / "scale+1"
    return _timed_command([sys.executable, "-m", "snakemake", "--list-rules"], exp_dir)["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--keep", default=None, help="work in this directory and keep it")
    args = parser.parse_args()
    directory = Path(args.keep or tempfile.mkdtemp(prefix="metalab-scale-"))
    directory.mkdir(parents=True, exist_ok=True)
    _write_experiment(directory, args.runs)
    rows = [("compile", _step(directory, "compile"), "< 10 s")]
    rows.append(("run all (trivial ops)", _step(directory, "run"), "(report)"))
    rows.append(("no-op resume (metalab.run)", _step(directory, "resume"), "< 2 s"))
    rows.append(("reduce to parquet (full)", _step(directory, "reduce"), "< 15 s"))
    rows.append(("to_dataframe from summary", _step(directory, "dataframe"), "< 2 s"))
    _write_experiment(directory, args.runs + 10)  # 10 more grid values: 10 new runs
    rows.append(("add 10 runs, end to end", _step(directory, "run"), "< 15 s"))
    exp_dir = directory / "store" / "scale+1"
    rows.append(
        (
            "snakemake CLI dry run, all targets",
            _timed_command([sys.executable, "-m", "snakemake", "-n", "--quiet", "all"], exp_dir),
            "(report)",
        )
    )
    print(f"{'step':<38} {'seconds':>8} {'peak MB':>8}  target   info")
    for name, row, target in rows:
        print(
            f"{name:<38} {row['seconds']:>8.2f} {row['peak_mb']:>8.0f}  {target:<8} {row['info']}"
        )
    with tempfile.TemporaryDirectory() as small, tempfile.TemporaryDirectory() as large:
        parse_small = _parse_seconds(Path(small), 1_000)
        parse_large = _parse_seconds(Path(large), args.runs)
    print(
        f"Snakefile parse (snakemake --list-rules): 1,000 runs {parse_small:.2f} s, "
        f"{args.runs:,} runs {parse_large:.2f} s (ratio {parse_large / parse_small:.2f})"
    )
    if not args.keep:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
