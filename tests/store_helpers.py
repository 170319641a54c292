"""Shared helpers of the store tests: copies of the upstream fixture store."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
RUN_IDS = ["257dd093aea646f2", "831c85e33a316b23", "32f2490ad52927d6", "f1ad75abe0deaebd"]


def copy_upstream(tmp_path: Path) -> Path:
    """A writable copy of the upstream store (collection root)."""
    root = tmp_path / "upstream"
    shutil.copytree(FIXTURES / "upstream-store", root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def raw_record(root: Path, run_id: str) -> dict:
    return json.loads((root / "upsmall_1.0" / "runs" / f"{run_id}.json").read_text())


def fail_run(root: Path, run_id: str) -> None:
    """Turn one upstream run into a failed one, the way upstream records failures."""
    folder = root / "upsmall_1.0"
    record = raw_record(root, run_id)
    record.update(
        status="failed",
        metrics={},
        artifacts=[],
        error={"type": "RuntimeError", "message": "diverged at lr=0.5", "traceback": "..."},
    )
    (folder / "runs" / f"{run_id}.json").write_text(json.dumps(record))
    shutil.rmtree(folder / "artifacts" / run_id)
    shutil.rmtree(folder / "results" / run_id)
    (folder / "derived" / f"{run_id}.json").unlink()


def file_hashes(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (its path relative to it) -> its content's hash."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def settled_hashes(directory: Path, timeout: float = 30.0) -> dict[str, str]:
    """``file_hashes`` once they stay the same for a second (a running sweep has written
    what it writes at start)."""
    deadline, previous = time.monotonic() + timeout, None
    while (current := file_hashes(directory)) != previous:
        assert time.monotonic() < deadline, "the directory kept changing"
        previous = current
        time.sleep(1.0)
    return current
