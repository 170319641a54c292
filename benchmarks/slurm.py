"""End-to-end wall time of sweeps on SLURM, beside a plain ``sbatch --array`` baseline.

Needs a SLURM cluster (scripts/local-slurm-start.sh starts a local one). Each workload
runs the same runs with the same chunking (runs per SLURM job or array task) in every mode:

* ``array``: the physical anchor. One ``sbatch --array`` whose tasks run a plain Python
  loop over their chunk (no metalab), writing one JSON file per run and an end marker;
  the head polls the markers every 0.2 s.
* ``run``: ``metalab.run(exp, executor=SlurmExecutor(...)).result()`` (default engine:
  one job array running the batch worker).
* ``submit``: ``metalab submit`` (one job array plus a summary job, no head process), then
  ``metalab.reconnect(dir).result()``; ``summary`` is when the summary job's
  ``summary/runs.parquet`` appeared after the last task's end.
* ``snakemake``: ``SlurmConfig(engine="snakemake")``, Snakemake's SLURM executor plugin
  (one job per batch, Snakemake started inside each job), status checks every second.

``tail`` is the time from the last task's end marker (or last record) to the result.

    python benchmarks/slurm.py [--workload trivial200] [--modes array,run] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WORKLOADS = {  # name: (runs, seconds per run, runs per job)
    "trivial200": (200, 0.0, 10),
    "sleep40": (40, 2.0, 10),
    "trivial1000": (1000, 0.0, 10),
}

EXPERIMENT = textwrap.dedent(
    """
    import time
    import metalab

    @metalab.operation
    def work(params, capture):
        time.sleep(__SLEEP__)
        capture.metric("y", params["x"] * 2)

    exp = metalab.Experiment(name="slurmbench", version="__TAG__", context={}, operation=work,
        params=metalab.grid(x=list(range(__N__))), seeds=metalab.seeds(1))
    """
)

RUN = textwrap.dedent(
    """
    import json, sys, time
    start = time.time()
    import metalab
    from exp import exp

    config = metalab.SlurmConfig(partition="__PARTITION__", time=10, memory="500M",
                                 chunk_size=__CHUNK__, status_interval=1,
                                 engine="__ENGINE__")
    results = metalab.run(exp, executor=metalab.SlurmExecutor(config), verbose=False).result()
    end = time.time()
    last = max(r.record.finished_at for r in results)
    jobs = {r.record.provenance["extra"]["slurm_job_id"] for r in results}
    print(json.dumps({"end": end, "ok": len(results.successful), "jobs": len(jobs)}))
    """
)

TASK = textwrap.dedent(
    """
    import json, os, sys, time
    chunk, n, sleep = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    task = int(os.environ["SLURM_ARRAY_TASK_ID"])
    for x in range(task * chunk, min(n, (task + 1) * chunk)):
        time.sleep(sleep)
        with open(f"out/{x}.json", "w") as handle:
            json.dump({"x": x, "y": x * 2}, handle)
    with open(f"out/{task}.end", "w") as handle:
        handle.write("0")
    """
)


def _newest_mtime(paths: list[Path]) -> float:
    return max(p.stat().st_mtime for p in paths)


def _array(directory: Path, n: int, sleep: float, chunk: int, partition: str) -> dict:
    (directory / "task.py").write_text(TASK)
    (directory / "out").mkdir()
    tasks = -(-n // chunk)
    start = time.time()
    job = subprocess.run(
        [
            "sbatch", "--parsable", "--array", f"0-{tasks - 1}", "--partition", partition,
            "--time", "10", "--mem", "500", "--output", "/dev/null", "--chdir", str(directory),
            "--wrap", f"{sys.executable} task.py {chunk} {n} {sleep}",
        ],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    out = directory / "out"
    while len([p for p in os.listdir(out) if p.endswith(".end")]) < tasks:
        time.sleep(0.2)
    end = time.time()
    assert len(list(out.glob("*.json"))) == n, f"array job {job} lost runs"
    return {"seconds": end - start, "tail": end - _newest_mtime(list(out.glob("*.end"))),
            "jobs": tasks}  # fmt: skip


def _last_end(exp_dir: Path) -> float:
    ends = list((exp_dir / ".metalab" / "batches").glob("*.end"))
    return _newest_mtime(ends or list((exp_dir / "runs").glob("*.json")))


def _run(directory: Path, n: int, chunk: int, partition: str, engine: str) -> dict:
    script = RUN.replace("__PARTITION__", partition).replace("__CHUNK__", str(chunk))
    (directory / "bench.py").write_text(script.replace("__ENGINE__", engine))
    start = time.time()
    out = subprocess.run(
        [sys.executable, "bench.py"], cwd=directory, capture_output=True, text=True, check=True
    ).stdout
    row = json.loads(out.strip().splitlines()[-1])
    assert row["ok"] == n, row
    exp_dir = next((directory / "runs").iterdir())
    return {"seconds": row["end"] - start, "tail": row["end"] - _last_end(exp_dir),
            "jobs": row["jobs"]}  # fmt: skip


def _submit(directory: Path, n: int, chunk: int, partition: str) -> dict:
    profile = directory / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(
        "executor: slurm\njobs: 100\ndefault-resources:\n"
        f"  slurm_partition: {partition}\n  runtime: 10\n  mem_mb: 500\n"
    )
    start = time.time()
    subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "submit", "exp.py", "--profile", "profile",
         "--chunk-size", str(chunk)],
        cwd=directory, capture_output=True, text=True, check=True,
    )  # fmt: skip
    import metalab

    exp_dir = next((directory / "runs").iterdir())
    results = metalab.reconnect(exp_dir).result()  # what a user does after submitting
    end = time.time()
    assert len(results.successful) == n, len(results.successful)
    last = _last_end(exp_dir)
    summary = exp_dir / "summary" / "runs.parquet"
    deadline = time.time() + 60
    while time.time() < deadline and (not summary.is_file() or summary.stat().st_mtime < last):
        time.sleep(0.1)
    jobs = len(list((exp_dir / ".metalab" / "batches").glob("*.end")))
    return {"seconds": end - start, "tail": end - last, "jobs": jobs + 1,
            "summary_tail": summary.stat().st_mtime - last}  # fmt: skip


def measure(mode: str, workload: str, partition: str, tag: str) -> dict:
    n, sleep, chunk = WORKLOADS[workload]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as name:
        directory = Path(name)
        (directory / "exp.py").write_text(
            EXPERIMENT.replace("__N__", str(n))
            .replace("__SLEEP__", str(sleep))
            .replace("__TAG__", tag)
        )
        if mode == "array":
            return _array(directory, n, sleep, chunk, partition)
        if mode == "submit":
            return _submit(directory, n, chunk, partition)
        return _run(directory, n, chunk, partition, "snakemake" if mode == "snakemake" else "array")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", default="trivial200", choices=sorted(WORKLOADS))
    parser.add_argument("--modes", default="array,run,submit")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--partition", default="debug")
    args = parser.parse_args()
    n, sleep, chunk = WORKLOADS[args.workload]
    print(f"{args.workload}: {n} runs of {sleep} s, {chunk} runs per job")
    print(f"{'mode':>10} {'jobs':>5} {'wall (s)':>16} {'tail (s)':>14}")
    modes = args.modes.split(",")
    rows: dict[str, list[dict]] = {mode: [] for mode in modes}
    for i in range(args.repeat):  # interleaved, so that a busy cluster hits every mode
        for mode in modes:
            rows[mode].append(measure(mode, args.workload, args.partition, f"{mode}{i}"))
    for mode in modes:
        walls = [r["seconds"] for r in rows[mode]]
        tails = [r["tail"] for r in rows[mode]]
        print(
            f"{mode:>10} {rows[mode][0]['jobs']:>5} "
            f"{statistics.mean(walls):>6.1f} ({min(walls):.1f}-{max(walls):.1f}) "
            f"{statistics.mean(tails):>5.1f} ({min(tails):.1f}-{max(tails):.1f})"
            + (
                f"  summary file {min(summaries):.1f}-{max(summaries):.1f} s after the last task"
                if (summaries := [r["summary_tail"] for r in rows[mode] if "summary_tail" in r])
                else ""
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
