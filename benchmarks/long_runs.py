"""Overhead on runs of about one second: 200 CPU-bound runs of 1 s on 2 cores.

Pure compute is 200 x 1 s / 2 cores = 100 s; the target is under 5 % overhead. The
plain-Python 2-process pool running the same operation is printed beside it.

    python benchmarks/long_runs.py [--runs 200] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

OPERATION = textwrap.dedent(
    """
    import time

    def burn(seconds):
        end = time.process_time() + seconds
        x = 0
        while time.process_time() < end:
            x += 1
        return x
    """
)

METALAB = OPERATION + textwrap.dedent(
    """
    import metalab

    @metalab.operation
    def busy(params, capture):
        capture.metric("spins", burn(__SECONDS__))

    exp = metalab.Experiment(name="long", version="1", context={}, operation=busy,
        params=metalab.grid(i=list(range(__RUNS__))), seeds=metalab.seeds(1))

    if __name__ == "__main__":
        start = time.perf_counter()
        results = metalab.run(exp, store="store", verbose=False,
                              executor=metalab.LocalExecutor(cores=2)).result()
        assert len(results.successful) == __RUNS__
        print(time.perf_counter() - start)
    """
)

POOL = OPERATION + textwrap.dedent(
    """
    from multiprocessing import Pool

    if __name__ == "__main__":
        start = time.perf_counter()
        with Pool(2) as pool:
            pool.map(burn, [__SECONDS__] * __RUNS__, chunksize=1)
        print(time.perf_counter() - start)
    """
)


def _timed(script: str, runs: int, seconds: float) -> float:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "long_exp.py"
        path.write_text(script.replace("__RUNS__", str(runs)).replace("__SECONDS__", str(seconds)))
        done = subprocess.run(
            [sys.executable, str(path)], cwd=directory, capture_output=True, text=True, check=True
        )
        return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    compute = args.runs * args.seconds / 2
    pool = _timed(POOL, args.runs, args.seconds)
    ours = _timed(METALAB, args.runs, args.seconds)
    print(
        f"pure compute {compute:.1f} s | pool {pool:.1f} s ({(pool / compute - 1) * 100:+.1f} %)"
        f" | metalab.run {ours:.1f} s ({(ours / compute - 1) * 100:+.1f} %, target < +5 %)"
    )


if __name__ == "__main__":
    main()
