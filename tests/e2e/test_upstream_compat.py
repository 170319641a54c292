"""More of upstream metalab's public API, on real sweeps: store configs and locators,
``PostgresStore`` (runs under ``file_root``, the database as index), ``Run(record,
store)``, executor lifecycle, ``reconnect(store=, verbose=)``, ``display_results``,
``to_dataframe(progress=)``, and artifacts that upstream's reader can load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from metalab.result import Run
from metalab.store import (
    ConfigRegistry,
    FileStore,
    FileStoreConfig,
    PostgresStore,
    PostgresStoreConfig,
    create_store,
    parse_locator,
    parse_to_config,
)
from metalab.store.config import StoreConfig

import metalab
from metalab_smk.errors import UsageError
from metalab_smk.store.layout import ExperimentDir


@metalab.operation
def make_outputs(params, seeds, capture, runtime):
    capture.metric("score", params["x"] * 2)
    capture.artifact("weights", np.arange(4.0) * params["x"])
    capture.artifact("config", {"x": params["x"]})
    notes = runtime.scratch_dir / "notes.txt"
    notes.write_text(f"x={params['x']}")
    capture.file("notes", notes)
    capture.data("curve", np.eye(2) * params["x"])


EXPERIMENT = metalab.Experiment(
    name="compat",
    version="1",
    context={},
    operation=make_outputs,
    params=metalab.grid(x=[1, 2]),
    seeds=metalab.seeds(base=3, replicates=1),
)


@pytest.fixture(scope="module")
def handle(tmp_path_factory: pytest.TempPathFactory):
    handle = metalab.run(EXPERIMENT, store=str(tmp_path_factory.mktemp("compat")), verbose=False)
    assert [str(r.status) for r in handle.result()] == ["success", "success"]
    return handle


def test_artifacts_are_written_the_way_upstreams_reader_loads_them(handle) -> None:
    results = handle.result()
    layout = ExperimentDir(handle.store.root)
    for run in results:
        x = run.params["x"]
        manifest = json.loads(layout.artifact_manifest(run.run_id).read_text())
        entries = {a["name"]: a for a in manifest["artifacts"]}  # upstream's shape
        assert set(entries) == {"weights", "config", "notes"}
        assert all(
            Path(a["uri"]).is_absolute() and Path(a["uri"]).is_file() for a in entries.values()
        )
        # upstream loads kind "numpy" as an .npz holding one array under "arr"
        assert entries["weights"]["kind"] == "numpy"
        with np.load(entries["weights"]["uri"]) as npz:
            assert list(npz.keys()) == ["arr"]
            np.testing.assert_array_equal(npz["arr"], np.arange(4.0) * x)
        assert json.loads(Path(entries["config"]["uri"]).read_text()) == {"x": x}
        # a kind it has no serializer for ("file") comes back as the raw bytes, here too
        assert Path(entries["notes"]["uri"]).read_bytes() == f"x={x}".encode()
        assert run.artifact("notes") == f"x={x}".encode()
        np.testing.assert_array_equal(run.artifact("weights"), np.arange(4.0) * x)
        assert run.artifact("config") == {"x": x}


def test_run_from_a_record_and_a_store(handle) -> None:
    first = handle.result()[0]
    for record in (first, first.record):
        run = Run(record, handle.store)
        assert run.run_id == first.run_id and run.params == first.params
        np.testing.assert_array_equal(run.data("curve"), np.eye(2) * first.params["x"])
        assert run.list_data() == ["curve"]
    assert Run(first, str(handle.store.root.parent)).metrics == first.metrics


def test_store_configs_and_locators_like_upstream(tmp_path: Path) -> None:
    config = FileStoreConfig(root="relative/dir")
    assert config.root == str(Path("relative/dir").absolute()) and not config.is_scoped
    assert ConfigRegistry.get("file") is FileStoreConfig
    assert ConfigRegistry.get("postgresql") is PostgresStoreConfig
    assert ConfigRegistry.get("s3") is None and "postgresql" in ConfigRegistry.schemes()
    with pytest.raises(ValueError, match="Missing _type"):
        StoreConfig.from_dict({"root": "x"})
    with pytest.raises(ValueError, match="Unknown config type"):
        StoreConfig.from_dict({"_type": "s3", "root": "x"})
    with pytest.raises(ValueError, match="Cannot list experiments on a scoped"):
        config.scoped("a:1").list_experiments()
    store = FileStoreConfig(tmp_path).connect()
    assert store.config == FileStoreConfig(tmp_path) and not store.is_scoped
    assert store.scoped("a:1").is_scoped and store.scoped("a:1").root == tmp_path / "a+1"

    info = parse_locator("postgresql://me:secret@db.example:5433/lab?file_root=/shared&schema=s")
    assert (info.scheme, info.host, info.port, info.user, info.path) == (
        "postgresql", "db.example", 5433, "me", "/lab",
    )  # fmt: skip
    assert info.params == {"file_root": "/shared", "schema": "s"} and "secret" not in repr(info)
    assert parse_locator("runs").path == str(Path("runs").absolute())
    assert isinstance(parse_to_config(f"file://{tmp_path}"), FileStoreConfig)
    assert parse_to_config(str(tmp_path), experiment_id="e:1").experiment_id == "e:1"
    pg = parse_to_config("postgresql://u:pw@h/db?sslmode=disable", file_root=tmp_path)
    assert pg == PostgresStoreConfig("postgresql://u:pw@h/db?sslmode=disable", str(tmp_path))
    assert "pw" not in repr(pg) and "u:***@h" in repr(pg)
    with pytest.raises(ValueError, match="file_root"):
        parse_to_config("postgresql://h/db")
    assert parse_to_config("postgresql://h/db?schema=public&file_root=/s").connection_string == (
        "postgresql://h/db"
    )
    with pytest.raises(ValueError, match="schema 'metalab'"):
        parse_to_config("postgresql://h/db?schema=mine&file_root=/s")
    with pytest.raises(ValueError, match="Unknown store scheme"):
        create_store("s3://bucket/x")


def test_executors_release_through_shutdown_on_exit() -> None:
    calls = []

    class Recording(metalab.ThreadExecutor):
        def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
            calls.append(wait)

    with pytest.raises(ValueError), Recording(max_workers=2):
        raise ValueError("inside")
    with metalab.ProcessExecutor(max_workers=1) as executor:
        assert executor.cores == 1
    assert calls == [True]


def test_reconnect_display_results_and_progress(handle, capsys) -> None:
    again = metalab.reconnect(store=handle.store, verbose=True)
    assert len(again.result()) == 2
    assert "2 of 2 runs done" in capsys.readouterr().out
    with pytest.raises(UsageError, match="exactly one"):
        metalab.reconnect(handle.store.root, store=handle.store)
    results = handle.result()
    metalab.display_results(results, show_by_group=["x"])
    out = capsys.readouterr().out
    assert "Total runs: 2" in out and "By x:" in out

    class Console:
        def __init__(self) -> None:
            self.printed: list[str] = []

        def print(self, text: str) -> None:
            self.printed.append(text)

    console = Console()
    metalab.display_results(results, console=console)
    assert "Total runs: 2" in console.printed[0]
    frame = results.to_dataframe(derived_metrics=[lambda r: {"twice": r.metrics["score"] * 2}],
                                 progress=True)  # fmt: skip
    assert list(frame["twice"]) == [4, 8]
    assert "derived metrics: 2/2 runs" in capsys.readouterr().err
    from metalab.manifest import deserialize_param_source

    source = metalab.grid(a=[1, 2], b=["x"])
    assert list(deserialize_param_source(source.to_manifest_dict())) == list(source)


def test_postgres_store_runs_into_file_root_with_the_database_as_index(
    db: str, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    handle = metalab.run(EXPERIMENT, store=f"{db}?file_root={shared}", verbose=False)
    assert len(handle.result()) == 2
    assert handle.store.root == shared / "compat+1"
    indexed = metalab.load_results(db, experiment_id="compat:1")
    assert sorted(indexed.to_dataframe()["score"]) == [2, 4]
    with PostgresStore(db, file_root=shared) as store:
        assert isinstance(store, FileStore) and store.connection_string == db
        assert store.scoped("compat:1").root == store.file_store.scoped("compat:1").root
        assert sorted(r.metrics["score"] for r in store.list_run_records()) == [2, 4]
    assert isinstance(create_store(f"{db}?file_root={shared}"), PostgresStore)
    again = metalab.run(EXPERIMENT, store=db, file_root=shared, verbose=False)
    assert again.store.root == handle.store.root and len(again.result()) == 2
    with pytest.raises(UsageError, match="needs file_root"):
        metalab.run(EXPERIMENT, store=db)
    with pytest.raises(UsageError, match="file_root"):
        metalab.run(EXPERIMENT, store=str(tmp_path / "plain"), file_root=shared)
