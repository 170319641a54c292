"""FilePath / DirPath: content hashing, path independence, the stat-keyed cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import metalab
from metalab import DirPath, FilePath, MissingPathError
from metalab_smk.core import filehash
from metalab_smk.core.filehash import HashCache, dir_hash, file_hash, full_file_hash


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_same_content_at_two_paths_has_the_same_hash(tmp_path: Path) -> None:
    a = _write(tmp_path / "a" / "data.csv", b"x,y\n1,2\n")
    b = _write(tmp_path / "b" / "other.csv", b"x,y\n1,2\n")
    assert metalab.fingerprint(FilePath(a)) == metalab.fingerprint(FilePath(b))
    assert metalab.fingerprint(FilePath(a, hash_path=True)) != metalab.fingerprint(
        FilePath(b, hash_path=True)
    )


def test_file_hash_is_sha256_of_contents(tmp_path: Path) -> None:
    import hashlib

    path = _write(tmp_path / "f.bin", b"hello")
    assert full_file_hash(path) == hashlib.sha256(b"hello").hexdigest()
    assert file_hash(path) == hashlib.sha256(b"hello").hexdigest()[:16]


def test_changed_byte_changes_file_hash(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.bin", b"hello")
    before = metalab.fingerprint(FilePath(path))
    path.write_bytes(b"hellp")
    assert metalab.fingerprint(FilePath(path)) != before


def test_copied_directory_keeps_its_hash_and_a_changed_byte_changes_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write(src / "a.txt", b"alpha")
    _write(src / "sub" / "b.txt", b"beta")
    dst = tmp_path / "elsewhere" / "copy"
    shutil.copytree(src, dst)
    assert dir_hash(src) == dir_hash(dst)
    assert metalab.fingerprint(DirPath(src)) == metalab.fingerprint(DirPath(dst))
    (dst / "sub" / "b.txt").write_bytes(b"betb")
    assert dir_hash(src) != dir_hash(dst)


def test_dir_hash_sees_renames_and_patterns(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _write(root / "a.txt", b"1")
    _write(root / "b.log", b"2")
    txt_only = dir_hash(root, "*.txt")
    assert txt_only != dir_hash(root)
    (root / "a.txt").rename(root / "c.txt")
    assert dir_hash(root, "*.txt") != txt_only
    assert DirPath(root, "*.log").files() == [root / "b.log"]


def test_cache_avoids_rereading_unchanged_files(tmp_path: Path, monkeypatch) -> None:
    cache = HashCache(tmp_path / "cache.sqlite")
    path = _write(tmp_path / "big.bin", b"x" * 1000)
    reads: list[str] = []
    real_read = filehash._read_sha256
    monkeypatch.setattr(filehash, "_read_sha256", lambda p: reads.append(p) or real_read(p))
    first = file_hash(path, cache)
    assert file_hash(path, cache) == first
    assert len(reads) == 1
    # a fresh process (new HashCache on the same file) also skips the read
    assert file_hash(path, HashCache(tmp_path / "cache.sqlite")) == first
    assert len(reads) == 1
    path.write_bytes(b"y" * 1000)  # same size, new mtime
    os.utime(path, ns=(1, 2))
    assert file_hash(path, cache) != first
    assert len(reads) == 2


def test_unwritable_cache_location_is_not_fatal(tmp_path: Path) -> None:
    blocker = _write(tmp_path / "file", b"")
    cache = HashCache(blocker / "sub" / "cache.sqlite")  # parent is a file
    path = _write(tmp_path / "f", b"abc")
    assert file_hash(path, cache) == file_hash(path, HashCache(tmp_path / "ok.sqlite"))


def test_missing_paths_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(MissingPathError, match=r"FilePath\('.*nope.csv'\) does not exist"):
        metalab.fingerprint(FilePath(missing))
    with pytest.raises(MissingPathError, match=r"DirPath.*create it or fix the path"):
        metalab.fingerprint({"data": DirPath(tmp_path / "nodir")})


def test_missing_file_in_context_fails_when_planning(tmp_path: Path) -> None:
    experiment = metalab.Experiment(
        "e",
        "1",
        {"data": FilePath(tmp_path / "absent.csv")},
        metalab.operation(lambda params: None),
        metalab.grid(x=[1]),
        metalab.seeds(1),
    )
    with pytest.raises(MissingPathError, match=r"absent\.csv"):
        metalab.Plan(experiment)


def test_context_spec_is_a_frozen_dataclass(tmp_path: Path) -> None:
    @metalab.context_spec
    class Data:
        table: FilePath
        rows: int = 10

    data = Data(FilePath(_write(tmp_path / "t.csv", b"1")))
    with pytest.raises(AttributeError):
        data.rows = 3
    payload = {"rows": 10, "table": {"kind": "file", "sha256": full_file_hash(data.table)}}
    assert metalab.fingerprint(data) == metalab.fingerprint(payload)
