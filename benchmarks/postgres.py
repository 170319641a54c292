"""The PostgreSQL index at scale: index, load, and query across experiments.

Writes synthetic stores (records in this project's format, 3 params, 3 metrics, one
2-step stepped metric every 10th run, a derived file every 10th run), then measures:

* ``metalab index`` of one experiment with N records (target: 100,000 in < 30 s), and a
  second, unchanged pass (incremental: nothing re-read);
* ``load_results(URL, experiment_id=...)`` of those N runs (target: < 2 s), and the same
  N runs through a filter (``status="success"``: rows instead of the stored table);
* a filtered query across 10 experiments x N/10 runs (target: < 0.5 s).

    bash scripts/local-postgres-start.sh
    python benchmarks/postgres.py [--runs 100000] [--db URL]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

TARGETS = {
    "index": 30.0,
    "load": 2.0,
    "load_best_of_3": 2.0,
    "query": 0.5,
    "query_best_of_3": 0.5,
}


def write_experiment(root: Path, experiment_id: str, n_runs: int) -> Path:
    """A compiled-looking experiment directory with ``n_runs`` success records."""
    from metalab_smk.store.config import FileStoreConfig
    from metalab_smk.store.jsonio import atomic_write_json

    layout = FileStoreConfig(root).experiment_dir(experiment_id)
    layout.runs_dir.mkdir(parents=True)
    (layout.root / "derived").mkdir()
    run_ids = [f"{i:016x}" for i in range(n_runs)]
    layout.meta_dir.mkdir()
    layout.run_table.write_text("".join(f"{r}\n" for r in run_ids))
    atomic_write_json(layout.compiled, {"experiment_id": experiment_id, "n_runs": n_runs})
    for i, run_id in enumerate(run_ids):
        stepped = ["loss"] if i % 10 == 0 else []
        record = {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "status": "success",
            "context_fingerprint": "c" * 16,
            "params_fingerprint": f"{i // 4:016x}",
            "seed_fingerprint": f"{i % 4:016x}",
            "started_at": "2026-12-01T10:00:00+00:00",
            "finished_at": "2026-12-01T10:00:01+00:00",
            "duration_ms": 1000 + i % 97,
            "metrics": {"loss": 1.0 / (1 + i), "accuracy": (i % 100) / 100, "epochs": i % 7},
            "provenance": {"code_hash": "a" * 16, "executor_id": "local"},
            "error": None,
            "params_resolved": {
                "lr": (i % 10) / 10,
                "depth": i % 13,
                "opt": ["sgd", "adam"][i % 2],
            },
            "tags": ["bench"],
            "warnings": [],
            "notes": None,
            "artifacts": [],
            "seed": {"root_seed": 1, "replicate_index": i % 4},
            "run_index": i,
            "stepped_metrics": stepped,
            "_schema_version": 1,
        }
        with open(layout.record(run_id), "w") as handle:
            json.dump(record, handle)
        if stepped:
            layout.results(run_id).mkdir(parents=True)
            with open(layout.data_file(run_id, "loss"), "w") as handle:
                json.dump(
                    {"name": "loss", "type": "stepped_metric", "data": [[0, 2.0], [1, 1.0]]}, handle
                )
            with open(layout.derived(run_id), "w") as handle:
                json.dump({"half_loss": 0.5 / (1 + i)}, handle)
    return layout.root


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument(
        "--db",
        default=os.environ.get(
            "METALAB_TEST_DB_URL", "postgresql://postgres@127.0.0.1:55432/metalab"
        ),
    )
    args = parser.parse_args()

    import psycopg

    import metalab
    from metalab_smk.results.index.upkeep import index_store

    name = f"metalab_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.db, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = args.db.rsplit("/", 1)[0] + f"/{name}"
    results: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            big = write_experiment(Path(tmp) / "one", "big:1", args.runs)
            results["index"], _ = timed(index_store, big, url)
            results["reindex_unchanged"], _ = timed(index_store, big, url)
            loads = [timed(metalab.load_results, url, experiment_id="big:1") for _ in range(3)]
            results["load"] = loads[0][0]
            results["load_best_of_3"] = min(t for t, _ in loads)
            assert len(loads[0][1]) == args.runs, len(loads[0][1])
            results["load_rows_filtered"], rows = timed(
                metalab.load_results, url, experiment_id="big:1", status="success"
            )
            assert len(rows) == args.runs
            many = Path(tmp) / "many"
            for k in range(10):
                write_experiment(many, f"sweep{k}:1", args.runs // 10)
            results["index_10x"], _ = timed(index_store, many, url)
            queries = [
                timed(
                    metalab.load_results,
                    url,
                    experiment_id="sweep%",
                    status="success",
                    params={"lr": 0.3, "opt": "adam"},
                    where="accuracy >= 0.5",
                )
                for _ in range(3)
            ]
            results["query"] = queries[0][0]
            results["query_best_of_3"] = min(t for t, _ in queries)
            hits = queries[0][1]
            results["query_rows"] = len(hits)
            assert set(hits.frame["param_lr"]) == {0.3}
    finally:
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    for key, value in results.items():
        target = TARGETS.get(key)
        verdict = (
            ""
            if target is None
            else f" (target < {target} s: {'ok' if value < target else 'MISSED'})"
        )
        unit = "" if key == "query_rows" else " s"
        print(f"{key:>18}: {value:.3f}{unit}{verdict}" if unit else f"{key:>18}: {int(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
