"""``metalab import`` of crafted archives, stores and upstream stores (issue 20, items 1
and 3): nothing is written outside DEST, every refused entry gets one line on stderr and
the exit code says so, and a decompression bomb is streamed with bounded memory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from process_env import subprocess_env
from store_helpers import RUN_IDS, copy_upstream

from metalab_smk.store.archive import import_archive

IDS = [f"{i:016x}" for i in range(1, 4)]
EXP = "x+1"


def _record(run_id: str, **extra) -> dict:
    return {
        "run_id": run_id,
        "experiment_id": "x:1",
        "status": "success",
        "duration_ms": 1,
        "started_at": "t0",
        "finished_at": "t1",
        "params_resolved": {},
        "metrics": {"y": 1},
        "artifacts": [],
        **extra,
    }


def _file(name: str, data: bytes | str | dict) -> tuple[tarfile.TarInfo, bytes]:
    if isinstance(data, dict):
        data = json.dumps(data)
    payload = data.encode() if isinstance(data, str) else data
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def _experiment(*run_ids: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Members of a small, valid experiment directory ``x+1`` with these runs."""
    return [
        _file(f"{EXP}/.metalab/compiled.json", {"experiment_id": "x:1", "name": "x"}),
        _file(f"{EXP}/.metalab/run_ids.txt", "".join(f"{rid}\n" for rid in IDS)),
        *(_file(f"{EXP}/runs/{rid}.json", _record(rid)) for rid in run_ids),
    ]


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return path


def _import(tmp_path: Path, source: Path, dest: Path, *options: str):
    command = [sys.executable, "-m", "metalab_smk.cli", "import", str(source), str(dest)]
    return subprocess.run(
        [*command, *options],
        capture_output=True,
        text=True,
        env=subprocess_env(tmp_path),
        timeout=600,
        check=False,
    )


def _outside(tmp_path: Path, dest: Path) -> set[str]:
    """Every path under ``tmp_path`` but outside ``dest``."""
    return {str(p) for p in tmp_path.rglob("*") if dest not in p.parents and p != dest}


# crafted archives ---------------------------------------------------------------------
def test_a_record_whose_run_id_is_a_path_writes_nothing_outside_dest(tmp_path: Path) -> None:
    """The finding: the merge used the record's ``run_id`` field as a path."""
    dest = tmp_path / "dest"
    first = _import(tmp_path, _tar(tmp_path / "ok.tar.gz", _experiment(IDS[0])), dest)
    assert first.returncode == 0, first.stderr
    evil = f"../../../../{tmp_path.relative_to('/')}/evil"
    crafted = _experiment(IDS[1])
    crafted.append(_file(f"{EXP}/runs/{IDS[2]}.json", {**_record(IDS[2]), "run_id": evil}))
    crafted.append(_file(f"{EXP}/failed/evil.json", {**_record(IDS[2]), "run_id": evil}))
    before = _outside(tmp_path, dest)
    done = _import(tmp_path, _tar(tmp_path / "evil.tar.gz", crafted), dest)
    assert done.returncode == 1, done.stderr
    assert _outside(tmp_path, dest) == before | {str(tmp_path / "evil.tar.gz")}
    refused = [line for line in done.stderr.splitlines() if "refused" in line]
    assert len(refused) == 2 and all(EXP in line for line in refused), done.stderr
    assert "imported 1 runs" in done.stdout  # the good run still lands
    names = sorted(p.name for p in (dest / EXP / "runs").iterdir())
    assert names == [f"{IDS[0]}.json", f"{IDS[1]}.json"]


def test_links_devices_absolute_and_escaping_members_are_refused(tmp_path: Path) -> None:
    """Stricter than tarfile's ``data`` filter: only plain files and directories, with
    relative names that stay inside the archive; one stderr line each."""
    dest = tmp_path / "dest"
    secret = tmp_path / "secret.txt"
    secret.write_text("another user's secret")
    members = _experiment(IDS[0])
    members += [
        _file(str(tmp_path / "absolute.txt"), "x"),
        _file("../escape.txt", "x"),
        _file(f"{EXP}/../../escape2.txt", "x"),
        _special(f"{EXP}/runs/{IDS[1]}.json", tarfile.SYMTYPE, str(secret)),
        _special(f"{EXP}/logs/{IDS[0]}_run.log", tarfile.LNKTYPE, str(secret)),
        _special(f"{EXP}/artifacts/dev", tarfile.CHRTYPE),
        _special(f"{EXP}/artifacts/fifo", tarfile.FIFOTYPE),
        _special(f"{EXP}/artifacts", tarfile.SYMTYPE, str(tmp_path)),
        _file(f"{EXP}/artifacts/{IDS[0]}/planted.txt", "x"),  # through the link above?
    ]
    before = _outside(tmp_path, dest)
    done = _import(tmp_path, _tar(tmp_path / "a.tar.gz", members), dest)
    assert done.returncode == 1
    assert _outside(tmp_path, dest) == before | {str(tmp_path / "a.tar.gz")}
    refused = [line for line in done.stderr.splitlines() if "refused archive member" in line]
    assert len(refused) == 8, done.stderr
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert (dest / EXP / "artifacts" / IDS[0] / "planted.txt").read_text() == "x"
    assert "imported 1 runs" in done.stdout


def test_a_symlink_in_a_store_directory_is_not_followed_out(tmp_path: Path) -> None:
    """Importing a store directory copies files, never what a link points at."""
    source, dest = tmp_path / "source", tmp_path / "dest"
    _tar(tmp_path / "s.tar.gz", _experiment(IDS[0]))
    assert import_archive(tmp_path / "s.tar.gz", source).imported == 1
    (tmp_path / "secret.txt").write_text("another user's secret")
    folder = source / EXP / "artifacts" / IDS[0]
    folder.mkdir(parents=True)
    (folder / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (source / EXP / "runs" / f"{IDS[1]}.json").symlink_to(tmp_path / "secret.txt")
    done = _import(tmp_path, source, dest)
    assert done.returncode == 1
    assert not (dest / EXP / "artifacts" / IDS[0] / "leak.txt").exists()
    assert f"{EXP}/artifacts/{IDS[0]}/leak.txt" in done.stderr
    assert f"{EXP}/runs/{IDS[1]}.json" in done.stderr
    assert (source / EXP / "runs" / f"{IDS[0]}.json").exists()  # the source is copied, not moved


def test_an_upstream_store_cannot_steer_copies_out(tmp_path: Path) -> None:
    upstream = copy_upstream(tmp_path)
    folder = upstream / "upsmall_1.0"
    record_path = folder / "runs" / f"{RUN_IDS[0]}.json"
    record = json.loads(record_path.read_text())
    record["artifacts"][0]["uri"] = "../../../../../../../../etc/passwd"
    record_path.write_text(json.dumps(record))
    renamed = json.loads((folder / "runs" / f"{RUN_IDS[1]}.json").read_text())
    renamed["run_id"] = "../../escaped"
    (folder / "runs" / f"{RUN_IDS[1]}.json").write_text(json.dumps(renamed))
    dest = tmp_path / "dest"
    before = _outside(tmp_path, dest)
    done = _import(tmp_path, upstream, dest)
    assert done.returncode == 1
    assert _outside(tmp_path, dest) == before
    assert "etc/passwd" in done.stderr and f"runs/{RUN_IDS[1]}.json" in done.stderr
    assert "imported 3 runs" in done.stdout


# bounded memory ------------------------------------------------------------------------
def _zstd_bomb(path: Path, big: dict[str, int]) -> None:
    """A tar.zst of a small experiment plus members of ``big`` zero bytes each, written
    as raw tar blocks (fast): tiny on disk, gigabytes decompressed."""
    zstandard = pytest.importorskip("zstandard", reason="a .tar.zst: needs the zstd extra")
    zeros = bytes(1 << 24)
    with open(path, "wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as out:
        for info, payload in _experiment(IDS[0]):
            out.write(info.tobuf(tarfile.PAX_FORMAT) + payload)
            out.write(bytes(-len(payload) % 512))
        for name, size in big.items():
            info = tarfile.TarInfo(name)
            info.size = size
            out.write(info.tobuf(tarfile.PAX_FORMAT))
            for start in range(0, size, len(zeros)):
                out.write(zeros[: min(len(zeros), size - start)])
            out.write(bytes(-size % 512))
        out.write(bytes(1024))


PEAK = textwrap.dedent(
    """
    import resource, subprocess, sys
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(done.returncode, peak, repr(done.stdout), repr(done.stderr), sep="\\n")
    """
)


@pytest.mark.integration
def test_a_zstd_bomb_streams_with_bounded_memory_and_absurd_members_are_refused(
    tmp_path: Path,
) -> None:
    bomb = tmp_path / "bomb.tar.zst"
    big = f"{EXP}/artifacts/{IDS[0]}/big.bin"
    _zstd_bomb(bomb, {big: 300 * 2**20, f"{EXP}/artifacts/{IDS[0]}/absurd.bin": 3 * 2**30})
    assert bomb.stat().st_size < 400_000  # about 3.3 GB decompressed
    dest = tmp_path / "dest"
    command = [sys.executable, "-m", "metalab_smk.cli", "import", str(bomb), str(dest)]
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *command, "--max-member-size", "1G"],
        capture_output=True,
        text=True,
        env=subprocess_env(tmp_path),
        timeout=600,
        check=True,
    )
    code, peak_kib, stdout, stderr = done.stdout.splitlines()
    assert int(code) == 1, stderr
    assert int(peak_kib) < 300 * 1024, f"peak RSS {int(peak_kib) // 1024} MB"
    assert "absurd.bin" in stderr and "above the limit" in stderr and "imported 1 runs" in stdout
    assert (dest / big).stat().st_size == 300 * 2**20  # a large member is streamed to disk
    assert not (dest / EXP / "artifacts" / IDS[0] / "absurd.bin").exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".import-")]  # scratch removed
    assert os.listdir(dest) == [EXP]
