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
* ``profile``: what a user types: ``metalab compile exp.py``, then plain ``snakemake
  --profile P --config chunk=K`` in the experiment directory, P being what ``metalab
  profile slurm`` writes (``executor: metalab-slurm``: the ready batches as one job array
  running the worker, as ``run`` does); it ends when Snakemake exits, summary written.
* ``profile-slurm``: the same with ``executor: slurm`` (snakemake-executor-plugin-slurm,
  status checks every 3 s, as the profile shipped before the metalab executor).

``tail`` is the time from the last task's end marker (or last record) to the result.
``cpu/task`` is the mean user+sys CPU of one array task (sacct's TotalCPU of the tasks'
batch steps, read once accounting has them); ``head cpu`` is the user+sys CPU of the
process that submitted and waited, with its children (compile, polling, summary);
``task span`` is the first task's start to the last task's end (sacct, whole seconds).

    python benchmarks/slurm.py [--workload trivial200] [--modes run,profile] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
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


def _seconds(total_cpu: str) -> float:
    """sacct's ``[D-][HH:]MM:SS[.mmm]`` as seconds."""
    days, _, rest = total_cpu.rpartition("-")
    parts = [float(p) for p in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    return (int(days or 0) * 24 + parts[0]) * 3600 + parts[1] * 60 + parts[2]


def accounting(array_job: str, tasks: int) -> dict:
    """From sacct: ``task_cpu``, the mean user+sys CPU seconds of a task (its batch step),
    and ``span``, first task start to last task end (1 s resolution; other users' jobs on
    the cluster stretch it alike for every mode). Empty when sacct does not have them."""
    deadline = time.time() + 20
    while time.time() < deadline:
        out = subprocess.run(
            ["sacct", "-n", "-P", "-o", "JobID,TotalCPU,Start,End", "-j", array_job],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        rows = [line.split("|") for line in out.splitlines()]
        steps = [row for row in rows if row[0].endswith(".batch")]
        tasks_rows = [row for row in rows if "." not in row[0] and "[" not in row[0]]
        if len(steps) >= tasks and len(tasks_rows) >= tasks:
            first = min(datetime.fromisoformat(row[2]) for row in tasks_rows)
            last = max(datetime.fromisoformat(row[3]) for row in tasks_rows)
            return {
                "task_cpu": sum(_seconds(row[1]) for row in steps) / len(steps),
                "span": (last - first).total_seconds(),
            }
        time.sleep(1)
    return {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
            "jobs": tasks, "head_cpu": None, **accounting(job, tasks)}  # fmt: skip


def _last_end(exp_dir: Path) -> float:
    ends = list((exp_dir / ".metalab" / "batches").glob("*.end"))
    return _newest_mtime(ends or list((exp_dir / "runs").glob("*.json")))


def _run(directory: Path, n: int, chunk: int, partition: str, engine: str) -> dict:
    script = RUN.replace("__PARTITION__", partition).replace("__CHUNK__", str(chunk))
    (directory / "bench.py").write_text(script.replace("__ENGINE__", engine))
    start, cpu = time.time(), _children_cpu()
    out = subprocess.run(
        [sys.executable, "bench.py"], cwd=directory, capture_output=True, text=True, check=True
    ).stdout
    head_cpu = _children_cpu() - cpu
    row = json.loads(out.strip().splitlines()[-1])
    assert row["ok"] == n, row
    exp_dir = next((directory / "runs").iterdir())
    return {"seconds": row["end"] - start, "tail": row["end"] - _last_end(exp_dir),
            "jobs": row["jobs"], "head_cpu": head_cpu,
            **_array_accounting(exp_dir, row["jobs"])}  # fmt: skip


def _array_accounting(exp_dir: Path, tasks: int) -> dict:
    """CPU per task of the array metalab submitted (its ID is in the array log or head)."""
    for name in ("slurm-array.log", "head.json"):
        path = exp_dir / ".metalab" / name
        found = (
            re.search(r'(?:array job |"array_job_id":\s*")(\d+)', path.read_text())
            if (path.is_file())
            else None
        )
        if found:
            return accounting(found.group(1), tasks)
    return {}


def _submit(directory: Path, n: int, chunk: int, partition: str) -> dict:
    profile = directory / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(
        "executor: slurm\njobs: 100\ndefault-resources:\n"
        f"  slurm_partition: {partition}\n  runtime: 10\n  mem_mb: 500\n"
    )
    start, cpu = time.time(), _children_cpu()
    subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "submit", "exp.py", "--profile", "profile",
         "--chunk-size", str(chunk)],
        cwd=directory, capture_output=True, text=True, check=True,
    )  # fmt: skip
    import metalab

    exp_dir = next((directory / "runs").iterdir())
    results = metalab.reconnect(exp_dir).result()  # what a user does after submitting
    end = time.time()
    own = resource.getrusage(resource.RUSAGE_SELF)
    head_cpu = _children_cpu() - cpu + own.ru_utime + own.ru_stime  # reconnect runs here
    assert len(results.successful) == n, len(results.successful)
    last = _last_end(exp_dir)
    summary = exp_dir / "summary" / "runs.parquet"
    deadline = time.time() + 60
    while time.time() < deadline and (not summary.is_file() or summary.stat().st_mtime < last):
        time.sleep(0.1)
    jobs = len(list((exp_dir / ".metalab" / "batches").glob("*.end")))
    return {"seconds": end - start, "tail": end - last, "jobs": jobs + 1,
            "summary_tail": summary.stat().st_mtime - last, "head_cpu": head_cpu,
            **_array_accounting(exp_dir, jobs)}  # fmt: skip


def _profile(directory: Path, n: int, chunk: int, partition: str, executor: str) -> dict:
    profile = directory / "profile"
    cli = [sys.executable, "-m", "metalab_smk.cli"]
    options = ["--partition", partition, "--time", "10", "--memory", "500M"]
    subprocess.run([*cli, "profile", "slurm", str(profile), *options], check=True,
                   capture_output=True)  # fmt: skip
    config = profile / "config.yaml"
    if executor != "metalab-slurm":
        text = config.read_text().replace("executor: metalab-slurm", f"executor: {executor}")
        config.write_text(text + "slurm-init-seconds-before-status-checks: 3\n"
                          "seconds-between-status-checks: 3\n")  # fmt: skip
    start, cpu = time.time(), _children_cpu()
    subprocess.run([*cli, "compile", "exp.py"], cwd=directory, check=True, capture_output=True)
    exp_dir = next((directory / "runs").iterdir())
    snakemake = [str(Path(sys.executable).with_name("snakemake")), "--profile", str(profile)]
    done = subprocess.run([*snakemake, "--config", f"chunk={chunk}"], cwd=exp_dir,
                          capture_output=True, text=True, check=False)  # fmt: skip
    end = time.time()
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((exp_dir / "runs").glob("*.json"))) == n
    assert (exp_dir / "summary" / "runs.parquet").is_file()
    jobs = len(list((exp_dir / ".metalab" / "batches").glob("*.done")))
    arrays = re.findall(r"submitted SLURM array job (\d+)", done.stderr)
    records = list((exp_dir / "runs").glob("*.json"))
    return {"seconds": end - start, "tail": end - _newest_mtime(records), "jobs": jobs,
            "head_cpu": _children_cpu() - cpu,
            **(accounting(arrays[0], jobs) if len(arrays) == 1 else {})}  # fmt: skip


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
        if mode.startswith("profile"):
            executor = "slurm" if mode == "profile-slurm" else "metalab-slurm"
            return _profile(directory, n, chunk, partition, executor)
        return _run(directory, n, chunk, partition, "snakemake" if mode == "snakemake" else "array")


def _mean(values) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.mean(known):.3f}" if known else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", default="trivial200", choices=sorted(WORKLOADS))
    parser.add_argument("--modes", default="array,run,submit")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--partition", default="debug")
    args = parser.parse_args()
    n, sleep, chunk = WORKLOADS[args.workload]
    print(f"{args.workload}: {n} runs of {sleep} s, {chunk} runs per job")
    print(
        f"{'mode':>10} {'jobs':>5} {'wall (s)':>16} {'tail (s)':>14} "
        f"{'cpu/task (s)':>12} {'head cpu (s)':>12} {'task span (s)':>13}"
    )
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
            f"{statistics.mean(tails):>5.1f} ({min(tails):.1f}-{max(tails):.1f}) "
            f"{_mean(r.get('task_cpu') for r in rows[mode]):>12} "
            f"{_mean(r.get('head_cpu') for r in rows[mode]):>12} "
            f"{_mean(r.get('span') for r in rows[mode]):>13}"
            + (
                f"  summary file {min(summaries):.1f}-{max(summaries):.1f} s after the last task"
                if (summaries := [r["summary_tail"] for r in rows[mode] if "summary_tail" in r])
                else ""
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
