"""Time and peak memory to plan run IDs of a grid x replicates sweep.

Each size runs in a fresh subprocess so peak RSS belongs to that size alone.
Target (issue "Foundation"): 100,000 run IDs in under 3 s.

    python benchmarks/plan.py [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

TARGET_SECONDS_100K = 3.0


def measure(n_runs: int) -> dict[str, float]:
    import metalab

    replicates = 10
    cases = n_runs // replicates
    width = 100
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @metalab.operation
    def train(params, seeds, capture):
        capture.metric("score", params["lr"] * seeds.rng().random())

    experiment = metalab.Experiment(
        name="bench",
        version="1",
        context={"dataset": "synthetic"},
        operation=train,
        params=metalab.grid(
            lr=[i / width for i in range(width)], depth=list(range(cases // width))
        ),
        seeds=metalab.seeds(base=1, replicates=replicates),
    )
    start = time.perf_counter()
    plan = metalab.Plan(experiment)
    count = sum(1 for _ in plan.run_ids())
    ids_seconds = time.perf_counter() - start
    start = time.perf_counter()
    plan.check_unique()
    unique_seconds = time.perf_counter() - start
    start = time.perf_counter()
    middle = plan[n_runs // 2].run_id
    index_us = (time.perf_counter() - start) * 1e6
    assert count == n_runs and len(middle) == 16
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "runs": n_runs,
        "ids_s": ids_seconds,
        "duplicate_check_s": unique_seconds,
        "single_index_us": index_us,
        "peak_rss_mb": peak_kb / 1024,
        "rss_growth_mb": (peak_kb - rss_before) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    print(
        f"{'runs':>10} {'plan ids (s)':>13} {'dup check (s)':>14} {'[i] (us)':>9} "
        f"{'peak RSS (MB)':>14} {'growth (MB)':>12}"
    )
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        row = json.loads(out)
        print(
            f"{row['runs']:>10,} {row['ids_s']:>13.2f} {row['duplicate_check_s']:>14.2f} "
            f"{row['single_index_us']:>9.0f} {row['peak_rss_mb']:>14.0f} "
            f"{row['rss_growth_mb']:>12.0f}"
        )
        if size == 100_000:
            ratio = row["ids_s"] / TARGET_SECONDS_100K
            print(f"{'':>10} 100,000 IDs: {row['ids_s']:.2f} s = {ratio:.2f}x the 3 s target")


if __name__ == "__main__":
    main()
