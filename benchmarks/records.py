"""Trust costs and large-grid bounds: the price of a durable record (fsync of the file
and its directory), compiling a 10^6-run grid, `metalab status` on it, and (with
``--huge``) compiling 10^7 runs in bounded memory.

Each step runs in a fresh process; peak memory is its maximum resident set.

    python benchmarks/records.py [--runs 1000000] [--records 300] [--huge]
        [--resume 100000] [--with-records]
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
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    print(json.dumps({"seconds": elapsed, "cpu": cpu, "peak_mb": peak, "rows": len(results)}))
    """
)


def _fake_records(directory: Path) -> int:
    """A success record and a run log for every run of the compiled experiment, in the
    real format (benchmarks/fake_records.py; setup only, no fsync)."""
    from fake_records import write_records

    return write_records(directory / "store" / "big+1")


def _resume(directory: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", RESUME], cwd=directory, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"resume failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _status(directory: Path) -> dict:
    """Wall and CPU time of the `metalab status` command (a fresh process, imports
    included) and its first output line."""
    exp_dir = directory / "store" / "big+1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "status", str(exp_dir)],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"status failed:\n{done.stderr[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": elapsed, "cpu": cpu, "line": done.stdout.splitlines()[0]}


def _collect(directory: Path) -> dict:
    """Wall and CPU time of the first full summary (reads every record once)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "metalab_smk.results.summary", "--quiet", "store/big+1"],
        cwd=directory,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": time.perf_counter() - start, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--huge", action="store_true", help="also compile 10^7 runs")
    parser.add_argument(
        "--resume", type=int, default=0, help="also time a no-op resume over N finished runs"
    )
    parser.add_argument(
        "--with-records",
        action="store_true",
        help="also time `metalab status` with a success record for every run (writes "
        "--runs records and logs: about 3 minutes and 8 GB of small files at 10^6)",
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
        _status(directory)  # warm the page cache once
        status = _status(directory)
        print(
            f"metalab status on {row['runs']:,} runs without records: {status['seconds']:.2f} s "
            f"wall, {status['cpu']:.2f} s CPU (target < 2 s): {status['line']}"
        )
        if args.with_records:
            start = time.perf_counter()
            written = _fake_records(directory)
            print(f"wrote {written:,} records and run logs in {time.perf_counter() - start:.0f} s")
            built = _collect(directory)
            print(
                f"first summary of {written:,} records: {built['seconds']:.1f} s wall, "
                f"{built['cpu']:.1f} s CPU"
            )
            for attempt in (1, 2):
                status = _status(directory)
                print(
                    f"metalab status on {written:,} runs with records ({attempt}): "
                    f"{status['seconds']:.2f} s wall, {status['cpu']:.2f} s CPU "
                    f"(target < 2 s): {status['line']}"
                )
        if args.resume:
            shutil.rmtree(directory / "store")
            _compile(directory, f"i=range({args.resume})")
            _fake_records(directory)
            first = _resume(directory)  # validates every record once, builds the summary
            second = _resume(directory)  # reads the records that landed just before it
            again = _resume(directory)
            print(
                f"metalab.run(...).result() over {args.resume:,} finished runs: first "
                f"{first['seconds']:.2f} s (validates and summarises every record), "
                f"second {second['seconds']:.2f} s, no-op resume {again['seconds']:.2f} s wall, "
                f"{again['cpu']:.2f} s CPU, peak {again['peak_mb']:.0f} MB (target < 2 s)"
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
