"""Wall time of ``metalab.run`` for trivial runs next to two baselines.

Baselines: a plain-Python ``multiprocessing`` pool of 2 processes calling the same
operation and writing one JSON record per run (the floor for any Python framework), and,
with ``--upstream-python PY``, the upstream metalab installed in the environment of the
interpreter ``PY``: the same sweep (same operation, one seed) with each of upstream's local
executors (``ThreadExecutor(max_workers=2)``, ``ProcessExecutor(max_workers=2)`` and its
sequential default ``ThreadExecutor(max_workers=1)``); the best of them is the baseline.
Each measurement runs in a fresh directory and a fresh process; the variants are
interleaved (one of each per round, for ``--repeat`` rounds) and the best per variant
is shown with the range. Each measurement starts after ``os.sync()`` (not timed): the
kernel's writeback of the files the one before wrote (upstream's records are not
fsynced) would otherwise compete with its writes. No directory is deleted before the
benchmark ends: on ext4 without a journal, creating a file scans the inodes deleted in
the last minutes (``recently_deleted``), which made whatever ran after a deleted store
up to twice as slow (10,000 runs: 6 s or 12 s).

    python benchmarks/local.py [--sizes 200 1000] [--upstream-python PY]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

OPERATION = textwrap.dedent(
    """
    import random
    import metalab

    @metalab.operation
    def trivial(params, seeds, capture):
        capture.metric("y", params["x"] * random.Random(seeds.derive("default")).random())

    exp = metalab.Experiment(
        name="bench", version="1", context={}, operation=trivial,
        params=metalab.grid(x=list(range(__N__))), seeds=metalab.seeds(1, 1),
    )
    """
)

EXPERIMENT = textwrap.dedent(
    """
    import sys, time
    import metalab
    from bench_op import exp

    if __name__ == "__main__":
        start = time.perf_counter()
        results = metalab.run(exp, store="store", verbose=False,
                              executor=metalab.LocalExecutor(cores=2)).result()
        assert len(results.successful) == __N__, results
        print(time.perf_counter() - start)
    """
)

UPSTREAM = textwrap.dedent(
    """
    import inspect, sys, time
    import metalab
    from bench_op import exp

    def executor(name):
        if name == "thread":
            return metalab.ThreadExecutor(max_workers=2)
        if name == "process":
            return metalab.ProcessExecutor(max_workers=2)
        return metalab.ThreadExecutor(max_workers=1)

    if __name__ == "__main__":
        kwargs = {}
        if "verbose" in inspect.signature(metalab.run).parameters:
            kwargs["verbose"] = False
        chosen = executor(sys.argv[1])
        start = time.perf_counter()
        results = metalab.run(exp, store="store", executor=chosen, **kwargs).result()
        elapsed = time.perf_counter() - start
        done = getattr(results, "successful", results)
        assert len(done) == __N__, (len(done), results)
        getattr(chosen, "shutdown", lambda: None)()
        print(elapsed)
    """
)

BASELINE = textwrap.dedent(
    """
    import json, os, random, sys, time
    from multiprocessing import Pool

    def trivial(task):
        index, x = task
        rng = random.Random(index)
        record = {"run_id": f"{index:016x}", "status": "success",
                   "params_resolved": {"x": x}, "metrics": {"y": x * rng.random()}}
        path = os.path.join("records", record["run_id"] + ".json")
        with open(path + ".tmp", "w") as handle:
            json.dump(record, handle)
        os.replace(path + ".tmp", path)

    if __name__ == "__main__":
        os.makedirs("records", exist_ok=True)
        start = time.perf_counter()
        with Pool(2) as pool:
            pool.map(trivial, [(i, i) for i in range(__N__)], chunksize=16)
        print(time.perf_counter() - start)
    """
)

UPSTREAM_EXECUTORS = ("thread", "process", "sequential")

DESCRIBE = (
    "import metalab, importlib.util as u; "
    "print(getattr(metalab, '__version__', '?'), u.find_spec('metalab_smk') is not None)"
)


def _timed(root: Path, script: str, n_runs: int, python: str = sys.executable, *args: str) -> float:
    """Seconds ``script`` reports, run in a new directory under ``root`` (kept)."""
    directory = tempfile.mkdtemp(dir=root)
    Path(directory, "bench_op.py").write_text(OPERATION.replace("__N__", str(n_runs)))
    path = Path(directory) / "exp.py"
    path.write_text(script.replace("__N__", str(n_runs)))
    scratch = Path(directory, "tmp")  # upstream leaves a temporary folder per run:
    scratch.mkdir()  # kept in here
    os.sync()  # not timed: no variant waits for the writeback of the one before it
    done = subprocess.run(
        [python, str(path), *args],
        cwd=directory,
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    if done.returncode:
        raise RuntimeError(f"{python} {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _describe(python: str) -> str:
    """One line naming the metalab that ``python`` imports (upstream or not)."""
    with tempfile.TemporaryDirectory() as directory:  # not this checkout's package
        out = subprocess.run(
            [python, "-c", DESCRIBE], capture_output=True, text=True, cwd=directory
        )
    if out.returncode:
        raise SystemExit(f"--upstream-python {python} cannot import metalab:\n{out.stderr}")
    version, ours = out.stdout.split()
    if ours == "True":
        return f"metalab {version} of THIS project (metalab-smk), not upstream"
    return f"upstream metalab {version} ({python})"


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}" if len(values) == 1 else f"{min(values):.2f}-{max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (noisy machines)")
    parser.add_argument(
        "--upstream-python",
        metavar="PY",
        help="interpreter of an environment where upstream metalab is installed",
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="where the measurements' directories go (default: the system's temporary "
        "folder); all are kept until the end, up to a few hundred thousand files",
    )
    args = parser.parse_args()
    upstream = args.upstream_python
    print("baseline 1: multiprocessing pool of 2 writing one JSON file per run")
    if upstream:
        print(
            f"baseline 2: {_describe(upstream)}, best of its executors "
            f"{', '.join(UPSTREAM_EXECUTORS)}"
        )
    print("times: best (range) of the interleaved rounds, seconds")
    with tempfile.TemporaryDirectory(dir=args.workdir) as root:  # deleted at the end
        print(f"measurements in {root}; free inodes there: {os.statvfs(root).f_favail:,}")
        rows = _measure(Path(root), args.sizes, args.repeat, upstream)
    print(json.dumps(rows))


def _measure(root: Path, sizes: list[int], repeat: int, upstream: str | None) -> list[dict]:
    """One row per size; prints one line per size as it goes."""
    rows = []
    for size in sizes:
        times: dict[str, list[float]] = {"pool": [], "ours": []}
        variants = [
            ("pool", BASELINE, sys.executable, ()),
            ("ours", EXPERIMENT, sys.executable, ()),
        ]
        for name in UPSTREAM_EXECUTORS if upstream else ():
            times[f"upstream-{name}"] = []
            variants.append((f"upstream-{name}", UPSTREAM, upstream, (name,)))
        for round_ in range(repeat):
            # Rotate the order each round so no variant always runs first.
            shift = round_ % len(variants)
            for key, script, python, extra in variants[shift:] + variants[:shift]:
                times[key].append(_timed(root, script, size, python, *extra))
        best = {key: min(values) for key, values in times.items()}
        row = {"runs": size, **{f"{key}_s": values for key, values in times.items()}}
        line = f"{size:>7} runs: pool {_span(times['pool'])}, metalab.run {_span(times['ours'])}"
        line += f" ({best['ours'] / best['pool']:.1f}x pool)"
        if upstream:
            name = min(UPSTREAM_EXECUTORS, key=lambda n: best[f"upstream-{n}"])
            ups = best[f"upstream-{name}"]
            spans = ", ".join(f"{n} {_span(times[f'upstream-{n}'])}" for n in UPSTREAM_EXECUTORS)
            line += f"; upstream {spans}; ours / upstream {name}: {best['ours'] / ups:.2f}"
            row["ratio_upstream"] = best["ours"] / ups
            row["upstream_best"] = name
        rows.append(row)
        print(line, flush=True)
    return rows


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
