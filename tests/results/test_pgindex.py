"""The PostgreSQL index against a real server (scripts/local-postgres-start.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from store_helpers import FIXTURES, RUN_IDS, copy_upstream, fail_run

import metalab
from metalab_smk.cli import main as cli_main
from metalab_smk.results.index.upkeep import RUN_COLUMNS, index_store
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.upstream_import import import_upstream

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (postgres extra)")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Our store, converted from the upstream fixture (one failed run) plus a second
    experiment ``other:2.0`` with different params."""
    upstream = copy_upstream(tmp_path)
    fail_run(upstream, RUN_IDS[3])
    other = upstream / "other_2.0"
    shutil.copytree(upstream / "upsmall_1.0", other)
    for path in [other / "_meta.json", *other.glob("runs/*.json"), *other.glob("experiments/*")]:
        text = path.read_text().replace("upsmall:1.0", "other:2.0")
        text = text.replace('"lr": 0.1', '"lr": 0.2')
        for run_id in RUN_IDS:  # run IDs of another experiment differ (they hash its ID)
            text = text.replace(run_id, run_id[::-1])
        path.write_text(text)
    for path in sorted(other.rglob("*"), key=lambda p: -len(p.parts)):
        for run_id in RUN_IDS:
            if run_id in path.name:
                path.rename(path.with_name(path.name.replace(run_id, run_id[::-1])))
    root = tmp_path / "store"
    import_upstream(upstream, root)
    return root


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM metalab.{table}").fetchone()[0]


def test_index_then_load_equals_the_file_store(db: str, store: Path) -> None:
    report = index_store(store, db)
    assert [e[:2] for e in report.experiments] == [("other:2.0", 4), ("upsmall:1.0", 4)]
    files = metalab.load_results(store, experiment_id="upsmall:1.0")
    indexed = metalab.load_results(db, experiment_id="upsmall:1.0")
    pd.testing.assert_frame_equal(indexed.to_dataframe(), files.to_dataframe())
    pd.testing.assert_frame_equal(
        indexed.to_dataframe(include_derived=True), files.to_dataframe(include_derived=True)
    )
    assert indexed.summary() == files.summary()
    assert indexed.filter(lr=0.5).frame["run_id"].tolist() == RUN_IDS[2:]
    assert indexed.failed.frame["error_type"].tolist() == ["RuntimeError"]
    np.testing.assert_array_equal(indexed[0].artifact("weights"), files[0].artifact("weights"))
    assert indexed[1].data("curve") == files[1].data("curve")
    assert (_count(db, "steps"), _count(db, "derived"), _count(db, "artifacts")) == (18, 6, 6)


def test_index_is_idempotent_and_incremental(db: str, store: Path) -> None:
    index_store(store, db)
    assert [e[1] for e in index_store(store, db).experiments] == [0, 0]
    layout = FileStoreConfig(store).experiment_dir("upsmall:1.0")
    record = json.loads(layout.record(RUN_IDS[0]).read_text())
    record["metrics"]["final_loss"] = 9.0
    layout.record(RUN_IDS[0]).write_text(json.dumps(record))
    layout.record(RUN_IDS[1]).unlink()
    report = index_store(layout.root, db)
    assert report.experiments == [("upsmall:1.0", 1, 1, 3)]
    indexed = metalab.load_results(db, experiment_id="upsmall:1.0").to_dataframe()
    assert indexed["run_id"].tolist() == [RUN_IDS[0], *RUN_IDS[2:]]
    assert indexed["final_loss"].iloc[0] == 9.0
    assert _count(db, "runs") == 7
    rebuilt = index_store(store, db, rebuild=True)
    assert [e[1] for e in rebuilt.experiments] == [4, 3]


def test_queries_across_experiments(db: str, store: Path) -> None:
    assert cli_main(["index", str(store), "--db", db]) == 0
    everything = metalab.load_results(db)
    assert len(everything) == 8
    assert sorted(set(everything.frame["experiment_id"])) == ["other:2.0", "upsmall:1.0"]
    low = metalab.load_results(db, params={"lr": 0.2})
    assert set(low.frame["experiment_id"]) == {"other:2.0"} and len(low) == 2
    np.testing.assert_array_equal(low[0].artifact("weights"), np.arange(6.0).reshape(2, 3) * 0.1)
    assert low[0].experiment.experiment_id == "other:2.0"
    assert everything[0].experiment.experiment_id == "other:2.0"
    assert everything[-1].experiment.experiment_id == "upsmall:1.0"
    ok = metalab.load_results(db, status="success", params={"lr": 0.5})
    assert len(ok) == 2 and set(ok.frame["status"]) == {"success"}
    fast = metalab.load_results(db, where="final_loss < 0.2")
    assert len(fast) == 2 and (fast.frame["final_loss"] < 0.2).all()
    assert len(metalab.load_results(db, experiment_id="upsm%")) == 4
    assert len(metalab.load_results(db, experiment_id=["other:2.0"], status="failed")) == 1
    assert len(metalab.load_results(db, tags="nope")) == 0
    sliced = everything.filter(status="failed")
    assert {run.run_id for run in sliced} == {RUN_IDS[3], RUN_IDS[3][::-1]}
    assert {run.experiment.experiment_id for run in sliced} == {"other:2.0", "upsmall:1.0"}
    assert len(sliced[0:1]) == 1


def test_errors_are_one_line_with_the_password_masked(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for url in (
        "postgresql://me:s3cret@127.0.0.1:1/metalab",
        "postgresql://me:s3cret@127.0.0.1:notaport/metalab",
        "postgresql://me:s3c/ret@127.0.0.1:1/metalab",
        "postgresql://me@127.0.0.1:1/metalab?password=s3cret",
        "host=127.0.0.1 port=1 user=me password=s3cret dbname=metalab",
        "host=127.0.0.1 port=1 password='s3cret x' dbname=metalab",
    ):
        assert cli_main(["index", str(store), "--db", url]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "s3c" not in err and "***" in err
    with pytest.raises(metalab.MetalabError, match=r"me:\*\*\*@"):
        metalab.load_results("postgresql://me:s3cret@127.0.0.1:1/metalab")


def test_load_results_names_missing_experiments(db: str, store: Path) -> None:
    with pytest.raises(metalab.MetalabError, match="no metalab index yet"):
        metalab.load_results(db)
    index_store(store, db)
    with pytest.raises(metalab.MetalabError, match=r"no experiment 'x:1'.*other:2.0"):
        metalab.load_results(db, experiment_id="x:1")


@pytest.mark.integration
def test_sweeps_keep_the_index_up_to_date(db: str, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "upsmall_experiment.py", tmp_path / "upsmall_experiment.py")
    script = (
        "import sys, metalab; sys.path.insert(0, '.'); import upsmall_experiment as m\n"
        "index = sys.argv[2] if len(sys.argv) > 2 else None\n"
        "h = metalab.run(m.exp, store=sys.argv[1], progress=False, index=index); h.wait()\n"
        "sys.exit(0 if h.status.is_complete else 1)\n"
    )
    env = {**os.environ, "METALAB_INDEX_URL": "postgresql://me:s3cret@127.0.0.1:1/down"}
    down = subprocess.run(
        [sys.executable, "-c", script, "a"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert down.returncode == 0, down.stderr
    warnings = [line for line in down.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "s3cret" not in warnings[0] and "records are safe" in warnings[0]
    assert len(metalab.load_results(tmp_path / "a")) == 4
    up = subprocess.run(
        [sys.executable, "-c", script, "b", db], cwd=tmp_path, capture_output=True, text=True
    )
    assert up.returncode == 0, up.stderr
    indexed = metalab.load_results(db, experiment_id="upsmall:1.0")
    files = metalab.load_results(tmp_path / "b")
    pd.testing.assert_frame_equal(indexed.to_dataframe(), files.to_dataframe())
    assert set(indexed.frame["status"]) == {"success"}


def test_the_summary_rule_updates_the_index(db: str, store: Path) -> None:
    """``python -m metalab_smk.reduce DIR`` (the Snakemake summary rule) keeps the index
    of METALAB_INDEX_URL up to date; a database that is down is one warning line."""
    layout = FileStoreConfig(store).experiment_dir("upsmall:1.0")
    reduce = [sys.executable, "-m", "metalab_smk.reduce", str(layout.root)]
    env = {**os.environ, "METALAB_INDEX_URL": db}
    done = subprocess.run(reduce, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    indexed = metalab.load_results(db, experiment_id="upsmall:1.0")
    pd.testing.assert_frame_equal(
        indexed.to_dataframe(), metalab.load_results(layout.root).to_dataframe()
    )
    env["METALAB_INDEX_URL"] = "postgresql://me:s3cret@127.0.0.1:1/down"
    down = subprocess.run(reduce, env=env, capture_output=True, text=True, check=False)
    assert down.returncode == 0
    assert len(down.stderr.strip().splitlines()) == 1 and "s3cret" not in down.stderr


def _clone_in_index(url: str, source: str, new_id: str) -> None:
    """Index rows of experiment ``source`` again under the ID ``new_id``."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO metalab.experiments (experiment_id, name, version, directory, columns)"
            " SELECT %s, name, version, directory, columns FROM metalab.experiments"
            " WHERE experiment_id = %s",
            (new_id, source),
        )
        conn.execute(
            f"INSERT INTO metalab.runs ({RUN_COLUMNS}) SELECT %s, {RUN_COLUMNS.split(', ', 1)[1]}"
            " FROM metalab.runs WHERE experiment_id = %s",
            (new_id, source),
        )
        conn.execute(
            "UPDATE metalab.runs SET row = jsonb_set(row::jsonb, '{experiment_id}',"
            " to_jsonb(experiment_id))::json WHERE experiment_id = %s",
            (new_id,),
        )


def test_where_is_a_condition_on_the_results_columns(db: str, store: Path) -> None:
    index_store(store, db)
    everything = metalab.load_results(db).frame

    def run_ids(where: str) -> set[str]:
        return set(metalab.load_results(db, where=where).frame["run_id"])

    def expected(mask: pd.Series) -> set[str]:
        return set(everything[mask.fillna(False).astype(bool)]["run_id"])

    loss, lr = everything["final_loss"], everything["param_lr"]
    assert run_ids("final_loss < 0.2") == expected(loss < 0.2)
    assert run_ids("final_loss >= 0.2 AND param_lr = 0.5") == expected((loss >= 0.2) & (lr == 0.5))
    assert run_ids("NOT (param_lr IN (0.1, 0.2)) OR status = 'failed'") == expected(
        ~lr.isin([0.1, 0.2]) | (everything["status"] == "failed")
    )
    assert run_ids("param_lr NOT IN (0.5)") == expected(lr != 0.5)
    assert run_ids("final_loss IS NULL") == expected(loss.isna())
    assert run_ids("error_type IS NOT NULL") == expected(everything["error_type"].notna())
    assert run_ids("experiment_id != 'other:2.0' and duration_ms > -1") == expected(
        everything["experiment_id"] != "other:2.0"
    )
    assert run_ids("status < 0.2") == set()  # a string is never compared with a number
    assert run_ids("run_id = 'x'' OR ''1''=''1'") == set()  # one string literal


INJECTIONS = [
    "TRUE); DELETE FROM metalab.runs; --",
    "final_loss < 0.2; DELETE FROM metalab.runs",
    "final_loss < 0.2); DELETE FROM metalab.runs; SELECT (1",
    "pg_sleep(3) IS NULL",
    "final_loss < pg_sleep(3)",
    "param_lr = 0.1 OR pg_sleep(3) IS NULL",
    "final_loss < 0.2 -- AND status = 'success'",
    "final_loss < 0.2 /* comment */",
    "(r.metrics->>'final_loss')::float < 0.2",
    "1 = 1",
    "status = 'success' OR TRUE",
    '"x"; DROP TABLE metalab.runs; --" = 1',
    "status = $$success$$",
    "status = E'\\x27'",
    "final_loss < 0.2 UNION SELECT 1",
]


@pytest.mark.parametrize("where", INJECTIONS)
def test_where_refuses_anything_but_a_condition(db: str, store: Path, where: str) -> None:
    import time

    index_store(store, db)
    before = _count(db, "runs")
    began = time.monotonic()
    with pytest.raises(metalab.MetalabError) as refused:
        metalab.load_results(db, where=where)
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and message.startswith("where=")
    assert time.monotonic() - began < 2.5  # pg_sleep never ran
    assert _count(db, "runs") == before == 8


def test_where_queries_run_read_only(db: str, store: Path, monkeypatch) -> None:
    from metalab_smk.results.index import query as index_results

    index_store(store, db)
    seen = []
    original = index_results.fetch_rows

    def spy(cur, condition, values):
        cur.execute("SHOW transaction_read_only")
        seen.append(cur.fetchone()[0])
        return original(cur, condition, values)

    monkeypatch.setattr(index_results, "fetch_rows", spy)
    assert len(metalab.load_results(db, where="param_lr = 0.2")) == 2
    assert seen == ["on"]


def test_experiment_ids_with_like_wildcards_match_only_themselves(db: str, store: Path) -> None:
    index_store(store, db)
    for new_id in ("up%:1.0", "up_x:1.0", "upAx:1.0"):
        _clone_in_index(db, "upsmall:1.0", new_id)

    def ids(experiment_id: str) -> set[str]:
        return set(metalab.load_results(db, experiment_id=experiment_id).frame["experiment_id"])

    assert ids("up%:1.0") == {"up%:1.0"}  # an indexed ID is never a pattern
    assert len(metalab.load_results(db, experiment_id="up%:1.0")) == 4
    assert ids("up_x%") == {"up_x:1.0"}  # '_' is no wildcard
    assert ids("up%") == {"up%:1.0", "up_x:1.0", "upAx:1.0", "upsmall:1.0"}
    assert ids("up\\%") == set()
    with pytest.raises(metalab.MetalabError, match=r"no experiment 'up_x:1\.\d'"):
        metalab.load_results(db, experiment_id="up_x:1.1")
