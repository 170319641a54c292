"""Wall time of ``metalab.run`` for trivial runs next to a plain-Python 2-process pool.

The baseline is the floor for any Python framework: a ``multiprocessing`` pool of 2
processes calling the same operation and writing one JSON record per run. Each
measurement runs in a fresh directory and a fresh process; the best of ``--repeat``
measurements is shown.

    python benchmarks/local.py [--sizes 200 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

EXPERIMENT = textwrap.dedent(
    """
    import sys, time
    import metalab

    @metalab.operation
    def trivial(params, seeds, capture):
        capture.metric("y", params["x"] * seeds.rng().random())

    exp = metalab.Experiment(
        name="bench", version="1", context={}, operation=trivial,
        params=metalab.grid(x=list(range(__N__))), seeds=metalab.seeds(1, 1),
    )

    if __name__ == "__main__":
        start = time.perf_counter()
        results = metalab.run(exp, store="store", verbose=False,
                              executor=metalab.LocalExecutor(cores=2)).result()
        assert len(results.successful) == __N__, results
        print(time.perf_counter() - start)
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


def _timed(script: str, n_runs: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "exp.py"
        path.write_text(script.replace("__N__", str(n_runs)))
        done = subprocess.run(
            [sys.executable, str(path)], cwd=directory, capture_output=True, text=True, check=True
        )
        return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3, help="best of N (noisy machines)")
    args = parser.parse_args()
    print(f"{'runs':>7} {'pool (s)':>9} {'metalab.run (s)':>16} {'ratio':>7}")
    rows = []
    for size in args.sizes:
        pool = min(_timed(BASELINE, size) for _ in range(args.repeat))
        ours = min(_timed(EXPERIMENT, size) for _ in range(args.repeat))
        rows.append({"runs": size, "pool_s": pool, "metalab_s": ours, "ratio": ours / pool})
        print(f"{size:>7} {pool:>9.2f} {ours:>16.2f} {ours / pool:>6.1f}x", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
