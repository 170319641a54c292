"""Write a valid success record for every run of a compiled ``grid(i=range(N))``
experiment, quickly and in the real record format (``RunRecord.to_dict``), without
running the sweep: setup for the status and resume benchmarks at 10^5..10^6 runs.

Records are written directly (no temporary file, no fsync): this is benchmark setup,
not how a worker writes them. About 15 s per 10^6 records on an idle disk.

    python benchmarks/fake_records.py EXPERIMENT_DIR
"""

from __future__ import annotations

import argparse
import json
import os
import time

from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import RunRecord, Status


def _template(experiment_id: str) -> str:
    """The JSON text of a record split around the three per-run fields."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    record = RunRecord(
        run_id="@RUN_ID@",
        experiment_id=experiment_id,
        status=Status.SUCCESS,
        context_fingerprint="44136fa355b3678a",
        params_fingerprint="@PARAMS_FP@",
        seed_fingerprint="2cf60e5d76180e6f",
        started_at=now,
        finished_at=now,
        duration_ms=1,
        metrics={"y": 1},
        provenance={
            "code_hash": "391552c099c101b1",
            "python_version": "3.11",
            "metalab_version": "0.1.0",
            "snakemake_version": "9",
            "executor_id": "local",
            "host": "bench",
            "extra": {"log": "logs/@RUN_ID@_run.log"},
        },
        params_resolved={"i": -1},
        seed={"root_seed": 1, "replicate_index": 0},
        run_index=-1,
    )
    text = json.dumps(record.to_dict())
    text = text.replace('"params_resolved": {"i": -1}', '"params_resolved": {"i": @INDEX@}')
    return text.replace('"run_index": -1', '"run_index": @INDEX@')


def _write(fd_dir: int, name: str, text: str) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd_dir)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_records(directory: str | os.PathLike[str], logs: bool = True) -> int:
    """A success record (and, with ``logs``, a run log as a worker leaves it) for each
    run of the run table (run ``k`` has ``i = k``); returns how many were written."""
    layout = ExperimentDir.at(directory)
    experiment_id = json.loads(layout.compiled.read_text())["experiment_id"]
    template = _template(experiment_id)
    layout.runs_dir.mkdir(parents=True, exist_ok=True)
    layout.logs_dir.mkdir(parents=True, exist_ok=True)
    fd_dir = os.open(layout.runs_dir, os.O_RDONLY | os.O_DIRECTORY)
    fd_logs = os.open(layout.logs_dir, os.O_RDONLY | os.O_DIRECTORY)
    header = '# metalab run {"run_id": "%s", "pid": 1, "host": "bench", "started_at": "%s"}\n'
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    count = 0
    try:
        with open(layout.run_table, encoding="ascii") as table:
            for index, line in enumerate(table):
                run_id = line.strip()
                text = (
                    template.replace("@RUN_ID@", run_id)
                    .replace("@PARAMS_FP@", f"{index:016x}")
                    .replace("@INDEX@", str(index))
                )
                _write(fd_dir, f"{run_id}.json", text)
                if logs:
                    _write(fd_logs, f"{run_id}_run.log", header % (run_id, now))
                count += 1
    finally:
        os.close(fd_dir)
        os.close(fd_logs)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", help="a compiled experiment directory")
    parser.add_argument("--no-logs", action="store_true", help="write records only")
    args = parser.parse_args()
    start = time.perf_counter()
    count = write_records(args.directory, logs=not args.no_logs)
    print(f"wrote {count:,} records in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
