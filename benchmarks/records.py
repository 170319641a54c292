"""Trust costs and large-grid bounds: the price of a durable record (fsync of the file
and its directory), compiling a 10^6-run grid, `metalab status` on it, and (with
``--huge``) compiling 10^7 runs in bounded memory.

Each step runs in a fresh process; peak memory is its maximum resident set.

    python benchmarks/records.py [--runs 1000000] [--records 300] [--huge]
"""

from __future__ import annotations

import argparse
import json
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
        capture.metric("y", 1)

    exp = metalab.Experiment(
        name="big", version="1", context={}, operation=trivial,
        params=metalab.grid(__PARAMS__),
        seeds=metalab.seeds(1, 1),
    )
    """
)

COMPILE = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, ".")
    start = time.perf_counter()
    from metalab_smk.compile.compiler import compile_experiment
    from exp import exp
    layout = compile_experiment(exp, "store")
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    print(json.dumps({"seconds": elapsed, "peak_mb": peak, "cpu": cpu, "runs": layout.count_runs(),
                      "table_mb": layout.run_table.stat().st_size / 1e6}))
    """
)


def _record_cost(directory: Path, n: int) -> dict[str, float]:
    """Milliseconds per record written with and without fsync (file + directory)."""
    from metalab_smk.store.jsonio import atomic_write_json

    record = {
        "run_id": "0" * 16,
        "status": "success",
        "metrics": {f"m{i}": i * 0.5 for i in range(40)},
        "params_resolved": {f"p{i}": i for i in range(20)},
        "provenance": {"host": "h" * 20, "extra": {"log": "logs/x_run.log"}},
    }
    costs = {}
    for durable in (False, True):
        target = directory / ("durable" if durable else "plain")
        target.mkdir()
        start = time.perf_counter()
        for i in range(n):
            atomic_write_json(target / f"{i:016x}.json", record, indent=None, durable=durable)
        costs["fsync" if durable else "no fsync"] = (time.perf_counter() - start) / n * 1000
    return costs


def _compile(directory: Path, params: str) -> dict:
    (directory / "exp.py").write_text(EXPERIMENT.replace("__PARAMS__", params))
    done = subprocess.run(
        [sys.executable, "-c", COMPILE], cwd=directory, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"compile of grid({params}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


RESUME = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, ".")
    start = time.perf_counter()
    import metalab
    from exp import exp
    results = metalab.run(exp, store="store", verbose=False).result()
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "peak_mb": peak, "rows": len(results)}))
    """
)


def _fake_records(directory: Path) -> int:
    """A success record for every run of the compiled experiment (no fsync: setup only)."""
    from metalab_smk.store.jsonio import atomic_write_json
    from metalab_smk.store.layout import ExperimentDir

    layout = ExperimentDir.at(directory / "store" / "big+1")
    for index, run_id in enumerate(layout.read_run_ids()):
        record = {
            "run_id": run_id,
            "experiment_id": "big:1",
            "status": "success",
            "run_index": index,
            "duration_ms": 1,
            "params_resolved": {"i": index},
            "metrics": {"y": 1},
        }
        atomic_write_json(layout.record(run_id), record, indent=None, durable=False)
    return layout.count_runs()


def _resume(directory: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", RESUME], cwd=directory, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"resume failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _status_seconds(directory: Path) -> tuple[float, str]:
    """Wall time of the `metalab status` command (a fresh process, imports included)."""
    exp_dir = directory / "store" / "big+1"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "status", str(exp_dir)],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"status failed:\n{done.stderr[-3000:]}")
    return elapsed, done.stdout.splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--huge", action="store_true", help="also compile 10^7 runs")
    parser.add_argument(
        "--resume", type=int, default=0, help="also time a no-op resume over N finished runs"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="metalab-records-") as tmp:
        costs = _record_cost(Path(tmp), args.records)
    print(
        f"record write ({args.records} records): {costs['no fsync']:.2f} ms without fsync, "
        f"{costs['fsync']:.2f} ms with fsync of file and directory "
        f"(+{costs['fsync'] - costs['no fsync']:.2f} ms per record)"
    )
    directory = Path(tempfile.mkdtemp(prefix="metalab-records-"))
    try:
        row = _compile(directory, f"i=range({args.runs})")  # the worst case: one long axis
        print(
            f"compile {row['runs']:,} runs (one axis): {row['seconds']:.2f} s wall, "
            f"{row['cpu']:.2f} s CPU, peak {row['peak_mb']:.0f} MB (targets < 10 s, < 500 MB); "
            f"run table {row['table_mb']:.0f} MB"
        )
        _status_seconds(directory)  # warm the page cache once
        seconds, line = _status_seconds(directory)
        print(f"metalab status on {row['runs']:,} runs: {seconds:.2f} s (target < 2 s): {line}")
        if args.resume:
            shutil.rmtree(directory / "store")
            _compile(directory, f"i=range({args.resume})")
            _fake_records(directory)
            first = _resume(directory)  # validates every record once, builds the summary
            again = _resume(directory)
            print(
                f"metalab.run(...).result() over {args.resume:,} finished runs: first "
                f"{first['seconds']:.2f} s (validates and summarises every record), "
                f"no-op resume {again['seconds']:.2f} s, peak {again['peak_mb']:.0f} MB "
                "(target < 2 s)"
            )
        if args.huge:
            shutil.rmtree(directory / "store")
            axes = f"a=range(1000), b=range(100), c=range({max(1, args.runs // 10_000)})"
            row = _compile(directory, axes)
            print(
                f"compile {row['runs']:,} runs (grid({axes})): {row['seconds']:.2f} s wall, "
                f"{row['cpu']:.2f} s CPU, peak {row['peak_mb']:.0f} MB; "
                f"run table {row['table_mb']:.0f} MB"
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
