"""Wall time of a 50-run sweep of trivial runs on SLURM: packed versus one job per run.

Needs a SLURM cluster (scripts/local-slurm-start.sh starts a local one).

    python benchmarks/slurm.py [--runs 50] [--partition debug]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import metalab

    @metalab.operation
    def trivial(params, capture):
        capture.metric("y", params["x"] * 2)

    exp = metalab.Experiment(name="slurmbench", version="1", context={}, operation=trivial,
        params=metalab.grid(x=list(range(__N__))), seeds=metalab.seeds(1))
    config = metalab.SlurmConfig(partition="__PARTITION__", time=10, memory="500M",
                                 chunk_size=__CHUNK__, status_interval=1)
    start = time.perf_counter()
    results = metalab.run(exp, executor=metalab.SlurmExecutor(config), verbose=False).result()
    elapsed = time.perf_counter() - start
    jobs = {r.record.provenance["extra"]["slurm_job_id"] for r in results}
    print(json.dumps({"seconds": elapsed, "ok": len(results.successful), "jobs": len(jobs)}))
    """
)


def _measure(n_runs: int, chunk: int | None, partition: str) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.py"
        path.write_text(
            SCRIPT.replace("__N__", str(n_runs))
            .replace("__CHUNK__", str(chunk))
            .replace("__PARTITION__", partition)
        )
        out = subprocess.run(
            [sys.executable, str(path)], cwd=directory, capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--partition", default="debug")
    args = parser.parse_args()
    unpacked = _measure(args.runs, 1, args.partition)
    packed = _measure(args.runs, None, args.partition)
    print(f"{'mode':>10} {'SLURM jobs':>11} {'wall (s)':>9}")
    for name, row in (("unpacked", unpacked), ("packed", packed)):
        print(f"{name:>10} {row['jobs']:>11} {row['seconds']:>9.1f}")
    print(f"packed / unpacked wall time: {packed['seconds'] / unpacked['seconds']:.2f}")


if __name__ == "__main__":
    main()
